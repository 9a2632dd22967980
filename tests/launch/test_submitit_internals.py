"""The submitit internals `apps_hpc/launch/slurm.py` relies on. These fail loudly when a
submitit upgrade changes them: then fix slurm.py (and the pin in pyproject.toml)."""

from __future__ import annotations

import inspect
import os
import pickle
import sys
from pathlib import Path

import submitit

from apps_hpc.launch import slurm


def test_sbatch_text_comes_from_submitits_private_renderer(tmp_path: Path) -> None:
    from submitit.slurm import slurm as submitit_slurm

    params = inspect.signature(submitit_slurm._make_sbatch_string).parameters
    assert {"command", "folder", "map_count", "additional_parameters"} <= set(params)
    executor = submitit.SlurmExecutor(folder=tmp_path, python=sys.executable)
    assert isinstance(executor._submitit_command_str, str)
    executor.update_parameters(job_name="x", cpus_per_task=3, time=7, gres="gpu:1")
    text = slurm.sbatch_text(executor, array=4)
    assert text.startswith("#!/bin/bash")
    for line in ("#SBATCH --cpus-per-task=3", "#SBATCH --gres=gpu:1", "#SBATCH --array=0-3"):
        assert line in text


def test_a_local_jobs_outcome_is_read_from_its_result_pickle(tmp_path: Path) -> None:
    executor = submitit.LocalExecutor(folder=tmp_path)
    executor.update_parameters(timeout_min=1)
    good = executor.submit(int, "3")
    bad = executor.submit(int, "x")
    good.wait(), bad.wait()
    assert slurm.local_job_state(tmp_path, str(good.job_id)) == "COMPLETED"
    assert slurm.local_job_state(tmp_path, str(bad.job_id)) == "FAILED"
    outcome, _ = pickle.loads(good.paths.result_pickle.read_bytes())
    assert outcome == "success"
    out, err = slurm.job_logs(tmp_path, str(good.job_id))
    assert (out, err) == (good.paths.stdout, good.paths.stderr)


def test_a_job_that_left_nothing_is_running_or_unknown(tmp_path: Path) -> None:
    assert slurm.local_job_state(tmp_path, str(os.getpid())) == "RUNNING"
    assert slurm.local_job_state(tmp_path, "999999999") == "UNKNOWN"


def test_array_states_combine_worst_first() -> None:
    assert slurm.combine(["COMPLETED", "RUNNING", "FAILED"]) == "FAILED"
    assert slurm.combine(["COMPLETED", "PENDING"]) == "PENDING"
    assert slurm.combine(["COMPLETED", "COMPLETED"]) == "COMPLETED"
    assert slurm.combine([]) == "UNKNOWN"
    assert slurm.is_failure("OUT_OF_MEMORY") and not slurm.is_failure("CANCELLED")
    assert slurm.master_id("123_4") == "123"


def test_ping_without_a_slurm_configuration_answers_at_once(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "missing.conf"))
    up, said = slurm.ping(timeout_s=5)
    assert not up
    assert "missing.conf does not exist" in said or "scontrol not found" in said
