"""Preflight: `apps-hpc submit` and `apps-hpc doctor --config --cluster` check before
anything is queued. One test per check; each failing case is one line on stderr, exit 2,
and nothing queued or written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from apps_hpc.core.config import load_experiment, parse_sets
from apps_hpc.tools.demo import BUNDLED_APPS
from apps_hpc.train.stage import render
from tests.helpers import REPO, run_cli

DEMO = REPO / "configs/experiments/demo.yaml"


def submit(tmp_path: Path, *sets: str, cluster: str = "local", model: Path | None = None):
    """`submit pipeline` on the demo experiment rooted in tmp_path (local executor)."""
    args = ["submit", "pipeline", "--config", str(DEMO), "--cluster", cluster]
    base = [f"root={tmp_path}/exp", f"apps={BUNDLED_APPS}"]
    base += [f"model={model}"] if model else []
    for item in [*base, *sets]:
        args += ["--set", item]
    return run_cli(*args, cwd=tmp_path)


def refused(r, tmp_path: Path, starts: str) -> None:
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(starts), r.stderr
    assert not (tmp_path / "exp" / "demo").exists()  # nothing queued, nothing written


def test_apps_not_fetched(tmp_path: Path, tiny_model_dir: Path) -> None:
    r = submit(tmp_path, "apps=codeparrot/apps", model=tiny_model_dir)
    refused(r, tmp_path, "error: apps: codeparrot/apps is not fetched into ")
    assert "run `apps-hpc fetch --config EXP`" in r.stderr


def test_apps_test_problems_without_tests(tmp_path: Path, tiny_model_dir: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    shutil.copyfile(BUNDLED_APPS / "train.jsonl", apps / "train.jsonl")
    rows = [json.loads(x) for x in (BUNDLED_APPS / "test.jsonl").read_text().splitlines()]
    rows[0]["input_output"] = json.dumps({"inputs": [], "outputs": []})
    (apps / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = submit(tmp_path, f"apps={apps}", model=tiny_model_dir)
    refused(r, tmp_path, "error: apps: ")
    assert r.stderr.rstrip().endswith("1 test problems have no tests")


def test_published_apps_counts(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A fetched codeparrot/apps that is not the full set (here: 20 rows) is refused."""
    repo = tmp_path / "exp/hub/hub/datasets--codeparrot--apps"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text("c" * 40)
    shutil.copytree(BUNDLED_APPS, repo / "snapshots" / ("c" * 40))
    r = submit(tmp_path, "apps=codeparrot/apps", model=tiny_model_dir)
    refused(r, tmp_path, "error: apps: ")
    assert "20 test (8/6/6): the published run had 728/2727/310" in r.stderr


def test_model_without_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").unlink()
    r = submit(tmp_path, model=model)
    refused(r, tmp_path, f"error: model: {model}: no weights")


def test_model_path_that_does_not_exist(tmp_path: Path) -> None:
    r = submit(tmp_path, model=tmp_path / "no-such-model")
    refused(r, tmp_path, f"error: model: {tmp_path}/no-such-model: no such file or directory")


def test_image_missing(tmp_path: Path, tiny_model_dir: Path) -> None:
    site = tmp_path / "site.yaml"
    text = (REPO / "configs/clusters/local.yaml").read_text()
    site.write_text(text.replace("image: null", f"image: {tmp_path}/none.sif"))
    r = submit(tmp_path, model=tiny_model_dir, cluster=str(site))
    refused(r, tmp_path, "error: image: ")
    assert f"image {tmp_path}/none.sif does not exist" in r.stderr


def test_root_not_writable(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "a-file").write_text("")
    r = submit(tmp_path, f"root={tmp_path}/a-file/exp", model=tiny_model_dir)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    want = f"error: experiment root: {tmp_path}/a-file/exp: {tmp_path}/a-file is not a writable"
    assert r.stderr.startswith(want)


def test_global_batch_against_the_gpu_count(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The published recipe (2 x 16 x 8 = 256) on a 4-GPU profile: a warning, and
    train.global_batch keeps 256 by choosing the accumulation (or is refused)."""
    site = tmp_path / "four.yaml"
    text = (REPO / "configs/clusters/local.yaml").read_text()
    site.write_text(text.replace("gpus_per_node: 0", "gpus_per_node: 4"))
    published = ["train.overrides={}", "train.nproc_per_node=null"]
    r = run_cli(
        "doctor", "--config", str(DEMO), "--cluster", str(site),
        *[x for s in [f"root={tmp_path}/exp", f"model={tiny_model_dir}", f"apps={BUNDLED_APPS}",
                      *published] for x in ("--set", s)],
    )  # fmt: skip
    assert "[WARN] global batch: 128 = 2 per device x 16 accumulation x 4 GPUs; the published" in (
        r.stdout
    )
    bad = submit(
        tmp_path, *published, "train.global_batch=100", model=tiny_model_dir, cluster=str(site)
    )
    refused(bad, tmp_path, "error: global batch: train.global_batch 100 is not a multiple of 2")
    exp = load_experiment(DEMO, parse_sets([*published, "train.global_batch=256"]))
    base = yaml.safe_load((REPO / "configs/llamafactory/dscoderinst_full_sft_ds3.yaml").read_text())
    cfg = render(exp, base, None, None, "m", world=4)
    assert (cfg["per_device_train_batch_size"], cfg["gradient_accumulation_steps"]) == (2, 32)


def test_doctor_runs_the_preflight_and_creates_nothing(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    root = tmp_path / "not" / "yet"
    sets = [f"root={root}", f"model={tiny_model_dir}", f"apps={BUNDLED_APPS}"]
    r = run_cli(
        "doctor", "--config", str(DEMO), "--cluster", "local",
        *[x for s in sets for x in ("--set", s)],
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("apps", "model", "global batch", "experiment root"):
        assert f"[ok  ] {name}: " in r.stdout, name
    assert "[skip] image: " in r.stdout and "[skip] controller: " in r.stdout
    assert not (tmp_path / "not").exists()
    r = run_cli("doctor", "--config", str(DEMO), "--cluster", "local", "--set", "model=./nope")
    assert r.returncode == 1 and "[FAIL] model: " in r.stdout and "nope: no such file" in r.stdout


@pytest.mark.parametrize("cluster", ["slurm-default"])
def test_root_under_tmp_warns_for_slurm(tmp_path: Path, tiny_model_dir: Path, cluster: str) -> None:
    sets = [f"root={tmp_path}/exp", f"model={tiny_model_dir}", f"apps={BUNDLED_APPS}"]
    r = run_cli(
        "doctor", "--config", str(DEMO), "--cluster", cluster,
        *[x for s in sets for x in ("--set", s)],
    )  # fmt: skip
    assert f"[WARN] experiment root: {tmp_path}/exp is under /tmp: compute nodes" in r.stdout
