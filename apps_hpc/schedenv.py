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
