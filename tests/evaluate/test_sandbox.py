"""Hostile programs against the sandbox: each limit proven by a real attack.

Every test checks the verdict, that the evaluator (this process and its pool) is still
alive, and that no process of the sandbox is left behind.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path

from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate.pool import EvalPool, PoolOptions
from tests.helpers import FAST_LIMITS, needs, require, run_one

ROOT = os.geteuid() == 0
needs_root = needs(ROOT, "the user switch needs root (CI runs as root)")


def _processes_of_pool(pool: EvalPool) -> list[int]:
    """Live processes whose ancestor is one of the pool's workers, workers excluded (with
    namespaces the process the pool started forks the worker, PID 1 of its namespace)."""
    parents = _parents()
    workers = {w.proc.pid for w in pool.workers if w.proc}
    if pool.isolation.startswith("namespaces"):
        workers |= {pid for pid, parent in parents.items() if parent in workers}
    found = []
    for pid in parents:
        p = parents.get(pid)
        while p and p not in workers and p in parents:
            p = parents[p]
        if p in workers and pid not in workers:
            found.append(pid)
    return found


def _parents() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except (OSError, IndexError):
                pass
    return parents


def _sandbox_uid_processes(pool: EvalPool) -> list[int]:
    """Processes of the pool's sandbox uids (as root; other evaluations may run beside)."""
    uids = {int(m[1]) for w in pool.workers if ROOT and (m := re.match(r"uid (\d+)", w.user))}
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid in uids:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _assert_clean(pool: EvalPool) -> None:
    assert all(w.proc and w.proc.poll() is None for w in pool.workers), "a worker died"
    assert _processes_of_pool(pool) == []
    assert _sandbox_uid_processes(pool) == []


def test_infinite_loop_times_out(pool) -> None:
    r = run_one(pool, "while True:\n    pass", ["1"], ["1"])
    assert r.verdict is Verdict.TIMEOUT
    _assert_clean(pool)


def test_sleeping_forever_hits_the_wall_clock_backstop(pool) -> None:
    r = run_one(pool, "import time\ntime.sleep(3600)", ["1"], ["1"])
    assert r.verdict is Verdict.TIMEOUT
    _assert_clean(pool)


def test_huge_allocation_is_refused(pool) -> None:
    r = run_one(pool, "x = bytearray(100 * 2**30)\nprint(input())", ["1"], ["1"])
    assert r.verdict is Verdict.RUNTIME_ERROR
    _assert_clean(pool)


def test_fork_bomb_is_contained(pool) -> None:
    code = (
        "import posix\nn = 0\ntry:\n    while True:\n        posix.fork()\n        n += 1\n"
        "except OSError:\n    pass\nwhile True:\n    pass"
    )
    r = run_one(pool, code, ["1"], ["1"])
    assert r.verdict in (Verdict.TIMEOUT, Verdict.RUNTIME_ERROR)
    _assert_clean(pool)


def test_threads_fit_under_the_process_limit_but_a_fork_bomb_does_not(pool) -> None:
    # RLIMIT_NPROC counts threads too: 30 threads alive at once must fit (model code
    # uses thread pools), while the fork bomb above is stopped by the same limit.
    code = (
        "import threading\nbarrier = threading.Barrier(31)\n"
        "threads = [threading.Thread(target=barrier.wait) for _ in range(30)]\n"
        "for t in threads:\n    t.start()\nbarrier.wait()\n"
        "for t in threads:\n    t.join()\nprint(threading.active_count())"
    )
    assert run_one(pool, code, ["x"], ["1"]).verdict is Verdict.PASS
    _assert_clean(pool)


@needs_root
def test_fork_is_limited_by_rlimit_nproc(pool) -> None:
    code = (
        "import posix\nkids = 0\ntry:\n    for _ in range(100):\n"
        "        if posix.fork() == 0:\n            import time\n            time.sleep(60)\n"
        "        kids += 1\nexcept OSError:\n    pass\nprint(kids)"
    )
    children = FAST_LIMITS.max_procs - 1  # RLIMIT_NPROC: itself and the children
    assert children < 100
    r = run_one(pool, code, ["x"], [str(children)])
    assert r.verdict is Verdict.PASS
    _assert_clean(pool)


def test_daemonized_grandchild_is_killed(pool) -> None:
    code = (
        "import posix, time\nif posix.fork() == 0:\n    posix.setsid()\n"
        "    time.sleep(600)\nprint(input())"
    )
    r = run_one(pool, code, ["1"], ["1"])
    assert r.verdict is Verdict.PASS
    _assert_clean(pool)


def test_gigabyte_of_output_is_capped(pool) -> None:
    code = "s = 'x' * 2**20\nfor _ in range(1024):\n    print(s)"
    r = run_one(pool, code, ["1"], ["1"])
    assert r.verdict is Verdict.RUNTIME_ERROR
    _assert_clean(pool)


def test_huge_file_is_capped_by_rlimit_fsize(pool) -> None:
    code = (
        "import io\nf = io.open('big', 'wb')\nfor _ in range(1024):\n"
        "    f.write(b'x' * 2**20)\nprint(input())"
    )
    r = run_one(pool, code, ["1"], ["1"])
    assert r.verdict is Verdict.RUNTIME_ERROR
    _assert_clean(pool)


@needs_root
def test_writing_outside_the_scratch_folder_is_refused(pool, tmp_path: Path) -> None:
    target = tmp_path / "owned.txt"
    code = f"import io\nio.open({str(target)!r}, 'w').write('pwned')\nprint(input())"
    r = run_one(pool, code, ["1"], ["1"])
    assert r.verdict is Verdict.RUNTIME_ERROR
    assert not target.exists()
    _assert_clean(pool)


def test_program_cannot_reach_the_network(pool) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted: list[object] = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    thread = threading.Thread(target=accept)
    thread.start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint(1)"
    r = run_one(pool, code, ["1"], ["1"])
    thread.join()
    server.close()
    require(pool.network.startswith(("netns", "userns")), f"no network namespace: {pool.network}")
    assert r.verdict is Verdict.RUNTIME_ERROR
    assert accepted == []
    _assert_clean(pool)


@needs_root
def test_killing_its_parent_fails_and_the_evaluator_survives(pool) -> None:
    code = (
        "import ctypes, os, signal\nlibc = ctypes.CDLL(None)\n"
        "libc.kill(os.getppid(), signal.SIGKILL)\nlibc.kill(-1, signal.SIGKILL)\nprint(input())"
    )
    r = run_one(pool, code, ["1"], ["1"])
    assert r.verdict is Verdict.PASS
    _assert_clean(pool)


def test_a_killed_worker_is_replaced(pool) -> None:
    victim = pool.workers[0].proc
    assert victim is not None
    victim.kill()
    victim.wait()
    results = [run_one(pool, "print(input())", [str(i)], [str(i)]) for i in range(4)]
    assert all(r.verdict is Verdict.PASS for r in results)
    _assert_clean(pool)


def test_environment_is_scrubbed(monkeypatch) -> None:
    monkeypatch.setenv("APPS_HPC_SECRET", "s3cret")
    code = "import os\nprint(os.environ.get('APPS_HPC_SECRET', 'none'))"
    with EvalPool(PoolOptions(workers=1, limits=FAST_LIMITS)) as fresh:
        assert run_one(fresh, code, ["x"], ["none"]).verdict is Verdict.PASS


def test_cwd_is_a_fresh_scratch_folder(pool) -> None:
    code = "import io, os\nprint(len(os.listdir('.')))\nio.open('f', 'w').write('1')"
    assert run_one(pool, code, ["x"], ["0"]).verdict is Verdict.PASS
    assert run_one(pool, code, ["x"], ["0"]).verdict is Verdict.PASS  # nothing left over


@needs_root
def test_each_worker_gets_a_uid_of_its_own(tmp_path: Path) -> None:
    from apps_hpc.evaluate.sandbox import claim_uid

    first = claim_uid(70000, 0, lock_dir=str(tmp_path))
    second = claim_uid(70000, 0, lock_dir=str(tmp_path))  # the first is still held
    assert first == 70000 and second == 70001
