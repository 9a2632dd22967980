"""Writing files that many tasks may write at once, and that a kill never leaves torn.

The only thing asked of the filesystem is an atomic rename within one folder (POSIX
`rename`, which Lustre, GPFS and NFS give): no locks, no `O_APPEND` across nodes."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def temp_name(path: Path) -> Path:
    """A name in `path`'s folder that no other writer, on any node, picks:
    `.<name>.<pid>.<random>.tmp` (hidden, so globs such as `*.json` never see it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")


def write_atomic(path: Path, text: str | bytes, *, durable: bool = True) -> Path:
    """Write `text` (or bytes) to `path` through a unique temporary file and `os.replace`: readers
    see the old file or the new one, never half of one; concurrent writers never share a
    temporary file, so the last rename wins and none fails. With `durable`, the data is
    fsync'ed before the rename, so a crash cannot leave an empty file under the name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        binary = isinstance(text, bytes)
        with open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
