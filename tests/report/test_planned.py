"""Planned vs measured: the plan `submit pipeline` recorded in the manifest (`plan/steps`)
beside each step's measured wall time and peak memory, in summary.md (what `apps-hpc
report` prints), summary.json and the page (also read in headless Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps_hpc.provenance.manifest import read_manifest, update_manifest
from apps_hpc.report import ReportConfig, report
from apps_hpc.report.chromium import HeadlessPage, find_chromium
from apps_hpc.report.timing import PLANNED_HEAD, planned_rows
from tests.helpers import needs
from tests.report.experiment_fixture import make_experiment
from tests.report.test_page import READY

STEPS = {
    "train": {"seconds": 84, "tokens": 1000, "steps": 4, "gpu_mem_gib": 21.5},
    "sample/base": {"seconds": 21},
    "eval/base": {"seconds": 42},
    "sample/sft": {"seconds": 21},
    "eval/sft": {"seconds": 0},  # planned under a second: no ratio
}
ROWS = [
    ["train", "1m24s", "0m42s", "0.50x", "21.5 GiB per GPU", "2,048 MiB"],
    ["sample/base", "0m21s", "0m42s", "2.00x", "–", "–"],
    ["eval/base", "0m42s", "0m42s", "1.00x", "–", "–"],
    ["sample/sft", "0m21s", "0m42s", "2.00x", "–", "–"],
    ["eval/sft", "0m00s", "0m42s", "–", "–", "–"],
]


@pytest.fixture(scope="module")
def exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_experiment(tmp_path_factory.mktemp("planned"))
    manifest = folder / "manifest.json"
    plan = {"profile": "local", "planned_at": "2024-05-01T09:59:00+00:00", "steps": STEPS}
    update_manifest(manifest, ["plan"], plan)
    task = read_manifest(manifest)["timing"]["train"]["101"]
    update_manifest(manifest, ["timing", "train", "101"], {**task, "peak_rss_mib": 2048.4})
    report(ReportConfig([folder / "results" / "base.jsonl", folder / "results" / "sft.jsonl"]))
    return folder


def test_planned_rows_set_each_planned_step_beside_its_measured_one(exp: Path) -> None:
    rows = planned_rows(read_manifest(exp / "manifest.json"))
    assert rows == ROWS
    assert planned_rows({"timing": {}}) == []  # no plan: no table


def test_summary_shows_planned_vs_measured(exp: Path) -> None:
    text = (exp / "report" / "summary.md").read_text()
    assert "Planned vs measured (plan for local, 2024-05-01T09:59:00+00:00):" in text
    assert "| " + " | ".join(PLANNED_HEAD) + " |" in text
    assert "| train | 1m24s | 0m42s | 0.50x | 21.5 GiB per GPU | 2,048 MiB |" in text
    data = json.loads((exp / "report" / "summary.json").read_text())
    assert data["planned_vs_measured"]["rows"][1] == ROWS[1]


@needs(find_chromium(), "chromium not installed (apt-get install chromium)")
@pytest.mark.slow
def test_page_shows_planned_vs_measured_in_chromium(exp: Path) -> None:
    with HeadlessPage() as p:
        p.goto((exp / "report" / "index.html").as_uri(), READY)
        rows = p.evaluate(
            "[...document.querySelectorAll('table.planned tbody tr')]"
            ".map(r => [...r.cells].map(c => c.textContent))"
        )
        head = p.evaluate(
            "[...document.querySelectorAll('table.planned th')].map(c => c.textContent)"
        )
        assert p.errors == []
    assert head == PLANNED_HEAD
    assert rows == ROWS
