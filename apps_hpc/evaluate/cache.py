"""The verdict cache: a distinct program is executed once per experiment.

A program's result is decided by its text, its problem's tests, the limits, whether every
test runs, the isolation in force (the filter and the tree limits' mode: stage._key), the
comparison semantics and the evaluator itself; `program_key` hashes exactly those.
Within one run identical programs of a problem already run once (`stage._jobs`); the
cache carries results across runs: a re-evaluation, the base and the fine-tuned model's
files (which share many programs), a second seed.

Many eval tasks write one cache at once, on shared storage where SQLite and `flock` are
unsafe (Lustre): each writer appends to a file of its own (`<host>-<pid>-<random>.jsonl`,
one JSON line per result, flushed line by line), and a reader merges every file. A torn
last line (a task killed mid-write) is skipped. When two lines hold the same key, a
re-check (`--recheck`) wins over a first run, then the later file.

Not cached: timeouts that the wall clock decided rather than CPU time (they depend on the
machine's load, so they are executed again next time).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import IO, Any

from apps_hpc import __version__
from apps_hpc.core.errors import DataError
from apps_hpc.core.jsonl import iter_jsonl
from apps_hpc.core.limits import Limits
from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate.pool import ProgramResult

log = logging.getLogger(__name__)

# Bump when a change to the comparison rules, the harness or the sandbox may change a
# verdict: every cached verdict is then executed again.
SEMANTICS_VERSION = 1


def program_key(code: str, tests: Any, limits: Limits, settings: dict[str, Any]) -> str:
    """The sha256 of everything that decides one program's result (pure): `settings` are
    the evaluator's options that change a result (every test or the first failure,
    timeouts re-checked or not)."""
    what = {
        "code": code,
        "tests": tests,
        "limits": dataclasses.asdict(limits),
        "settings": settings,
        "semantics": SEMANTICS_VERSION,
        "evaluator": __version__,
    }
    text = json.dumps(what, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def encode(key: str, result: ProgramResult, rechecked: bool = False) -> str:
    """One cache line (ASCII JSON: no character a reader could take for a line break)."""
    data = dataclasses.asdict(result)
    data["verdict"] = result.verdict.value
    return json.dumps({"key": key, "rechecked": rechecked, "result": data}) + "\n"


def decode(rec: Any) -> tuple[str, bool, ProgramResult]:
    data = dict(rec["result"])
    data["verdict"] = Verdict(data["verdict"])
    return rec["key"], bool(rec.get("rechecked")), ProgramResult(**data)


def cacheable(result: ProgramResult) -> bool:
    """Everything but a timeout the wall clock decided (machine load, not the program)."""
    return not result.wall_decided


class VerdictCache:
    """The cache folder's results, merged on open; `put` appends to this writer's file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.entries: dict[str, ProgramResult] = {}
        self._rechecked: set[str] = set()
        self._out: IO[str] | None = None
        self.hits = 0
        self.not_stored = 0  # wall-clock timeouts: executed again next time
        self._load()

    def _load(self) -> None:
        if not self.folder.is_dir():
            return
        found = list(self.folder.glob("*.jsonl"))
        odd = [p for p in found if not p.is_file()]  # a folder, FIFO or dangling link
        if odd:
            log.warning("%s: %d entries that are not regular files left out", self.folder, len(odd))
        files = sorted((p for p in found if p.is_file()), key=lambda p: (p.stat().st_mtime, p.name))
        for path in files:
            self._load_file(path)

    def _load_file(self, path: Path) -> None:
        bad: list[DataError] = []
        for number, rec in iter_jsonl(path, bad.append, lambda torn: bad.append(torn.error)):
            try:
                key, rechecked, result = decode(rec)
            except (ValueError, KeyError, TypeError) as exc:
                bad.append(DataError(path, number, "result", f"not a cached result ({exc!r})"))
                continue
            if rechecked or key not in self._rechecked:
                self.entries[key] = result
            if rechecked:
                self._rechecked.add(key)
        if bad:  # a cache: what it cannot read is worked out again
            log.warning("%s: %d unreadable lines left out, first %s", path, len(bad), bad[0])

    def get(self, key: str) -> ProgramResult | None:
        result = self.entries.get(key)
        self.hits += result is not None
        return result

    def put(self, key: str, result: ProgramResult, rechecked: bool = False) -> None:
        if not cacheable(result):
            self.not_stored += 1
            return
        self.entries[key] = result
        if self._out is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            self._out = (self.folder / name).open("a", encoding="utf-8", buffering=1)
        self._out.write(encode(key, result, rechecked))

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
