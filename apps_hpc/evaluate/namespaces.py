"""Isolation without privileges: Linux user, PID, mount, network, IPC and UTS namespaces,
set up with the system calls themselves (no setuid helper, no bubblewrap).

Once per worker (`isolate_worker`, before it imports numpy: unshare needs a single
thread): the worker process (O) enters new user, network, IPC, UTS and PID namespaces; a
short-lived helper left outside writes the uid/gid maps (as root: root plus the sandbox
uid; otherwise the user's own ids, setgroups denied). O then forks the real worker (W),
PID 1 of the new PID namespace, and only waits for it. W builds a root filesystem on a
tmpfs that holds, read-only, /usr and the /lib links, the Python installation, the venv's
site-packages and the packages the worker needs, a minimal /dev and two /etc files, and
nothing else (no /root, /home, experiment folder or /etc/shadow); pivots into it and
mounts a /proc of its own PID namespace.

Once per program (`fork_program`, `enter_program`): the child is PID 1 of a PID namespace
of its own (so it sees only its own processes, and when it ends the kernel kills every
process it started), in a mount and IPC namespace of its own with a fresh /proc and
fresh, size-capped tmpfs on /tmp and /dev/shm. Then `sandbox.enter` drops every
capability (or, as root, switches to the sandbox uid).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import platform
import site
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
WORKER_NAMESPACES = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME = 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
# statvfs flag -> the mount flag a read-only remount must keep (the kernel locks these
# on mounts that came from a more privileged namespace)
_KEPT_FLAGS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "ppc64": 203, "s390x": 217}
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
DEVICES = ("null", "zero", "full", "random", "urandom")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1"}
DEV_LINKS["stderr"] = "/proc/self/fd/2"
KERNEL_SETTINGS = (
    "/proc/sys/user/max_user_namespaces",
    "/proc/sys/kernel/unprivileged_userns_clone",
    "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
)

_libc = ctypes.CDLL(None, use_errno=True)
_own_pidns: list[int] = []  # the worker's PID namespace, to return to after each fork
# Kept paths that live under /tmp (a checkout or venv in /tmp): the private /tmp would
# hide them, so they are bound read-only under KEEP and bound back into every fresh /tmp.
KEEP = "/.keep"
_tmp_paths: list[str] = []


class IsolationError(OSError):
    """The kernel refused a step of the namespace set-up; the message names the step."""


@dataclass(frozen=True)
class IdMaps:
    """The uid and gid maps of the worker's user namespace: (inside, outside) pairs."""

    uids: tuple[tuple[int, int], ...]
    gids: tuple[tuple[int, int], ...]
    deny_setgroups: bool

    def text(self, pairs: tuple[tuple[int, int], ...]) -> str:
        return "".join(f"{inside} {outside} 1\n" for inside, outside in pairs)


def id_maps(uid: int, gid: int, sandbox_uid: int | None, sandbox_gid: int | None) -> IdMaps:
    """Root maps itself and the sandbox user (it then switches to it, as without
    namespaces); anyone else can map only their own ids, with setgroups denied."""
    if uid == 0 and sandbox_uid is not None and sandbox_gid is not None:
        gids = ((gid, gid),) if gid == sandbox_gid else ((gid, gid), (sandbox_gid, sandbox_gid))
        return IdMaps(((0, 0), (sandbox_uid, sandbox_uid)), gids, False)
    return IdMaps(((uid, uid),), ((gid, gid),), True)


def _call(name: str, *args: object) -> None:
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        shown = ", ".join(hex(a) if isinstance(a, int) else repr(a) for a in args)
        raise IsolationError(err, f"{name}({shown}): {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str = "") -> None:
    enc = [s.encode() if s is not None else None for s in (src, dst, fstype)]
    if _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), data.encode() or None) != 0:
        err = ctypes.get_errno()
        raise IsolationError(err, f"mount {src or fstype} on {dst}: {os.strerror(err)}")


def _pivot_root(new: str, old: str) -> None:
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise IsolationError(0, f"pivot_root: unknown system call number on {platform.machine()}")
    if _libc.syscall(ctypes.c_long(number), new.encode(), old.encode()) != 0:
        err = ctypes.get_errno()
        raise IsolationError(err, f"pivot_root {new}: {os.strerror(err)}")


# ------------------------------------------------------------------ what the program sees


def covering(paths: Iterable[str]) -> list[str]:
    """Absolute, normalised paths with every path inside another one dropped (pure)."""
    clean = sorted({os.path.normpath(p) for p in paths if os.path.isabs(p)}, key=len)
    kept: list[str] = []
    for path in clean:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return sorted(kept)


def _package_dirs(names: Iterable[str]) -> list[str]:
    dirs = []
    for name in names:
        spec = importlib.util.find_spec(name.split(".")[0])
        if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
            continue
        locations = list(spec.submodule_search_locations or [])
        dirs += locations or [os.path.dirname(spec.origin)]
    return dirs


def python_paths(modules: Iterable[str]) -> list[str]:
    """What the Python that runs the programs needs: its installation, the venv, the
    site-packages on sys.path (user site included) and the packages of `modules`.
    Never sys.path entries in general: the first is the folder the evaluator started in."""
    found = {sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix}
    found |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    found |= set(site.getsitepackages())
    found |= set(_package_dirs(["apps_hpc", *modules]))
    with_real = found | {os.path.realpath(p) for p in found}
    kept = [p for p in covering(with_real) if os.path.exists(p)]
    if "/" in kept:
        raise IsolationError(0, "the Python installation is the whole filesystem ('/')")
    return kept


# ------------------------------------------------------------------ building the root


def _make_target(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "a"):
            pass


def _kept_flags(path: str) -> int:
    have = os.statvfs(path).f_flag
    return sum(flag for st, flag in _KEPT_FLAGS.items() if have & st)


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (no codec: nothing may be imported mid-build)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _mount_points_under(path: str, proc: str) -> list[str]:
    points = []
    with open(f"{proc}/self/mountinfo") as fh:
        for line in fh:
            point = _unescape(line.split()[4])
            if point == path or point.startswith(path + "/"):
                points.append(point)
    return points


def _bind_read_only(src: str, dst: str, proc: str) -> None:
    """Bind `src` (and what is mounted below it) at `dst`, every mount read-only."""
    _make_target(dst, os.path.isdir(src))
    _mount(src, dst, None, MS_BIND | MS_REC)
    for point in _mount_points_under(dst, proc):
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | _kept_flags(point)
        _mount(None, point, None, flags)


def _populate_dev(old: str, new: str) -> None:
    dev = f"{new}/dev"
    os.mkdir(dev, 0o755)
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name in DEVICES:
        if os.path.exists(f"{old}/dev/{name}"):
            _make_target(f"{dev}/{name}", False)
            _mount(f"{old}/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for name, target in DEV_LINKS.items():
        os.symlink(target, f"{dev}/{name}")
    os.mkdir(f"{dev}/shm", 0o755)
    _mount(None, dev, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)


def _under_tmp(path: str) -> bool:
    return path == "/tmp" or path.startswith("/tmp/")


def bind_tmp_paths(root: str, proc: str) -> None:
    """Bind the kept paths that live under /tmp back into `root`/tmp (read-only)."""
    for path in _tmp_paths:
        _bind_read_only(root + KEEP + path, root + path, proc)


def _populate(old: str, new: str, paths: list[str]) -> None:
    for path in SYSTEM_PATHS:
        if os.path.islink(old + path):
            os.symlink(os.readlink(old + path), new + path)
        elif os.path.isdir(old + path):
            _bind_read_only(old + path, new + path, f"{old}/proc")
    for path in covering([*paths, *ETC_FILES]):
        if os.path.exists(old + path) and not path.startswith(SYSTEM_PATHS):
            target = new + KEEP + path if _under_tmp(path) else new + path
            _bind_read_only(old + path, target, f"{old}/proc")
            if _under_tmp(path):
                _tmp_paths.append(path)
    _populate_dev(old, new)
    for name in ("tmp", "proc", ".old"):
        os.mkdir(f"{new}/{name}", 0o755)
    _mount("tmpfs", f"{new}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    _mount("proc", f"{new}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    bind_tmp_paths(new, f"{old}/proc")


def build_root(paths: list[str]) -> None:
    """Replace this mount namespace's root with the sandbox's (see the module doc)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    os.mkdir("/tmp/old")
    os.mkdir("/tmp/new")
    os.chdir("/tmp")
    _pivot_root(".", "old")  # the host's root is now /old, so /tmp is reachable too
    _mount("tmpfs", "/new", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    _populate("/old", "/new", paths)
    os.chdir("/new")
    _pivot_root(".", ".old")
    _mount(None, "/.old", None, MS_REC | MS_PRIVATE)
    _call("umount2", b"/.old", MNT_DETACH)
    os.rmdir("/.old")
    os.chdir("/")
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


# ------------------------------------------------------------------ the worker


def _write_maps(pid: int, maps: IdMaps) -> None:
    if maps.deny_setgroups:
        with open(f"/proc/{pid}/setgroups", "w") as fh:
            fh.write("deny")
    for name, pairs in (("uid_map", maps.uids), ("gid_map", maps.gids)):
        with open(f"/proc/{pid}/{name}", "w") as fh:
            fh.write(maps.text(pairs))


def _map_helper(target: int, go: int, done: int) -> None:
    """Runs in a child left in the parent user namespace: writes `target`'s maps once
    it has unshared (only a process out there may write root's multi-line maps)."""
    status = 1
    try:
        if os.read(go, 1) == b"1":
            _write_maps(target, _MAPS[0])
            os.write(done, b"ok")
            status = 0
        else:
            os.write(done, b"skipped")
    except OSError as exc:
        os.write(done, f"writing the uid/gid maps: {exc}".encode()[:500])
    finally:
        os._exit(status)


_MAPS: list[IdMaps] = []


def enter_user_namespace(flags: int, maps: IdMaps) -> None:
    """unshare(flags) (CLONE_NEWUSER among them) and have the maps written."""
    _MAPS[:] = [maps]
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    me = os.getpid()
    helper = os.fork()
    if helper == 0:
        _map_helper(me, go_r, done_w)
    try:
        _call("unshare", flags)
        os.write(go_w, b"1")
        answer = os.read(done_r, 600).decode(errors="replace")
    except IsolationError:
        os.write(go_w, b"0")
        raise
    finally:
        os.waitpid(helper, 0)
        for fd in (go_r, go_w, done_r, done_w):
            os.close(fd)
    if answer != "ok":
        raise IsolationError(0, answer)


def _wait_and_exit(child: int) -> None:
    """O's life after the fork: hold nothing, wait for the worker, exit as it did."""
    os.closerange(3, 1 << 16)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def isolate_worker(maps: IdMaps, paths: list[str]) -> None:
    """Move this worker into its namespaces (see the module doc). Returns in the new
    worker, PID 1 of its PID namespace; the original process never returns."""
    enter_user_namespace(WORKER_NAMESPACES, maps)
    pid = os.fork()
    if pid:
        _wait_and_exit(pid)
    _call("prctl", 1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL: die with O
    _call("unshare", CLONE_NEWNS)
    build_root(paths)
    _own_pidns[:] = [os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)]


# ------------------------------------------------------------------ each program


def fork_program() -> int:
    """os.fork(), the child PID 1 of a new PID namespace (nested in the worker's)."""
    _call("unshare", CLONE_NEWPID)
    try:
        pid = os.fork()
    except OSError:
        _call("setns", _own_pidns[0], CLONE_NEWPID)
        raise
    if pid:
        _call("setns", _own_pidns[0], CLONE_NEWPID)
    return pid


def enter_program(scratch: str, owner: tuple[int, int] | None, tmp_mb: int) -> None:
    """In the forked child: its own mount and IPC namespaces, a /proc of its PID
    namespace, fresh tmpfs on /tmp and /dev/shm, and `scratch` (under /tmp) made."""
    _call("unshare", CLONE_NEWNS | CLONE_NEWIPC)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    options = f"mode=1777,size={tmp_mb}m,nr_inodes=4096"
    for where in ("/tmp", "/dev/shm"):
        _mount("tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV, options)
    bind_tmp_paths("", "/proc")  # a checkout or venv under /tmp stays visible
    os.makedirs(scratch, mode=0o700)
    if owner is not None:
        os.chown(scratch, *owner)


def kernel_settings() -> dict[str, str]:
    """The kernel knobs that allow or forbid unprivileged user namespaces, as set here."""
    found = {}
    for path in KERNEL_SETTINGS:
        try:
            found[path.removeprefix("/proc/sys/").replace("/", ".")] = (
                Path(path).read_text().strip()
            )
        except OSError:
            pass
    return found


def per_namespace_nproc() -> bool:
    """Since Linux 5.14 RLIMIT_NPROC counts a uid's processes per user namespace."""
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 14)
