"""`apps-hpc submit ...`: every stage command again, as SLURM job(s) through submitit,
plus `submit pipeline`, the whole experiment as one afterok chain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from apps_hpc.cli.common import CONTEXT, LAUNCH_KEY, force_option
from apps_hpc.cli.result_cmds import eval_cmd, report_cmd
from apps_hpc.cli.stage_cmds import prepare_cmd, sample_cmd, train_cmd

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


@click.group("submit", context_settings=CONTEXT)
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


for _command in (prepare_cmd, train_cmd, sample_cmd, eval_cmd, report_cmd):
    submit_group.add_command(_submit_command(_command))


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
    default=None,
    help="Evaluation array tasks (default: as many as sampling tasks, so that eval task i "
    "judges sample shard i as soon as sampling task i ends; another number waits for all).",
)
@click.option("--cluster", default="slurm-default", show_default=True, help="Cluster profile.")
@click.option("--wait", is_flag=True, help="Wait until the jobs end; fail if one did.")
@click.option("--dry-run", is_flag=True, help="Print the sbatch scripts; submit nothing.")
@force_option()
def pipeline_cmd(
    config: Path,
    sets: tuple[str, ...],
    sample_shards: int | None,
    eval_shards: int | None,
    cluster: str,
    wait: bool,
    dry_run: bool,
    force: bool,
) -> None:
    """prepare -> train -> sample -> eval for the fine-tuned model and sample -> eval for
    the base model (in parallel with training), then the report comparing both.

    \b
    Example:
      apps-hpc submit pipeline --config configs/experiments/dscoder_apps.yaml --cluster mysite.yaml
    """
    from apps_hpc.core.config import load_experiment, parse_sets
    from apps_hpc.launch.cli_support import submit_pipeline

    exp = load_experiment(config, parse_sets(sets))
    ids = submit_pipeline(exp, cluster, wait, dry_run, sample_shards, eval_shards, force)
    for key, job_ids in ids.items():
        click.echo(f"{key}: {' '.join(job_ids)}")


COMMANDS = [submit_group]
