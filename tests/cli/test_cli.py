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


def test_readme_documents_every_command() -> None:

    readme = (REPO / "README.md").read_text()
    for name in cli.commands:
        assert f"apps-hpc {name}" in readme, name
