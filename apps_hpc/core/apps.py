"""APPS problems in the codeparrot row schema, from `.jsonl`, a folder of them, or parquet.

A row has `problem_id`, `question`, `solutions` (JSON string of a list), `input_output`
(JSON string with `inputs`, `outputs` and, for call-based problems, `fn_name`),
`difficulty`, `url` and `starter_code`. Rows carry no split: it comes from the file name
(`train.jsonl`, `test-sample.jsonl`, ...) or from the caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps_hpc.core.errors import AppsHpcError, DataError
from apps_hpc.core.jsonl import check_regular, iter_jsonl

DIFFICULTIES = ("introductory", "interview", "competition")
SPLITS = ("train", "test")
# The published run's test problems with solutions, by difficulty (DESIGN.md).
PUBLISHED_COUNTS = {"introductory": 728, "interview": 2727, "competition": 310}


@dataclass(frozen=True)
class Problem:
    """One APPS problem. `fn_name` is None for standard-input problems."""

    problem_id: int
    split: str
    difficulty: str
    question: str
    starter_code: str
    fn_name: str | None
    inputs: list[Any]
    outputs: list[Any]
    solutions: list[str] = field(default_factory=list)
    url: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.split, self.problem_id)

    @property
    def call_based(self) -> bool:
        # The reference harness decides by `in_outs.get("fn_name") is None`.
        return self.fn_name is not None

    @property
    def has_tests(self) -> bool:
        return len(self.inputs) > 0


@dataclass
class LoadReport:
    """What a load skipped when the user asked to skip bad rows."""

    skipped: list[str] = field(default_factory=list)
    skipped_keys: set[tuple[str, int]] = field(default_factory=set)  # (split, id) when known

    def skipped_line(self, error: DataError) -> None:
        """A line that is not JSON, counted with the bad rows."""
        self.skipped.append(str(error))


def _parse_json_field(row: dict[str, Any], name: str, where: tuple[str, int]) -> Any:
    text = row.get(name, "")
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise DataError(*where, name, f"expected a JSON string, got {type(text).__name__}")
    try:  # json.loads as the reference harness (NaN and a key twice are taken)
        return json.loads(text)
    except ValueError as exc:
        raise DataError(*where, name, f"invalid JSON ({exc})") from None
    except RecursionError:
        raise DataError(*where, name, "invalid JSON (nested too deeply)") from None


def _tests_of(row: dict[str, Any], where: tuple[str, int]) -> tuple[str | None, list, list]:
    io = _parse_json_field(row, "input_output", where)
    if io is None:
        return None, [], []
    if not isinstance(io, dict):
        raise DataError(*where, "input_output", "expected a JSON object")
    inputs, outputs = io.get("inputs", []), io.get("outputs", [])
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise DataError(*where, "input_output", "'inputs' and 'outputs' must be lists")
    if len(inputs) != len(outputs):
        raise DataError(*where, "input_output", f"{len(inputs)} inputs but {len(outputs)} outputs")
    fn_name = io.get("fn_name")
    if fn_name is not None and not isinstance(fn_name, str):
        raise DataError(*where, "input_output", f"'fn_name' must be a string, got {fn_name!r}")
    return fn_name, inputs, outputs


def _solutions_of(row: dict[str, Any], where: tuple[str, int]) -> list[str]:
    sols = _parse_json_field(row, "solutions", where)
    if sols is None:
        return []
    if not isinstance(sols, list) or not all(isinstance(s, str) for s in sols):
        raise DataError(*where, "solutions", "expected a JSON list of strings")
    return sols


def _problem_id_of(row: dict[str, Any], where: tuple[str, int]) -> int:
    pid = row.get("problem_id")
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise DataError(*where, "problem_id", f"expected an integer, got {pid!r}")
    return pid


_TEXTS = ("question", "starter_code", "url")  # strings; null or absent is ""


def parse_row(row: Any, split: str, where: tuple[str, int]) -> Problem:
    """One codeparrot row -> Problem; DataError names file, line and field on bad input."""
    if not isinstance(row, dict):
        raise DataError(*where, "<row>", "expected a JSON object")
    for name in _TEXTS:
        if row.get(name) is not None and not isinstance(row[name], str):
            raise DataError(*where, name, f"expected a string, got {type(row[name]).__name__}")
    difficulty = row.get("difficulty")
    if difficulty not in DIFFICULTIES:
        raise DataError(
            *where, "difficulty", f"unknown difficulty {difficulty!r} (one of {DIFFICULTIES})"
        )
    fn_name, inputs, outputs = _tests_of(row, where)
    return Problem(
        problem_id=_problem_id_of(row, where),
        split=split,
        difficulty=difficulty,
        question=str(row.get("question") or ""),
        starter_code=str(row.get("starter_code") or ""),
        fn_name=fn_name,
        inputs=inputs,
        outputs=outputs,
        solutions=_solutions_of(row, where),
        url=str(row.get("url") or ""),
    )


def split_from_name(path: Path, default: str | None = None) -> str:
    """`train.jsonl` -> train, `test-sample.jsonl` -> test; else `default`."""
    name = path.name.lower()
    for split in SPLITS:
        if name.startswith(split) or f"{split}." in name or f"-{split}" in name:
            return split
    if default is None:
        raise AppsHpcError(
            f"{path}: cannot tell the split from the file name; pass --split train|test"
        )
    return default


def _jsonl_rows(path: Path, skip_bad: bool, report: LoadReport | None) -> Iterator[tuple[int, Any]]:
    if not skip_bad:
        return iter_jsonl(path)
    return iter_jsonl(path, on_bad=(report or LoadReport()).skipped_line)


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise AppsHpcError(
            f"{path}: reading parquet needs pyarrow (pip install 'apps-hpc[parquet]')"
        ) from None
    import pyarrow as pa

    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as exc:  # not parquet, truncated, unreadable
        raise AppsHpcError(f"{path}: not a readable parquet file ({exc})") from None
    yield from enumerate(rows, 1)


def _files_in(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        check_regular(path, "file or folder of APPS rows")  # says why: missing, a FIFO, a loop
    files = sorted(
        p
        for p in path.iterdir()
        if p.suffix in (".jsonl", ".parquet") and p.name.startswith(SPLITS)
    )
    if not files:
        raise AppsHpcError(f"{path}: no train*/test* .jsonl or .parquet files in this folder")
    return files


def iter_problems(
    path: str | Path,
    split: str | None = None,
    skip_bad: bool = False,
    report: LoadReport | None = None,
) -> Iterator[Problem]:
    """Yield the problems of a file or folder. A bad row raises DataError unless `skip_bad`."""
    for file in _files_in(Path(path)):
        file_split = split or split_from_name(file, default=None if file.is_file() else "test")
        if file.suffix == ".parquet":
            rows = _parquet_rows(file)
        else:
            rows = _jsonl_rows(file, skip_bad, report)
        yield from _parse_rows(file, rows, file_split, skip_bad, report)


def _parse_rows(
    file: Path,
    rows: Iterable[tuple[int, Any]],
    split: str,
    skip_bad: bool,
    report: LoadReport | None,
) -> Iterator[Problem]:
    for lineno, row in rows:
        try:
            yield parse_row(row, split, (str(file), lineno))
        except DataError as exc:
            if not skip_bad:
                raise
            if report is not None:
                report.skipped.append(str(exc))
                pid = row.get("problem_id") if isinstance(row, dict) else None
                if isinstance(pid, int) and not isinstance(pid, bool):
                    report.skipped_keys.add((split, pid))


def load_problems(
    path: str | Path, split: str | None = None, skip_bad: bool = False
) -> tuple[dict[tuple[str, int], Problem], LoadReport]:
    """All problems of `path` keyed by (split, problem_id); duplicates are an error."""
    report = LoadReport()
    problems: dict[tuple[str, int], Problem] = {}
    for problem in iter_problems(path, split, skip_bad, report):
        if problem.key in problems:
            raise AppsHpcError(f"{path}: problem {problem.split}/{problem.problem_id} twice")
        problems[problem.key] = problem
    return problems, report
