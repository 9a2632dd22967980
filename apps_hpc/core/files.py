"""Writing files so that a kill or Ctrl-C never leaves a torn one behind."""

from __future__ import annotations

from pathlib import Path


def write_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` through `<path>.tmp` and a rename: readers see the old file
    or the new one, never half of one; an interruption removes the `.tmp`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
