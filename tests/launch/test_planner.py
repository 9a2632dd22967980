"""`apps-hpc plan` through the CLI: the published experiment on the example profile."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from click.testing import CliRunner

from apps_hpc.cli import cli
from apps_hpc.core.config import find_config
from apps_hpc.provenance.manifest import manifest_exists

PUBLISHED_TRAIN_S = 8 * 3600 + 58 * 60 + 33


def _plan(tmp_path: Path, *args: str) -> tuple[int, str]:
    base = ["plan", "--config", "dscoder_apps", "--set", f"root={tmp_path}", "--no-queue"]
    result = CliRunner().invoke(cli, [*base, *args])
    return result.exit_code, result.output


def test_the_published_run_planned_on_its_own_profile(tmp_path: Path) -> None:
    code, out = _plan(tmp_path, "--cluster", "example-a100", "--format", "json")
    assert code == 0, out
    plan = json.loads(out[out.index("{") :])
    train = plan["training"]
    assert abs(train["seconds"] / PUBLISHED_TRAIN_S - 1) < 0.05  # the arithmetic, checked
    assert train["gpus"] == 8 and train["params"] > 6.7e9
    assert train["memory"]["gpu_mem_gib"] == 40 and train["memory"]["zero"] == 3
    assert train["memory"]["verdict"] == "fits"
    assert plan["sampling"]["seconds_per_model"] == 16 * 60 + 35
    assert plan["eval"]["programs_per_model"] == 3765 * 10
    assert not manifest_exists(tmp_path / "dscoder-apps" / "manifest.json")  # nothing submitted


def test_the_text_has_one_table_per_stage(tmp_path: Path) -> None:
    code, out = _plan(tmp_path, "--cluster", "example-a100")
    assert code == 0, out
    for title in ("Training", "Memory per GPU", "Sampling", "Eval", "Sources"):
        assert f"\n{title}" in out
    assert "wall time                8h58m33s" in out


def test_one_40g_gpu_needs_offload(tmp_path: Path) -> None:
    profile = yaml.safe_load(find_config("clusters", "example-a100").read_text())
    profile.update(gpus_per_node=1)
    path = tmp_path / "one-gpu.yaml"
    path.write_text(yaml.safe_dump(profile))
    code, out = _plan(tmp_path, "--cluster", str(path), "--format", "json")
    assert code == 0, out
    plan = json.loads(out[out.index("{") :])
    assert plan["training"]["memory"]["verdict"] == "fits with offload"
    assert plan["training"]["seconds"] > 7 * PUBLISHED_TRAIN_S  # one GPU, not eight


def test_the_queue_asks_slurm_for_every_job_of_the_demo_pipeline(
    slurm_cluster: object, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """`sbatch --test-only` on the scripts `submit pipeline` would submit: one scheduler
    estimate per job, and no job queued."""
    from tests.helpers import CPU_EXPERIMENT, run_cli

    args = ["plan", "--config", str(CPU_EXPERIMENT), "--cluster", "slurm-default"]
    args += ["--set", f"root={tmp_path}", "--set", f"model={tiny_model_dir}", "--format", "json"]
    result = run_cli(*args, check=True)
    plan = json.loads(result.stdout)
    jobs = [q["job"] for q in plan["queue"]]
    assert jobs[:2] == ["prepare", "train"] and "report" in jobs and "eval/sft" in jobs
    for q in plan["queue"]:
        assert "to start at" in q["estimate"], q
    assert plan["training"]["memory"]["verdict"] == "no GPU in the profile"
    squeue = subprocess.run(
        ["squeue", "-h", "-n", "apps-hpc-train"], capture_output=True, text=True
    )
    assert squeue.stdout.strip() == ""  # --test-only queued nothing


def _one_gpu_profile(tmp_path: Path) -> Path:
    profile = yaml.safe_load(find_config("clusters", "example-a100").read_text())
    profile.update(gpus_per_node=1)
    path = tmp_path / "one-gpu.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def test_submitting_a_recipe_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    """ZeRO-3 without offload on one 40 GB GPU: 18 bytes per parameter do not fit; the
    refusal is one line that names the override."""
    args = ["submit", "pipeline", "--config", "dscoder_apps", "--dry-run"]
    args += ["--cluster", str(_one_gpu_profile(tmp_path)), "--set", f"root={tmp_path}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: memory per GPU: ZeRO-3 (none offload):")
    assert "--set train.memory_check=false" in last
    overridden = CliRunner().invoke(cli, [*args, "--set", "train.memory_check=false"])
    assert "warning: memory per GPU" in overridden.output
    assert "error: memory per GPU" not in overridden.output


def test_doctor_runs_the_same_memory_check(tmp_path: Path) -> None:
    args = ["doctor", "--config", "dscoder_apps", "--set", f"root={tmp_path}"]
    result = CliRunner().invoke(cli, [*args, "--cluster", str(_one_gpu_profile(tmp_path))])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "memory per GPU" in line]
    assert len(lines) == 1 and "does not fit" in lines[0]
    assert "--set train.memory_check=false" in lines[0]
    fits = CliRunner().invoke(cli, [*args, "--cluster", "example-a100"])
    assert any(
        "memory per GPU" in line and "does not fit" not in line for line in fits.output.splitlines()
    )
