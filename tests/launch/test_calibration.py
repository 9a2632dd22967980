"""The next plan on a site calibrates from the earlier runs' manifests (the plan `submit
pipeline` recorded, the tasks' timing, sampling throughput, training's counted tokens),
each rate naming its source; a run never calibrates from its own plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps_hpc.launch import calibration as cal
from apps_hpc.launch import estimate as est
from apps_hpc.provenance.manifest import update_manifest

PLAN = {
    "profile": "local",
    "planned_at": "2024-05-01T09:59:00+00:00",
    "training": {"params": 10**6, "tokens": 99, "tokens_source": "estimate (not prepared)"},
    "sampling": {"gpus_per_model": 1},
    "eval": {"programs_per_model": 999, "cpus": 2, "shards": 1},
}


def _task(start: str, end: str) -> dict:
    return {"started": f"2024-05-01T10:{start}+00:00", "ended": f"2024-05-01T10:{end}+00:00"}


def earlier_run(root: Path, name: str = "first", profile: str = "local") -> Path:
    """An experiment as `submit pipeline` and its tasks leave it, built with update_manifest."""
    manifest = root / name / "manifest.json"
    update_manifest(manifest, ["plan"], {**PLAN, "profile": profile})
    update_manifest(manifest, ["timing", "train", "1"], _task("00:00", "01:40"))  # 100 s
    counted = {"params": 10**6, "tokens": 5000, "epochs": 2.0, "gpus": 1}
    update_manifest(manifest, ["measured", "train"], counted)
    shard = {"completions": 40, "seconds": 20.0}
    for model in ("base", "sft"):
        update_manifest(manifest, ["sample", model, "throughput", "shard-0-of-1"], shard)
    update_manifest(manifest, ["timing", "eval/base", "2"], _task("02:00", "02:10"))
    update_manifest(manifest, ["timing", "eval/sft", "3"], _task("03:00", "03:10"))
    return manifest.parent


def test_rates_come_from_the_earlier_runs_measured_figures(tmp_path: Path) -> None:
    earlier_run(tmp_path)
    train = cal.site_train_rate(tmp_path, "local")
    assert train is not None
    assert train.value == pytest.approx(est.train_flops(10**6, 5000, 2.0) / 100)
    assert train.source.startswith("earlier run first: 5,000 tokens x 2 epochs on 1 GPU")
    sample = cal.site_sample_rate(tmp_path, "local")
    assert sample is not None and sample.value == pytest.approx(80 / 40)
    assert "earlier run first: 80 completions" in sample.source
    evaluate = cal.site_eval_rate(tmp_path, "local")
    assert evaluate is not None  # 2 x 10 s wall x 2 CPUs over the 80 programs sampled
    assert evaluate.value == pytest.approx(40 / 80)
    assert "80 programs in 40 CPU-s" in evaluate.source


def test_no_rate_from_another_profile_or_from_the_run_itself(tmp_path: Path) -> None:
    folder = earlier_run(tmp_path, profile="other")
    assert cal.site_train_rate(tmp_path, "local") is None
    assert cal.site_sample_rate(tmp_path, "other", exclude=folder) is None
    assert cal.site_eval_rate(tmp_path, "other", exclude=folder) is None


def test_an_estimated_token_count_is_not_calibrated_from(tmp_path: Path) -> None:
    """Without training's counted tokens, a plan made before prepare estimated them."""
    manifest = tmp_path / "first" / "manifest.json"
    update_manifest(manifest, ["plan"], PLAN)
    update_manifest(manifest, ["timing", "train", "1"], _task("00:00", "01:40"))
    assert cal.site_train_rate(tmp_path, "local") is None


def test_the_newest_plan_wins(tmp_path: Path) -> None:
    earlier_run(tmp_path, "b-old")
    newer = earlier_run(tmp_path, "a-new")
    update_manifest(newer / "manifest.json", ["plan", "planned_at"], "2024-06-01T00:00:00")
    rate = cal.site_train_rate(tmp_path, "local")
    assert rate is not None and rate.source.startswith("earlier run a-new")


def test_the_next_plan_on_the_site_says_it_calibrated_from_the_earlier_run(
    tmp_path: Path,
) -> None:
    from apps_hpc.core.config import find_config, load_experiment, parse_sets
    from apps_hpc.launch.planner import make_plan
    from apps_hpc.launch.profiles import load_profile

    earlier_run(tmp_path, profile="example-a100")
    sets = parse_sets([f"root={tmp_path}", "name=second"])
    exp = load_experiment(find_config("experiments", "dscoder_apps"), sets)
    plan = make_plan(exp, load_profile("example-a100"), 8, 1)
    for section in ("training", "sampling", "eval"):
        assert plan[section]["rate_source"].startswith("earlier run first: "), section
    first = load_experiment(
        find_config("experiments", "dscoder_apps"), parse_sets([f"root={tmp_path}", "name=first"])
    )
    own = make_plan(first, load_profile("example-a100"), 8, 1)  # never its own figures
    assert own["training"]["rate_source"].startswith("published run")
