"""`<experiment>/experiment.yaml`: the experiment's resolved config, and the check that a
stage is not started with another one.

The first stage started for an experiment writes it. A later start whose config differs
from it in a key that changes results stops with one line naming the keys, unless
`--force` (then experiment.yaml is rewritten and the change is recorded in
manifest.json under `forced`) — or the run gets a new experiment name. Stages then redo
exactly what the change touches: every record and stage output carries its provenance.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from apps_hpc.core.config import Experiment
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.core.schema import NOT_KEYS
from apps_hpc.provenance.manifest import update_manifest
from apps_hpc.provenance.stamps import diff_keys

FILE = "experiment.yaml"
# Keys that name the folder or spread the work, and change no result.
NO_RESULT_KEYS = ("name", "root", "sample.gpus_per_model")


def resolved(exp: Experiment) -> dict[str, Any]:
    """The experiment as plain data (what experiment.yaml holds)."""
    data = dataclasses.asdict(exp)
    return {k: v for k, v in data.items() if k not in NOT_KEYS}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The keys that differ and change results (pure)."""
    return [k for k in diff_keys(old, new) if k not in NO_RESULT_KEYS]


def with_defaults(defaults: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """`data` with every key it lacks taken from `defaults`, section by section (pure)."""
    out = dict(data)
    for key, default in defaults.items():
        if key not in out:
            out[key] = default
        elif isinstance(default, dict) and isinstance(out[key], dict):
            out[key] = with_defaults(default, out[key])
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AppsHpcError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise AppsHpcError(f"{path}: expected a mapping (the resolved experiment config)")
    return data


def _write(exp: Experiment, path: Path) -> None:
    header = f"# resolved from {exp.source or 'defaults'} by apps-hpc; do not edit\n"
    write_atomic(path, header + yaml.safe_dump(resolved(exp), sort_keys=False))


def _describe(old: dict[str, Any], new: dict[str, Any], keys: list[str]) -> str:
    def value(data: dict[str, Any], key: str) -> Any:
        for part in key.split("."):
            data = data.get(part) if isinstance(data, dict) else None  # type: ignore[assignment]
        return data

    shown = [f"{k} ({value(old, k)!r} -> {value(new, k)!r})" for k in keys[:4]]
    more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
    return ", ".join(shown) + more


def check_resolved(exp: Experiment, force: bool = False, write: bool = True) -> Path:
    """Write experiment.yaml when absent (unless `write` is False: compare only); else
    stop when this config differs from it in a key that changes results (unless `force`:
    rewrite it and record that)."""
    path = exp.dir / FILE
    new = resolved(exp)
    if not path.exists():
        if write:
            _write(exp, path)
        return path
    # a key that experiment.yaml lacks (written by an earlier apps-hpc, before the key
    # existed) counts as its default: a new key's default keeps what the earlier one did
    old = with_defaults(resolved(Experiment()), _read(path))
    keys = differences(old, new)
    if not keys:
        return path
    if not force:
        raise AppsHpcError(
            f"{path}: this config differs in {_describe(old, new, keys)}; pass --force to "
            "redo what that changes, or --set name=NEW for a new experiment"
        )
    _write(exp, path)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    update_manifest(
        exp.dir / "manifest.json",
        ["forced", stamp],
        {"keys": keys, "was": {k: _describe(old, new, [k]) for k in keys}},
    )
    return path
