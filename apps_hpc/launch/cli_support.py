"""What `apps-hpc submit ...` does with a stage config: pick the experiment folder and the
shards, build the plan, submit it."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apps_hpc.core.checks import Check
from apps_hpc.core.config import Experiment
from apps_hpc.core.schema import Profile
from apps_hpc.experiment.registry import get
from apps_hpc.launch import preflight
from apps_hpc.launch.plan import Step, default_sample_shards, pipeline, stage_steps
from apps_hpc.launch.planner import check_memory, record_plan
from apps_hpc.launch.profiles import load_profile
from apps_hpc.launch.submit import Launch, submit
from apps_hpc.provenance.resolved import check_resolved


def _warn(line: str) -> None:
    print(line, file=sys.stderr)


def checked_submit(launch: Launch, steps: list[Step], checks: Callable[[], list[Check]]) -> dict:
    """Preflight, then submit: a failed check queues nothing (with --dry-run, the scripts
    are printed first, then the same checks, so a refused plan still shows its scripts)."""
    if not launch.dry_run:
        preflight.refuse_on_failure(checks(), _warn)
        return submit(launch, steps)
    ids = submit(launch, steps)
    preflight.refuse_on_failure(checks(), _warn)
    return ids


def experiment_root(stage: str, cfg: Any) -> Path:
    """Where manifest.json and jobs/ go for a single-stage submission."""
    if isinstance(cfg, Experiment):
        return cfg.dir
    if stage == "report":
        return (cfg.out or cfg.results[0].parent).parent
    return Path(cfg.out).parent


def single_stage_steps(stage: str, cfg: Any, shards: int | None, profile: Profile) -> list[Step]:
    """A stage on its own: an array stage gets `shards` tasks (default: one per GPU
    replica for a GPU stage, else one)."""
    if shards is None and get(stage).resources == "replica":
        shards = default_sample_shards(profile, cfg.gpus_per_model)
    return stage_steps(stage, cfg, shards or 1, stage, [])


def submit_stage(
    stage: str,
    cfg: Any,
    cluster: str,
    wait: bool,
    dry_run: bool,
    shards: int | None,
    hub_dir: Path | None = None,
) -> dict[str, list[str]]:
    profile = load_profile(cluster)
    launch = Launch(
        profile,
        experiment_root(stage, cfg).absolute(),
        wait,
        dry_run,
        getattr(cfg, "gpus_per_model", 1),
        hub_dir,
    )
    steps = single_stage_steps(stage, cfg, shards, profile)
    hub_dir = hub_dir or Experiment().hub_dir.absolute()

    def checks() -> list[Check]:
        return preflight.stage_checks(stage, cfg, profile, launch.root, hub_dir)

    return checked_submit(launch, steps, checks)


def experiment_checks(exp: Experiment, profile: Profile) -> list[Check]:
    """What `submit pipeline` and `doctor --config --cluster` check: the preflight, then
    whether training fits the profile's GPUs (the plan's memory verdict)."""
    return [*preflight.pipeline_checks(exp, profile), check_memory(exp, profile)]


def submit_pipeline(
    exp: Experiment,
    cluster: str,
    wait: bool,
    dry_run: bool,
    sample_shards: int | None,
    eval_shards: int | None,
    force: bool = False,
) -> dict[str, list[str]]:
    profile = load_profile(cluster)
    shards = sample_shards or default_sample_shards(profile, exp.sample.gpus_per_model)
    launch = Launch(
        profile, exp.dir.absolute(), wait, dry_run, exp.sample.gpus_per_model, exp.hub_dir
    )
    exp = dataclasses.replace(exp, force=force)
    steps = pipeline(exp, shards, eval_shards or shards)

    def checks() -> list[Check]:
        if not dry_run:
            check_resolved(exp, force, write=False)  # a changed config stops us first
        found = experiment_checks(exp, profile)
        if not dry_run and not any(c.status == "fail" for c in found):
            check_resolved(exp, force)  # experiment.yaml: written once nothing stands in the way
            record_plan(exp, profile, shards, eval_shards or shards, force)
        return found

    return checked_submit(launch, steps, checks)
