"""The system-call filter every program runs under (seccomp, no library needed).

`confine()` runs in the sandboxed child last, after the namespaces, limits and the user
switch (it needs no_new_privs): it gives the child a fresh, empty session keyring, then
installs a classic-BPF filter that fails the system calls below with EPERM. Programs
that APPS solutions write (threads, fork, recursion, numpy) never make them. Docker's
default profile (moby/moby profiles/seccomp/default.json) is the reference for what an
untrusted process never needs; each group says why.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

# group -> (why, system calls); every one fails with EPERM
DENIED: dict[str, tuple[str, tuple[str, ...]]] = {
    "keyring": (
        "the kernel's keyrings are not namespaced: the evaluator's session keyring (a "
        "login's Kerberos/AFS credentials) and the user keyring of the sandbox uid are "
        "shared, and keys would carry a verdict from one program to the next",
        ("add_key", "request_key", "keyctl"),
    ),
    "namespaces": (
        "a nested user namespace gives back every capability inside it (mount a tmpfs "
        "outside the program's size cap, widen the kernel surface); clone() with a "
        "CLONE_NEW* flag is refused too",
        ("unshare", "setns"),
    ),
    "other processes": (
        "reading or writing another process's memory (the worker's, a sibling's)",
        ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    ),
    "kernel attack surface": (
        "BPF programs, performance counters, userfaultfd and io_uring are the usual "
        "routes of kernel exploits; no program needs them",
        ("bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter"),
    ),
    "filesystems": (
        "mounts (the program's view of the filesystem is fixed) and file handles that bypass it",
        (
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
            "name_to_handle_at",
            "open_by_handle_at",
            "fanotify_init",
            "quotactl",
        ),
    ),
    "system": (
        "the machine's state: modules, reboot, clocks, swap, host name, kernel log",
        (
            "init_module",
            "finit_module",
            "delete_module",
            "kexec_load",
            "kexec_file_load",
            "reboot",
            "swapon",
            "swapoff",
            "settimeofday",
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
            "sethostname",
            "setdomainname",
            "syslog",
            "acct",
            "vhangup",
        ),
    ),
}
# clone3 takes its flags in memory a filter cannot read: it fails with ENOSYS, and the C
# library falls back to clone, whose flags the filter checks (as Docker does).
CLONE_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

_COMMON = {  # the same numbers on every 64-bit architecture since Linux 5.x
    "pidfd_getfd": 438,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "clone3": 435,
}
_X86_64 = {
    **_COMMON,
    **dict(add_key=248, request_key=249, keyctl=250, unshare=272, setns=308, ptrace=101),
    **dict(process_vm_readv=310, process_vm_writev=311, kcmp=312, bpf=321, userfaultfd=323),
    **dict(perf_event_open=298, mount=165, umount2=166, pivot_root=155, chroot=161),
    **dict(name_to_handle_at=303, open_by_handle_at=304, fanotify_init=300, quotactl=179),
    **dict(init_module=175, finit_module=313, delete_module=176, kexec_load=246),
    **dict(kexec_file_load=320, reboot=169, swapon=167, swapoff=168, settimeofday=164),
    **dict(clock_settime=227, clock_adjtime=305, adjtimex=159, sethostname=170),
    **dict(setdomainname=171, syslog=103, acct=163, vhangup=153, clone=56),
}
_GENERIC = {  # asm-generic/unistd.h (aarch64)
    **_COMMON,
    **dict(add_key=217, request_key=218, keyctl=219, unshare=97, setns=268, ptrace=117),
    **dict(process_vm_readv=270, process_vm_writev=271, kcmp=272, bpf=280, userfaultfd=282),
    **dict(perf_event_open=241, mount=40, umount2=39, pivot_root=41, chroot=51),
    **dict(name_to_handle_at=264, open_by_handle_at=265, fanotify_init=262, quotactl=60),
    **dict(init_module=105, finit_module=273, delete_module=106, kexec_load=104),
    **dict(kexec_file_load=294, reboot=142, swapon=224, swapoff=225, settimeofday=170),
    **dict(clock_settime=112, clock_adjtime=266, adjtimex=171, sethostname=161),
    **dict(setdomainname=162, syslog=116, acct=89, vhangup=58, clone=220),
}
# machine -> (AUDIT_ARCH_*, numbers, the first number of a foreign ABI on this arch)
ARCHES = {
    "x86_64": (0xC000003E, _X86_64, 0x40000000),  # x32 calls: nr | __X32_SYSCALL_BIT
    "aarch64": (0xC00000B7, _GENERIC, None),
}

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
KEYCTL_JOIN_SESSION_KEYRING = 1
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # struct seccomp_data (little-endian arg low half)

_libc = ctypes.CDLL(None, use_errno=True)


def supported() -> bool:
    return platform.machine() in ARCHES


def describe() -> str:
    """The filter in force, in words (for the provenance and `doctor`)."""
    if not supported():
        return f"none (no system-call table for {platform.machine()})"
    count = sum(len(calls) for _, calls in DENIED.values())
    return f"seccomp: {count} calls denied ({', '.join(DENIED)}), no nested namespaces"


def fingerprint() -> str:
    """The filter in force, exactly (for the provenance): a hash of its BPF program."""
    if not supported():
        return "none"
    import hashlib

    return "bpf-" + hashlib.sha256(program(platform.machine())).hexdigest()[:16]


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def program(machine: str) -> bytes:
    """The filter as classic BPF (pure): a foreign architecture or ABI, a denied call or
    clone() with a namespace flag -> EPERM; clone3 -> ENOSYS; anything else allowed."""
    arch, numbers, foreign = ARCHES[machine]
    deny, allow = _op(RET_K, RET_ERRNO | errno.EPERM), _op(RET_K, RET_ALLOW)
    ops = [_op(LD_W_ABS, _OFF_ARCH), _op(JEQ_K, arch, 1, 0), deny, _op(LD_W_ABS, _OFF_NR)]
    if foreign is not None:
        ops += [_op(JGE_K, foreign, 0, 1), deny]
    for name in sorted({n for _, calls in DENIED.values() for n in calls}):
        ops += [_op(JEQ_K, numbers[name], 0, 1), deny]
    ops += [_op(JEQ_K, numbers["clone3"], 0, 1), _op(RET_K, RET_ERRNO | errno.ENOSYS)]
    ops += [_op(JEQ_K, numbers["clone"], 0, 3), _op(LD_W_ABS, _OFF_ARG0)]
    ops += [_op(JSET_K, CLONE_NAMESPACE_FLAGS, 0, 1), deny, allow]
    return b"".join(ops)


class _Filter(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _fresh_session_keyring() -> None:
    """Join a new, empty, anonymous session keyring (the evaluator's is left)."""
    keyctl = ARCHES[platform.machine()][1]["keyctl"]
    if _libc.syscall(ctypes.c_long(keyctl), KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        err = ctypes.get_errno()
        if err != errno.ENOSYS:  # a kernel without keyrings has nothing to share
            raise OSError(err, f"keyctl(JOIN_SESSION_KEYRING): {errno.errorcode.get(err)}")


def confine() -> None:
    """A fresh session keyring, then the filter (needs PR_SET_NO_NEW_PRIVS already)."""
    if not supported():
        return
    _fresh_session_keyring()
    code = program(platform.machine())
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _Filter(len(code) // 8, ctypes.addressof(buf))
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {errno.errorcode.get(err)}")
