"""pass@k and the report: the estimator against brute force, tables, JSON, plot."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from math import comb
from pathlib import Path

import pytest

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.metrics import pass_at_k
from apps_hpc.report import ReportConfig, build, report


@pytest.mark.parametrize(
    ("n", "c", "k"), [(10, 3, 1), (10, 3, 5), (10, 0, 10), (5, 5, 2), (7, 2, 6)]
)
def test_pass_at_k_is_the_unbiased_estimator(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    # brute force: the share of k-subsets that contain a correct sample
    hits = [any(i < c for i in s) for s in itertools.combinations(range(n), k)]
    assert pass_at_k(n, c, k) == pytest.approx(sum(hits) / len(hits))


def test_pass_at_k_refuses_k_above_n() -> None:
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)


def _results(path: Path, model: str, rows: list[tuple[str, int, int]]) -> Path:
    with path.open("w") as fh:
        for i, (difficulty, n, c) in enumerate(rows):
            verdicts = ["pass"] * c + ["wrong_answer"] * (n - c)
            fh.write(
                json.dumps(
                    {
                        "problem_id": i,
                        "split": "test",
                        "difficulty": difficulty,
                        "model": model,
                        "n": n,
                        "c": c,
                        "verdicts": verdicts,
                        "tests": [[True]] * n,
                    }
                )
                + "\n"
            )
    return path


def test_report_tables_counts_and_deltas(tmp_path: Path) -> None:
    base = _results(
        tmp_path / "base.jsonl",
        "base",
        [("introductory", 10, 5), ("interview", 10, 1), ("interview", 10, 0)],
    )
    sft = _results(
        tmp_path / "sft.jsonl",
        "sft",
        [("introductory", 10, 10), ("interview", 10, 2), ("interview", 10, 0)],
    )
    out = report(ReportConfig([base, sft], out=tmp_path / "rep"))
    md = (out / "summary.md").read_text()
    lines = md.splitlines()
    assert lines[0] == (
        "| model | problems (intro/interview/comp) | total @1/@5/@10 | "
        "introductory | interview | competition |"
    )
    assert lines[2].startswith("| base | 3 (1/2/0) | 0.2000 / ")
    assert "| 0.5000 / " in lines[2] and lines[2].endswith("| – |")  # no competition rows
    assert lines[4].startswith("| Δ sft − base | | +0.2000 / ")
    data = json.loads((out / "summary.json").read_text())
    assert data["models"]["sft"]["introductory"]["pass@1"] == 1.0
    assert data["models"]["base"]["total"]["problems"] == 3
    assert (out / "pass_at_k.png").read_bytes()[:4] == b"\x89PNG"


def test_report_refuses_k_larger_than_n(tmp_path: Path) -> None:
    res = _results(tmp_path / "r.jsonl", "m", [("interview", 5, 1)])
    with pytest.raises(AppsHpcError, match="k=10 is larger than the 5 samples of problem test/0"):
        build(ReportConfig([res]))


def test_report_cli_json_and_default_folder(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    (exp / "results").mkdir(parents=True)
    res = _results(exp / "results" / "m.jsonl", "m", [("competition", 4, 1)])
    r = subprocess.run(
        [sys.executable, "-m", "apps_hpc", "report", str(res), "--format", "json", "--k", "1,2"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert json.loads(r.stdout)["models"]["m"]["competition"]["pass@1"] == 0.25
    assert (exp / "report" / "summary.md").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "apps_hpc", "report", str(res), "--k", "5"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    assert "k=5 is larger" in bad.stderr and bad.stderr.count("\n") == 1
