"""The eval stage end to end through the CLI: records, resume, dedupe, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps_hpc.core.apps import Problem
from apps_hpc.core.schema import SampleRecord
from apps_hpc.evaluate.stage import _jobs, _Pending

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


def _without_reused(lines: list[str]) -> list[str]:
    return sorted(
        json.dumps({k: v for k, v in json.loads(x).items() if k != "reused"}, sort_keys=True)
        for x in lines
    )


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
    assert "30 problems already in" in second.stderr
    assert "r.jsonl:31: " in second.stderr and "cut off, that problem is redone" in second.stderr
    redone = [json.loads(x) for x in out.read_text().splitlines()][30:]
    assert all(r["reused"] == r["n"] for r in redone)  # the verdict cache beside --out
    assert _without_reused(out.read_text().splitlines()) == _without_reused(lines)
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


def _n_programs(shared: Path, path: Path, n: int, good: int) -> Path:
    """One line per test-sample problem with solutions: `good` real solutions, then
    wrong programs up to n."""
    with path.open("w") as fh:
        for line in (shared / "test-sample.jsonl").read_text().splitlines():
            row = json.loads(line)
            sols = json.loads(row["solutions"]) if row["solutions"] else []
            if sols:
                codes = [sols[0]] * good + [WRONG] * (n - good)
                rec = {"problem_id": row["problem_id"], "difficulty": row["difficulty"]}
                fh.write(json.dumps({**rec, "codes": codes}) + "\n")
    return path


def _eval_test(shared: Path, samples: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--samples", str(samples)]
    cmd += ["--apps", str(shared / "test-sample.jsonl"), "--out", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def _pass_at_1(results: Path) -> float:
    recs = [json.loads(x) for x in results.read_text().splitlines()]
    return sum(r["c"] / r["n"] for r in recs) / len(recs)


def test_a_changed_samples_file_is_redone_not_reused(shared_apps: Path, tmp_path: Path) -> None:
    """Same samples file name, 4 programs per problem instead of 10: every result is
    redone (and said), and pass@1 is the new one."""
    samples, out = tmp_path / "s.jsonl", tmp_path / "r.jsonl"
    _n_programs(shared_apps, samples, 10, good=2)
    assert _eval_test(shared_apps, samples, out).returncode == 0
    assert _pass_at_1(out) == pytest.approx(0.2)
    _n_programs(shared_apps, samples, 4, good=3)
    again = _eval_test(shared_apps, samples, out)
    assert again.returncode == 0, again.stderr
    assert "9 results made from other programs, tests or limits are redone" in again.stderr
    assert "0 problems already in" in again.stderr
    assert _pass_at_1(out) == pytest.approx(0.75)
    assert all(len(json.loads(x)["provenance"]) == 16 for x in out.read_text().splitlines())


def test_other_limits_redo_the_results(shared_apps: Path, tmp_path: Path) -> None:
    samples, out = _n_programs(shared_apps, tmp_path / "s.jsonl", 2, good=1), tmp_path / "r.jsonl"
    assert _eval_test(shared_apps, samples, out).returncode == 0
    same = _eval_test(shared_apps, samples, out)
    assert "9 problems already in" in same.stderr and "redone" not in same.stderr
    other = _eval_test(shared_apps, samples, out, "--timeout", "2")
    assert "9 results made from other programs, tests or limits are redone" in other.stderr


def test_results_of_problems_no_longer_sampled_are_dropped(
    shared_apps: Path, tmp_path: Path
) -> None:
    samples, out = _n_programs(shared_apps, tmp_path / "s.jsonl", 2, good=1), tmp_path / "r.jsonl"
    assert _eval_test(shared_apps, samples, out).returncode == 0
    samples.write_text("".join(samples.read_text().splitlines(keepends=True)[:3]))
    again = _eval_test(shared_apps, samples, out)
    assert "6 results of problems no longer in the samples are dropped" in again.stderr
    assert len(out.read_text().splitlines()) == 3


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "no samples (expected one JSON line per problem)"),
        (
            '{"problem_id": 0, "difficulty": "interview", "codes": []}\n',
            "s.jsonl:1: field 'codes': empty (expected at least 1 entry)",
        ),
    ],
)
def test_empty_samples_are_an_error(
    shared_apps: Path, tmp_path: Path, content: str, words: str
) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_text(content)
    r = _eval_test(shared_apps, samples, tmp_path / "r.jsonl")
    assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "r.jsonl").exists()


def test_skip_bad_rows_counts_samples_of_skipped_problems(
    shared_apps: Path, tmp_path: Path
) -> None:
    apps = tmp_path / "test.jsonl"
    rows = (shared_apps / "test-sample.jsonl").read_text().splitlines()
    bad = json.loads(rows[0])
    apps.write_text("\n".join([json.dumps({**bad, "difficulty": "hard"}), *rows[1:]]) + "\n")
    samples = _n_programs(shared_apps, tmp_path / "s.jsonl", 2, good=1)
    base = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--samples", str(samples)]
    cmd = [*base, "--apps", str(apps), "--out", str(tmp_path / "r.jsonl")]
    strict = subprocess.run(cmd, capture_output=True, text=True)
    assert strict.returncode == 2 and "field 'difficulty'" in strict.stderr
    r = subprocess.run([*cmd, "--skip-bad-rows"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"1 samples not evaluated: their APPS rows were bad (test/{bad['problem_id']})" in (
        r.stderr
    )
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 8


@pytest.mark.parametrize("form", ["file", "folder"])
def test_out_as_a_file_or_a_folder_with_shards(
    shared_apps: Path, tmp_path: Path, form: str
) -> None:
    """--out x.jsonl: the results file, shards in x/; --out x: the shard folder, merged
    into x.jsonl. Both give the same merged file."""
    samples = _n_programs(shared_apps, tmp_path / "s.jsonl", 2, good=1)
    out = tmp_path / ("r.jsonl" if form == "file" else "r")
    for i in (0, 1):
        r = _eval_test(shared_apps, samples, out, "--shard", f"{i}/2")
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "r" / "shard-00000-of-00002.jsonl").is_file()
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 9


def test_out_that_fits_neither_form_is_refused_first(shared_apps: Path, tmp_path: Path) -> None:
    samples = _n_programs(shared_apps, tmp_path / "s.jsonl", 2, good=1)
    (tmp_path / "dir.jsonl").mkdir()
    for out, words in [("r.json", "expected a .jsonl file"), ("dir.jsonl", "is a folder")]:
        r = _eval_test(shared_apps, samples, tmp_path / out)
        assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "changed", [{"tree_limits": "cgroup2"}, {"tree_limits": "proc"}, {"seccomp": "none"}]
)
def test_isolation_in_force_is_in_provenance_and_cache_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, changed: dict[str, str]
) -> None:
    """Another system-call filter or tree-limit mode: another results provenance and
    another verdict-cache key (the verdicts are not reused)."""
    from apps_hpc.evaluate import sandbox, stage
    from apps_hpc.evaluate.pool import Job

    here = sandbox.in_force()
    assert here["seccomp"].startswith("bpf-") and here["tree_limits"] in ("proc", "cgroup2")
    problem = Problem(1, "test", "interview", "", "", None, ["1"], ["1"])
    sample = SampleRecord(1, "test", "interview", "m", ["print(1)"])
    cfg = stage.EvalConfig(tmp_path / "s", tmp_path / "a", tmp_path / "o")
    job = Job(problem.key, "print(1)", stage._spec(problem))

    def both(isolation: dict[str, str]) -> tuple[str, str]:
        stage._isolation.cache_clear()
        monkeypatch.setattr(stage, "in_force", lambda: isolation)
        return stage.provenance(sample, problem, cfg), stage._key(cfg, job, problem)

    try:
        before, other = both(here), both(here | changed)
        assert before == both(dict(here))
    finally:
        stage._isolation.cache_clear()
    if here | changed == here:
        assert other == before
    else:
        assert other[0] != before[0] and other[1] != before[1]
