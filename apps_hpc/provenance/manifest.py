"""`manifest.json`: what ran, where, and how fast; updated by many tasks at once.

No read-modify-write and no lock (Lustre's `flock` is node-local or an error unless the
site mounts with `-o flock`): each update is one small file of its own under
`manifest.d/` beside `manifest.json`, written through a unique temporary name and a
rename, and a reader merges them, in the order their names sort (time, host, process,
count), over `manifest.json` (which older experiments and hand-written fixtures hold).
Two tasks updating the same key: the later update wins, as with the lock before; tasks
updating different keys never lose one another's update."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.core.jsonl import open_regular

_COUNTER = itertools.count()


def updates_dir(path: Path) -> Path:
    """The folder of one-file updates for the manifest at `path` (`manifest.d/`)."""
    return path.with_name(path.stem + ".d")


def update_name() -> str:
    """A name that sorts by time and that no other process on any node produces."""
    host = socket.gethostname().replace("-", "_").replace(".", "_")[:40]
    unique = f"{os.getpid()}-{next(_COUNTER):08d}-{secrets.token_hex(4)}"
    return f"{time.time_ns():020d}-{host}-{unique}.json"


def apply_update(data: dict[str, Any], keys: list[str], value: Any) -> dict[str, Any]:
    """Set data[keys[0]][keys[1]]... = value (creating or replacing what lies between)."""
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        node[key] = child if isinstance(child, dict) else {}
        node = node[key]
    node[keys[-1]] = value
    return data


class ManifestError(AppsHpcError, ValueError):
    """A manifest file or update that is not JSON, or not a regular file: named, in one
    line (a ValueError too, as the callers that read manifests catch)."""


def _read_json(path: Path) -> Any:
    if not os.path.lexists(path):
        return None
    try:
        with open_regular(path, "JSON file") as fh:  # a FIFO here is refused, not waited on
            return json.loads(fh.read().decode("utf-8"))
    except AppsHpcError as exc:
        raise ManifestError(str(exc)) from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise ManifestError(f"{path}: not valid JSON ({exc}); delete or fix this file") from None
    except RecursionError:
        raise ManifestError(f"{path}: not valid JSON (nested too deeply)") from None


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest's content: `manifest.json` (if any) with every update applied;
    {} when there is nothing yet."""
    base = _read_json(path)
    data: dict[str, Any] = base if isinstance(base, dict) else {}
    folder = updates_dir(path)
    names = sorted(os.listdir(folder)) if folder.is_dir() else []
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            update = _read_json(folder / name)
            if isinstance(update, dict) and update.get("keys"):
                apply_update(data, [str(k) for k in update["keys"]], update.get("value"))
    return data


def manifest_exists(path: Path) -> bool:
    """Whether anything was ever recorded for the manifest at `path`."""
    folder = updates_dir(path)
    return path.is_file() or (folder.is_dir() and any(folder.iterdir()))


def update_manifest(path: Path, keys: list[str], value: Any) -> None:
    """Record manifest[keys[0]][keys[1]]... = value: one new file, never a rewrite."""
    if not keys:
        raise ValueError("update_manifest: no keys")
    record = {"keys": [str(k) for k in keys], "value": value}
    write_atomic(updates_dir(path) / update_name(), json.dumps(record) + "\n")
