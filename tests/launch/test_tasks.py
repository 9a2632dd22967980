"""The job body: runs the stage through the registry and records its start and end in
the experiment's manifest (what the report's stage wall times come from), and what ran
it (the report's "What ran")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps_hpc import __version__
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.launch.tasks import StageTask
from apps_hpc.prepare.stage import PrepareConfig
from apps_hpc.provenance.manifest import read_manifest
from apps_hpc.provenance.stamps import digest, file_digest, files_fingerprint
from apps_hpc.sample.stage import SampleConfig

MINI_APPS = Path(__file__).resolve().parents[2] / "apps_hpc" / "data" / "mini_apps"


def _timing(manifest: Path, step: str) -> dict:
    [record] = read_manifest(manifest)["timing"][step].values()
    return record


def test_a_task_records_its_start_and_end(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    cfg = PrepareConfig(apps=str(MINI_APPS), out=tmp_path / "data")
    out = StageTask(manifest, "prepare")("prepare", cfg)
    assert Path(out) == tmp_path / "data" and (tmp_path / "data" / "prompts.jsonl").is_file()
    record = _timing(manifest, "prepare")
    assert record["state"] == "COMPLETED" and record["elapsed_s"] >= 0
    assert record["peak_rss_mib"] > 0  # the largest resident set: the report's memory
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


def test_a_task_records_what_ran_it_and_the_data_it_read(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    (tmp_path / "experiment.yaml").write_text("name: x\n")
    cfg = PrepareConfig(apps=str(MINI_APPS), out=tmp_path / "data")
    StageTask(manifest, "prepare")("prepare", cfg)
    [(task, record)] = read_manifest(manifest)["run"]["prepare"].items()
    assert task in read_manifest(manifest)["timing"]["prepare"]  # the same task id
    assert record["stage"] == "prepare"
    software = record["software"]
    assert software["apps_hpc"] == __version__ and software["python"].count(".") == 2
    assert set(software["packages"]) == {"torch", "transformers", "vllm", "llamafactory"}
    assert software["lock"] is not None  # the package's data/requirements-cp310.lock
    assert software["git"] is None or len(software["git"]["commit"]) >= 7
    apps = {"path": str(MINI_APPS), "digest": digest(files_fingerprint(MINI_APPS))}
    assert record["sources"] == {"apps": apps}  # prepare reads data, no model
    assert record["experiment_yaml"] == file_digest(tmp_path / "experiment.yaml")


def test_a_fetched_model_is_recorded_with_the_revision_fetch_asked_for(tmp_path: Path) -> None:
    """A sampling task reads the fetched snapshot; its record names the repository, the
    revision `apps-hpc fetch` recorded and the commit. The stage itself fails here (no
    prompts): the record is written first, and says what was attempted."""
    snap = tmp_path / "hub" / "hub" / "models--acme--coder" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    manifest = tmp_path / "manifest.json"
    fetched = {"repo": "acme/coder", "revision": "v2", "commit": "c" * 40, "path": str(snap)}
    manifest.write_text(json.dumps({"fetch": {"model": fetched}}))
    cfg = SampleConfig(model=str(snap), prompts=tmp_path / "none.jsonl", out=tmp_path / "s")
    with pytest.raises(AppsHpcError):
        StageTask(manifest, "sample/base")("sample", cfg)
    [record] = read_manifest(manifest)["run"]["sample/base"].values()
    assert record["sources"] == {
        "model": {"repo": "acme/coder", "revision": "v2", "commit": "c" * 40}
    }
    assert record["experiment_yaml"] is None
