"""prepare: the SFT dataset, dataset_info.json, prompts.jsonl, stats; the shared prompt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps_hpc.core.apps import Problem
from apps_hpc.core.prompts import (
    CALL_FORMAT,
    STDIN_FORMAT,
    answer,
    chat_prompt,
    normalize_code,
    user_prompt,
)
from apps_hpc.prepare.stage import PrepareConfig, prepare, prompt_records, sft_examples
from tests.helpers import run_cli


def _problem(pid: int, sols: list[str], fn_name: str | None = None, tests: bool = True) -> Problem:
    return Problem(
        pid,
        "train",
        "interview",
        f"Q{pid}",
        "\nclass Solution:\n    def f(self):\n",
        fn_name,
        ["1"] if tests else [],
        ["1"] if tests else [],
        sols,
    )


def test_user_prompt_states_problem_starter_and_format() -> None:
    stdin = user_prompt("Add two numbers.", "", None)
    assert "QUESTION:\nAdd two numbers." in stdin and STDIN_FORMAT in stdin
    assert "Starter code" not in stdin
    call = user_prompt("Q", "\nclass Solution:\n    def f(self):\n", "f")
    assert "```python\nclass Solution:\n    def f(self):\n```" in call and CALL_FORMAT in call


def test_solutions_are_normalised_and_fenced() -> None:
    assert normalize_code("\r\nx = 1  \r\nprint(x)\t\n\n") == "x = 1\nprint(x)"
    assert answer("print(1)\r\n") == "```python\nprint(1)\n```"


def test_one_example_per_solution_and_seeded_cap() -> None:
    problems = [
        _problem(2, ["a", "b", "c"]),
        _problem(1, ["x"]),
        _problem(3, []),
        _problem(4, ["y"], tests=False),
    ]
    all_ex = sft_examples(problems, None, 42)
    assert [(e["problem_id"], e["solution_index"]) for e in all_ex] == [
        (1, 0),
        (2, 0),
        (2, 1),
        (2, 2),
    ]
    capped = sft_examples(problems, 2, 42)
    assert len(capped) == 3 and capped == sft_examples(problems, 2, 42)
    assert {e["solution_index"] for e in capped if e["problem_id"] == 2} != {0, 1, 2}


def test_prompts_keep_only_problems_with_solutions() -> None:
    recs = prompt_records([_problem(5, ["s"]), _problem(6, [])])
    assert [r["problem_id"] for r in recs] == [5]


def test_prepare_real_rows_is_idempotent(shared_apps: Path, tmp_path: Path) -> None:
    out1 = prepare(PrepareConfig(apps=str(shared_apps), out=tmp_path / "a", stats=True))
    out2 = prepare(PrepareConfig(apps=str(shared_apps), out=tmp_path / "b", stats=True))
    for name in ("apps_train.json", "dataset_info.json", "prompts.jsonl", "stats.json"):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name
    examples = json.loads((out1 / "apps_train.json").read_text())
    assert len(examples) == 2331  # every solution of the 153 train rows
    info = json.loads((out1 / "dataset_info.json").read_text())
    assert info["apps_train"]["formatting"] == "alpaca"
    prompts = [json.loads(x) for x in (out1 / "prompts.jsonl").read_text().splitlines()]
    assert [p["problem_id"] for p in prompts] == [0, 1, 2, 3, 4, 5, 2303, 2365, 4136]
    stats = json.loads((out1 / "stats.json").read_text())
    expected: dict[str, int] = {"introductory": 0, "interview": 0, "competition": 0}
    for line in (shared_apps / "train-sample.jsonl").read_text().splitlines():
        row = json.loads(line)
        expected[row["difficulty"]] += len(json.loads(row["solutions"]))
    assert stats["per_difficulty"] == expected and stats["length_unit"] == "characters"


def test_prepare_bad_row_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"problem_id": 1, "difficulty": "hard"}\n')
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "apps_hpc",
            "prepare",
            "--apps",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    where = f"{tmp_path / 'train.jsonl'}:1: field 'difficulty': unknown difficulty 'hard'"
    assert r.stderr.startswith(f"error: {where}") and r.stderr.count("\n") == 1


def test_chat_prompt_is_llamafactory_deepseekcoder_template(tiny_model_dir: Path) -> None:
    pytest.importorskip("llamafactory")
    from llamafactory.data.template import TEMPLATES
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    user = user_prompt("Print 1.", "", None)
    prompt_ids, answer_ids = TEMPLATES["deepseekcoder"].encode_oneturn(
        tok,
        [{"role": "user", "content": user}, {"role": "assistant", "content": answer("print(1)")}],
    )
    assert tok.decode(prompt_ids) == tok.bos_token + chat_prompt(user)
    assert tok.decode(answer_ids) == "\n" + answer("print(1)") + "\n<|EOT|>\n"


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ("test-sample.jsonl", "no train problems with solutions and tests"),
        ("train-sample.jsonl", "no test problems with solutions and tests"),
    ],
)
def test_an_empty_training_set_or_prompt_list_is_an_error(
    shared_apps: Path, tmp_path: Path, rows: str, words: str
) -> None:
    out = tmp_path / "data"
    r = run_cli("prepare", "--apps", str(shared_apps / rows), "--out", str(out))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and words in r.stderr
    assert not out.exists()  # nothing written


def test_a_rerun_with_the_same_inputs_is_skipped_and_other_inputs_redo(
    shared_apps: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="apps_hpc")
    cfg = PrepareConfig(apps=str(shared_apps), out=tmp_path / "d")
    prepare(cfg)
    prompts = (tmp_path / "d" / "prompts.jsonl").stat().st_mtime_ns
    prepare(cfg)
    assert "skip prepare" in caplog.text
    assert (tmp_path / "d" / "prompts.jsonl").stat().st_mtime_ns == prompts
    caplog.clear()
    prepare(PrepareConfig(apps=str(shared_apps), out=tmp_path / "d", max_per_problem=1))
    assert "skip prepare" not in caplog.text
