"""JSONL records that resume: a torn last line is redone and said, damage in the middle
is an error naming the file and line, or a counted skip where a flag asks for it."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from apps_hpc.core.errors import AppsHpcError, DataError
from apps_hpc.core.jsonl import AppendLog, complete_records, iter_jsonl
from apps_hpc.core.records import read_results, read_samples


def test_append_and_reopen(tmp_path: Path) -> None:
    log = AppendLog(tmp_path / "r.jsonl")
    log.append({"a": 1})
    log.append({"a": 2})
    assert [r for _, r in AppendLog(tmp_path / "r.jsonl").records] == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("torn", ['{"a": 2', '{"a": 2}', "{not json\n", '{"a": 2\n\n'])
def test_torn_last_line_of_an_append_log_is_redone_and_said(
    tmp_path: Path, torn: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n' + torn)
    with caplog.at_level(logging.WARNING):
        log = AppendLog(path)
    assert log.repaired and [r for _, r in log.records] == [{"a": 1}]
    assert path.read_text() == '{"a": 1}\n'
    assert f"{path}:2:" in caplog.text and "redone" in caplog.text
    log.append({"a": 2})
    assert [r for _, r in AppendLog(path).records] == [{"a": 1}, {"a": 2}]


def test_a_bad_middle_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"a": \n{"a": 3}\n')
    for read in (lambda: list(iter_jsonl(path)), lambda: complete_records(path)):
        with pytest.raises(DataError, match=rf"^{path}:3: field '<row>': invalid JSON"):
            read()


def test_a_bad_line_is_a_counted_skip_where_asked(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\n\xff\xfe\n{"a": 4}')
    skipped: list[DataError] = []
    assert list(iter_jsonl(path, on_bad=skipped.append)) == [(1, {"a": 1}), (4, {"a": 4})]
    assert [e.line for e in skipped] == [2, 3]


def test_lines_end_at_newline_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"a": "x\u2028y\x85z\u2029"}\n{"b": 2}\n', encoding="utf-8")
    assert list(iter_jsonl(path)) == [(1, {"a": "x\u2028y\x85z\u2029"}), (2, {"b": 2})]


def test_a_writer_still_appending_is_read_without_its_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2')
    assert complete_records(path) == [{"a": 1}]
    assert path.read_text() == '{"a": 1}\n{"a": 2'  # read-only


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


def test_samples_metadata_is_left_out_and_a_misspelt_field_refused(tmp_path: Path) -> None:
    """Other tools' keys (here the shared corpus's `kinds`) are metadata; a key that reads
    like one of ours misspelt is refused, naming it."""
    path = tmp_path / "s.jsonl"
    base = {"problem_id": 1, "difficulty": "interview", "codes": ["x"]}
    path.write_text(json.dumps({**base, "kinds": ["a"], "task_id": "APPS/1"}) + "\n")
    (sample,) = read_samples(path)
    assert sample.codes == ["x"] and sample.model == "s"
    path.write_text(json.dumps({**base, "completion": ["raw"]}) + "\n")
    with pytest.raises(DataError, match=r"s.jsonl:1: field 'completion'.*'completions'"):
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


# --- hostile lines: each is one DataError naming the file, the line and the field ---------


@pytest.mark.parametrize(
    ("line", "field", "problem"),
    [
        ('{"a": 1, "b": 2, "a": 3}', "a", "the key appears twice"),
        ('{"a": {"b": 1, "b": 1}}', "b", "the key appears twice"),
        ('{"a": NaN}', "<row>", "NaN is not JSON"),
        ('{"a": [Infinity]}', "<row>", "Infinity is not JSON"),
        ('{"a": -Infinity}', "<row>", "-Infinity is not JSON"),
        ("[" * 10_000 + "]" * 10_000, "<row>", "invalid JSON (nested too deeply)"),
        ('{"a": ' + "[" * 10_000 + "]" * 10_000 + "}", "<row>", "nested too deeply"),
    ],
)
def test_a_line_json_would_take_but_is_not_one_record_is_refused(
    tmp_path: Path, line: str, field: str, problem: str
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"ok": 1}\n' + line + "\n")
    with pytest.raises(DataError) as err:
        list(iter_jsonl(path))
    assert (err.value.line, err.value.field) == (2, field) and problem in err.value.problem
    assert str(err.value).count("\n") == 0


def test_a_byte_order_mark_before_the_first_line_is_no_part_of_it(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (2, {"a": 2})]
    path.write_bytes(b'{"a": 1}\n\xef\xbb\xbf{"a": 2}\n')  # elsewhere it is damage
    with pytest.raises(DataError, match=r"s\.jsonl:2: field '<row>': invalid JSON"):
        list(iter_jsonl(path))


@pytest.mark.parametrize("kind", ["folder", "fifo", "loop"])
def test_a_path_that_is_not_a_regular_file_is_refused_without_blocking(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "r.jsonl"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # reading it would wait for a writer for ever
    else:
        path.symlink_to(path)
    for read in (read_results, read_samples, lambda p: list(iter_jsonl(p)), AppendLog):
        with pytest.raises(AppsHpcError) as err:
            read(path)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("kind", ["not-json", "fifo", "folder", "deep"])
def test_a_bad_manifest_update_is_one_error_naming_it(tmp_path: Path, kind: str) -> None:
    from apps_hpc.provenance.manifest import read_manifest, update_manifest

    manifest = tmp_path / "manifest.json"
    update_manifest(manifest, ["jobs", "a"], {"id": 1})
    bad = tmp_path / "manifest.d" / "99999999999999999999-x.json"
    if kind == "fifo":
        os.mkfifo(bad)  # reading it would wait for a writer for ever
    elif kind == "folder":
        bad.mkdir()
    else:
        bad.write_text('{"keys": ["a"], "value": 1' if kind == "not-json" else "[" * 10_000)
    with pytest.raises(AppsHpcError) as err:
        read_manifest(manifest)
    assert str(err.value).startswith(f"{bad}: ") and "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)  # what the readers of manifests catch
