"""The sandbox a generated program runs in, and the clean-up after it.

`setup_worker()` runs once in each worker. Where the kernel allows it (`namespaces.py`),
the worker moves into new user, PID, mount, network, IPC and UTS namespaces whose root
filesystem is read-only and holds only the Python installation and what it needs; each
program then gets a PID, mount and IPC namespace of its own with a private /tmp and
/dev/shm. Where the kernel refuses, it falls back to what works without them: a network
namespace when it can, and (as root) a uid of its own; the pool then warns once, naming
what is not isolated.

`enter()` runs in the freshly forked child, before the program: a new session and
process group, stdio on /dev/null, every other descriptor closed, a scratch working
directory, rlimits (address space, CPU seconds, file size, open files, processes, no
core files), an unprivileged user when the evaluator is root (root ignores
RLIMIT_NPROC), no capabilities, no new privileges, death with the worker, and a scrubbed
environment. `reap()` runs in the worker after the child ends: it kills the child's
process group and, because the worker is a child subreaper, every descendant that
escaped the group with setsid() (with namespaces the kernel has already done so: the
child was PID 1 of its PID namespace).
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import resource
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps_hpc.core.limits import MIB, Limits
from apps_hpc.evaluate import namespaces, seccomp, tree

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
CAP_DAC_READ_SEARCH = 2
_CAP_VERSION_3 = 0x20080522
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Identity:
    """Who the child runs as: `uid` None keeps the evaluator's user. `read_all` keeps
    CAP_DAC_READ_SEARCH (read-only access everywhere), needed when the Python that runs
    the programs lives where the sandbox user cannot read (e.g. under /root)."""

    uid: int | None
    gid: int | None
    nproc: int
    read_all: bool = False
    namespaces: bool = False  # the worker is in its namespaces; each child gets its own


UID_SPAN = 1000  # sandbox users are uid_base .. uid_base + UID_SPAN - 1
_held_locks: list[int] = []


def claim_uid(uid_base: int, slot: int, lock_dir: str = "/tmp") -> int:
    """A sandbox uid no other live worker on this machine uses (two evaluations on one
    node must not share RLIMIT_NPROC). The claim is an flock held until this process
    exits; the search starts at uid_base + slot."""
    import fcntl

    for offset in range(UID_SPAN):
        uid = uid_base + (slot + offset) % UID_SPAN
        fd = os.open(f"{lock_dir}/apps-hpc-sandbox-uid-{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held_locks.append(fd)
        return uid
    raise RuntimeError(f"all sandbox uids {uid_base}..{uid_base + UID_SPAN - 1} are in use")


def identity_for_slot(slot: int, limits: Limits, uid_base: int, gid: int) -> Identity:
    """Root: a user of its own per worker, so RLIMIT_NPROC counts only that sandbox.
    Not root: the evaluator's user, with a process limit above what it already runs."""
    if os.geteuid() == 0:
        uid = claim_uid(uid_base, slot)
        return Identity(uid, gid, limits.max_procs, not python_world_readable())
    return Identity(None, None, count_user_processes(os.getuid()) + limits.max_procs + 64)


def _world_reachable(path: Path) -> bool:
    """Can any user list `path` (search permission on every ancestor, read on it)?"""
    import stat

    try:
        for parent in [*reversed(path.parents), path]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                return False
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return True  # a missing sys.path entry blocks nothing


def python_world_readable() -> bool:
    import sys

    roots = {Path(p).resolve() for p in sys.path if p} | {Path(sys.base_prefix).resolve()}
    return all(_world_reachable(p) for p in roots)


def describe(identity: Identity) -> str:
    if identity.uid is None:
        if identity.namespaces:
            return f"uid {os.getuid()}, no capabilities"
        return f"uid {os.getuid()} (not root: no user switch)"
    extra = " + CAP_DAC_READ_SEARCH (Python is not world-readable)" if identity.read_all else ""
    return f"uid {identity.uid}{extra}"


def count_user_processes(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def _call(name: str, *args: int) -> None:
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _namespace_identity(slot: int, limits: Limits, uid_base: int, gid: int) -> Identity:
    """Who the child is inside the namespaces, and the uid/gid maps that allow it."""
    if os.geteuid() == 0:
        uid = claim_uid(uid_base, slot)
        namespaces.isolate_worker(namespaces.id_maps(0, 0, uid, gid), _sandbox_paths())
        return Identity(uid, gid, limits.max_procs, not python_world_readable(), True)
    maps = namespaces.id_maps(os.getuid(), os.getgid(), None, None)
    if namespaces.per_namespace_nproc():  # counts this namespace only: O, the worker, it
        nproc = limits.max_procs + 2
    else:
        nproc = count_user_processes(os.getuid()) + limits.max_procs + 64
    namespaces.isolate_worker(maps, _sandbox_paths())
    return Identity(None, None, nproc, False, True)


def _sandbox_paths() -> list[str]:
    from apps_hpc.evaluate.semantics import HEADER_MODULES

    return namespaces.python_paths(HEADER_MODULES)


def setup_worker(cfg: dict[str, Any]) -> tuple[Identity, str, str]:
    """Isolate this worker as `cfg["isolation"]` asks ("namespaces" or "none"); return
    the children's identity, the network and the isolation in words; `cfg["tree"]` is
    then the tree limits in force (tree.py, set up first: no /sys in the namespaces).
    With namespaces this returns in a new process (see namespaces.isolate_worker); a
    refusal raises namespaces.IsolationError."""
    limits: Limits = cfg["limits"]
    cfg["tree"] = tree.setup()
    if cfg.get("isolation", "none") == "namespaces":
        import tempfile

        identity = _namespace_identity(cfg["slot"], limits, cfg["uid_base"], cfg["gid"])
        tempfile.tempdir = "/tmp"  # the worker's private tmpfs; each child mounts its own
        what = f"user, PID, mount, network, IPC; read-only filesystem; {describe(identity)}"
        return identity, "userns+netns (loopback down)", f"namespaces ({what}){_extra(cfg)}"
    identity = identity_for_slot(cfg["slot"], limits, cfg["uid_base"], cfg["gid"])
    network = isolate_network()
    return identity, network, f"none (network: {network}; {describe(identity)}){_extra(cfg)}"


def _extra(cfg: dict[str, Any]) -> str:
    return f"; {seccomp.describe()}; {cfg['tree'].describe()}"


def in_force() -> dict[str, str]:
    """The isolation that may change a verdict and that this machine decides before a
    worker starts: the system-call filter and the tree limits' mode. Part of the
    results' provenance and of the verdict cache's key (stage.py)."""
    return {"seccomp": seccomp.fingerprint(), "tree_limits": tree.mode()}


def isolate_network() -> str:
    """Move this process into a new network namespace; say how, or why not."""
    try:
        _call("unshare", CLONE_NEWNET)
        return "netns"
    except OSError:
        pass
    uid, gid = os.getuid(), os.getgid()
    try:
        _call("unshare", CLONE_NEWUSER | CLONE_NEWNET)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        return "userns+netns"
    except OSError as exc:
        return f"unavailable ({exc.strerror})"


def become_subreaper() -> None:
    """Orphaned descendants of the sandbox are re-parented to this process."""
    _call("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _set_limits(limits: Limits, identity: Identity) -> None:
    cpu = math.ceil(limits.program_budget_s)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for res, value in (
        (resource.RLIMIT_AS, limits.memory_mb * MIB),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * MIB),
        (resource.RLIMIT_NOFILE, limits.max_open_files),
        (resource.RLIMIT_NPROC, identity.nproc),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(res, (value, value))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]


def _set_capabilities(bits: int) -> None:
    """Keep only the capabilities in `bits` (effective and permitted; < 32 only)."""
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(bits, bits, 0), _CapData(0, 0, 0))
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def _drop_privileges(identity: Identity) -> None:
    if identity.uid is None or identity.gid is None:
        if identity.namespaces:  # the child holds every capability in its namespace
            _set_capabilities(0)
        return
    if identity.read_all:
        _call("prctl", PR_SET_KEEPCAPS, 1, 0, 0, 0)
    os.setgroups([])
    os.setgid(identity.gid)
    os.setuid(identity.uid)
    if identity.read_all:  # after setuid with KEEPCAPS
        _set_capabilities(1 << CAP_DAC_READ_SEARCH)
    if os.getuid() != identity.uid or os.geteuid() != identity.uid:
        raise OSError(errno.EPERM, "could not drop privileges")


def _redirect_stdio(keep_fd: int) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1 << 16)


def _scrub_env(scratch: str) -> None:
    os.environ.clear()
    os.environ.update(
        PATH="/usr/local/bin:/usr/bin:/bin",
        HOME=scratch,
        TMPDIR=scratch,
        LANG="C.UTF-8",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )


def enter(scratch: str, keep_fd: int, limits: Limits, identity: Identity) -> None:
    """Turn the forked child into the sandbox. Raises if any step fails."""
    import sys

    os.setsid()
    _redirect_stdio(keep_fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - as a multiprocessing child has
    if identity.namespaces:
        owner = None if identity.uid is None else (identity.uid, identity.gid or 0)
        namespaces.enter_program(scratch, owner, limits.tmp_mb)
    os.chdir(scratch)
    _set_limits(limits, identity)
    _drop_privileges(identity)
    # setuid made the child non-dumpable: the worker (another uid) could no longer read
    # its smaps_rollup, and the tree's memory would be summed as RSS (tree.py). Same uid
    # as without a user switch; ptrace stays refused by the filter.
    _call("prctl", PR_SET_DUMPABLE, 1, 0, 0, 0)
    _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write raises instead
    _scrub_env(scratch)
    seccomp.confine()  # last: a fresh session keyring, then the system-call filter


def fork_program(identity: Identity) -> int:
    """os.fork(); with namespaces the child is PID 1 of a PID namespace of its own."""
    return namespaces.fork_program() if identity.namespaces else os.fork()


def make_scratch(base: Path, identity: Identity) -> Path:
    scratch = base / "cwd"
    scratch.mkdir(mode=0o700)
    if identity.uid is not None and identity.gid is not None:
        os.chown(scratch, identity.uid, identity.gid)
    return scratch


def remove_scratch(scratch: Path) -> None:
    import shutil

    try:
        scratch.rmdir()
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc/<n>/stat)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _reap_exited() -> bool:
    """Collect every exited child; False once this process has no children at all."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def reap(pgid: int) -> None:
    """Kill the sandbox's process group and every descendant left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10.0
    while _reap_exited() and time.monotonic() < deadline:
        kids = children_of(os.getpid())
        for kid in kids:
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not kids:
            select.select([], [], [], 0.001)
