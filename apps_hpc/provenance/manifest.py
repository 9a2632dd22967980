"""`manifest.json`: what ran, where, and how fast; updated by many processes at once."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

from apps_hpc.core.files import write_atomic


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest's content; {} when there is none yet (or it is not a JSON object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def update_manifest(path: Path, keys: list[str], value: Any) -> None:
    """Set manifest[keys[0]][keys[1]]... = value, under an exclusive lock, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {}
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        write_atomic(path, json.dumps(data, indent=1) + "\n")
