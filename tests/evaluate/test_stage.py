"""The eval stage end to end through the CLI: records, resume, dedupe, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps_hpc.apps import Problem
from apps_hpc.evaluate.stage import _jobs, _Pending
from apps_hpc.records import SampleRecord

WRONG = "print('no')"


def _samples(shared: Path, out: Path, per_problem: int = 3) -> Path:
    with out.open("w") as fh:
        for i, line in enumerate((shared / "train-sample.jsonl").read_text().splitlines()[:40]):
            row = json.loads(line)
            codes = [*json.loads(row["solutions"])[:per_problem], WRONG]
            codes += ["while True: pass"] if i < 2 else []
            fh.write(
                json.dumps(
                    {
                        "problem_id": row["problem_id"],
                        "split": "train",
                        "difficulty": row["difficulty"],
                        "model": "m",
                        "codes": codes,
                    }
                )
                + "\n"
            )
    return out


def _eval(shared: Path, samples: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "apps_hpc",
            "eval",
            "--samples",
            str(samples),
            "--apps",
            str(shared / "train-sample.jsonl"),
            "--out",
            str(out),
            "--timeout",
            "1",
            "--budget",
            "3",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
    )


def test_identical_programs_run_once() -> None:
    problem = Problem(1, "test", "interview", "", "", None, ["1"], ["1"])
    item = _Pending(SampleRecord(1, "test", "interview", "m", ["a", "b", "a", "a"]), problem)
    assert [j.code for j in _jobs([item])] == ["a", "b"]


def test_results_records_and_resume(shared_apps: Path, tmp_path: Path) -> None:
    samples, out = _samples(shared_apps, tmp_path / "s.jsonl"), tmp_path / "r.jsonl"
    _eval(shared_apps, samples, out)
    lines = out.read_text().splitlines()
    assert len(lines) == 40
    rec = json.loads(lines[0])
    assert set(rec) >= {"problem_id", "split", "difficulty", "model", "n", "c", "verdicts", "tests"}
    first = next(json.loads(x) for x in lines if json.loads(x)["problem_id"] == 0)
    assert first["n"] == len(first["verdicts"])
    assert first["verdicts"][-2:] == ["wrong_answer", "timeout"]
    # A killed run leaves a torn last line: it is redone, the others are not.
    out.write_text("\n".join(lines[:30]) + "\n" + lines[30][:25])
    second = _eval(shared_apps, samples, out)
    assert "30 problems already in" in second.stderr and "dropped a half-written" in second.stderr
    assert sorted(out.read_text().splitlines()) == sorted(lines)
    third = _eval(shared_apps, samples, out)
    assert "40 problems already in" in third.stderr and "evaluated" not in third.stderr


@pytest.mark.slow
def test_same_verdicts_with_one_and_two_workers_on_a_loaded_machine(
    shared_apps: Path, tmp_path: Path
) -> None:
    samples = _samples(shared_apps, tmp_path / "s.jsonl", per_problem=2)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        _eval(shared_apps, samples, tmp_path / "one.jsonl", "--workers", "1")
        _eval(shared_apps, samples, tmp_path / "two.jsonl", "--workers", "2")
    finally:
        for b in burners:
            b.kill()

    def load(p: Path) -> dict:
        return {
            json.loads(x)["problem_id"]: json.loads(x)["tests"] for x in p.read_text().splitlines()
        }

    assert load(tmp_path / "one.jsonl") == load(tmp_path / "two.jsonl")


def test_interrupted_eval_resumes(shared_apps: Path, tmp_path: Path) -> None:
    samples, out = _samples(shared_apps, tmp_path / "s.jsonl"), tmp_path / "r.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "apps_hpc",
        "eval",
        "-q",
        "--samples",
        str(samples),
        "--apps",
        str(shared_apps / "train-sample.jsonl"),
        "--out",
        str(out),
        "--timeout",
        "1",
        "--budget",
        "3",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        not out.exists() or len(out.read_text().splitlines()) < 3
    ):
        time.sleep(0.1)
    os.killpg(proc.pid, 9)
    proc.wait()
    done_before = len(out.read_text().splitlines())
    assert 3 <= done_before < 40
    subprocess.run(cmd, check=True)
    ids = [json.loads(x)["problem_id"] for x in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 40


@pytest.mark.parametrize("bad", ["missing", "unknown-problem"])
def test_bad_input_is_one_line_and_nonzero(shared_apps: Path, tmp_path: Path, bad: str) -> None:
    samples = tmp_path / "s.jsonl"
    if bad == "unknown-problem":
        samples.write_text(
            json.dumps(
                {"problem_id": 99999, "split": "train", "difficulty": "interview", "codes": ["x"]}
            )
            + "\n"
        )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "apps_hpc",
            "eval",
            "--samples",
            str(samples),
            "--apps",
            str(shared_apps / "train-sample.jsonl"),
            "--out",
            str(tmp_path / "r.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
