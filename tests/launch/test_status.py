"""`apps-hpc status` tells the truth: the log that holds the error, elapsed times with
the local executor, and the jobs slurm/pipeline.sh submitted."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from apps_hpc.launch.status import error_log
from tests.helpers import run_cli


def _results(path: Path, c: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {"problem_id": 1, "difficulty": "interview", "model": "m", "n": 2, "c": c}
    path.write_text(json.dumps({**rec, "verdicts": ["pass", "wrong_answer"]}) + "\n")
    return path


def test_the_log_with_the_traceback_is_named(tmp_path: Path) -> None:
    out, err = tmp_path / "12_0_log.out", tmp_path / "12_0_log.err"
    out.write_text("submitit INFO: starting\n")
    err.write_text("Traceback (most recent call last):\n  ...\nValueError: boom\n")
    assert error_log(str(out)) == str(err)
    err.write_text("starting the stage\n")
    out.write_text("Traceback (most recent call last):\nKeyError: 'x'\n")
    assert error_log(str(out)) == str(out)
    out.write_text("fine\n")
    assert error_log(str(out)) == str(err)  # the stages log to stderr


def test_a_failed_local_job_points_at_its_stderr_with_elapsed(tmp_path: Path) -> None:
    """A real local-executor job that fails (k larger than n): status names the
    `_log.err` that holds the error, and an elapsed time, not `-`."""
    results = _results(tmp_path / "x" / "results" / "m.jsonl", 1)
    r = run_cli(
        "submit", "report", "--cluster", "local", "--no-plot", "--k", "5", str(results),
    )  # fmt: skip
    assert r.returncode == 2 and "stage(s) failed: report" in r.stderr
    status = run_cli("status", str(tmp_path / "x"), check=True).stdout
    [row] = [line for line in status.splitlines() if line.startswith("report ")]
    state, elapsed, log = row.split()[2], row.split()[3], row.split()[-1]
    assert state == "FAILED" and log.endswith("_log.err"), status
    assert elapsed != "-" and elapsed.count(":") == 2
    assert "k=5 is larger than the 2 samples" in Path(log).read_text()
    assert f"stage report failed: see {log}" in status


def test_pipeline_sh_jobs_are_shown(tmp_path: Path) -> None:
    """slurm/pipeline.sh records its jobs in jobs/sbatch-jobs.tsv (here without sacct:
    the states are unknown, the steps and logs are listed)."""
    jobs = tmp_path / "exp" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "sbatch-jobs.tsv").write_text(
        f"prepare\t11\t{jobs}/prepare-11.out\nsample/base\t13_0,13_1\t{jobs}/sample-base-13_0.out\n"
    )
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no sacct here
    r = run_cli("status", str(tmp_path / "exp"), env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].split()[:3] == ["prepare", "11", "UNKNOWN"]
    assert lines[2].split()[:3] == ["sample/base", "13_0,13_1", "UNKNOWN"]


def test_a_folder_with_no_jobs_says_where_it_looked(tmp_path: Path) -> None:
    r = run_cli("status", str(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "no manifest.json" in r.stderr and "sbatch-jobs.tsv" in r.stderr
