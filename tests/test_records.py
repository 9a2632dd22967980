"""JSONL records that resume: a torn last line is redone, damage in the middle is not
silently dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps_hpc.core.errors import DataError
from apps_hpc.core.records import AppendLog, read_results, read_samples


def test_append_and_reopen(tmp_path: Path) -> None:
    log = AppendLog(tmp_path / "r.jsonl")
    log.append({"a": 1})
    log.append({"a": 2})
    assert [r for _, r in AppendLog(tmp_path / "r.jsonl").records] == [{"a": 1}, {"a": 2}]


def test_half_written_last_line_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')
    log = AppendLog(path)
    assert log.repaired and [r for _, r in log.records] == [{"a": 1}]
    assert path.read_text() == '{"a": 1}\n'


def test_bad_line_in_the_middle_is_an_error_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    text = '{"a": 1}\nnot json\n{"a": 3}\n'
    path.write_text(text)
    with pytest.raises(DataError, match=":2:"):
        AppendLog(path)
    assert path.read_text() == text


def test_samples_field_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"problem_id": 1, "difficulty": "interview", "codes": ["x", 3]}\n')
    with pytest.raises(DataError, match=r"s.jsonl:1: field 'codes\[1\]'"):
        read_samples(path)


def _result_line(**extra: object) -> str:
    rec = {
        "problem_id": 3,
        "split": "test",
        "difficulty": "interview",
        "model": "m",
        "n": 2,
        "c": 1,
        "verdicts": ["pass", "wrong_answer"],
        "tests": [[True], [False]],
        **extra,
    }
    return json.dumps(rec) + "\n"


def test_results_keep_failures_and_old_records_without_them_still_load(tmp_path: Path) -> None:
    failure = {"test": 0, "input": "1", "expected": "2", "got": "3\n", "error": None}
    path = tmp_path / "r.jsonl"
    path.write_text(_result_line(failures=[None, failure]) + _result_line(problem_id=4))
    new, old = read_results(path)
    assert new.failures == [None, failure] and new.to_json()["failures"] == [None, failure]
    assert old.failures is None and "failures" not in old.to_json()


@pytest.mark.parametrize(
    ("failures", "field"),
    [([None], "failures"), ([None, 5], r"failures\[1\]"), ({"a": 1}, "failures")],
)
def test_malformed_failures_name_the_field(tmp_path: Path, failures: object, field: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(_result_line(failures=failures))
    with pytest.raises(DataError, match=rf"r.jsonl:1: field '{field}'"):
        read_results(path)
