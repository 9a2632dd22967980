"""The problem browser's data (pure): a small index decoded when the page loads, and the
details (statement, programs, verdicts, first failing tests) in chunks of problems that
the page decompresses only when one of their problems is opened.

Each blob is JSON, gzip-compressed (mtime 0: the same input gives the same bytes), then
base64; the page decodes it with the browser's `DecompressionStream`.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from apps_hpc.core.records import ProblemKey, problem_key
from apps_hpc.core.schema import ResultRecord, Verdict
from apps_hpc.report.experiment import ExperimentFiles
from apps_hpc.report.load import ModelResults, key_text
from apps_hpc.report.show import visible

VERDICTS = [v.value for v in Verdict]
CHUNK = 40  # problems per detail blob: ~0.3 MB of programs at the real size


def pack(obj: Any) -> str:
    raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def unpack(text: str) -> Any:
    return json.loads(gzip.decompress(base64.b64decode(text)).decode("utf-8"))


def problem_keys(models: list[ModelResults]) -> list[ProblemKey]:
    """Every problem of any model, in (split, id) order."""
    return sorted({key for m in models for key in m.keys})


def verdict_counts(rec: ResultRecord) -> list[int]:
    """How many programs got each verdict, in VERDICTS order (unknown verdicts ignored)."""
    return [rec.verdicts.count(v) for v in VERDICTS]


def _by_key(models: list[ModelResults]) -> list[dict[ProblemKey, ResultRecord]]:
    return [{problem_key(r): r for r in m.records} for m in models]


def index(models: list[ModelResults], keys: list[ProblemKey]) -> dict[str, Any]:
    """{"models", "verdicts", "chunk", "rows": [[key, difficulty, [[c, n, counts] | null]]]}."""
    tables = _by_key(models)
    rows = []
    for key in keys:
        recs = [t.get(key) for t in tables]
        difficulty = next(r.difficulty for r in recs if r is not None)
        cells = [None if r is None else [r.c, r.n, verdict_counts(r)] for r in recs]
        rows.append([key_text(key), difficulty, cells])
    return {"models": [m.name for m in models], "verdicts": VERDICTS, "chunk": CHUNK, "rows": rows}


def failures_of(rec: ResultRecord) -> list[Any] | None:
    """The per-program failure detail, or None for records written before it existed."""
    value = rec.failures  # a field of the record since issue 11 (checked when read)
    if value is None or len(value) != len(rec.verdicts):
        return None
    return [_visible_values(f) for f in value]


def _visible_values(failure: dict[str, Any] | None) -> dict[str, Any] | None:
    """A failure with its texts (a program's output among them) made visible."""
    if failure is None:
        return None
    return {k: visible(v) if isinstance(v, str) else v for k, v in failure.items()}


def detail(
    key: ProblemKey, models: list[ModelResults], tables: list[dict], files: ExperimentFiles
) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt": files.prompts.get(key), "models": {}}
    for model, table in zip(models, tables, strict=True):
        rec = table.get(key)
        if rec is None:
            continue
        codes = files.codes.get(model.name, {}).get(key)
        out["models"][model.name] = {
            "verdicts": rec.verdicts,
            "codes": [visible(c) for c in codes]
            if codes is not None and len(codes) == len(rec.verdicts)
            else None,
            "failures": failures_of(rec),
        }
    return out


def detail_chunks(
    models: list[ModelResults], keys: list[ProblemKey], files: ExperimentFiles
) -> list[str]:
    """Packed {key_text: detail} blobs of CHUNK problems each, in `keys` order."""
    tables = _by_key(models)
    blobs = []
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        blobs.append(pack({key_text(k): detail(k, models, tables, files) for k in part}))
    return blobs
