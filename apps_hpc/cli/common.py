"""What every command shares: click settings, the options that recur, and the one path
from a command to its stage (run here, or sent to SLURM under `apps-hpc submit`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
LAUNCH_KEY = "apps_hpc.launch"  # set by the `submit` variant of a stage command


def launching() -> bool:
    return LAUNCH_KEY in click.get_current_context().meta


def dispatch(
    stage: str,
    cfg: Any,
    show: Callable[[Path], None] | None = None,
    hub_dir: Path | None = None,
) -> None:
    """Run the stage here and `show` what it produced (default: its path), or, under
    `apps-hpc submit`, send it to the cluster and print the job ids. Either way the
    config's paths are made absolute first, and the stage runs offline with `hub_dir`
    (default: the default experiment's, ./experiments/hub) as HF_HOME."""
    from apps_hpc.config import Experiment
    from apps_hpc.stage_configs import absolute_config

    cfg = absolute_config(cfg)
    hub_dir = (hub_dir or Experiment().hub_dir).absolute()
    options = click.get_current_context().meta.get(LAUNCH_KEY)
    if options is None:
        from apps_hpc.hub import apply_offline
        from apps_hpc.stages import run_stage

        apply_offline(hub_dir)
        result = run_stage(stage, cfg)
        (show or (lambda p: click.echo(str(p))))(result)
        return
    from apps_hpc.launch.cli_support import submit_stage

    for key, ids in submit_stage(stage, cfg, hub_dir=hub_dir, **options).items():
        click.echo(f"{key}: {' '.join(ids)}")


def parse_ks(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in value.split(",") if k.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def config_option(required: bool = False, what: str = "") -> Callable[[Any], Any]:
    return click.option(
        "--config",
        "config",
        required=required,
        type=click.Path(path_type=Path),
        default=None,
        help=f"Experiment YAML, or a name in configs/experiments/{what}.",
    )


def sets_option() -> Callable[[Any], Any]:
    return click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config key, e.g. --set train.overrides.max_steps=10 (repeatable).",
    )


def force_option() -> Callable[[Any], Any]:
    return click.option(
        "--force",
        is_flag=True,
        help="Go on although the config differs from <experiment>/experiment.yaml "
        "(recorded in manifest.json); what the change touches is redone.",
    )


def experiment(config: Path | None, sets: Any = (), force: bool = False) -> Any:
    """The experiment of --config/--set, checked against its resolved experiment.yaml
    (written by the first stage started; a difference stops us unless --force)."""
    import dataclasses

    from apps_hpc.config import load_experiment, parse_sets
    from apps_hpc.resolved import check_resolved

    exp = load_experiment(config, parse_sets(sets))
    if config is not None:
        check_resolved(exp, force)
    return dataclasses.replace(exp, force=force)


def quiet_option() -> Callable[[Any], Any]:
    return click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
