"""experiment.yaml is the experiment's resolved config: a stage started with a config
that differs from it in a key that changes results stops (one line naming the keys),
unless --force (recorded in manifest.json) or a new experiment name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from apps_hpc.core.config import find_config, load_experiment, parse_sets
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.provenance.manifest import manifest_exists, read_manifest
from apps_hpc.provenance.resolved import check_resolved
from apps_hpc.tools.demo import BUNDLED_APPS
from tests.helpers import CPU_EXPERIMENT, pipeline_args, run_cli


def _exp(tmp_path: Path, shared: Path) -> Path:
    path = tmp_path / "e.yaml"
    path.write_text(f"name: x\nroot: {tmp_path}\napps: {shared}\nmodel: acme/m1\n")
    return path


def test_prepare_writes_experiment_yaml_then_a_different_model_stops_train(
    shared_apps: Path, tmp_path: Path
) -> None:
    exp = _exp(tmp_path, shared_apps)
    assert run_cli("prepare", "--config", str(exp)).returncode == 0
    resolved = yaml.safe_load((tmp_path / "x" / "experiment.yaml").read_text())
    assert resolved["model"] == "acme/m1" and resolved["sample"]["n"] == 10
    r = run_cli("train", "--config", str(exp), "--set", "model=acme/m2", "--set", "sample.n=4")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert (
        "experiment.yaml: this config differs in model ('acme/m1' -> 'acme/m2'), sample.n (10 -> 4)"
        in (r.stderr)
    )
    assert "pass --force" in r.stderr and "--set name=NEW" in r.stderr
    assert yaml.safe_load((tmp_path / "x" / "experiment.yaml").read_text())["model"] == "acme/m1"


def test_force_rewrites_and_is_recorded(shared_apps: Path, tmp_path: Path) -> None:
    exp = _exp(tmp_path, shared_apps)
    assert run_cli("prepare", "--config", str(exp)).returncode == 0
    exp.write_text(exp.read_text().replace("model: acme/m1", "model: acme/m2"))
    assert run_cli("prepare", "--config", str(exp), "--force").returncode == 0
    assert yaml.safe_load((tmp_path / "x" / "experiment.yaml").read_text())["model"] == "acme/m2"
    forced = read_manifest(tmp_path / "x" / "manifest.json")["forced"]
    [(_, entry)] = forced.items()
    assert entry["keys"] == ["model"]


def test_keys_that_change_no_result_and_a_new_name_go_on(shared_apps: Path, tmp_path: Path) -> None:
    exp = load_experiment(_exp(tmp_path, shared_apps))
    check_resolved(exp)
    same = load_experiment(_exp(tmp_path, shared_apps), parse_sets(["sample.gpus_per_model=2"]))
    check_resolved(same)  # no error: how the work is spread changes no result
    other = load_experiment(_exp(tmp_path, shared_apps), parse_sets(["name=y", "model=m9"]))
    assert check_resolved(other) == tmp_path / "y" / "experiment.yaml"


def test_resubmitting_with_another_model_stops_before_anything_runs(tmp_path: Path) -> None:
    first = load_experiment(CPU_EXPERIMENT, parse_sets([f"root={tmp_path}", "model=acme/a"]))
    check_resolved(first)
    r = run_cli(*pipeline_args(tmp_path, Path("acme/b")), "--cluster", "local")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "differs in model ('acme/a' -> 'acme/b')" in r.stderr
    assert not manifest_exists(tmp_path / "cpu" / "manifest.json")


def test_demo_with_other_apps_after_a_demo_stops(shared_apps: Path, tmp_path: Path) -> None:
    """`apps-hpc demo --apps ../shared/apps` after `make demo`: not the mini-APPS table."""
    sets = [f"root={tmp_path}", f"model={tmp_path / 'tiny-model'}", f"apps={BUNDLED_APPS}"]
    check_resolved(load_experiment(find_config("experiments", "demo"), parse_sets(sets)))
    (tmp_path / "tiny-model").mkdir()
    (tmp_path / "tiny-model" / "config.json").write_text("{}")  # the demo's "already built"
    r = run_cli("demo", "--root", str(tmp_path), "--cluster", "local", "--apps", str(shared_apps))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    assert f"differs in apps ('{BUNDLED_APPS}' -> '{shared_apps}')" in r.stderr


def test_a_key_added_since_experiment_yaml_was_written_counts_as_its_default(
    shared_apps: Path, tmp_path: Path
) -> None:
    """An experiment.yaml written before a section existed (`eval`, `sample.*` keys added
    later) is not "a config that differs": the new keys' defaults keep what ran."""
    exp = load_experiment(_exp(tmp_path, shared_apps))
    path = check_resolved(exp)
    old = yaml.safe_load(path.read_text())
    del old["eval"], old["sample"]["memory_utilization"]
    path.write_text(yaml.safe_dump(old))
    check_resolved(load_experiment(_exp(tmp_path, shared_apps)))  # no error
    changed = load_experiment(_exp(tmp_path, shared_apps), parse_sets(["eval.all_tests=true"]))
    with pytest.raises(AppsHpcError, match=r"differs in eval\.all_tests \(False -> True\)"):
        check_resolved(changed)
