"""Cluster profiles (`configs/clusters/*.yaml`, found like every config: see
`config.find_config`): everything site-specific lives there.

A profile describes the site's nodes, not one job: a GPU node of `partition`
(`gpus_per_node`, `cpus_per_node`, `mem_per_node`) and, where the site has one, a CPU
partition (`cpu_partition`, with `cpu_node_cpus` / `cpu_node_mem`); each stage then asks
for its share (`launch/executor.stage_resources`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from apps_hpc.core.config import find_config
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.typed import field_types, slurm_minutes, type_error

REQUIRED = ("executor", "gpus_per_node", "cpus_per_node", "mem_per_node", "time")
RENAMED = {"cpus_per_task": "cpus_per_node", "mem": "mem_per_node"}  # the old names
_MEM = re.compile(r"(\d+)\s*([KMGT]?)B?", re.IGNORECASE)
_MB_PER_UNIT = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


@dataclass(frozen=True)
class Profile:
    name: str
    executor: str  # slurm | local
    gpus_per_node: int  # GPUs of one node of `partition`; 0 = CPU only
    cpus_per_node: int
    mem_per_node: str | None  # SLURM syntax (480G); None: leave memory to the cluster
    time: int  # minutes per job
    gpu_mem: str | None = None  # memory of one GPU (40G); None: unknown, no memory verdict
    partition: str | None = None  # GPU stages (train, sample); null: the default
    cpu_partition: str | None = None  # eval, prepare, merges, report; null: `partition`
    cpu_node_cpus: int | None = None  # one node of cpu_partition (default: cpus_per_node)
    cpu_node_mem: str | None = None  # (default: mem_per_node)
    small_cpus: int = 2  # what prepare, the merges and report ask for (at most a node)
    small_mem: str = "16G"
    account: str | None = None
    qos: str | None = None
    nodes: int = 1  # training nodes (one task per node)
    image: str | None = None
    binds: list[str] = field(default_factory=list)
    additional: dict[str, Any] = field(default_factory=dict)  # jobs on `partition` only
    source: str = ""


def mem_mb(text: str) -> int:
    """SLURM memory (`480G`, `2048`, `512M`) in megabytes."""
    match = _MEM.fullmatch(str(text).strip())
    if not match:
        raise AppsHpcError(f"memory {text!r}: expected a number with K, M, G or T")
    return int(int(match.group(1)) * _MB_PER_UNIT[match.group(2).upper()])


def mem_text(mb: int) -> str:
    """Megabytes as SLURM memory, in G when it divides evenly."""
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


def _renamed(data: dict[str, Any]) -> dict[str, Any]:
    for old, new in RENAMED.items():
        if old in data:
            data.setdefault(new, data.pop(old))
    return data


def load_profile(name: str) -> Profile:
    """Load and check a profile: a missing or unknown field is one clear error."""
    path = find_config("clusters", name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise AppsHpcError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise AppsHpcError(f"{path}: expected a mapping")
    data = _renamed(data)
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise AppsHpcError(f"{path}: missing field(s) {', '.join(missing)}")
    known = {f.name for f in dataclasses.fields(Profile)} - {"name", "source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AppsHpcError(f"{path}: unknown field(s) {', '.join(unknown)}")
    if data["executor"] not in ("slurm", "local"):
        raise AppsHpcError(f"{path}: executor must be slurm or local, not {data['executor']!r}")
    for key in ("mem_per_node", "cpu_node_mem", "small_mem", "gpu_mem"):
        if isinstance(data.get(key), int) and not isinstance(data[key], bool):
            data[key] = str(data[key])  # a bare number is megabytes, as in SLURM
        if data.get(key) is not None:
            try:
                mem_mb(data[key])
            except AppsHpcError as exc:
                raise AppsHpcError(f"{path}: {key}: {exc}") from None
    data["binds"] = list(data.get("binds") or [])
    data["additional"] = dict(data.get("additional") or {})
    return Profile(name=path.stem, source=str(path), **typed_fields(path, data))


def typed_fields(path: object, data: dict[str, Any]) -> dict[str, Any]:
    """The profile's values checked against Profile's declared types; `time` may be
    minutes or SLURM's MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    out = dict(data)
    try:
        out["time"] = slurm_minutes(data["time"])
    except ValueError as exc:
        raise AppsHpcError(f"{path}: time: {exc}") from None
    types = field_types(Profile)
    for key, value in out.items():
        if (problem := type_error(value, types[key])) is not None:
            raise AppsHpcError(f"{path}: {key}: {problem}")
    return out
