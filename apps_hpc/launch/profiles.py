"""Cluster profiles (`configs/clusters/*.yaml`, found like every config: see
`config.find_config`): everything site-specific lives there."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import yaml

from apps_hpc.config import find_config
from apps_hpc.errors import AppsHpcError

REQUIRED = ("executor", "cpus_per_task", "gpus_per_node", "mem", "time")


@dataclass(frozen=True)
class Profile:
    name: str
    executor: str  # slurm | local
    cpus_per_task: int
    gpus_per_node: int
    mem: str | None
    time: int  # minutes
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    image: str | None = None
    binds: list[str] = field(default_factory=list)
    additional: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def load_profile(name: str) -> Profile:
    """Load and check a profile: a missing or unknown field is one clear error."""
    path = find_config("clusters", name)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise AppsHpcError(f"{path}: expected a mapping")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise AppsHpcError(f"{path}: missing field(s) {', '.join(missing)}")
    known = {f.name for f in dataclasses.fields(Profile)} - {"name", "source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AppsHpcError(f"{path}: unknown field(s) {', '.join(unknown)}")
    if data["executor"] not in ("slurm", "local"):
        raise AppsHpcError(f"{path}: executor must be slurm or local, not {data['executor']!r}")
    data["binds"] = list(data.get("binds") or [])
    data["additional"] = dict(data.get("additional") or {})
    return Profile(name=path.stem, source=str(path), **data)
