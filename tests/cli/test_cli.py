"""The command line: `python -m apps_hpc`, -h, and every command documented."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from apps_hpc.cli import cli
from tests.helpers import REPO


def test_python_dash_m_and_short_help() -> None:
    r = subprocess.run([sys.executable, "-m", "apps_hpc", "-h"], capture_output=True, text=True)
    assert r.returncode == 0 and "eval" in r.stdout and "report" in r.stdout


def test_every_command_has_help_with_an_example() -> None:
    runner = CliRunner()
    for name, command in cli.commands.items():
        assert command.help and "Example" in command.help, name
        result = runner.invoke(cli, [name, "-h"])
        assert result.exit_code == 0 and "Usage:" in result.output


def test_the_docs_document_every_command() -> None:
    """Every command is named on the commands pages (docs/commands/), and the README's quick
    starts name the ones a newcomer types first."""
    pages = "\n".join(p.read_text() for p in sorted((REPO / "docs/commands").glob("*.md")))
    for name in cli.commands:
        assert f"apps-hpc {name}" in pages, name
    readme = (REPO / "README.md").read_text()
    for name in ("fetch", "doctor", "submit", "status", "eval", "report", "show"):
        assert name in cli.commands and f"apps-hpc {name}" in readme, name
