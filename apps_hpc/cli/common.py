"""What every command shares: click settings, the options that recur, and the one path
from a command to its stage (run here, or sent to SLURM under `apps-hpc submit`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
LAUNCH_KEY = "apps_hpc.launch"  # set by the `submit` variant of a stage command


def recorded_in(exp: Any, config: Path | None, step: str) -> Any:
    """Where a stage command run directly records what ran it: the experiment's
    manifest.json, under `step` as the pipeline names it (prepare, train, sample/<model>),
    task direct-<host>-<pid>, when the command was given an experiment (--config); None
    without one (a command of file paths only, or the default experiment, has no manifest
    of its own)."""
    from apps_hpc.experiment.lifecycle import Record
    from apps_hpc.provenance.identity import direct_task

    return Record(exp.dir / "manifest.json", step, direct_task()) if config else None


def dispatch(
    stage: str,
    cfg: Any,
    show: Callable[[Path], None] | None = None,
    hub_dir: Path | None = None,
    record: Any = None,
) -> None:
    """Run the stage here and `show` what it produced (default: its path), or, under
    `apps-hpc submit`, send it to the cluster and print the job ids. Either way the
    config's paths are resolved first (`experiment.lifecycle`), and the stage runs offline
    with `hub_dir` (default: the default experiment's, ./experiments/hub) as HF_HOME. Run
    here with `record` (see `recorded_in`), what ran it is written to the manifest's
    run/<step>/direct-<host>-<pid> first, as a job of `apps-hpc submit` writes its own."""
    from apps_hpc.core.config import Experiment
    from apps_hpc.experiment import lifecycle

    hub_dir = (hub_dir or Experiment().hub_dir).absolute()
    options = click.get_current_context().meta.get(LAUNCH_KEY)
    if options is None:
        result = lifecycle.run_here(stage, cfg, hub_dir, record)
        (show or (lambda p: click.echo(str(p))))(result)
        return
    from apps_hpc.launch.cli_support import submit_stage

    cfg = lifecycle.resolve(cfg)
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


def sets_option(example: str = "train.overrides.max_steps=10") -> Callable[[Any], Any]:
    return click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help=f"Override a config key, e.g. --set {example} (repeatable).",
    )


def _click_type(spec: Any) -> Any:
    """The click type of a schema field: its Python type with the schema's bounds."""
    low = spec.gt if spec.gt is not None else spec.ge
    if spec.kind is int and (low is not None or spec.le is not None):
        return click.IntRange(low, spec.le, min_open=spec.gt is not None)
    if spec.kind is float and (low is not None or spec.le is not None):
        return click.FloatRange(low, spec.le, min_open=spec.gt is not None)
    return spec.kind


def schema_option(
    cls: type, name: str, flag: str, *, unset: str = "", **extra: Any
) -> Callable[[Any], Any]:
    """A CLI option for field `name` of schema class `cls` (`core/schema.py`): its type,
    bounds, default and help come from the schema. `unset` given: the option defaults to
    None (the config's value applies) and `unset` ends the help."""
    from apps_hpc.core.schema import field_spec

    spec = field_spec(cls, name)
    text = spec.description[:1].upper() + spec.description[1:]
    if unset:
        text = f"{text}; default {spec.default}{unset}"
    return click.option(
        flag,
        name,
        type=_click_type(spec),
        default=None if unset else spec.default,
        show_default=not unset,
        help=text + ("" if text.endswith(".") else "."),
        **extra,
    )


def force_option() -> Callable[[Any], Any]:
    return click.option(
        "--force",
        is_flag=True,
        help="Go on although the config differs from <experiment>/experiment.yaml "
        "(recorded in manifest.json); what the change touches is redone.",
    )


def quiet_option() -> Callable[[Any], Any]:
    return click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
