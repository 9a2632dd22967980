"""Cluster profiles (`configs/clusters/*.yaml`, found like every config: see
`config.find_config`): everything site-specific lives there.

A profile describes the site's nodes, not one job: a GPU node of `partition`
(`gpus_per_node`, `cpus_per_node`, `mem_per_node`) and, where the site has one, a CPU
partition (`cpu_partition`, with `cpu_node_cpus` / `cpu_node_mem`); each stage then asks
for its share (`launch/executor.stage_resources`).
"""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from apps_hpc.core.config import find_config, read_yaml
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.schema import PROFILE_REQUIRED, Profile, first_problem


def mem_text(mb: int) -> str:
    """Megabytes as SLURM memory, in G when it divides evenly."""
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


_PROFILE = TypeAdapter(Profile)


def load_profile(name: str) -> Profile:
    """Load and check a profile: a missing, unknown or bad field is one clear error."""
    path = find_config("clusters", name)
    data = read_yaml(path)
    bad = [k for k in ("name", "source") if k in data]
    if bad:
        raise AppsHpcError(f"{path}: unknown key '{bad[0]}'")
    try:
        return _PROFILE.validate_python({**data, "name": path.stem, "source": str(path)})
    except ValidationError as exc:
        key, problem = first_problem(exc, Profile)
        missing = [k for k in PROFILE_REQUIRED if k not in data]
        if missing and not problem.startswith("unknown key"):
            raise AppsHpcError(f"{path}: missing field(s) {', '.join(missing)}") from None
        said = problem if problem.startswith("unknown key") else f"{key}: {problem}"
        raise AppsHpcError(f"{path}: {said}") from None
