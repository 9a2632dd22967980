"""Provenance: a short hash of what produced a record or a stage's output.

A samples record carries the hash of its prompt, model and sampling settings; a results
record the hash of its programs, tests and limits. Resume reuses a record only when its
hash is the one the current inputs give, so a changed input is redone, never reused.
Stages whose output is one folder (prepare, train, report) keep a stamp file with the
hash and the config it came from, so a difference can be named key by key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from apps_hpc.core.files import write_atomic

FIELD = "provenance"  # the records' field
_MODEL_FILES = (".safetensors", ".bin", ".json", ".model", ".pt")


def digest(obj: Any) -> str:
    """A stable 16-hex-digit hash of a JSON-able object (dict key order ignored)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes (64 hex digits)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes, 16 hex digits (as `digest`)."""
    return file_sha256(path)[:16]


def files_fingerprint(path: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime) of a file, or of the files directly in a folder: cheap, and
    it changes when a file is rewritten (a retrained model, a re-fetched data set)."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists()]


def model_fingerprint(model: str) -> Any:
    """A local model folder by its weight and config files; a hub id by its name."""
    path = Path(model)
    if not path.is_dir():
        return model
    return [f for f in files_fingerprint(path) if f[0].endswith(_MODEL_FILES)]


def diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested mappings."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else [prefix.rstrip(".") or "<all>"]
    keys = []
    for key in sorted(set(old) | set(new), key=str):
        keys += diff_keys(old.get(key), new.get(key), f"{prefix}{key}.")
    return keys


def read_stamp(path: Path) -> dict[str, Any] | None:
    """A stage's stamp file (hash, config, finished), or None when absent or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_stamp(path: Path, config: dict[str, Any], finished: bool) -> None:
    """Write the stamp atomically: the config's hash, the config, finished or not."""
    data = {"hash": digest(config), "finished": finished, "config": config}
    write_atomic(path, json.dumps(data, indent=1, default=str) + "\n")


def stamp_matches(path: Path, config: dict[str, Any]) -> bool:
    """Is there a finished stamp for exactly this config?"""
    stamp = read_stamp(path)
    return bool(stamp and stamp.get("finished") and stamp.get("hash") == digest(config))
