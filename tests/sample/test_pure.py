"""Sampling's pure parts: code extraction, shard planning, seeds, shard status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.prompts import extract_code
from apps_hpc.core.schedenv import array_task, visible_gpus
from apps_hpc.core.shards import Shard, assign, parse_shard, problem_seed, shard_status


@pytest.mark.parametrize(
    ("completion", "code"),
    [
        ("Here:\n```python\nprint(1)\n```\nThis prints 1.", "print(1)\n"),  # prose after
        ("```python\nx = 1\n```\nbetter:\n```python\nprint(2)\n```", "print(2)\n"),  # last wins
        ("```\nprint(3)\n```", "print(3)\n"),  # fence without language
        ("```py\nprint(4)\n```\n```text\nout\n```", "print(4)\n"),  # python beats text
        ("```cpp\nint main(){}\n```", "int main(){}\n"),  # no python: the last block
        ("print(5)\n", "print(5)\n"),  # no fence: the text
        ("```python\nprint(6)\n", "print(6)\n"),  # unterminated fence (max_tokens hit)
        ("```python\nprint(7)\n```<|EOT|>\n```python\nbad\n```", "print(7)\n"),
    ],
)
def test_extract_code(completion: str, code: str) -> None:
    assert extract_code(completion) == code


def test_parse_shard() -> None:
    assert parse_shard("3/8") == Shard(3, 8)
    for bad in ("8/8", "-1/2", "a/b", "3"):
        with pytest.raises(AppsHpcError, match="--shard"):
            parse_shard(bad)


def test_round_robin_spreads_prompts() -> None:
    prompts = [{"problem_id": i} for i in range(10)]
    shards = [assign(prompts, Shard(i, 3)) for i in range(3)]
    assert [[p["problem_id"] for p in s] for s in shards] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(p["problem_id"] for s in shards for p in s) == list(range(10))


def test_seed_depends_on_problem_only() -> None:
    assert problem_seed(42, "test", 17) == problem_seed(42, "test", 17)
    assert problem_seed(42, "test", 17) != problem_seed(42, "test", 18)
    assert problem_seed(42, "test", 17) != problem_seed(43, "test", 17)
    assert 0 <= problem_seed(42, "test", 17) < 2**31


def test_shard_status_names_missing_and_incomplete(tmp_path: Path) -> None:
    prompts = [{"problem_id": i, "split": "test"} for i in range(4)]
    (tmp_path / "shard-00000-of-00002.jsonl").write_text(
        json.dumps({"problem_id": 0, "split": "test"}) + "\n"
    )
    problems = shard_status(tmp_path, prompts)
    assert problems == [
        f"incomplete shard {tmp_path / 'shard-00000-of-00002.jsonl'}: 1 of 2 problems",
        f"missing shard {tmp_path / 'shard-00001-of-00002.jsonl'}",
    ]


def test_slurm_array_task_and_gpus() -> None:
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert array_task(env) == (1, 8)
    assert array_task({}) is None
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
