"""JSONL records that resume: a torn last line is redone, damage in the middle is not
silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps_hpc.errors import DataError
from apps_hpc.records import AppendLog, read_samples


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
