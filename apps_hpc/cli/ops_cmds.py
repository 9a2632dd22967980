"""The housekeeping commands: fetch, plan, status, cancel, experiment-path, doctor, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from apps_hpc.cli.common import CONTEXT, force_option


def _experiment_dir(target: str) -> Path:
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from apps_hpc.core.config import load_experiment

        return load_experiment(path).dir
    return path


@click.command("status", context_settings=CONTEXT)
@click.argument("experiment", default=".")
def status_cmd(experiment: str) -> None:
    """One line per stage: job id(s), state, elapsed, progress, log.

    \b
    Example:
      apps-hpc status experiments/dscoder-apps
    """
    from apps_hpc.launch.status import format_statuses, stage_statuses

    click.echo(format_statuses(stage_statuses(_experiment_dir(experiment))), nl=False)


@click.command("cancel", context_settings=CONTEXT)
@click.argument("experiment", default=".")
def cancel_cmd(experiment: str) -> None:
    """Cancel every job of an experiment.

    \b
    Example:
      apps-hpc cancel experiments/dscoder-apps
    """
    from apps_hpc.launch.status import cancel

    ids = cancel(_experiment_dir(experiment))
    click.echo(f"cancelled {len(ids)} job(s)")


@click.command("experiment-path", context_settings=CONTEXT)
@click.option("--config", "config", required=True, type=click.Path(path_type=Path))
@click.option("--key", default=None, help="Print this config key instead (e.g. model, apps).")
def experiment_path_cmd(config: Path, key: str | None) -> None:
    """Print an experiment's folder (or one config value), for shell scripts.

    \b
    Example:
      apps-hpc experiment-path --config configs/experiments/dscoder_apps.yaml
    """
    from apps_hpc.core.config import load_experiment

    exp = load_experiment(config)
    value: Any = exp.dir.resolve() if key is None else exp
    for part in (key or "").split(".") if key else []:
        if not hasattr(value, part):
            raise click.BadParameter(f"no config key {key!r}", param_hint="--key")
        value = getattr(value, part)
    click.echo(str(value))


@click.command("doctor", context_settings=CONTEXT)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment root that must be writable (default: the experiment's, $APPS_HPC_ROOT "
    "or ./experiments).",
)
@click.option(
    "--strict", is_flag=True, help="A version that differs from the container's lock is a failure."
)
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment YAML: also run the preflight of `submit pipeline` on it.",
)
@click.option("--cluster", default="slurm-default", show_default=True, help="Cluster profile.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
def doctor_cmd(
    root: Path | None, strict: bool, config: Path | None, cluster: str, sets: tuple[str, ...]
) -> None:
    """Check python, torch/CUDA/GPUs, flash-attn, vLLM/DeepSpeed/LlamaFactory against the
    lock, NCCL, /dev/shm and the experiment root; with --config, also everything
    `submit pipeline` checks before queueing (APPS rows, model snapshot, image,
    controller, storage, GPU count against the recipe). Creates nothing; exit 1 if a
    check failed.

    \b
    Example:
      apps-hpc doctor --config configs/experiments/dscoder_apps.yaml --cluster mysite.yaml
    """
    import os

    from apps_hpc.tools.doctor import doctor

    extra = []
    if config is not None:
        from apps_hpc.core.config import load_experiment, parse_sets
        from apps_hpc.launch.cli_support import experiment_checks
        from apps_hpc.launch.profiles import load_profile

        exp = load_experiment(config, parse_sets(sets))
        extra = experiment_checks(exp, load_profile(cluster))
    else:
        root = root or Path(os.environ.get("APPS_HPC_ROOT", "experiments"))
    failures = doctor(root, strict, click.echo, extra)
    if failures:
        click.echo(f"{failures} check(s) failed", err=True)
        sys.exit(1)


@click.command("fetch", context_settings=CONTEXT)
@click.option(
    "--config", "config", required=True, type=click.Path(path_type=Path), help="Experiment YAML."
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
def fetch_cmd(config: Path, sets: tuple[str, ...]) -> None:
    """Download the model snapshot and the APPS rows into the experiment's hub folder
    (`fetch.hub`, default <root>/hub), on a machine with internet; every job then runs
    offline from there. Resumable; a re-run downloads nothing; commits and sha256 go into
    manifest.json.

    \b
    Example:
      apps-hpc fetch --config configs/experiments/dscoder_apps.yaml
    """
    from apps_hpc.core.config import load_experiment, parse_sets
    from apps_hpc.hub.fetch import fetch

    fetch(load_experiment(config, parse_sets(sets)), click.echo)


@click.command("demo", context_settings=CONTEXT)
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment YAML (default: configs/experiments/demo.yaml).",
)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment root (default: the config's, ./experiments).",
)
@click.option("--apps", default=None, help="APPS rows instead of the bundled mini-APPS set.")
@click.option(
    "--cluster",
    default="auto",
    show_default=True,
    help="auto: the local SLURM when `scontrol ping` answers, else `local`.",
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@force_option()
def demo_cmd(
    config: Path | None,
    root: Path | None,
    apps: str | None,
    cluster: str,
    sets: tuple[str, ...],
    force: bool,
) -> None:
    """The whole experiment on this machine: tiny model, prepare, train, sample, eval and
    report for the fine-tuned model and its base, through `submit pipeline`.

    \b
    Example:
      apps-hpc demo                      # or: make demo
    """
    from apps_hpc.tools.demo import run_demo

    run_demo(config, root, apps, cluster, list(sets), click.echo, force)


@click.command("plan", context_settings=CONTEXT)
@click.option(
    "--config", "config", required=True, type=click.Path(path_type=Path), help="Experiment YAML."
)
@click.option("--cluster", default="slurm-default", show_default=True, help="Cluster profile.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option(
    "--sample-shards",
    type=click.IntRange(1),
    default=None,
    help="Sampling array tasks (default: as `submit pipeline`, one per GPU).",
)
@click.option("--eval-shards", type=click.IntRange(1), default=1, show_default=True)
@click.option(
    "--queue/--no-queue",
    default=True,
    show_default=True,
    help="Ask SLURM when each job would start (`sbatch --test-only`; SLURM profiles only).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def plan_cmd(
    config: Path,
    cluster: str,
    sets: tuple[str, ...],
    sample_shards: int | None,
    eval_shards: int,
    queue: bool,
    fmt: str,
) -> None:
    """What the pipeline will cost on a profile, before a GPU-hour is spent: parameters,
    tokens, memory per GPU for ZeRO-2/ZeRO-3 against the profile's `gpu_mem` (fits / fits
    with offload / does not fit, the largest micro-batch), training, sampling and eval
    time and GPU-hours, and when each job would start. Needs no GPU; submits nothing.

    \b
    Example:
      apps-hpc plan --config dscoder_apps --cluster example-a100
      apps-hpc plan --config dscoder_apps --cluster example-a100 --format json
    """
    import json

    from apps_hpc.core.config import load_experiment, parse_sets
    from apps_hpc.launch.plan_format import plan_text
    from apps_hpc.launch.profiles import load_profile
    from apps_hpc.launch.queue import full_plan

    exp = load_experiment(config, parse_sets(sets))
    plan = full_plan(exp, load_profile(cluster), sample_shards, eval_shards, queue)
    click.echo(json.dumps(plan, indent=1) if fmt == "json" else plan_text(plan), nl=fmt == "json")


COMMANDS = [fetch_cmd, plan_cmd, status_cmd, cancel_cmd, experiment_path_cmd, doctor_cmd, demo_cmd]
