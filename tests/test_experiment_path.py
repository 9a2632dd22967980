"""One path for an experiment (`apps_hpc/experiment/lifecycle.py`): `train --config`
loads, checks, resolves, records and runs in that order, and the walk of the experiment
through the package enters no file more than twice."""

from __future__ import annotations

import collections
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from click.testing import CliRunner

from apps_hpc.cli import cli
from apps_hpc.core.config import Experiment
from apps_hpc.experiment import registry
from apps_hpc.hub import paths as hub
from apps_hpc.provenance.manifest import read_manifest

PACKAGE = str(Path(__file__).resolve().parents[1] / "apps_hpc") + "/"
ACCESSORS = {"dir", "hub_dir", "__post_init__"}  # properties read, not stays


def _carries(frame: FrameType, config: str) -> bool:
    """Whether a call receives the experiment: an Experiment, or the --config value."""
    code = frame.f_code
    for name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
        value = frame.f_locals.get(name)
        if isinstance(value, Experiment) or (
            isinstance(value, str | Path) and str(value) == config
        ):
            return True
    return False


def walk(args: list[str], config: str) -> list[tuple[str, str]]:
    """Every call into a package file from another file that carries the experiment."""
    seen: list[tuple[str, str]] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        file = frame.f_code.co_filename
        caller = frame.f_back.f_code.co_filename if frame.f_back else ""
        if event != "call" or not file.startswith(PACKAGE) or caller == file:
            return
        if frame.f_code.co_name not in ACCESSORS and _carries(frame, config):
            seen.append((file.removeprefix(PACKAGE), frame.f_code.co_name))

    sys.setprofile(profile)
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        sys.setprofile(None)
    assert result.exit_code == 0, result.output
    return seen


def test_train_config_walk_enters_no_file_more_than_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in [*hub.OFFLINE_VARS, "HF_HOME"]:  # run_here sets them in this process
        monkeypatch.setenv(var, "")  # ... and the monkeypatch restores what was there
        monkeypatch.delenv(var)
    ran: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        registry, "run_stage", lambda stage, cfg: ran.append((stage, cfg)) or tmp_path
    )
    monkeypatch.chdir(tmp_path)
    steps = walk(["train", "--config", "demo", "--set", f"root={tmp_path}"], "demo")
    assert ran and ran[0][0] == "train" and isinstance(ran[0][1], Experiment)
    functions = [name for _, name in steps]
    order = ["open_experiment", "load_experiment", "check_resolved", "run_here", "record_run"]
    assert [f for f in functions if f in order] == order, steps
    entries = collections.Counter(file for file, _ in steps)
    assert max(entries.values()) <= 2, entries
    assert (tmp_path / "demo" / "experiment.yaml").exists()  # checked (and written) first
    assert "run" in read_manifest(tmp_path / "demo" / "manifest.json")  # recorded before run
