"""A submitit executor for one stage on one profile, and the sbatch text it would use."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.schema import Profile, mem_mb
from apps_hpc.experiment.registry import get
from apps_hpc.launch import slurm
from apps_hpc.launch.profiles import mem_text


@dataclass(frozen=True)
class Resources:
    """What one task of a stage asks for."""

    nodes: int = 1
    gpus: int = 0  # per node (one task per node)
    cpus: int = 1
    mem: str | None = None
    minutes: int = 60
    partition: str | None = None
    cpu_side: bool = False  # on the CPU partition: the profile's `additional` stays off


def _share(mem: str | None, part: int, whole: int) -> str | None:
    """`part`/`whole` of a node's memory."""
    return None if mem is None else mem_text(mem_mb(mem) * part // whole)


def _cpu_node(profile: Profile) -> tuple[int, str | None, str | None, bool]:
    """(CPUs, memory, partition, on the CPU partition) of the node a CPU stage runs on."""
    if profile.cpu_partition:
        cpus = profile.cpu_node_cpus or profile.cpus_per_node
        return cpus, profile.cpu_node_mem or profile.mem_per_node, profile.cpu_partition, True
    return profile.cpus_per_node, profile.mem_per_node, profile.partition, False


def _small(profile: Profile) -> Resources:
    cpus, mem, partition, cpu_side = _cpu_node(profile)
    if mem is not None:
        mem = mem_text(min(mem_mb(mem), mem_mb(profile.small_mem)))
    small = min(profile.small_cpus, cpus)
    return Resources(1, 0, small, mem, profile.time, partition, cpu_side)


def stage_resources(stage: str, profile: Profile, gpus_per_model: int = 1) -> Resources:
    """A stage's share of the profile's nodes (pure), by its registry kind: training
    (`nodes`) takes every GPU, CPU and byte of its nodes; a sampling shard (`replica`)
    its GPUs' fraction of one node's CPUs and memory; evaluation (`cpu`) a whole CPU node
    and no GPU (on the CPU partition when there is one); prepare, the merges and the
    report (`small`) a little."""
    p = profile
    kind = get(stage).resources
    if kind == "nodes":
        return Resources(
            p.nodes, p.gpus_per_node, p.cpus_per_node, p.mem_per_node, p.time, p.partition
        )
    if kind == "replica" and p.gpus_per_node > 0:
        gpus = min(gpus_per_model, p.gpus_per_node)
        cpus = max(1, p.cpus_per_node * gpus // p.gpus_per_node)
        mem = _share(p.mem_per_node, gpus, p.gpus_per_node)
        return Resources(1, gpus, cpus, mem, p.time, p.partition)
    if kind == "replica":  # a CPU-only site samples on a whole node
        return Resources(1, 0, p.cpus_per_node, p.mem_per_node, p.time, p.partition)
    if kind == "cpu":
        cpus, mem, partition, cpu_side = _cpu_node(p)
        return Resources(1, 0, cpus, mem, p.time, partition, cpu_side)
    return _small(p)


def container_python(profile: Profile, folders: list[Path]) -> str | None:
    """`apptainer exec --nv --bind ... IMAGE python3` when the profile names an image;
    `folders` (the experiment, its hub folder) are bound, then the profile's binds."""
    if not profile.image:
        return None
    binds = ",".join([*(str(f.absolute()) for f in folders), *profile.binds])
    return f"apptainer exec --nv --bind {shlex.quote(binds)} {shlex.quote(profile.image)} python3"


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
    if res.cpu_side:
        params["additional_parameters"] = {}
    if res.partition:
        params["partition"] = res.partition
    for key in ("account", "qos"):
        if getattr(profile, key):
            params[key] = getattr(profile, key)
    if res.mem:
        params["mem"] = res.mem
    if res.gpus:
        params["gres"] = f"gpu:{res.gpus}"
    if profile.array_parallelism:
        params["array_parallelism"] = profile.array_parallelism
    if dependency:
        params["dependency"] = dependency
        params["additional_parameters"]["kill-on-invalid-dep"] = "yes"
    return params


def make_executor(
    profile: Profile,
    folder: Path,
    binds: list[Path],
    res: Resources,
    name: str,
    dependency: str | None = None,
) -> submitit.Executor:
    python = container_python(profile, binds)
    if profile.executor == "local":
        local = submitit.LocalExecutor(folder=folder, python=python)
        local.update_parameters(timeout_min=res.minutes, gpus_per_node=res.gpus, tasks_per_node=1)
        return local
    try:
        slurm = submitit.SlurmExecutor(folder=folder, python=python, max_num_timeout=3)
    except RuntimeError:  # submitit: 'Could not detect "srun", are you indeed on a slurm...'
        raise AppsHpcError(
            f"cluster profile {profile.name!r} is a SLURM one, but no `srun` is on PATH here "
            "(run on the cluster's login node, or use --cluster local)"
        ) from None
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
