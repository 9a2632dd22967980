"""The laptop demo end to end (small settings): every stage's outputs, the report, and
a re-run that skips every finished stage. Plus the bundled mini-APPS set itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps_hpc.core.apps import load_problems
from apps_hpc.core.config import find_config, load_experiment
from apps_hpc.prepare.stage import sft_examples
from apps_hpc.provenance.manifest import read_manifest
from apps_hpc.tools.demo import BUNDLED_APPS

SMALL = [
    "--set",
    "train.overrides.max_steps=4",
    "--set",
    "train.overrides.logging_steps=2",  # a loss to plot within 4 steps
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
        assert all(len(p.inputs) >= 5 for p in mine)
        # the train rewordings (REWORDINGS, below) carry the one program the demo teaches
        many = [p for p in mine if split == "test" or p.problem_id < 24]
        assert all(len(p.solutions) >= 3 for p in many)


# The test problems that are close variants of a train problem (same task, same input and
# output format, another story and other example numbers): test id -> train id. Listed in
# apps_hpc/data/mini_apps/README.md.
VARIANTS = {12: 0, 13: 2, 14: 4, 15: 6, 16: 10, 17: 14, 18: 17, 19: 23}


def _evaluate(tmp_path: Path, codes: dict[int, list[str]], split: str = "test") -> dict[int, dict]:
    """Run `codes` (problem id -> programs) through `apps-hpc eval --all-tests`."""
    rows = BUNDLED_APPS / f"{split}.jsonl"
    problems, _ = load_problems(rows)
    samples, out = tmp_path / "s.jsonl", tmp_path / "r.jsonl"
    samples.write_text(
        "".join(
            json.dumps(
                {
                    "problem_id": pid,
                    "split": split,
                    "difficulty": problems[(split, pid)].difficulty,
                    "codes": programs,
                }
            )
            + "\n"
            for pid, programs in codes.items()
        )
    )
    args = ["eval", "-q", "--all-tests", "--samples", str(samples)]
    args += ["--apps", str(rows), "--out", str(out)]
    subprocess.run([sys.executable, "-m", "apps_hpc", *args], check=True)
    return {r["problem_id"]: r for r in map(json.loads, out.read_text().splitlines())}


@pytest.mark.parametrize("split, count", [("test", 20), ("train", 48)])
def test_bundled_solutions_pass_their_tests(tmp_path: Path, split: str, count: int) -> None:
    problems, _ = load_problems(BUNDLED_APPS / f"{split}.jsonl")
    codes = {p.problem_id: p.solutions for p in problems.values()}
    results = _evaluate(tmp_path, codes, split)
    assert len(results) == len(problems) == count
    assert all(r["c"] == r["n"] == len(r["verdicts"]) for r in results.values())


def test_variants_are_solved_by_their_train_problems_solutions(tmp_path: Path) -> None:
    problems, _ = load_problems(BUNDLED_APPS)
    codes = {v: problems[("train", t)].solutions for v, t in VARIANTS.items()}
    results = _evaluate(tmp_path, codes)
    assert {pid: r["c"] for pid, r in results.items()} == {v: len(c) for v, c in codes.items()}


def _sections(question: str) -> tuple[str, str, str]:
    """(story, format, example) of a mini-APPS statement."""
    fmt = "-----Input-----" if "-----Input-----" in question else "Constraints:"
    ex = "-----Example-----" if "-----Example-----" in question else "Example:"
    story, rest = question.split(fmt, 1)
    middle, example = rest.split(ex, 1)
    return story, fmt + middle, example


def test_variants_reword_the_story_and_the_example_but_keep_the_format() -> None:
    problems, _ = load_problems(BUNDLED_APPS)
    for v, t in VARIANTS.items():
        variant, train = problems[("test", v)], problems[("train", t)]
        (v_story, v_fmt, v_ex), (t_story, t_fmt, t_ex) = map(
            _sections, (variant.question, train.question)
        )
        assert v_fmt == t_fmt and variant.starter_code == train.starter_code, v
        assert v_story != t_story and v_ex != t_ex and variant.inputs != train.inputs, v
        assert variant.difficulty == train.difficulty and variant.fn_name == train.fn_name, v


# The train problems that reword a varied task (same format, starter code and program,
# another story and example): train id -> its rewordings' train ids.
REWORDINGS = {t: [24 + 3 * i, 25 + 3 * i, 26 + 3 * i] for i, t in enumerate(VARIANTS.values())}


def test_train_rewordings_keep_the_format_and_teach_one_program_per_task() -> None:
    problems, _ = load_problems(BUNDLED_APPS)
    exp = load_experiment(find_config("experiments", "demo"))
    train = [p for p in problems.values() if p.split == "train"]
    assert len(train) == 48 and sorted(i for ids in REWORDINGS.values() for i in ids) == list(
        range(24, 48)
    )
    picked = {
        e["problem_id"]: e["output"]
        for e in sft_examples(train, exp.prepare.max_per_problem, exp.prepare.seed)
    }
    for t, ids in REWORDINGS.items():
        original = problems[("train", t)]
        _, t_fmt, t_ex = _sections(original.question)
        for r in ids:
            rewording = problems[("train", r)]
            story, fmt, ex = _sections(rewording.question)
            assert fmt == t_fmt and rewording.starter_code == original.starter_code, r
            assert ex != t_ex and story != _sections(original.question)[0], r
            assert rewording.solutions[0] in original.solutions, r
            # the demo's prepare (one solution per problem) gives every wording one program
            assert picked[r] == picked[t], (t, r)


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
    assert len((exp / "results" / "sft.jsonl").read_text().splitlines()) == 20
    assert "| base | 20 (8/6/6) |" in first.stdout and "| Δ sft − base |" in first.stdout
    base = [json.loads(x) for x in (exp / "results/base.jsonl").read_text().splitlines()]
    assert [r["c"] for r in base] == [0] * 20  # the random-init base solves nothing
    assert f"plot: {exp / 'report' / 'training_loss.png'}" in first.stdout
    assert f"experiment: {exp}" in first.stdout
    assert "started train" in first.stderr
    # every job recorded what ran it; the page shows it
    run = read_manifest(exp / "manifest.json")["run"]
    assert {"prepare", "train", "sample/base", "sample/sft", "eval/sft", "report"} <= set(run)
    [sft] = run["sample/sft"].values()
    assert sft["sources"]["model"]["path"] == str(exp / "train")  # the fine-tuned weights
    assert len(sft["sources"]["model"]["digest"]) == 16
    assert sft["software"]["lock"] and sft["software"]["packages"]["torch"]
    page = (exp / "report" / "index.html").read_text(encoding="utf-8")
    assert "<td>lock hash</td>" in page and "<td>model revision</td>" in page
    assert "not recorded in manifest.json" not in page
    # planned vs measured per stage: printed, and on the page
    assert "Planned vs measured (plan for local" in first.stdout
    assert "| train | " in first.stdout.split("Planned vs measured", 1)[1]
    assert '<table class="planned">' in page
    manifest = read_manifest(exp / "manifest.json")
    assert manifest["measured"]["train"]["tokens_source"].endswith(
        "(counted with the model's tokenizer)"
    )
    planned_at = manifest["plan"]["planned_at"]
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skip tiny-model: already built" in again.stdout
    for key in ("prepare", "train", "sample/base", "eval/sft", "report"):
        assert f"skip {key}: already done" in again.stderr
    assert "started" not in again.stderr
    assert read_manifest(exp / "manifest.json")["plan"]["planned_at"] == planned_at  # kept


@pytest.mark.slow
def test_demo_fine_tuning_solves_variants_the_base_cannot(tmp_path: Path) -> None:
    """The demo at its shipped size (~3 minutes on 2 cores): the random-init base solves
    nothing, the fine-tuned model solves some of the test variants of train tasks."""
    pytest.importorskip("llamafactory")
    cmd = [sys.executable, "-m", "apps_hpc", "demo", "--root", str(tmp_path)]
    run = subprocess.run([*cmd, "--cluster", "local"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    exp = tmp_path / "demo"
    results = {}
    for model in ("base", "sft"):
        lines = (exp / "results" / f"{model}.jsonl").read_text().splitlines()
        results[model] = {r["problem_id"]: r["c"] for r in map(json.loads, lines)}
    assert set(results["base"].values()) == {0}
    solved = {pid for pid, c in results["sft"].items() if c > 0}
    assert solved & set(VARIANTS), results["sft"]
    assert f"page: {exp / 'report' / 'index.html'}" in run.stdout
    summary = json.loads((exp / "report" / "summary.json").read_text())
    assert "only by sft: 0 " not in run.stdout, summary
