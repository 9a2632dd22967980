"""JSON Lines: the one reader, the one line writer, and files that resume.

Every record is one JSON object on one line, one line per problem, and "\n" alone ends
a line. A writer appends a line and flushes it when a problem is finished; a reader that
finds a half-written last line of such a log (a killed run) drops it, says so, and the
problem is done again. Any other bad line is an error naming the file and line, or, where
a flag asks for it, a counted skip that the caller says.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from apps_hpc.core.errors import AppsHpcError, DataError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TornLine:
    """The last line of an append log that a killed writer left: not yielded, and where
    the complete lines before it end."""

    error: DataError
    offset: int


class _Refused(ValueError):
    """A line that json.loads would take but that is not one record: a key twice, or a
    NaN / Infinity literal (not JSON: other readers refuse them)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(key, "the key appears twice in one object (which value is meant?)")
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise _Refused("<row>", f"{name} is not JSON (write null, or a string)")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def loads_strict(text: str) -> Any:
    """json.loads, but a key twice in one object, NaN / Infinity, or nesting too deep for
    the parser is a ValueError (an _Refused naming the key when there is one)."""
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _decoded(path: Path, lineno: int, raw: bytes) -> Any:
    try:  # a UTF-8 byte order mark (Windows tools write one) is no part of the first line
        return loads_strict(raw.decode("utf-8-sig" if lineno == 1 else "utf-8"))
    except _Refused as exc:
        return DataError(path, lineno, exc.field, str(exc))
    except ValueError as exc:  # UnicodeDecodeError included
        return DataError(path, lineno, "<row>", f"invalid JSON ({exc})")


def check_regular(path: Path, what: str) -> None:
    """Refuse, in one line, a `what` path that is not a regular file: missing, a folder,
    a FIFO or device (reading one would block or never end), a symlink loop."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AppsHpcError(f"{path}: no such {what}") from None
    except OSError as exc:  # a symlink loop, a component that is not a folder
        raise AppsHpcError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise AppsHpcError(f"{path}: is a folder, not a {what}")
    if not stat.S_ISREG(mode):
        raise AppsHpcError(f"{path}: not a regular file (a FIFO, socket or device), not a {what}")


def open_regular(path: Path, what: str = "JSON Lines file") -> IO[bytes]:
    """`path` opened for reading in binary, refused unless it is a regular file. The
    check is made on the open file (O_NONBLOCK: opening a FIFO does not wait for a
    writer), so a path swapped between a check and the open is caught too."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise AppsHpcError(f"{path}: cannot read it: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, socket or device)"
        raise AppsHpcError(f"{path}: {kind}, not a {what}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def iter_jsonl(
    path: Path,
    on_bad: Callable[[DataError], None] | None = None,
    on_torn: Callable[[TornLine], None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """(line number, object) for each non-empty line of `path`, split at "\n" alone: the
    one reader of JSON Lines, with one policy for a bad line.

    A line that is not JSON (or not UTF-8) raises DataError naming the file and line,
    unless `on_bad` is given (a flag such as --skip-bad-rows asked for it): then it is
    handed to `on_bad`, which counts and says it, and left out. With `on_torn` the file
    is an append log: its last line, when it lacks its "\n" or is not JSON, is the trace
    of a killed writer, handed to `on_torn` instead (a bad line before others is still
    damage)."""
    pending: TornLine | None = None
    offset = 0
    with open_regular(path) as fh:  # binary: b"\n" alone ends a line
        for lineno, raw in enumerate(fh, 1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            if pending is not None:
                _bad(pending.error, on_bad)
                pending = None
            value = _decoded(path, lineno, raw)
            torn = on_torn is not None and not raw.endswith(b"\n")
            if torn and not isinstance(value, DataError):
                value = DataError(path, lineno, "<row>", "no end of line (a torn last line)")
            if isinstance(value, DataError):
                if on_torn is None:
                    _bad(value, on_bad)
                else:
                    pending = TornLine(value, start)
                continue
            yield lineno, value
    if pending is not None and on_torn is not None:
        on_torn(pending)


def _bad(error: DataError, on_bad: Callable[[DataError], None] | None) -> None:
    if on_bad is None:
        raise error
    on_bad(error)


def complete_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of `path` (none when it is absent), read as an append log that a
    writer may still hold: a torn last line is not done yet; a bad line before others is
    a DataError. Read-only: for checks, not for resuming."""
    if not path.exists():
        return []
    return [rec for _, rec in iter_jsonl(path, on_torn=lambda torn: None) if isinstance(rec, dict)]


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
        if not os.path.lexists(self.path):
            return
        check_regular(self.path, "JSON Lines file")
        torn: list[TornLine] = []
        self.records = list(iter_jsonl(self.path, on_torn=torn.append))
        if torn:
            with self.path.open("r+b") as fh:
                fh.truncate(torn[0].offset)
            self.repaired = True
            log.warning("%s; cut off, that problem is redone", torn[0].error)

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(dump_line(record))
            fh.flush()
            os.fsync(fh.fileno())
