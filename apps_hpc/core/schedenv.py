"""What a stage needs from the scheduler, read from the environment (SLURM or none)."""

from __future__ import annotations

import os


def cpus_granted() -> int:
    """CPUs this task may use: SLURM's grant, else this process's CPU affinity."""
    for var in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: `gpu[03-05,9],cpu1` -> `gpu03`."""
    head = nodelist.split(",", 1)[0] if "[" not in nodelist.split(",", 1)[0] else nodelist
    if "[" not in head:
        return head.strip()
    prefix, rest = head.split("[", 1)
    first = rest.split("]", 1)[0].split(",", 1)[0].split("-", 1)[0]
    return prefix + first


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rendezvous(environ: dict[str, str] | None = None) -> dict[str, str]:
    """NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT for torchrun: kept when already set
    (submitit exports them), else from SLURM's job (one task per node), else local."""
    env = dict(os.environ if environ is None else environ)
    if "SLURM_JOB_ID" in env and "SLURM_JOB_NODELIST" in env:
        found = {
            "NNODES": env.get("SLURM_NNODES", env.get("SLURM_JOB_NUM_NODES", "1")),
            "NODE_RANK": env.get("SLURM_NODEID", "0"),
            "MASTER_ADDR": first_host(env["SLURM_JOB_NODELIST"]),
            "MASTER_PORT": str(20000 + int(env["SLURM_JOB_ID"]) % 20000),
        }
    else:
        found = {
            "NNODES": "1",
            "NODE_RANK": "0",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
        }
    return {key: env.get(key, value) for key, value in found.items()}


def array_task(environ: dict[str, str] | None = None) -> tuple[int, int] | None:
    """(index, count) of this SLURM array task, counted from the array's first id."""
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    return int(env["SLURM_ARRAY_TASK_ID"]) - first, int(env["SLURM_ARRAY_TASK_COUNT"])


def visible_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The GPU ids this process may use: CUDA_VISIBLE_DEVICES, else every GPU torch sees."""
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        return [g for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []
