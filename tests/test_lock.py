"""One writer per output file (core/lock.py): a second `apps-hpc eval` of the same --out
is refused in one line naming the holder, a dead holder's lock is taken over, and a
report of a results file still being written says so instead of a partial pass@k."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.lock import STALE_AFTER_S, OutputLock, live_holder, lock_path
from apps_hpc.core.records import read_results
from tests.helpers import REPO


def _hold(target: Path, **info: object) -> Path:
    path = lock_path(target)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), **info}))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_lock_is_held_inside_the_block_and_gone_after(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with OutputLock(out):
        info = json.loads(lock_path(out).read_text())
        assert (info["host"], info["pid"]) == (socket.gethostname(), os.getpid())
        assert live_holder(out) is not None
        with pytest.raises(AppsHpcError) as err:
            OutputLock(out).acquire()
        assert f"pid {os.getpid()} on {socket.gethostname()}" in str(err.value)
        assert str(err.value).startswith(f"{out}: in use by another apps-hpc process")
    assert not lock_path(out).exists() and live_holder(out) is None


@pytest.mark.parametrize(
    ("holder", "taken"),
    [
        ({"pid": "dead"}, True),  # this host, the process is gone
        ({"pid": "alive"}, False),
        ({"host": "node17", "pid": 1}, False),  # another host: cannot tell, refused
        ({"host": "node17", "pid": 1, "age": STALE_AFTER_S + 60}, True),  # not refreshed
        ({"host": "node17", "pid": 1, "job": "5_0", "restart": 0}, True),  # requeued: ours
        ({"host": "node17", "pid": 1, "job": "5_0", "restart": 1}, False),  # the same run
        ({"host": "node17", "pid": 1, "job": "6_0", "restart": 0}, False),
    ],
)
def test_a_dead_holders_lock_is_taken_over_a_live_ones_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, holder: dict, taken: bool
) -> None:
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    out = tmp_path / "r.jsonl"
    age = holder.pop("age", 0)
    pid = {"dead": _dead_pid(), "alive": os.getppid()}.get(holder["pid"], holder["pid"])
    lock = _hold(out, **{**holder, "pid": pid})
    os.utime(lock, (time.time() - age, time.time() - age))
    if taken:
        with OutputLock(out):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
    else:
        with pytest.raises(AppsHpcError, match="in use by another apps-hpc process"):
            OutputLock(out).acquire()
        assert json.loads(lock.read_text())["pid"] == pid  # left as it was


def test_a_growing_results_file_leaves_its_torn_last_line_out(tmp_path: Path) -> None:
    rec = {"problem_id": 1, "difficulty": "interview", "model": "m", "n": 0, "c": 0}
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({**rec, "verdicts": []}) + "\n" + json.dumps(rec)[:20])
    assert len(read_results(path, growing=True)) == 1
    with pytest.raises(AppsHpcError, match=r"r\.jsonl:2: field '<row>': invalid JSON"):
        read_results(path)


def test_two_evals_of_the_same_out_at_once_never_double_a_problem(
    shared_apps: Path, tmp_path: Path
) -> None:
    rows = [json.loads(x) for x in (shared_apps / "test-sample.jsonl").read_text().splitlines()]
    samples, out = tmp_path / "s.jsonl", tmp_path / "r.jsonl"
    code = "import time\ntime.sleep(0.3)\nprint(0)"
    samples.write_text(
        "".join(
            json.dumps(
                {"problem_id": r["problem_id"], "difficulty": r["difficulty"], "codes": [code]}
            )
            + "\n"
            for r in rows[:3]
        )
    )
    cmd = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--samples", str(samples)]
    cmd += ["--apps", str(shared_apps / "test-sample.jsonl"), "--out", str(out)]
    cmd += ["--timeout", "1", "--workers", "1", "--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        for _ in range(2)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    codes = [p.returncode for p in procs]
    for code_, err in zip(codes, errs, strict=True):
        assert "Traceback" not in err, err
        assert code_ == 0 or (
            code_ == 2 and err.count("\n") == 1 and "in use by another apps-hpc process" in err
        ), (code_, err)
    assert sorted(codes) == [0, 2]  # each sleeps 0.9 s holding the lock: they overlap
    keys = [(r["model"], r["problem_id"]) for r in map(json.loads, out.read_text().splitlines())]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 3
    assert not lock_path(out).exists()
