"""A stage command run directly within an experiment (`apps-hpc prepare --config X`, not
under `apps-hpc submit`) records what ran it in the experiment's manifest.json, under the
step the pipeline names (prepare, sample/<model>) and a `direct-<host>-<pid>` task, and the
report's "What ran" lists it; a command given file paths only records nothing."""

from __future__ import annotations

import socket
from pathlib import Path

from apps_hpc.provenance.manifest import read_manifest
from apps_hpc.provenance.stamps import digest, file_digest, files_fingerprint
from apps_hpc.report.experiment import ExperimentFiles
from apps_hpc.report.timing import NOT_RECORDED, run_facts
from tests.helpers import run_cli

MINI_APPS = Path(__file__).resolve().parents[2] / "apps_hpc" / "data" / "mini_apps"


def _experiment(tmp_path: Path) -> Path:
    path = tmp_path / "e.yaml"
    path.write_text(f"name: x\nroot: {tmp_path}\napps: {MINI_APPS}\nmodel: acme/m1\n")
    return path


def _run(exp: Path) -> dict:
    return read_manifest(exp / "manifest.json")["run"]


def test_a_direct_prepare_records_what_ran_it_and_the_report_lists_it(tmp_path: Path) -> None:
    run_cli("prepare", "--config", str(_experiment(tmp_path)), check=True)
    exp = tmp_path / "x"
    [(task, record)] = _run(exp)["prepare"].items()
    assert task.startswith(f"direct-{socket.gethostname()}-")
    assert record["stage"] == "prepare" and record["software"]["lock"]
    apps = {"path": str(MINI_APPS), "digest": digest(files_fingerprint(MINI_APPS))}
    assert record["sources"] == {"apps": apps}
    assert record["experiment_yaml"] == file_digest(exp / "experiment.yaml")
    files = ExperimentFiles(
        exp,
        manifest=read_manifest(exp / "manifest.json"),
        experiment_yaml=(exp / "experiment.yaml").read_text(),
    )
    facts = dict(run_facts(files))
    assert NOT_RECORDED[0] not in facts
    assert facts["ran as"] == "stage command run directly"
    assert facts["data revision"] == f"{MINI_APPS} (local, files digest {apps['digest']})"
    assert facts["host"] == socket.gethostname()


def test_a_direct_sample_records_under_the_pipelines_step_before_it_starts(
    tmp_path: Path,
) -> None:
    """The model is not fetched and there are no prompts: the stage fails, the record,
    written first, says what was attempted."""
    r = run_cli("sample", "--config", str(_experiment(tmp_path)), "--model-name", "base")
    assert r.returncode == 2, r.stderr[-3000:]
    [record] = _run(tmp_path / "x")["sample/base"].values()
    assert record["sources"] == {"model": {"repo": "acme/m1", "revision": "main", "commit": None}}


def test_a_command_without_an_experiment_records_nothing(tmp_path: Path) -> None:
    out = tmp_path / "data"
    run_cli("prepare", "--apps", str(MINI_APPS), "--out", str(out), check=True, cwd=tmp_path)
    assert (out / "prompts.jsonl").is_file()
    assert not list(tmp_path.rglob("manifest.json")) and not list(tmp_path.rglob("manifest.d"))
