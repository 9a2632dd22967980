"""One writer per output file: `<file>.lock`, made with O_EXCL, naming its holder.

Two `apps-hpc eval` runs given the same --out by mistake would both judge every problem
and both append: each problem twice. The second is refused instead, in one line naming
the holder. No `flock` (Lustre's is node-local, or an error, unless mounted with
`-o flock`): the lock is a file made with O_CREAT | O_EXCL, which every POSIX filesystem
makes atomic, holding {"host", "pid", "start", "job", "restart", "since"}.

A lock whose holder is gone is taken over, never left to block a resume:

- same host, and that pid is not running (or is another process that reused the pid);
- same SLURM job and array task as ours, from an earlier run of it (a lower
  SLURM_RESTART_COUNT): a requeued task finds its first run's lock;
- any host: not refreshed for STALE_AFTER_S (the holder touches it every REFRESH_S), so
  a task killed on another node (time limit, preemption) blocks no one for long.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import temp_name

REFRESH_S = 60.0
STALE_AFTER_S = 600.0
_WRITING_S = 5.0  # a lock this young and still empty is being written: wait for it


def lock_path(target: Path) -> Path:
    return target.with_name(target.name + ".lock")


def _start_ticks(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def _job() -> str | None:
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '0')}"
    return env.get("SLURM_JOB_ID")


def _me() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start": _start_ticks(os.getpid()),
        "job": _job(),
        "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _read(path: Path) -> tuple[dict[str, Any] | None, float] | None:
    """(the holder, or None when unreadable; the lock's age in seconds); None: no lock."""
    try:
        age = time.time() - path.stat().st_mtime
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return (None, 0.0)
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    return (info if isinstance(info, dict) else None, age)


def _running(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start is None or _start_ticks(pid) in (None, start)


def _stale(info: dict[str, Any] | None, age: float) -> bool:
    if age > STALE_AFTER_S:
        return True
    if info is None:
        return False
    me = _me()
    restart = info.get("restart")
    earlier = isinstance(restart, int) and restart < me["restart"]
    if info.get("job") and info.get("job") == me["job"] and earlier:
        return True  # this task's earlier run, before SLURM requeued it
    pid = info.get("pid")
    if info.get("host") == me["host"] and isinstance(pid, int):
        return not _running(pid, info.get("start"))
    return False


def _describe(info: dict[str, Any] | None, age: float) -> str:
    if info is None:
        return "an unreadable lock"
    job = f", SLURM job {info['job']}" if info.get("job") else ""
    return (
        f"pid {info.get('pid')} on {info.get('host')}{job}, since {info.get('since')}, "
        f"lock refreshed {age:.0f} s ago"
    )


def live_holder(target: Path) -> str | None:
    """Who holds `target`'s lock, in words; None when no one does (or a stale lock)."""
    found = _read(lock_path(target))
    if found is None or _stale(*found):
        return None
    return _describe(*found)


class OutputLock:
    """`with OutputLock(out):` — this process is the only writer of `out` until the end
    of the block; another holder is refused with an AppsHpcError naming it."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._text = ""
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        self._beat = threading.Thread(target=self._refresh, name="lock-refresh", daemon=True)
        self._beat.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        self.release()

    def acquire(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._text = json.dumps(_me()) + "\n"
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                found = _read(self.path)
                if found is None:
                    continue  # released just now: try again
                info, age = found
                if info is None and age < _WRITING_S:
                    time.sleep(0.1)  # its holder is writing it
                    continue
                if _stale(info, age):
                    self._break(found)
                    continue
                raise AppsHpcError(
                    f"{self.target}: in use by another apps-hpc process ({_describe(info, age)}); "
                    f"two writers would record its problems twice. If that process is gone, "
                    f"delete {self.path} (it is taken over once {STALE_AFTER_S / 60:.0f} "
                    "minutes old)"
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self._text)
                fh.flush()
                os.fsync(fh.fileno())
            return
        raise AppsHpcError(f"{self.target}: could not take its lock {self.path}")

    def _break(self, found: tuple[dict[str, Any] | None, float]) -> None:
        """Remove a stale lock, but only the one that was judged stale: moved aside
        first, and put back if another process took the lock in between."""
        aside = temp_name(self.path)
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = _read(aside)
        if moved is not None and moved[0] != found[0]:
            with contextlib.suppress(OSError):
                os.link(aside, self.path)  # never over a lock made meanwhile
        aside.unlink(missing_ok=True)

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_S):
            if not self._ours():
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def _ours(self) -> bool:
        try:
            return self.path.read_text(encoding="utf-8") == self._text
        except OSError:
            return False

    def release(self) -> None:
        if self._ours():
            self.path.unlink(missing_ok=True)
