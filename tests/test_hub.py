"""Local paths and hub ids: how a `model` / `apps` value is read, made absolute once,
and found in the hub folder (huggingface_hub's cache layout), offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apps_hpc.core.config import load_experiment, parse_sets
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.evaluate.stage import EvalConfig
from apps_hpc.experiment.lifecycle import resolve
from apps_hpc.experiment.stage_configs import eval_config, prepare_config
from apps_hpc.hub import paths as hub


def test_hub_ids_and_local_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert hub.is_hub_id("deepseek-ai/deepseek-coder-6.7b-instruct")
    assert hub.is_hub_id("experiments/tiny-model")  # shaped like one, and not a file
    (tmp_path / "experiments" / "tiny-model").mkdir(parents=True)
    assert not hub.is_hub_id("experiments/tiny-model")  # it exists: a local path
    for path in ("./x/y", "../x/y", "/x/y", "~/x", "a/b/c", "model"):
        assert not hub.is_hub_id(path), path
    assert hub.absolute("./x/y") == str(tmp_path / "x" / "y")
    assert hub.absolute("codeparrot/apps") == "codeparrot/apps"


def test_snapshot_lookup_by_branch_or_commit(tmp_path: Path) -> None:
    repo = hub.repo_folder(tmp_path, "acme/m", hub.MODEL)
    assert repo == tmp_path / "hub" / "models--acme--m"
    (repo / "snapshots" / ("c" * 40)).mkdir(parents=True)
    assert hub.snapshot(tmp_path, "acme/m", hub.MODEL) is None  # no refs/main yet
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40 + "\n")
    assert hub.snapshot(tmp_path, "acme/m", hub.MODEL) == repo / "snapshots" / ("c" * 40)
    assert hub.snapshot(tmp_path, "acme/m", hub.MODEL, "c" * 40) == repo / "snapshots" / ("c" * 40)
    assert hub.local("acme/m", hub.MODEL, hub=tmp_path) == repo / "snapshots" / ("c" * 40)
    with pytest.raises(
        AppsHpcError, match=r"acme/data is not fetched into .*: run `apps-hpc fetch"
    ):
        hub.local("acme/data", hub.DATASET, hub=tmp_path)
    with pytest.raises(AppsHpcError, match=r"/nope/x: no such file or directory"):
        hub.local("/nope/x", hub.MODEL, hub=tmp_path)


def test_a_snapshot_folder_names_its_repository_and_commit(tmp_path: Path) -> None:
    for repo_id, kind in (("acme/m", hub.MODEL), ("codeparrot/apps", hub.DATASET)):
        snap = hub.repo_folder(tmp_path, repo_id, kind) / "snapshots" / ("c" * 40)
        assert hub.parse_snapshot(snap) == (repo_id, kind, "c" * 40)
        assert hub.parse_snapshot(str(snap / "sub")) is None
    assert hub.parse_snapshot(tmp_path / "experiments" / "demo" / "train") is None
    assert hub.parse_snapshot(tmp_path / "spaces--a--b" / "snapshots" / "c") is None


def test_offline_env_is_one_place() -> None:
    env = hub.offline_env(Path("/lustre/x/hub"))
    assert env == {
        "HF_HOME": "/lustre/x/hub",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }


def test_experiment_paths_resolve_once_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exp = load_experiment(Path("dscoder_apps"))
    assert exp.root == str(tmp_path / "experiments") and exp.hub_dir == tmp_path / "experiments/hub"
    assert exp.model == "deepseek-ai/deepseek-coder-6.7b-instruct" and exp.apps == "codeparrot/apps"
    assert exp.train.llamafactory == "configs/llamafactory/dscoderinst_full_sft_ds3.yaml"
    own = tmp_path / "lf.yaml"
    own.write_text("stage: sft\n")
    exp = load_experiment(
        Path("dscoder_apps"), parse_sets(["train.llamafactory=lf.yaml", "apps=./a"])
    )
    assert exp.train.llamafactory == str(own) and exp.apps == str(tmp_path / "a")
    # a fetched hub id becomes its snapshot in the stage configs
    snap = hub.repo_folder(exp.hub_dir, "codeparrot/apps", hub.DATASET) / "snapshots" / ("d" * 40)
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("d" * 40)
    exp = load_experiment(Path("dscoder_apps"))
    assert prepare_config(exp).apps == str(snap) and eval_config(exp, "sft").apps == snap


def test_command_line_paths_are_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = EvalConfig(samples=Path("s.jsonl"), apps=Path("codeparrot/apps"), out=Path("r/o.jsonl"))
    cfg = resolve(cfg)
    assert cfg.samples == tmp_path / "s.jsonl" and cfg.out == tmp_path / "r" / "o.jsonl"
    assert cfg.apps == Path("codeparrot/apps")  # a hub id stays one
    assert os.path.isabs(resolve(EvalConfig(Path("s"), Path("./a"), Path("o"))).apps)
