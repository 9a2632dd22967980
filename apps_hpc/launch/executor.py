"""A submitit executor for one stage on one profile, and the sbatch text it would use."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from apps_hpc.errors import AppsHpcError
from apps_hpc.launch import slurm
from apps_hpc.launch.profiles import Profile
from apps_hpc.stages import get


@dataclass(frozen=True)
class Resources:
    """What one task of a stage asks for."""

    nodes: int = 1
    gpus: int = 0  # per node (one task per node)
    cpus: int = 1
    mem: str | None = None
    minutes: int = 60


def stage_resources(stage: str, profile: Profile, gpus_per_model: int = 1) -> Resources:
    """What the registry says a stage needs, on this profile: every node and GPU
    (`nodes`), one replica's GPUs per shard (`replica`), or the profile's CPUs and no GPU."""
    base = Resources(cpus=profile.cpus_per_task, mem=profile.mem, minutes=profile.time)
    kind = get(stage).resources
    if kind == "nodes":
        return Resources(profile.nodes, profile.gpus_per_node, base.cpus, base.mem, base.minutes)
    if kind == "replica" and profile.gpus_per_node > 0:
        gpus = min(gpus_per_model, profile.gpus_per_node)
        return Resources(1, gpus, base.cpus, base.mem, base.minutes)
    return base


def container_python(profile: Profile, root: Path) -> str | None:
    """`apptainer exec --nv --bind ... IMAGE python3` when the profile names an image."""
    if not profile.image:
        return None
    binds = ",".join([str(root.resolve()), *profile.binds])
    return f"apptainer exec --nv --bind {shlex.quote(binds)} {shlex.quote(profile.image)} python3"


def check_submittable(profile: Profile) -> None:
    """One clear error, before anything is submitted, when the cluster can't take jobs."""
    if profile.image and not Path(profile.image).exists():
        raise AppsHpcError(f"{profile.source}: image {profile.image} does not exist")
    if profile.executor != "slurm":
        return
    if not slurm.has_sbatch():
        raise AppsHpcError(f"cluster profile {profile.name!r}: sbatch not found on this machine")
    up, said = slurm.ping()
    if not up:
        raise AppsHpcError(f"SLURM controller unreachable: {said}")


def slurm_parameters(
    profile: Profile, res: Resources, name: str, dependency: str | None
) -> dict[str, Any]:
    """The SlurmExecutor parameters (pure)."""
    params: dict[str, Any] = {
        "job_name": name,
        "nodes": res.nodes,
        "ntasks_per_node": 1,
        "cpus_per_task": res.cpus,
        "time": res.minutes,
        "signal_delay_s": min(90, max(10, res.minutes * 60 // 10)),
        "additional_parameters": dict(profile.additional),
    }
    for key in ("partition", "account", "qos"):
        if getattr(profile, key):
            params[key] = getattr(profile, key)
    if res.mem:
        params["mem"] = res.mem
    if res.gpus:
        params["gres"] = f"gpu:{res.gpus}"
    if dependency:
        params["dependency"] = dependency
        params["additional_parameters"]["kill-on-invalid-dep"] = "yes"
    return params


def make_executor(
    profile: Profile,
    folder: Path,
    root: Path,
    res: Resources,
    name: str,
    dependency: str | None = None,
) -> submitit.Executor:
    python = container_python(profile, root)
    if profile.executor == "local":
        local = submitit.LocalExecutor(folder=folder, python=python)
        local.update_parameters(timeout_min=res.minutes, gpus_per_node=res.gpus, tasks_per_node=1)
        return local
    slurm = submitit.SlurmExecutor(folder=folder, python=python, max_num_timeout=3)
    slurm.update_parameters(**slurm_parameters(profile, res, name, dependency))
    return slurm


def dry_run_text(executor: submitit.Executor, array: int | None) -> str:
    """The sbatch script (SLURM) or the parameters (local) a submission would use."""
    if isinstance(executor, submitit.SlurmExecutor):
        return slurm.sbatch_text(executor, array)
    return (
        json.dumps(
            {"executor": "local", "array": array, **executor.parameters},
            indent=1,
            sort_keys=True,
            default=str,
        )
        + "\n"
    )
