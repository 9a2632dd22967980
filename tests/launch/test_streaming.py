"""Eval streams behind sampling: eval task i starts once sampling task i ended, not after
the whole sampling array (the local executor here; tests/launch/test_slurm.py checks the
same order on a real SLURM with aftercorr)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from apps_hpc.provenance.manifest import read_manifest
from tests.helpers import pipeline_args, read_jsonl, run_cli


def task_times(manifest: dict[str, Any], step: str) -> list[tuple[datetime, datetime]]:
    """(started, ended) of each task of a step, in task order (each records its shard)."""
    records = sorted(manifest["timing"][step].values(), key=lambda r: r.get("shard", ""))
    return [
        (datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["ended"])) for r in records
    ]


def check_streamed(manifest: dict[str, Any], model: str) -> None:
    """Each eval task was started on its own, after its own sampling task ended."""
    sampled = task_times(manifest, f"sample/{model}")
    judged = task_times(manifest, f"eval/{model}")
    assert len(sampled) == len(judged) == 2
    for (_, sample_end), (eval_start, _) in zip(sampled, judged, strict=True):
        assert eval_start >= sample_end


@pytest.mark.slow
def test_local_pipeline_streams_eval_behind_sampling(
    tmp_path: Path, tiny_model_dir: Path, shared_apps: Path
) -> None:
    pytest.importorskip("llamafactory")
    run_cli(
        *pipeline_args(tmp_path, tiny_model_dir, shared_apps),
        "--cluster", "local", "--sample-shards", "2",
    )  # fmt: skip
    exp = tmp_path / "cpu"
    manifest = read_manifest(exp / "manifest.json")
    for model in ("base", "sft"):
        assert manifest["jobs"][f"eval/{model}"]["corr"] == f"sample/{model}"
        ids = {r["problem_id"] for r in read_jsonl(exp / "results" / f"{model}.jsonl")}
        assert len(ids) == 9
    # each sampling task holds the 2-CPU local machine: eval task i takes its place when
    # it ends (whether that is before the other ends depends on the shards ending apart:
    # the tiny model's end in the same second, so it is not asserted)
    for model in ("base", "sft"):
        check_streamed(manifest, model)
    assert "| base | 9 (1/8/0) |" in (exp / "report" / "summary.md").read_text()
