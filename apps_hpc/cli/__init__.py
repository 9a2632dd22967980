"""The `apps-hpc` command: a thin click layer over the stage functions (no logic lives
here). Commands live in `stage_cmds`, `result_cmds`, `submit_cmds` and `ops_cmds`, and
are registered on the group below, explicitly."""

from __future__ import annotations

import sys

import click

from apps_hpc import __version__
from apps_hpc.cli import ops_cmds, result_cmds, stage_cmds, submit_cmds
from apps_hpc.cli.common import CONTEXT
from apps_hpc.core.errors import AppsHpcError, missing_dependency
from apps_hpc.core.logs import level_for, setup_logging

INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class _Group(click.Group):
    """Turns an input, path, config or environment error (a bad flag value, AppsHpcError,
    OSError, a missing optional dependency) into one line on stderr and exit code 2, and
    Ctrl-C into exit code 130."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's flags: one line, as every error
            name = exc.ctx.command_path if exc.ctx else "apps-hpc"
            message = _lower_first(exc.format_message()).rstrip(".")
            _fail(f"error: {name}: {message} (see {name} -h)", 2)
        except AppsHpcError as exc:
            _fail(f"error: {exc}", 2)
        except OSError as exc:  # a path that is a folder, not writable, a missing program
            _fail(f"error: {exc}", 2)
        except ModuleNotFoundError as exc:  # an optional dependency: name its extra
            if (line := missing_dependency(exc)) is None:
                raise
            _fail(f"error: {line}", 2)
        except KeyboardInterrupt:
            _fail("interrupted", INTERRUPTED)
        return None


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _fail(line: str, code: int) -> None:
    click.echo(line.replace("\n", " "), err=True)
    sys.exit(code)


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
