"""The record formats of DESIGN.md (samples, results) and JSONL files that resume.

Every record is one JSON object on one line, one line per problem. A writer appends a
line and flushes it when a problem is finished; a reader that finds a half-written last
line (a killed run) drops it so the problem is done again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from apps_hpc.core.apps import DIFFICULTIES
from apps_hpc.core.errors import AppsHpcError, DataError


class Verdict(str, Enum):
    """The outcome of one program; the on-disk JSON holds the value."""

    PASS = "pass"
    WRONG_ANSWER = "wrong_answer"
    TIMEOUT = "timeout"
    RUNTIME_ERROR = "runtime_error"
    COMPILE_ERROR = "compile_error"


@dataclass
class SampleRecord:
    """`codes` are executed; `completions` (optional) is the raw model text."""

    problem_id: int
    split: str
    difficulty: str
    model: str
    codes: list[str]
    completions: list[str] | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.model, self.split, self.problem_id)


@dataclass
class ResultRecord:
    """Per-problem verdicts; `tests` holds the reference encoding per program
    (true pass, false wrong answer, -1 runtime error or timeout, -2 compile error).

    `failures` is parallel to `verdicts`: None for a passing program, else why it failed
    (`{"test", "input", "expected", "got", "error"}`: the first failing test's index, its
    input and expected output, what the program produced, the error's last line or
    "timeout"; texts cut to 300 characters + "…"). A record written before this field
    existed has `failures` None: unknown."""

    problem_id: int
    split: str
    difficulty: str
    model: str
    n: int
    c: int
    verdicts: list[str]
    tests: list[list[bool | int]]
    failures: list[dict[str, Any] | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.model, self.split, self.problem_id)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra"))
        if data["failures"] is None:
            del data["failures"]  # unknown stays absent, as in the file it came from
        return data


def _require(rec: dict[str, Any], name: str, kind: type | tuple, where: tuple[str, int]) -> Any:
    if name not in rec:
        raise DataError(*where, name, "missing")
    value = rec[name]
    if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
        raise DataError(*where, name, f"expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple) -> str:
    return " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__


def _str_list(rec: dict[str, Any], name: str, where: tuple[str, int]) -> list[str]:
    value = _require(rec, name, list, where)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise DataError(*where, f"{name}[{i}]", f"expected str, got {type(item).__name__}")
    return value


def _difficulty(rec: dict[str, Any], where: tuple[str, int]) -> str:
    value = _require(rec, "difficulty", str, where)
    if value not in DIFFICULTIES:
        raise DataError(*where, "difficulty", f"unknown difficulty {value!r}")
    return value


def parse_sample(rec: Any, where: tuple[str, int], default_model: str) -> SampleRecord:
    if not isinstance(rec, dict):
        raise DataError(*where, "<row>", "expected a JSON object")
    completions = rec.get("completions")
    codes = _str_list(rec, "codes", where)
    if not codes:
        raise DataError(*where, "codes", "empty (expected at least one program)")
    return SampleRecord(
        problem_id=_require(rec, "problem_id", int, where),
        split=rec.get("split") or "test",
        difficulty=_difficulty(rec, where),
        model=rec.get("model") or default_model,
        codes=codes,
        completions=_str_list(rec, "completions", where) if completions is not None else None,
    )


def parse_result(rec: Any, where: tuple[str, int]) -> ResultRecord:
    if not isinstance(rec, dict):
        raise DataError(*where, "<row>", "expected a JSON object")
    n, c = _require(rec, "n", int, where), _require(rec, "c", int, where)
    if not 0 <= c <= n:
        raise DataError(*where, "c", f"c={c} is not between 0 and n={n}")
    known = {f for f in ResultRecord.__dataclass_fields__ if f != "extra"}
    return ResultRecord(
        problem_id=_require(rec, "problem_id", int, where),
        split=rec.get("split") or "test",
        difficulty=_difficulty(rec, where),
        model=_require(rec, "model", str, where),
        n=n,
        c=c,
        verdicts=_str_list(rec, "verdicts", where),
        tests=rec.get("tests") or [],
        failures=_failures(rec, n, where),
        extra={k: v for k, v in rec.items() if k not in known},
    )


def _failures(rec: dict[str, Any], n: int, where: tuple[str, int]) -> list[Any] | None:
    """The optional `failures` list: one entry per program, null or an object."""
    if rec.get("failures") is None:
        return None
    value = _require(rec, "failures", list, where)
    if len(value) != n:
        raise DataError(*where, "failures", f"{len(value)} entries for n={n} programs")
    for i, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            raise DataError(
                *where, f"failures[{i}]", f"expected object or null, got {type(item).__name__}"
            )
    return value


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
