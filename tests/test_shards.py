"""Shard merges refuse what would silently skew pass@k: a problem twice, or a problem
that is not in the expected set. Through the real CLI: `merge-samples` and the merge at
the end of `eval --shard`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli


def _lines(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _sample(problem_id: int, codes: tuple[str, ...] = ("print(input())",)) -> dict:
    return {
        "problem_id": problem_id,
        "split": "test",
        "difficulty": "introductory",
        "model": "m",
        "codes": list(codes),
    }


def _prompt(problem_id: int) -> dict:
    return {"problem_id": problem_id, "split": "test", "difficulty": "introductory", "prompt": "?"}


def _one_error_line(r, *parts: str) -> None:
    """Exit 2 and one `error:` line, the last one (an evaluation logs lines before it)."""
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and r.stderr.endswith(errors[0] + "\n"), r.stderr
    for part in parts:
        assert part in errors[0], r.stderr


@pytest.fixture()
def samples_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "samples" / "m"
    _lines(folder / "shard-00000-of-00002.jsonl", [_sample(1), _sample(3)])
    _lines(folder / "shard-00001-of-00002.jsonl", [_sample(2)])
    _lines(tmp_path / "prompts.jsonl", [_prompt(1), _prompt(2), _prompt(3)])
    return folder


def test_merge_samples_joins_complete_shards(samples_folder: Path) -> None:
    prompts = samples_folder.parents[1] / "prompts.jsonl"
    r = run_cli("merge-samples", str(samples_folder), "--prompts", str(prompts), check=True)
    merged = Path(r.stdout.strip())
    assert [json.loads(x)["problem_id"] for x in merged.read_text().splitlines()] == [1, 2, 3]


@pytest.mark.parametrize(
    "ids, message",
    [([2, 3], "problem test/3 appears twice"), ([2, 2], "test/2")],  # across shards, in one
)
def test_merge_samples_refuses_a_problem_twice(
    samples_folder: Path, ids: list[int], message: str
) -> None:
    second = samples_folder / "shard-00001-of-00002.jsonl"
    _lines(second, [_sample(i) for i in ids])
    prompts = samples_folder.parents[1] / "prompts.jsonl"
    r = run_cli("merge-samples", str(samples_folder), "--prompts", str(prompts))
    _one_error_line(r, str(second), message)
    assert not samples_folder.with_suffix(".jsonl").exists()


def test_merge_samples_refuses_a_problem_not_in_the_prompts(samples_folder: Path) -> None:
    prompts = samples_folder.parents[1] / "prompts.jsonl"
    second = samples_folder / "shard-00001-of-00002.jsonl"
    _lines(second, [_sample(2), _sample(9)])
    r = run_cli("merge-samples", str(samples_folder), "--prompts", str(prompts))
    _one_error_line(r, str(second), "problem test/9 is not in", str(prompts))


def _apps_row(problem_id: int) -> dict:
    return {
        "problem_id": problem_id,
        "question": "Echo.",
        "solutions": "",
        "input_output": json.dumps({"inputs": ["1\n"], "outputs": ["1\n"]}),
        "difficulty": "introductory",
        "url": "",
        "starter_code": "",
    }


def _result(problem_id: int) -> dict:
    return {
        "problem_id": problem_id,
        "split": "test",
        "difficulty": "introductory",
        "model": "m",
        "n": 1,
        "c": 1,
        "verdicts": ["pass"],
        "tests": [[True]],
        "failures": [None],
    }


@pytest.mark.parametrize(
    ("first_shard", "message"),
    [
        ([1, 2], "problem test/2 appears twice"),  # 2 belongs to shard 1 as well
        ([1, 7], "problem test/7 is not in"),
    ],
)
def test_eval_shard_merge_refuses_duplicates_and_strangers(
    tmp_path: Path, first_shard: list[int], message: str
) -> None:
    apps = _lines(tmp_path / "test.jsonl", [_apps_row(1), _apps_row(2)])
    samples = _lines(tmp_path / "s.jsonl", [_sample(1), _sample(2)])
    out = tmp_path / "results" / "m.jsonl"
    shard0 = _lines(out.with_suffix("") / "shard-00000-of-00002.jsonl", [
        _result(i) for i in first_shard
    ])  # fmt: skip
    r = run_cli(
        "eval", "-q", "--workers", "1", "--samples", str(samples), "--apps", str(apps),
        "--out", str(out), "--shard", "1/2",
    )  # fmt: skip
    _one_error_line(r, str(shard0), message)
    assert not out.exists()
