"""`apps-hpc fetch` against a real HTTP hub on loopback (tests/fake_hub.py): files land in
the hub folder where the stages look, the manifest has commits and hashes, a second run
asks for nothing, an interrupted download resumes; then the stages read them offline."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps_hpc.provenance.manifest import read_manifest
from apps_hpc.tools.demo import BUNDLED_APPS
from tests.fake_hub import FakeHub, Repo
from tests.helpers import REPO, run_cli

pytest.importorskip("huggingface_hub")

MODEL_COMMIT = "a" * 40
APPS_COMMIT = "b" * 40
BIG = "consolidated.safetensors"  # > 10 MiB: huggingface_hub writes 10 MiB chunks


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def repos(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("hub-repos")
    model = base / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / BIG).write_bytes(random.Random(0).randbytes(24 << 20))
    (model / "pytorch_model.bin").write_bytes(b"not wanted: the repo has safetensors")
    apps = base / "apps"
    apps.mkdir()
    for name in ("train.jsonl", "test.jsonl"):
        shutil.copyfile(BUNDLED_APPS / name, apps / name)
    (apps / "apps.py").write_text("# a loading script: never fetched\n")
    return {
        ("models", "acme/tiny-coder"): Repo(model, MODEL_COMMIT),
        ("datasets", "acme/apps"): Repo(apps, APPS_COMMIT),
    }


@pytest.fixture
def hub(repos: dict) -> Iterator[FakeHub]:
    server = FakeHub(dict(repos)).start()
    yield server
    server.stop()


def experiment(folder: Path) -> Path:
    """An experiment with relative paths, as a user writes one, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    exp = folder / "exp.yaml"
    text = (REPO / "configs/experiments/demo.yaml").read_text()
    text = text.replace("name: demo", "name: x")
    text = text.replace("model: ./experiments/tiny-model", "model: acme/tiny-coder")
    text = text.replace("apps: apps_hpc/data/mini_apps", "apps: acme/apps")
    exp.write_text(text)
    return exp


def fetch(folder: Path, url: str, *extra: str):
    env = dict(os.environ, HF_ENDPOINT=url, HF_HUB_DISABLE_XET="1")
    env.pop("HF_HOME", None)
    return run_cli("fetch", "--config", str(experiment(folder)), *extra, env=env, cwd=folder)


def test_fetch_lands_where_the_stages_look_and_a_rerun_asks_nothing(
    tmp_path: Path, hub: FakeHub, repos: dict
) -> None:
    r = fetch(tmp_path, hub.url)
    assert r.returncode == 0, r.stderr[-3000:]
    snap = tmp_path / "experiments/hub/hub/models--acme--tiny-coder/snapshots" / MODEL_COMMIT
    data = tmp_path / "experiments/hub/hub/datasets--acme--apps/snapshots" / APPS_COMMIT
    assert (snap / "config.json").is_file() and (snap / "model.safetensors").is_file()
    assert not (snap / "pytorch_model.bin").exists()  # one weight format
    assert sorted(p.name for p in data.iterdir()) == ["test.jsonl", "train.jsonl"]
    manifest = read_manifest(tmp_path / "experiments/x/manifest.json")["fetch"]
    assert manifest["model"]["commit"] == MODEL_COMMIT and manifest["model"]["revision"] == "main"
    assert manifest["apps"]["commit"] == APPS_COMMIT
    for name in ("train.jsonl", "test.jsonl"):
        digest = hashlib.sha256((BUNDLED_APPS / name).read_bytes()).hexdigest()
        assert manifest["apps"]["sha256"][name] == digest
    assert f"model: acme/tiny-coder@main = commit {MODEL_COMMIT} (downloaded)" in r.stdout
    asked = len(hub.log)
    again = fetch(tmp_path, hub.url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already fetched, nothing downloaded") == 2
    assert len(hub.log) == asked  # not one request


def test_an_interrupted_download_resumes(tmp_path: Path, hub: FakeHub, repos: dict) -> None:
    hub.truncate_once.add(BIG)
    first = fetch(tmp_path, hub.url)
    errors = [line for line in first.stderr.splitlines() if "error" in line.lower()]
    assert first.returncode == 2 and len(errors) == 1, first.stderr  # and progress bars
    assert errors[0].endswith("run `apps-hpc fetch` again to resume")
    partial = list((tmp_path / "experiments/hub/hub").rglob("*.incomplete"))
    assert partial and partial[0].stat().st_size > 0
    done = partial[0].stat().st_size
    second = fetch(tmp_path, hub.url)
    assert second.returncode == 0, second.stderr[-3000:]
    ranges = [rng for _, _, rng in hub.gets(BIG)]
    assert ranges[0] == "" and ranges[-1] == f"bytes={done}-", ranges
    snap = tmp_path / "experiments/hub/hub/models--acme--tiny-coder/snapshots" / MODEL_COMMIT
    assert (snap / BIG).read_bytes() == (
        repos[("models", "acme/tiny-coder")].folder / BIG
    ).read_bytes()


def test_a_pinned_revision_and_an_unknown_repo(tmp_path: Path, hub: FakeHub) -> None:
    r = fetch(tmp_path, hub.url, "--set", f"fetch.model_revision={MODEL_COMMIT}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"acme/tiny-coder@{MODEL_COMMIT} = commit {MODEL_COMMIT}" in r.stdout
    bad = fetch(tmp_path / "b", hub.url, "--set", "model=acme/no-such-model")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("error: fetch acme/no-such-model@main failed (")


def test_stages_read_the_fetched_folder_offline(tmp_path: Path, hub: FakeHub) -> None:
    assert fetch(tmp_path, hub.url).returncode == 0
    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    exp = str(tmp_path / "exp.yaml")
    r = run_cli("prepare", "--config", exp, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    prompts = tmp_path / "experiments/x/data/prompts.jsonl"
    assert len(prompts.read_text().splitlines()) == 20
    args = ["--engine", "transformers", "--n", "1", "--max-tokens", "4", "-q"]
    r = run_cli("sample", "--config", exp, "--out", "samples/base", *args, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len((tmp_path / "samples/base.jsonl").read_text().splitlines()) == 20


def test_what_is_not_fetched_fails_at_once_in_one_line(tmp_path: Path) -> None:
    exp = str(experiment(tmp_path))
    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    r = run_cli("prepare", "--config", exp, env=env, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    hub_dir = tmp_path / "experiments" / "hub"
    assert r.stderr.startswith(
        f"error: acme/apps is not fetched into {hub_dir}: run `apps-hpc fetch"
    )
    typo = ["sample", "--model", "./experiments/tiny-modle", "--prompts", "p.jsonl", "--out", "s"]
    r = run_cli(*typo, env=env, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"{tmp_path}/experiments/tiny-modle: no such file or directory" in r.stderr
