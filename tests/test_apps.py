"""APPS loading: jsonl, folders, parquet; one-line errors naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps_hpc.core.apps import load_problems, split_from_name
from apps_hpc.core.errors import AppsHpcError, DataError

GOOD = {
    "problem_id": 7,
    "question": "Q",
    "solutions": json.dumps(["print(1)"]),
    "input_output": json.dumps({"inputs": ["1"], "outputs": ["1"]}),
    "difficulty": "interview",
    "url": "",
    "starter_code": "",
}


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_loads_the_real_rows(shared_apps: Path) -> None:
    test, _ = load_problems(shared_apps / "test-sample.jsonl")
    train, _ = load_problems(shared_apps / "train-sample.jsonl")
    assert len(test) == 19 and len(train) == 153
    p = test[("test", 2303)]
    assert p.fn_name == "reverseWords" and p.call_based and p.starter_code.startswith("\n")
    assert len(test[("test", 0)].inputs) == 565
    assert sum(len(p.solutions) for p in train.values()) == 2331


def test_folder_with_split_files(tmp_path: Path) -> None:
    _write(tmp_path / "train.jsonl", [GOOD])
    _write(tmp_path / "test.jsonl", [GOOD | {"problem_id": 8}])
    problems, _ = load_problems(tmp_path)
    assert set(problems) == {("train", 7), ("test", 8)}


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.Table.from_pylist([GOOD]), tmp_path / "test-00000-of-00001.parquet")
    problems, _ = load_problems(tmp_path / "test-00000-of-00001.parquet")
    assert problems[("test", 7)].solutions == ["print(1)"]


def test_split_from_file_name(tmp_path: Path) -> None:
    assert split_from_name(Path("train-sample.jsonl")) == "train"
    assert split_from_name(Path("test.jsonl")) == "test"
    with pytest.raises(AppsHpcError, match="--split"):
        split_from_name(Path("rows.jsonl"))


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        (GOOD | {"input_output": "{bad"}, "input_output", "invalid JSON"),
        (
            GOOD | {"input_output": json.dumps({"inputs": ["1"], "outputs": []})},
            "input_output",
            "1 inputs but 0 outputs",
        ),
        (GOOD | {"difficulty": "easy"}, "difficulty", "unknown difficulty"),
        (GOOD | {"solutions": "[1, 2]"}, "solutions", "list of strings"),
        (GOOD | {"problem_id": "x"}, "problem_id", "integer"),
        ("{not json", "<row>", "invalid JSON"),
    ],
)
def test_bad_row_names_file_line_and_field(tmp_path: Path, row, field: str, words: str) -> None:
    path = _write(tmp_path / "test.jsonl", [GOOD | {"problem_id": 1}, row])
    with pytest.raises(DataError) as info:
        load_problems(path)
    assert (info.value.line, info.value.field) == (2, field)
    assert str(info.value).startswith(f"{path}:2: field '{field}'")
    assert words in str(info.value) and "\n" not in str(info.value)


def test_skip_bad_rows_counts_and_reports(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "test.jsonl", [GOOD, "{x", GOOD | {"problem_id": 9, "difficulty": "?"}]
    )
    problems, report = load_problems(path, skip_bad=True)
    assert list(problems) == [("test", 7)]
    assert len(report.skipped) == 2 and ":2:" in report.skipped[0]
