"""The laptop demo end to end (small settings): every stage's outputs, the report, and
a re-run that skips every finished stage. Plus the bundled mini-APPS set itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps_hpc.apps import load_problems
from apps_hpc.demo import BUNDLED_APPS

SMALL = [
    "--set",
    "train.overrides.max_steps=4",
    "--set",
    "sample.n=2",
    "--set",
    "sample.max_tokens=16",
]


def test_bundled_mini_apps_covers_both_formats_and_all_difficulties() -> None:
    problems, report = load_problems(BUNDLED_APPS)
    assert not report.skipped
    for split in ("train", "test"):
        mine = [p for p in problems.values() if p.split == split]
        kinds = {(p.difficulty, p.call_based) for p in mine}
        assert len(kinds) == 6, split  # 3 difficulties x (stdin, call-based)
        assert all(len(p.solutions) >= 3 and len(p.inputs) >= 5 for p in mine)


def test_bundled_solutions_pass_their_tests(tmp_path: Path) -> None:
    samples = tmp_path / "s.jsonl"
    problems, _ = load_problems(BUNDLED_APPS / "test.jsonl")
    samples.write_text(
        "".join(
            json.dumps(
                {
                    "problem_id": p.problem_id,
                    "split": "test",
                    "difficulty": p.difficulty,
                    "codes": p.solutions,
                }
            )
            + "\n"
            for p in problems.values()
        )
    )
    out = tmp_path / "r.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "apps_hpc",
            "eval",
            "-q",
            "--samples",
            str(samples),
            "--apps",
            str(BUNDLED_APPS / "test.jsonl"),
            "--out",
            str(out),
        ],
        check=True,
    )
    assert all(r["c"] == r["n"] for r in map(json.loads, out.read_text().splitlines()))


@pytest.mark.slow
def test_demo_runs_every_stage_then_resumes(tmp_path: Path) -> None:
    pytest.importorskip("llamafactory")
    cmd = [
        sys.executable,
        "-m",
        "apps_hpc",
        "demo",
        "--root",
        str(tmp_path),
        "--cluster",
        "local",
        *SMALL,
    ]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    exp = tmp_path / "demo"
    for path in (
        "experiment.yaml",
        "data/apps_train.json",
        "data/dataset_info.json",
        "data/prompts.jsonl",
        "train/llamafactory.yaml",
        "train/trainer_state.json",
        "train/model.safetensors",
        "samples/base.jsonl",
        "samples/sft.jsonl",
        "results/base.jsonl",
        "results/sft.jsonl",
        "report/summary.md",
        "report/summary.json",
        "report/pass_at_k.png",
        "report/training_loss.png",
    ):
        assert (exp / path).exists(), path
    assert len((exp / "results" / "sft.jsonl").read_text().splitlines()) == 12
    assert "| base | 12 (4/4/4) |" in first.stdout and "| Δ sft − base |" in first.stdout
    assert f"plot: {exp / 'report' / 'training_loss.png'}" in first.stdout
    assert f"experiment: {exp}" in first.stdout
    assert "started train" in first.stderr
    # every job recorded what ran it; the page shows it
    run = json.loads((exp / "manifest.json").read_text())["run"]
    assert {"prepare", "train", "sample/base", "sample/sft", "eval/sft", "report"} <= set(run)
    [sft] = run["sample/sft"].values()
    assert sft["sources"]["model"]["path"] == str(exp / "train")  # the fine-tuned weights
    assert len(sft["sources"]["model"]["digest"]) == 16
    assert sft["software"]["lock"] and sft["software"]["packages"]["torch"]
    page = (exp / "report" / "index.html").read_text(encoding="utf-8")
    assert "<td>lock hash</td>" in page and "<td>model revision</td>" in page
    assert "not recorded in manifest.json" not in page
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skip tiny-model: already built" in again.stdout
    for key in ("prepare", "train", "sample/base", "eval/sft", "report"):
        assert f"skip {key}: already done" in again.stderr
    assert "started" not in again.stderr
