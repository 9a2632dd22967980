"""The cluster and housekeeping commands of `apps-hpc`: submit, status, cancel,
experiment-path, doctor, demo. Registered on the group defined in cli.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from apps_hpc.cli import CONTEXT, LAUNCH_KEY, cli

LAUNCH_OPTIONS = ("cluster", "wait", "dry_run", "shards")


def _launch_params() -> list[click.Parameter]:
    return [
        click.Option(
            ["--cluster"],
            default="slurm-default",
            show_default=True,
            help="Cluster profile: a name in configs/clusters/ or a .yaml path.",
        ),
        click.Option(["--wait"], is_flag=True, help="Wait until the jobs end; fail if one did."),
        click.Option(
            ["--dry-run"],
            is_flag=True,
            help="Print the sbatch scripts / parameters; submit nothing.",
        ),
        click.Option(
            ["--shards"],
            type=click.IntRange(1),
            default=None,
            help="Array tasks for sample/eval (default: one per GPU / 1).",
        ),
    ]


@cli.group("submit", context_settings=CONTEXT)
def submit_group() -> None:
    """Send a stage (or the whole pipeline) to SLURM through submitit.

    \b
    Example:
      apps-hpc submit eval --cluster slurm-default --wait --samples S --apps A --out R
    """


def _submit_command(stage_cmd: click.Command) -> click.Command:
    def callback(**kwargs: Any) -> None:
        options = {k: kwargs.pop(k) for k in LAUNCH_OPTIONS}
        click.get_current_context().meta[LAUNCH_KEY] = options
        assert stage_cmd.callback is not None
        stage_cmd.callback(**kwargs)

    return click.Command(
        stage_cmd.name,
        params=[*stage_cmd.params, *_launch_params()],
        callback=callback,
        context_settings=CONTEXT,
        help=f"`apps-hpc {stage_cmd.name}` as SLURM job(s); the same options, plus the "
        "launch options.",
    )


for _stage in ("prepare", "train", "sample", "eval", "report"):
    submit_group.add_command(_submit_command(cli.commands[_stage]))


@submit_group.command("pipeline", context_settings=CONTEXT)
@click.option(
    "--config", "config", required=True, type=click.Path(path_type=Path), help="Experiment YAML."
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option(
    "--sample-shards",
    type=click.IntRange(1),
    default=None,
    help="Sampling array tasks (default: one per GPU of the profile, else 1).",
)
@click.option(
    "--eval-shards",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Evaluation array tasks.",
)
@click.option("--cluster", default="slurm-default", show_default=True, help="Cluster profile.")
@click.option("--wait", is_flag=True, help="Wait until the jobs end; fail if one did.")
@click.option("--dry-run", is_flag=True, help="Print the sbatch scripts; submit nothing.")
def pipeline_cmd(
    config: Path,
    sets: tuple[str, ...],
    sample_shards: int | None,
    eval_shards: int,
    cluster: str,
    wait: bool,
    dry_run: bool,
) -> None:
    """prepare -> train -> sample -> eval for the fine-tuned model and sample -> eval for
    the base model (in parallel with training), then the report comparing both.

    \b
    Example:
      apps-hpc submit pipeline --config configs/experiments/dscoder_apps.yaml --cluster mysite.yaml
    """
    from apps_hpc.config import load_experiment, parse_sets
    from apps_hpc.launch.cli_support import submit_pipeline

    exp = load_experiment(config, parse_sets(sets))
    ids = submit_pipeline(exp, cluster, wait, dry_run, sample_shards, eval_shards)
    for key, job_ids in ids.items():
        click.echo(f"{key}: {' '.join(job_ids)}")


def _experiment_dir(target: str) -> Path:
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from apps_hpc.config import load_experiment

        return load_experiment(path).dir
    return path


@cli.command("status", context_settings=CONTEXT)
@click.argument("experiment", default=".")
def status_cmd(experiment: str) -> None:
    """One line per stage: job id(s), state, elapsed, progress, log.

    \b
    Example:
      apps-hpc status experiments/dscoder-apps
    """
    from apps_hpc.launch.status import format_statuses, stage_statuses

    click.echo(format_statuses(stage_statuses(_experiment_dir(experiment))), nl=False)


@cli.command("cancel", context_settings=CONTEXT)
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


@cli.command("experiment-path", context_settings=CONTEXT)
@click.option("--config", "config", required=True, type=click.Path(path_type=Path))
@click.option("--key", default=None, help="Print this config key instead (e.g. model, apps).")
def experiment_path_cmd(config: Path, key: str | None) -> None:
    """Print an experiment's folder (or one config value), for shell scripts.

    \b
    Example:
      apps-hpc experiment-path --config configs/experiments/dscoder_apps.yaml
    """
    from apps_hpc.config import load_experiment

    exp = load_experiment(config)
    value: Any = exp.dir.resolve() if key is None else exp
    for part in (key or "").split(".") if key else []:
        if not hasattr(value, part):
            raise click.BadParameter(f"no config key {key!r}", param_hint="--key")
        value = getattr(value, part)
    click.echo(str(value))


@cli.command("doctor", context_settings=CONTEXT)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment root that must be writable (default: $APPS_HPC_ROOT or ./experiments).",
)
@click.option(
    "--strict", is_flag=True, help="A version that differs from the container's lock is a failure."
)
def doctor_cmd(root: Path | None, strict: bool) -> None:
    """Check python, torch/CUDA/GPUs, flash-attn, vLLM/DeepSpeed/LlamaFactory against the
    lock, NCCL, /dev/shm and the experiment root; exit 1 if a check failed.

    \b
    Example:
      apps-hpc doctor --root /lustre/experiments
    """
    import os

    from apps_hpc.doctor import doctor

    root = root or Path(os.environ.get("APPS_HPC_ROOT", "experiments"))
    failures = doctor(root, strict, click.echo)
    if failures:
        click.echo(f"{failures} check(s) failed", err=True)
        sys.exit(1)


@cli.command("demo", context_settings=CONTEXT)
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
def demo_cmd(
    config: Path | None, root: Path | None, apps: str | None, cluster: str, sets: tuple[str, ...]
) -> None:
    """The whole experiment on this machine: tiny model, prepare, train, sample, eval and
    report for the fine-tuned model and its base, through `submit pipeline`.

    \b
    Example:
      apps-hpc demo                      # or: make demo
    """
    from apps_hpc.demo import run_demo

    run_demo(config, root, apps, cluster, list(sets), click.echo)
