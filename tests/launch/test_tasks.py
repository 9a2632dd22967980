"""The job body: runs the stage through the registry and records its start and end in
the experiment's manifest (what the report's stage wall times come from)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps_hpc.errors import AppsHpcError
from apps_hpc.launch.tasks import StageTask
from apps_hpc.prepare import PrepareConfig

MINI_APPS = Path(__file__).resolve().parents[2] / "apps_hpc" / "data" / "mini_apps"


def _timing(manifest: Path, step: str) -> dict:
    [record] = json.loads(manifest.read_text())["timing"][step].values()
    return record


def test_a_task_records_its_start_and_end(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    cfg = PrepareConfig(apps=str(MINI_APPS), out=tmp_path / "data")
    out = StageTask(manifest, "prepare")("prepare", cfg)
    assert Path(out) == tmp_path / "data" and (tmp_path / "data" / "prompts.jsonl").is_file()
    record = _timing(manifest, "prepare")
    assert record["state"] == "COMPLETED" and record["elapsed_s"] >= 0
    assert record["started"] <= record["ended"]


def test_a_failing_task_is_recorded_as_failed_and_still_raises(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    cfg = PrepareConfig(apps=str(tmp_path / "missing"), out=tmp_path / "data")
    with pytest.raises(AppsHpcError):
        StageTask(manifest, "prepare")("prepare", cfg)
    assert _timing(manifest, "prepare")["state"] == "FAILED"


def test_the_wrong_config_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="stage report takes a ReportConfig"):
        StageTask()("report", PrepareConfig(apps="x", out=tmp_path))
