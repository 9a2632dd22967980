"""The record formats of DESIGN.md (samples, results) and JSONL files that resume.

Every record is one JSON object on one line, one line per problem. A writer appends a
line and flushes it when a problem is finished; a reader that finds a half-written last
line (a killed run) drops it so the problem is done again.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from apps_hpc.core.errors import AppsHpcError, DataError
from apps_hpc.core.schema import PromptRecord, ResultRecord, SampleRecord, first_problem

_PROMPT = TypeAdapter(PromptRecord)
_SAMPLE = TypeAdapter(SampleRecord)
_RESULT = TypeAdapter(ResultRecord)
_RESULT_KEYS = {f.name for f in dataclasses.fields(ResultRecord)} - {"extra"}


def _validated(adapter: TypeAdapter[Any], cls: type, data: Any, where: tuple[str, int]) -> Any:
    if not isinstance(data, dict):
        raise DataError(*where, "<row>", "expected a JSON object")
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise DataError(*where, *first_problem(exc, cls)) from None


ProblemKey = tuple[str, int]  # (split, problem_id)


def problem_key(rec: Mapping[str, Any] | SampleRecord | ResultRecord) -> ProblemKey:
    """A problem's key in every file and record: (split, problem_id); a line without a
    split (or with an empty one) is from the test split, as the published run's are."""
    if isinstance(rec, Mapping):
        return (rec.get("split") or "test", rec.get("problem_id"))  # type: ignore[return-value]
    return (rec.split, rec.problem_id)


def parse_prompt(rec: Any, where: tuple[str, int]) -> dict[str, Any]:
    """A prompts line, checked by the schema; the record itself is returned."""
    _validated(_PROMPT, PromptRecord, rec, where)
    return rec


def parse_sample(rec: Any, where: tuple[str, int], default_model: str) -> SampleRecord:
    """A samples line (`split` defaults to test, `model` to the file's stem)."""
    if isinstance(rec, dict):
        rec = {
            **rec,
            "split": problem_key(rec)[0],
            "model": rec.get("model") or default_model,
        }
    return _validated(_SAMPLE, SampleRecord, rec, where)


def parse_result(rec: Any, where: tuple[str, int]) -> ResultRecord:
    """A results line; keys the schema does not name are kept in `extra`."""
    if isinstance(rec, dict):
        extra = {k: v for k, v in rec.items() if k not in _RESULT_KEYS}
        rec = {k: v for k, v in rec.items() if k in _RESULT_KEYS}
        rec.update(split=problem_key(rec)[0], extra=extra)
        rec["tests"] = rec.get("tests") or []
    return _validated(_RESULT, ResultRecord, rec, where)


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, object) for each non-empty line; a bad line is a DataError."""
    with path.open(encoding="utf-8", newline="\n") as fh:  # "\n" alone ends a line
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except ValueError as exc:
                raise DataError(path, lineno, "<row>", f"invalid JSON ({exc})") from None


def read_samples(path: str | Path) -> list[SampleRecord]:
    path = Path(path)
    if not path.is_file():
        raise AppsHpcError(f"{path}: no such samples file")
    model = path.stem
    return [parse_sample(rec, (str(path), n), model) for n, rec in iter_jsonl(path)]


def read_results(path: str | Path) -> list[ResultRecord]:
    path = Path(path)
    if not path.is_file():
        raise AppsHpcError(f"{path}: no such results file")
    return [parse_result(rec, (str(path), n)) for n, rec in iter_jsonl(path)]


def complete_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects on the complete lines of `path` (none when it is absent); a torn
    or broken line is left out. Read-only: for checks, not for resuming."""
    if not path.is_file():
        return []
    records = []
    for line in jsonl_lines(path.read_text(encoding="utf-8")):
        try:
            rec = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            rec = None
        if isinstance(rec, dict):
            records.append(rec)
    return records


# "\n" is the only line break of a JSONL file. json.dumps escapes every other character
# str.splitlines() breaks at (\r, \x0b, \x0c, \x1c-\x1e) but these three, which a
# program's output may hold (honest ones print U+2028 too): escaped, a record is one
# line for every reader, even one that splits with str.splitlines().
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def dump_line(record: Any) -> str:
    """One JSONL line: `record` as JSON (UTF-8, no other line break), then "\n"."""
    return (
        json.dumps(record, ensure_ascii=False, separators=(",", ":")).translate(_LINE_BREAKS) + "\n"
    )


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSONL text, split at "\n" alone (never str.splitlines()), each
    with its "\n" kept; the last has none when the text does not end with one."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


class AppendLog:
    """A JSONL file written one finished record at a time, that resumes after a kill.

    On open, complete lines are kept; a last line without its newline, or one that is
    not JSON, is the trace of a killed writer and is cut off (its record is redone).
    A bad line in the middle is real damage and raises DataError: nothing is deleted.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: list[tuple[int, dict[str, Any]]] = []
        self.repaired = False
        self._recover()

    def _recover(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end, lines = 0, data.split(b"\n")
        for lineno, raw in enumerate(lines[:-1], 1):  # complete lines end with "\n"
            if raw.strip():
                try:
                    self.records.append((lineno, json.loads(raw)))
                except ValueError as exc:
                    if lineno < len(lines) - 1:
                        raise DataError(
                            self.path, lineno, "<row>", f"invalid JSON ({exc})"
                        ) from None
                    break
            good_end += len(raw) + 1
        if good_end != len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(good_end)
            self.repaired = True

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(dump_line(record))
            fh.flush()
            os.fsync(fh.fileno())
