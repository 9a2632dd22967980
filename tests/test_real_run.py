"""The real run as a user does it, from a fresh folder holding what a clone ships
(`configs/`, `apps_hpc/data/mini_apps/`), with the shipped configs' relative paths and
the network cut (`unshare -n` where it works, else the hub endpoint unreachable): every
stage on its own, then `submit pipeline` on the local executor, offline to the report.
The same on the local SLURM is in tests/launch/test_slurm.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SMALL = [
    "--set", "train.overrides.max_steps=2", "--set", "train.overrides.save_steps=2",
    "--set", "sample.n=2", "--set", "sample.max_tokens=8",
]  # fmt: skip
DEMO = "configs/experiments/demo.yaml"


# A new network namespace has only loopback, and it is down: bring it up (torchrun's
# rendezvous and the local executor need it), nothing else exists there.
NO_NETWORK = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "no-network"]


def _unshare_works() -> bool:
    try:
        return subprocess.run([*NO_NETWORK, "true"], capture_output=True).returncode == 0
    except OSError:
        return False


def clone_like(tmp_path: Path) -> Path:
    """What a fresh clone gives a user: the package (with the bundled mini-APPS set) and
    `configs/` (a link into it)."""
    work = tmp_path / "work"
    shutil.copytree(
        REPO / "apps_hpc", work / "apps_hpc", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO / "configs", work / "configs", symlinks=True)
    return work


def offline_cli(work: Path, *args: str, unshare: bool = True) -> subprocess.CompletedProcess[str]:
    """`apps-hpc ARGS` in `work`, with no network: a new network namespace when allowed
    (not for SLURM: its controller is on loopback), and in any case a hub endpoint that
    refuses connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{port}")
    env.pop("HF_HOME", None)
    cmd = [sys.executable, "-m", "apps_hpc", *args]
    if unshare and _unshare_works():
        cmd = [*NO_NETWORK, *cmd]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout


@pytest.mark.slow
def test_every_stage_then_the_pipeline_with_relative_paths_offline(tmp_path: Path) -> None:
    pytest.importorskip("llamafactory")
    if _unshare_works():  # the namespace has no interface but loopback
        links = subprocess.run([*NO_NETWORK, "ip", "-o", "link"], capture_output=True, text=True)
        assert [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]
    work = clone_like(tmp_path)
    ok(offline_cli(work, "tiny-model", "--out", "experiments/tiny-model"))
    fetched = ok(offline_cli(work, "fetch", "--config", DEMO))
    assert fetched.count("is a local path: nothing to fetch") == 2
    exp = work / "experiments" / "demo"
    ok(offline_cli(work, "prepare", "--config", DEMO))
    # --set changes what prepare recorded in experiment.yaml: train and sample say --force
    ok(offline_cli(work, "train", "--config", DEMO, *SMALL[:4], "--force"))
    assert (exp / "train" / "model.safetensors").is_file()
    assert (exp / "report" / "train_batch.json").is_file()
    args = ["--n", "2", "--max-tokens", "8", "-q"]
    model = ["--model", "experiments/demo/train"]
    ok(offline_cli(work, "sample", "--config", DEMO, *model, *args, "--force"))
    samples = "experiments/demo/samples/model.jsonl"
    results = "experiments/demo/results/model.jsonl"
    apps = "apps_hpc/data/mini_apps"
    ok(offline_cli(work, "eval", "-q", "--samples", samples, "--apps", apps, "--out", results))
    table = ok(offline_cli(work, "report", results, "--k", "1,2"))
    assert "| model | 20 (8/6/6) |" in table
    # the whole pipeline, a second experiment under the same relative root
    r = offline_cli(
        work, "submit", "pipeline", "--config", DEMO, "--cluster", "local",
        "--set", "name=demo2", *SMALL,
    )  # fmt: skip
    ok(r)
    summary = (work / "experiments/demo2/report/summary.md").read_text()
    assert "| base | 20 (8/6/6) |" in summary and "| sft | 20 (8/6/6) |" in summary
