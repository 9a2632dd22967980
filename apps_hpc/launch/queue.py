"""The plan `apps-hpc plan` prints (`full_plan`), and when each job of a pipeline would
start: `sbatch --test-only` on the very sbatch script `submit pipeline` would use (same
executor, same options), one call per job. A job's `afterok` dependency is left out (its
parents have no ids yet), so each answer is "if it were queued now"; an array asks for
its first task."""

from __future__ import annotations

from typing import Any

from apps_hpc.core.config import Experiment
from apps_hpc.launch import slurm
from apps_hpc.launch.plan import default_sample_shards, pipeline
from apps_hpc.launch.planner import make_plan
from apps_hpc.launch.profiles import Profile
from apps_hpc.launch.submit import Launch, step_executor


def queue_estimates(
    exp: Experiment, profile: Profile, sample_shards: int, eval_shards: int
) -> list[dict[str, Any]]:
    if not slurm.has_sbatch():
        return [{"job": "all", "estimate": "no estimate: sbatch not found on this machine"}]
    if (missing := slurm.client_config()) is not None:
        return [{"job": "all", "estimate": f"no estimate: {missing}"}]
    launch = Launch(
        profile, exp.dir.absolute(), False, True, exp.sample.gpus_per_model, exp.hub_dir
    )
    out = []
    for step in pipeline(exp, sample_shards, eval_shards):
        script = slurm.sbatch_text(step_executor(launch, step, None), None)
        out.append({"job": step.key, "estimate": slurm.test_only(script)})
    return out


def full_plan(
    exp: Experiment, profile: Profile, sample_shards: int | None, eval_shards: int, queue: bool
) -> dict[str, Any]:
    """The plan with the shards `submit pipeline` would use, and, on SLURM, the queue."""
    shards = sample_shards or default_sample_shards(profile, exp.sample.gpus_per_model)
    plan = make_plan(exp, profile, shards, eval_shards)
    if queue and profile.executor == "slurm":
        plan["queue"] = queue_estimates(exp, profile, shards, eval_shards)
    return plan
