"""The `apps-hpc` command: a thin click layer over the stage functions (no logic lives
here). Commands live in `stage_cmds`, `result_cmds`, `submit_cmds` and `ops_cmds`, and
are registered on the group below, explicitly."""

from __future__ import annotations

import sys

import click

from apps_hpc import __version__
from apps_hpc.cli import ops_cmds, result_cmds, stage_cmds, submit_cmds
from apps_hpc.cli.common import CONTEXT
from apps_hpc.errors import AppsHpcError
from apps_hpc.logs import level_for, setup_logging


class _Group(click.Group):
    """Turns AppsHpcError into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AppsHpcError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version")
@click.option("-v", "--verbose", count=True, help="More log lines (timestamps, debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """Fine-tune, sample and evaluate code LLMs on APPS, reproducibly, on SLURM clusters."""
    setup_logging(level_for(verbose, quiet), verbose=verbose > 0)


for _module in (stage_cmds, result_cmds, submit_cmds, ops_cmds):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="apps-hpc")


__all__ = ["cli", "main"]
