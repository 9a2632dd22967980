"""What ran a stage: the git commit of a real checkout (and its dirty flag), the image's
variables when there is no checkout, no crash without git or with a hanging one, the
lock's hash, versions read without importing torch, and the model and data revisions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps_hpc.hub.paths import DATASET, MODEL
from apps_hpc.provenance import identity
from apps_hpc.provenance.stamps import file_digest

IMAGE_ENV = {
    "APPS_HPC_GIT_SHA": "0123abc",
    "APPS_HPC_GIT_DIRTY": "true",
    "APPS_HPC_IMAGE": "apps-hpc:0.1.0-0123abc",
    "APPS_HPC_LOCK_SHA": "feedfacecafebeef",
    "APPTAINER_CONTAINER": "/lustre/containers/apps-hpc.sif",
}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    """A git repository holding a package folder and a lock, committed; returns the
    package folder."""
    repo = tmp_path / "repo"
    package = repo / "apps_hpc"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (package / "data").mkdir()
    (package / "data" / "requirements-cp310.lock").write_text("torch==2.1.2\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    return package


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without the image's variables, plus `extra`."""
    ours = (*IMAGE_ENV, "SINGULARITY_CONTAINER")
    return {**{k: v for k, v in os.environ.items() if k not in ours}, **extra}


def test_a_checkout_gives_its_head_and_dirty_flips_when_a_tracked_file_changes(
    checkout: Path,
) -> None:
    head = _git(checkout.parent, "rev-parse", "HEAD")
    clean = identity.software(checkout, _env(APPS_HPC_GIT_SHA="not-this"))
    assert clean["git"] == {"commit": head, "dirty": False, "from": "git"}  # git wins
    (checkout / "notes.txt").write_text("untracked\n")  # untracked files do not count
    assert identity.software(checkout, _env())["git"]["dirty"] is False
    (checkout / "__init__.py").write_text('__version__ = "0.1.1"\n')
    assert identity.software(checkout, _env())["git"] == {
        "commit": head,
        "dirty": True,
        "from": "git",
    }
    _git(checkout.parent, "commit", "-q", "-am", "second")
    again = identity.software(checkout, _env())["git"]
    assert again["commit"] != head and again["dirty"] is False


def test_without_a_checkout_the_image_variables_say_what_ran(tmp_path: Path) -> None:
    package = tmp_path / "opt" / "apps_hpc"
    package.mkdir(parents=True)
    sw = identity.software(package, _env(**IMAGE_ENV))
    assert sw["git"] == {"commit": "0123abc", "dirty": True, "from": "APPS_HPC_GIT_SHA"}
    assert sw["image"] == "apps-hpc:0.1.0-0123abc"
    assert sw["sif"] == "/lustre/containers/apps-hpc.sif"
    assert sw["lock"] == "feedfacecafebeef"
    bare = identity.software(package, _env())
    assert bare["git"] is None and bare["image"] is None and bare["sif"] is None
    facts = dict(identity.facts({"software": bare}))
    assert facts["git commit"].startswith("unknown")
    assert facts["image"] == "none (not run in the container)"


def test_no_git_or_a_hanging_git_gives_no_commit_and_no_error(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    sw = identity.software(checkout, _env(PATH=str(empty)))  # git is not found
    assert sw["git"] is None and sw["lock"] is not None
    baked = identity.software(checkout, _env(PATH=str(empty), APPS_HPC_GIT_SHA="abc"))
    assert baked["git"] == {"commit": "abc", "dirty": None, "from": "APPS_HPC_GIT_SHA"}
    hanging = tmp_path / "hanging"
    hanging.mkdir()
    (hanging / "git").write_text("#!/bin/sh\nsleep 30\n")
    (hanging / "git").chmod(0o755)
    monkeypatch.setattr(identity, "GIT_TIMEOUT_S", 0.3)
    assert identity.software(checkout, _env(PATH=f"{hanging}:/usr/bin:/bin"))["git"] is None


def test_the_lock_hash_is_the_lock_files_digest_unless_the_image_says(
    checkout: Path, tmp_path: Path
) -> None:
    lock = checkout / "data" / "requirements-cp310.lock"
    assert identity.lock_hash(checkout, _env()) == file_digest(lock)
    assert len(file_digest(lock)) == 16
    assert identity.lock_hash(checkout, _env(APPS_HPC_LOCK_SHA="0" * 16)) == "0" * 16
    loose = tmp_path / "site-packages" / "apps_hpc"
    loose.mkdir(parents=True)
    assert identity.lock_hash(loose, _env()) is None


def test_versions_come_without_importing_torch() -> None:
    code = (
        "import sys, apps_hpc.provenance.identity as i; sw = i.software(); "
        "print(sorted(sw['packages']), 'torch' in sys.modules, 'vllm' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("]")[1].split() == ["False", "False"]
    assert "'llamafactory', 'torch', 'transformers', 'vllm'" in done.stdout
    assert identity.installed("no-such-distribution-here") is None


def _snapshot(hub: Path, kind: str, repo: str, commit: str, branch: str = "main") -> Path:
    folder = hub / "hub" / f"{kind}s--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / branch).write_text(commit)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    return snap


def test_hub_models_and_data_are_recorded_by_revision_and_commit(tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    snap = _snapshot(hub, "model", "owner/coder", "c0ffee", branch="v1")
    fetched = {"repo": "owner/coder", "revision": "v1", "commit": "c0ffee", "path": str(snap)}
    # a hub id (the experiment's config: training) is looked up in the hub folder
    rec = identity.source("owner/coder", MODEL, fetched, "v1", hub)
    assert rec == {"repo": "owner/coder", "revision": "v1", "commit": "c0ffee"}
    assert identity.source("owner/coder", MODEL, None, "v2", hub)["commit"] is None
    # the fetched snapshot a stage config names: its commit, and the revision fetch asked for
    assert identity.source(str(snap), MODEL, fetched) == rec
    data = _snapshot(hub, "dataset", "org/apps", "d00d")
    assert identity.source(str(data), DATASET, fetched) == {
        "repo": "org/apps",
        "revision": None,
        "commit": "d00d",
    }
    assert identity.describe_source(rec) == "owner/coder @ v1 = commit c0ffee"


def test_local_folders_are_recorded_by_a_digest_of_their_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights")
    first = identity.source(str(model), MODEL)
    assert first["path"] == str(model) and len(first["digest"]) == 16
    (model / "notes.md").write_text("not a model file")  # not part of a model's digest
    assert identity.source(str(model), MODEL) == first
    (model / "model.safetensors").write_bytes(b"retrained weights")
    assert identity.source(str(model), MODEL)["digest"] != first["digest"]
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "test.jsonl").write_text("{}\n")
    before = identity.source(str(apps), DATASET)["digest"]
    (apps / "test.jsonl").write_text('{"problem_id": 1}\n')
    assert identity.source(str(apps), DATASET)["digest"] != before
    missing = identity.source(str(tmp_path / "gone"), MODEL)
    assert missing["digest"] is None and "missing" in identity.describe_source(missing)
    assert "(local, files digest " in identity.describe_source(first)


def test_the_facts_of_a_record_in_the_reports_order(tmp_path: Path) -> None:
    sw = identity.software(tmp_path, _env(**IMAGE_ENV))
    record = {
        "software": sw,
        "sources": {"model": {"repo": "o/m", "revision": "main", "commit": "abc"}},
        "experiment_yaml": "1234567890abcdef",
    }
    facts = identity.facts(record)
    labels = [label for label, _ in facts]
    assert labels[:3] == ["image", "lock hash", "git commit"]
    assert labels[-4:] == ["model revision", "data revision", "experiment.yaml sha256", "host"]
    values = dict(facts)
    assert values["image"] == "apps-hpc:0.1.0-0123abc, SIF /lustre/containers/apps-hpc.sif"
    assert values["git commit"] == "0123abc, uncommitted changes (from APPS_HPC_GIT_SHA)"
    assert values["model revision"] == "o/m @ main = commit abc"
    assert values["data revision"] is None  # this stage read no data
