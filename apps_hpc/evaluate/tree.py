"""Limits for a program's whole process tree: a cgroup v2 of its own, or /proc accounting.

Per-process rlimits are multiplied by fork (three spinners, three CPU budgets). The
worker therefore keeps the CPU time and memory of all a program's processes together,
in one of two modes, named in `doctor`, the run's log line and the results' provenance:

- "cgroup2": where /sys/fs/cgroup is cgroup v2 and this process's cgroup is writable and
  already delegates the memory and pids controllers to its children (a SLURM job's own
  cgroup with delegation, a systemd user slice with Delegate=yes), each worker makes
  `<its cgroup>/apps-hpc-<pid>/`, moves itself into `worker/` there, and each program
  runs in a cgroup `p<n>/` of its own: memory.max (the memory limit), memory.swap.max 0,
  pids.max (the process limit) kept by the kernel; its CPU time (cpu.stat, always
  accounted) summed by the worker and the cgroup killed at the budget.
- "proc": otherwise the worker sums CPU (live and reaped) and resident memory of every
  descendant from /proc and stops them all at the budget or the memory limit.

Either way the sampling interval is TREE_POLL_S. Detection reads files only (`detect`),
so the evaluator names the mode before a worker starts; `plan` and `limit_values` are
pure, and the tests feed them fake /proc/self/cgroup and mountinfo text.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from typing import Any

TREE_POLL_S = 0.25  # how often the worker sums its program's process tree
MIB = 1024 * 1024
CONTROLLERS = ("memory", "pids")


@dataclass(frozen=True)
class TreeUsage:
    """What a program's processes use together: CPU seconds (live and reaped ones) and
    resident memory (live ones); `oom`: the kernel killed one at the memory limit."""

    cpu_s: float
    rss_mb: float
    processes: int
    oom: bool = False


def tree_usage(root: int) -> TreeUsage:
    """The sum over every descendant of `root` (not `root` itself), from /proc. The
    worker is a child subreaper (or PID 1 of its namespace): no descendant escapes it."""
    stats: dict[int, list[bytes]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    stats[int(entry.name)] = fh.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    todo, cpu, rss, count = list(children.get(root, [])), 0, 0, 0
    while todo:
        pid = todo.pop()
        fields = stats[pid]
        cpu += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        rss += _pss_pages(pid, page) if fields[21] != b"0" else 0
        count += 1
        todo += children.get(pid, [])
    return TreeUsage(cpu / ticks, rss * page / MIB, count)


def _pss_pages(pid: int, page: int) -> int:
    """A process's proportional resident memory in pages: pages a fork shares with its
    parent count once over the tree, not once per child (RSS would stop an honest
    program with 63 sleeping children). Where smaps_rollup cannot be read (not ESRCH:
    no memory map), its RSS (never less)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh.read().split(b"\n"):
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024 // page
    except ProcessLookupError:  # no memory map (exiting, or a zombie): nothing held
        return 0
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0


# ------------------------------------------------------------------ detection (pure)


def cgroup2_mount(mountinfo: str) -> str | None:
    """Where the cgroup v2 hierarchy is mounted (/proc/self/mountinfo text), else None."""
    for line in mountinfo.split("\n"):
        fields = line.split(" ")
        if " - " not in line or len(fields) < 5:
            continue
        fstype = line.split(" - ", 1)[1].split(" ")[0]
        if fstype == "cgroup2":
            return fields[4]
    return None


def own_cgroup(proc_cgroup: str) -> str | None:
    """This process's cgroup v2 path ("0::/path" of /proc/self/cgroup), else None."""
    for line in proc_cgroup.split("\n"):
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def plan(mountinfo: str, proc_cgroup: str, read: Any, writable: Any) -> tuple[str | None, str]:
    """The cgroup folder programs' cgroups go under, or None and why not (pure: `read`
    and `writable` answer for a path)."""
    mount, path = cgroup2_mount(mountinfo), own_cgroup(proc_cgroup)
    if mount is None:
        return None, "no cgroup v2 mounted"
    if path is None:
        return None, "this process is in no cgroup v2 (cgroup v1 controllers)"
    folder = mount.rstrip("/") + ("" if path == "/" else path)
    if path == "/":
        return None, "in the root cgroup (not delegated)"
    delegated = (read(f"{folder}/cgroup.subtree_control") or "").split()
    missing = [c for c in CONTROLLERS if c not in delegated]
    if missing:
        return None, f"{folder} does not delegate {'+'.join(missing)} to its children"
    for name in ("", "/cgroup.procs"):
        if not writable(folder + name):
            return None, f"{folder + name} is not writable"
    return folder, folder


def limit_values(memory_mb: int, max_procs: int, swap: bool) -> dict[str, str]:
    """What a program's cgroup gets, file -> value (pure)."""
    values = {"memory.max": str(memory_mb * MIB), "pids.max": str(max_procs)}
    if swap:
        values["memory.swap.max"] = "0"
    return values


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def detect() -> tuple[str | None, str]:
    """`plan` for this process (reads files, changes nothing)."""
    mountinfo, proc_cgroup = _read("/proc/self/mountinfo"), _read("/proc/self/cgroup")
    return plan(mountinfo or "", proc_cgroup or "", _read, lambda p: os.access(p, os.W_OK))


def mode() -> str:
    """The mode a worker started now would use: "cgroup2" or "proc"."""
    return "cgroup2" if detect()[0] else "proc"


def describe(mode_in_force: str, why: str = "") -> str:
    """The tree limits in words (the isolation line, `doctor`)."""
    if mode_in_force == "cgroup2":
        how = (
            "a cgroup v2 per program (memory.max, pids.max by the kernel; cpu.stat summed "
            f"every {TREE_POLL_S:g} s, killed at the budget)"
        )
    else:
        how = (
            f"CPU and memory of all a program's processes summed from /proc every "
            f"{TREE_POLL_S:g} s by the worker, stopped at the budget"
            + (f" (cgroup v2 not used: {why})" if why else "")
        )
    return f"process tree: {how}; per process: rlimits; /tmp and /dev/shm: size-capped tmpfs"


# ------------------------------------------------------------------ in the worker


class ProcTree:
    """/proc accounting: nothing to make per program."""

    mode = "proc"

    def __init__(self, why: str = "") -> None:
        self.why = why

    def describe(self) -> str:
        return describe(self.mode, self.why)

    def start(self, limits: Any) -> Any:
        return None

    def join(self, handle: Any) -> None:
        pass

    def usage(self, handle: Any) -> TreeUsage:
        return tree_usage(os.getpid())

    def kill(self, handle: Any) -> None:
        pass

    def finish(self, handle: Any) -> bool:
        return False


class CgroupTree:
    """A cgroup v2 per program under `<folder>/apps-hpc-<worker pid>/`. The folder is
    held as a descriptor opened before the worker's namespaces (no /sys there)."""

    mode = "cgroup2"

    def __init__(self, folder: str) -> None:
        own = f"{folder}/apps-hpc-{os.getpid()}"
        os.mkdir(own)
        os.mkdir(f"{own}/worker")
        _write(f"{own}/worker/cgroup.procs", "0")  # a leaf; `own` may now delegate
        _write(f"{own}/cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
        self.fd = os.open(own, os.O_RDONLY | os.O_DIRECTORY)
        self.swap = os.path.exists(f"{own}/worker/memory.swap.max")
        self.count = 0

    def describe(self) -> str:
        return describe(self.mode)

    def start(self, limits: Any) -> int:
        """The next program's cgroup, its limits written; its descriptor."""
        self.count += 1
        name = f"p{self.count}"
        os.mkdir(name, dir_fd=self.fd)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.fd)
        for key, value in limit_values(limits.memory_mb, limits.max_procs, self.swap).items():
            _write(key, value, fd)
        return fd

    def join(self, handle: int) -> None:
        """In the forked child, before anything else: into the program's cgroup."""
        _write("cgroup.procs", "0", handle)

    def usage(self, handle: int) -> TreeUsage:
        stat = _fields(_read_at("cpu.stat", handle))
        events = _fields(_read_at("memory.events", handle))
        current = int(_read_at("memory.current", handle) or 0)
        cpu = stat.get("usage_usec", 0) / 1e6
        return TreeUsage(cpu, current / MIB, 0, events.get("oom_kill", 0) > 0)

    def kill(self, handle: int) -> None:
        try:
            _write("cgroup.kill", "1", handle)
            return
        except OSError:  # before Linux 5.14
            pass
        for pid in (_read_at("cgroup.procs", handle) or "").split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def finish(self, handle: int) -> bool:
        """After the reap: remove the program's cgroup; True when the kernel killed one
        of its processes at memory.max."""
        oom = self.usage(handle).oom
        name = f"p{self.count}"
        os.close(handle)
        for _ in range(100):
            try:
                os.rmdir(name, dir_fd=self.fd)
                break
            except OSError:
                time.sleep(0.01)
        return oom


def _write(name: str, text: str, dir_fd: int | None = None) -> None:
    fd = os.open(name, os.O_WRONLY, dir_fd=dir_fd)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read_at(name: str, dir_fd: int) -> str:
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    except OSError:
        return ""
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def _fields(text: str) -> dict[str, int]:
    """Lines of "key value" (cpu.stat, memory.events) -> {key: value}."""
    out = {}
    for line in text.split("\n"):
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def setup() -> ProcTree | CgroupTree:
    """This worker's tree limits: a cgroup v2 where `detect` allows it, else /proc."""
    folder, why = detect()
    if folder is None:
        return ProcTree(why)
    try:
        return CgroupTree(folder)
    except OSError as exc:
        return ProcTree(f"{folder}: {exc.strerror}")


def remove_worker_cgroup(pid: int) -> None:
    """After a worker `pid` exited (the pool): remove the cgroups it made, if any
    (empty cgroups only: a process still dying there is waited for up to 1 s)."""
    folder, _ = detect()
    own = f"{folder}/apps-hpc-{pid}"
    if folder is None or not os.path.isdir(own):
        return
    for _ in range(50):
        try:
            for entry in os.scandir(own):
                if entry.is_dir(follow_symlinks=False):
                    os.rmdir(entry.path)
            os.rmdir(own)
            return
        except OSError:
            time.sleep(0.02)
