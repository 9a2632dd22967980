"""Honest aggregation: `apps-hpc report` refuses unfair comparisons, one line each with
the files and the counts (exit 2), and `--allow-partial` reports them with the counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.report.experiment_fixture import make_experiment


def write_results(path: Path, model: str, rows: list[tuple[int, str, int, int]]) -> Path:
    """rows: (problem_id, difficulty, n, c); verdicts and failures in the records' shape."""
    with path.open("w") as fh:
        for pid, difficulty, n, c in rows:
            verdicts = ["pass"] * c + ["wrong_answer"] * (n - c)
            failure = {"test": 0, "input": "1\n", "expected": "2", "got": "3", "error": None}
            record = {
                "problem_id": pid,
                "split": "test",
                "difficulty": difficulty,
                "model": model,
                "n": n,
                "c": c,
                "verdicts": verdicts,
                "tests": [[v == "pass"] for v in verdicts],
                "failures": [None if v == "pass" else failure for v in verdicts],
            }
            fh.write(json.dumps(record) + "\n")
    return path


ROWS = [(i, ("introductory", "interview", "competition")[i % 3], 10, i % 4) for i in range(12)]


def _one_line_refusal(args: list[str]) -> str:
    r = run_cli("report", *args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_different_problem_sets_are_refused_then_reported_with_counts(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base.jsonl", "base", ROWS)
    sft = write_results(tmp_path / "sft.jsonl", "sft", [*ROWS[:9], (99, "interview", 10, 5)])
    err = _one_line_refusal([str(base), str(sft), "--no-plot", "--out", str(tmp_path / "r")])
    assert f"{base} ('base') has 12 problems, {sft} ('sft') has 10" in err
    assert "3 only in the first, 1 only in the second (e.g. test/9), 9 in both" in err
    assert "--allow-partial" in err
    assert not (tmp_path / "r").exists()

    out = tmp_path / "partial"
    r = run_cli("report", str(base), str(sft), "--allow-partial", "--out", str(out), check=True)
    assert "| base | 12 (4/4/4) |" in r.stdout and "| sft | 10 (3/4/3) |" in r.stdout
    assert "| Δ sft − base | 9 common |" in r.stdout
    assert "Partial: different problem sets:" in r.stdout
    data = json.loads((out / "summary.json").read_text())
    assert data["paired"][0]["problems"] == 9 and len(data["partial"]) == 1
    # the Δ is over the common problems only: problem 99 (solved by sft) is not in it
    assert "test/99" not in data["paired"][0]["solved_only"]["sft"]["total"]


def test_a_problem_twice_is_refused_then_the_first_line_kept(tmp_path: Path) -> None:
    res = write_results(tmp_path / "m.jsonl", "m", [*ROWS, (3, "introductory", 10, 5)])
    err = _one_line_refusal([str(res), "--no-plot", "--out", str(tmp_path / "r")])
    assert f"{res}: 1 of the 12 problems of model 'm' appear more than once" in err
    assert "(e.g. test/3: 2 lines)" in err
    r = run_cli(
        "report",
        str(res),
        "--allow-partial",
        "--format",
        "json",
        "--no-plot",
        "--out",
        str(tmp_path / "r"),
        check=True,
    )
    data = json.loads(r.stdout)
    assert data["models"]["m"]["total"]["problems"] == 12
    assert data["models"]["m"]["total"]["pass@1"] == pytest.approx(sum(r[3] for r in ROWS) / 120)
    assert "first line of each was kept" in data["partial"][0]


def test_a_problem_without_programs_is_refused_then_left_out(tmp_path: Path) -> None:
    res = write_results(tmp_path / "m.jsonl", "m", [*ROWS, (50, "competition", 0, 0)])
    err = _one_line_refusal([str(res), "--no-plot", "--out", str(tmp_path / "r")])
    assert f"{res}: 1 of the 13 problems of model 'm' have n = 0" in err
    assert "e.g. test/50" in err
    r = run_cli(
        "report",
        str(res),
        "--allow-partial",
        "--format",
        "json",
        "--no-plot",
        "--out",
        str(tmp_path / "r"),
        check=True,
    )
    assert json.loads(r.stdout)["models"]["m"]["competition"]["problems"] == 4


def test_json_and_terminal_carry_the_cis_and_the_paired_delta(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base.jsonl", "base", ROWS)
    better = [(pid, d, n, min(n, c + 2)) for pid, d, n, c in ROWS]
    sft = write_results(tmp_path / "sft.jsonl", "sft", better)
    out = tmp_path / "rep"
    r = run_cli("report", str(base), str(sft), "--out", str(out), "--no-plot", check=True)
    assert "95% confidence intervals (bootstrap over problems)" in r.stdout
    assert "Paired Δ sft − base over 12 common problems" in r.stdout
    assert "percentile bootstrap over problems, 2000 resamples, seed 0" in r.stdout
    data = json.loads((out / "summary.json").read_text())
    total = data["models"]["base"]["total"]
    low, high = total["pass@1_ci"]
    assert low <= total["pass@1"] <= high and low < high
    cell = data["paired"][0]["groups"]["total"]["pass@1"]
    assert cell["delta"] == data["models"]["sft"]["total"]["pass@1"] - total["pass@1"]
    assert cell["ci"][0] > 0 and cell["p"] < 0.01  # every problem gains: a real difference
    only = data["paired"][0]["solved_only"]
    assert only["sft"]["total"] == ["test/0", "test/4", "test/8"] and only["base"]["total"] == []
    assert "only by sft: 3 (intro 1 / interview 1 / comp 1); only by base: 0" in r.stdout


def test_aggregation_over_two_demo_experiments(tmp_path: Path) -> None:
    root = tmp_path / "lustre"
    first = make_experiment(root, "lr-2e-5")
    make_experiment(root, "lr-1e-4")
    run_cli(
        "report",
        str(first / "results" / "base.jsonl"),
        str(first / "results" / "sft.jsonl"),
        check=True,
    )  # the first one has its own page; the second not yet
    out = tmp_path / "agg"
    r = run_cli("report", "--experiments", f"{root}/*", "--out", str(out), check=True)
    rows = [line for line in r.stdout.splitlines() if line.startswith("| lr-")]
    assert len(rows) == 2 * 2 * 3  # (experiment, model) x k
    data = json.loads((out / "summary.json").read_text())
    assert [(row["experiment"], row["model"]) for row in data["rows"]] == [
        ("lr-1e-4", "base"),
        ("lr-1e-4", "sft"),
        ("lr-2e-5", "base"),
        ("lr-2e-5", "sft"),
    ]
    own = json.loads((first / "report" / "summary.json").read_text())["models"]["sft"]["total"]
    row = data["rows"][3]["total"]
    assert row["pass@1"] == own["pass@1"] and row["pass@1_ci"] == own["pass@1_ci"]
    assert row["problems"] == 30
    page = (out / "index.html").read_text()
    assert '<a href="../lustre/lr-2e-5/report/index.html">lr-2e-5</a>' in page
    assert "lr-1e-4 <small>(no report page yet)</small>" in page


def test_aggregation_refuses_experiments_over_different_problems(tmp_path: Path) -> None:
    make_experiment(tmp_path / "a", "full")
    make_experiment(tmp_path / "b", "small", problems=20)
    folders = [str(tmp_path / "a" / "full"), "--experiments", str(tmp_path / "b" / "small")]
    err = _one_line_refusal(["--experiments", *folders, "--out", str(tmp_path / "agg")])
    assert "different problem sets across experiments:" in err
    assert "has 30 problems" in err and "has 20: 10 only in the first" in err
    run_cli(
        "report",
        "--experiments",
        *folders,
        "--allow-partial",
        "--out",
        str(tmp_path / "agg"),
        check=True,
    )
    assert len(json.loads((tmp_path / "agg" / "summary.json").read_text())["partial"]) == 1


def test_report_needs_results_or_experiments() -> None:
    r = run_cli("report")
    assert r.returncode == 2 and "RESULTS files or --experiments" in r.stderr
