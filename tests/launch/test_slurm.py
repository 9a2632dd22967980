"""The launchers against a real SLURM (slurm/local-cluster.sh): job arrays, afterok
chains, a failing stage, preemption and requeue, GPU binding, the sbatch fallbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from apps_hpc.provenance.manifest import read_manifest
from tests.helpers import (
    CPU_EXPERIMENT,
    REPO,
    pipeline_args,
    read_jsonl,
    require,
    run_cli,
    wait_for,
)

EXP = CPU_EXPERIMENT

pytestmark = pytest.mark.usefixtures("slurm_cluster")


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, check=check)


def _samples(shared: Path, out: Path, slow: bool = False) -> Path:
    """The first solutions of the real test rows, plus a wrong program each; `slow`
    adds a program that burns about a second of CPU per problem."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.2:\n    pass"
    with out.open("w") as fh:
        for line in (shared / "test-sample.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row["solutions"]:
                codes = (
                    json.loads(row["solutions"])[:2] + ["print('no')"] + ([burn] if slow else [])
                )
                fh.write(
                    json.dumps(
                        {
                            "problem_id": row["problem_id"],
                            "split": "test",
                            "difficulty": row["difficulty"],
                            "model": "m",
                            "codes": codes,
                        }
                    )
                    + "\n"
                )
    return out


def _status(root: Path) -> dict[str, str]:
    out = _cli("status", str(root)).stdout.splitlines()[1:]
    return {line.split()[0]: line for line in out if line and not line.startswith("stage ")}


def test_eval_job_array_on_real_rows(shared_apps: Path, tmp_path: Path) -> None:
    samples = _samples(shared_apps, tmp_path / "samples.jsonl")
    out = tmp_path / "r" / "results.jsonl"
    _cli(
        "submit",
        "eval",
        "--cluster",
        "slurm-default",
        "--wait",
        "--shards",
        "2",
        "--samples",
        str(samples),
        "--apps",
        str(shared_apps / "test-sample.jsonl"),
        "--out",
        str(out),
        "--timeout",
        "2",
    )
    local = tmp_path / "local.jsonl"
    _cli(
        "eval",
        "-q",
        "--samples",
        str(samples),
        "--apps",
        str(shared_apps / "test-sample.jsonl"),
        "--out",
        str(local),
        "--timeout",
        "2",
    )
    by_id = {r["problem_id"]: r["verdicts"] for r in read_jsonl(local)}
    assert {r["problem_id"]: r["verdicts"] for r in read_jsonl(out)} == by_id
    assert len(list((tmp_path / "r" / "results").glob("shard-*.jsonl"))) == 2
    status = _status(tmp_path / "r")
    assert "COMPLETED" in status["eval"] and "9/9" in status["eval"]
    assert "COMPLETED" in status["merge-eval"]


def _sacct_times(ids: list[str]) -> dict[str, tuple[datetime, datetime]]:
    """(Start, End) of each job or array task (`123_0`) by id, from sacct (1 s resolution)."""
    masters = sorted({i.split("_")[0] for i in ids})
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,Start,End,State", "-j", ",".join(masters)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    times = {}
    for line in out.splitlines():
        job, start, end, _ = line.split("|")
        times[job] = (datetime.fromisoformat(start), datetime.fromisoformat(end))
    return times


def check_streamed_on_slurm(jobs: dict[str, Any], model: str, folder: Path) -> None:
    """SLURM was told to stream (the eval array's sbatch script depends on the sampling
    array with aftercorr) and did: from sacct, eval task i started at or after sampling
    task i ended, and eval task 0 started before the last sampling task ended (the
    profile runs one sampling task at a time, so the shards end apart)."""
    sample, judge = jobs[f"sample/{model}"]["ids"], jobs[f"eval/{model}"]["ids"]
    scripts = [p.read_text() for p in folder.glob("*_submission.sh")]
    (script,) = [s for s in scripts if f"--job-name=apps-hpc-eval-{model}" in s]
    assert f"--dependency=aftercorr:{sample[0].split('_')[0]}" in script, script
    times = _sacct_times(sample + judge)
    assert len(sample) == len(judge) == 2, (sample, judge)
    for s, e in zip(sample, judge, strict=True):
        assert times[e][0] >= times[s][1], (model, s, times[s], e, times[e])
    last_sample_end = max(times[s][1] for s in sample)
    ahead = (last_sample_end - times[judge[0]][0]).total_seconds()
    print(f"{model}: eval task 0 started {ahead:.0f} s before the last sampling task ended")
    assert ahead > 0, (model, {i: times[i] for i in sample + judge})


@pytest.mark.slow
def test_pipeline_on_slurm(tmp_path: Path, tiny_model_dir: Path, shared_apps: Path) -> None:
    """The demo pipeline on SLURM with 2 sampling shards (eval defaults to as many: it
    streams, `aftercorr`): sacct shows the order, and `status` both arrays' progress."""
    pytest.importorskip("llamafactory")
    # slurm-default, one CPU per job and one task of an array at a time (sbatch
    # --array=0-1%1): sampling task 1 runs while eval task 0 judges task 0's programs
    profile = tmp_path / "one-at-a-time.yaml"
    text = (REPO / "configs/clusters/slurm-default.yaml").read_text()
    text = text.replace("array_parallelism: null", "array_parallelism: 1")
    profile.write_text(text.replace("cpus_per_node: 2 ", "cpus_per_node: 1 "))
    _cli(
        *pipeline_args(tmp_path, tiny_model_dir, shared_apps),
        "--cluster",
        str(profile),
        "--wait",
        "--sample-shards",
        "2",
    )
    exp = tmp_path / "cpu"
    summary = (exp / "report" / "summary.md").read_text()
    assert "| base | 9 (1/8/0) |" in summary and "| Δ sft − base |" in summary

    def all_completed() -> bool:  # accounting may lag the last job's end by a moment
        status = _status(exp)
        return len(status) == 11 and all("COMPLETED" in line for line in status.values())

    wait_for(all_completed, timeout=60)
    manifest = read_manifest(exp / "manifest.json")
    assert manifest["jobs"]["train"]["executor"] == "slurm"
    status = _status(exp)
    for model in ("base", "sft"):
        assert manifest["jobs"][f"eval/{model}"]["corr"] == f"sample/{model}"
        check_streamed_on_slurm(manifest["jobs"], model, exp / "jobs")
        for key in (f"sample/{model}", f"eval/{model}"):  # both arrays: 2 tasks, all done
            ids, _, _, progress = status[key].split()[1:5]
            assert len(ids.split(",")) == 2, status[key]
            done, expected = progress.split("/")
            assert done == expected != "0", status[key]


@pytest.mark.slow
def test_failing_stage_cancels_dependants(
    tmp_path: Path, tiny_model_dir: Path, shared_apps: Path
) -> None:
    r = _cli(
        *pipeline_args(tmp_path, tiny_model_dir, shared_apps),
        "--set",
        "train.overrides.no_such_llamafactory_key=1",  # llamafactory-cli refuses it: train fails
        "--cluster",
        "slurm-default",
        "--wait",
        check=False,
    )
    assert r.returncode == 2 and "stage(s) failed" in r.stderr
    status = _status(tmp_path / "cpu")
    assert "FAILED" in status["train"]
    for key in ("sample/sft", "eval/sft", "report"):
        assert "CANCELLED" in status[key], status[key]
    text = _cli("status", str(tmp_path / "cpu")).stdout
    assert "stage train failed: see " in text


def test_preempted_eval_task_requeues_and_resumes(shared_apps: Path, tmp_path: Path) -> None:
    samples = _samples(shared_apps, tmp_path / "samples.jsonl", slow=True)
    out = tmp_path / "r" / "results.jsonl"
    r = _cli(
        "submit",
        "eval",
        "--cluster",
        "slurm-default",
        "--samples",
        str(samples),
        "--apps",
        str(shared_apps / "test-sample.jsonl"),
        "--out",
        str(out),
        "--workers",
        "1",
    )
    job_id = r.stdout.split("eval: ")[1].split()[0]
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) >= 2)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)  # preemption
    wait_for(lambda: "COMPLETED" in _status(tmp_path / "r")["eval"], timeout=240)
    ids = [rec["problem_id"] for rec in read_jsonl(out)]
    assert len(ids) == len(set(ids)) == 9  # nothing lost, nothing twice
    show = subprocess.run(
        ["sacct", "-n", "-X", "-D", "-o", "State", "-j", job_id], capture_output=True, text=True
    ).stdout.split()
    assert "REQUEUED" in show or "PREEMPTED" in show or len(show) > 1, show


def test_gpu_shards_get_their_own_devices(
    tmp_path: Path, tiny_model_dir: Path, shared_apps: Path
) -> None:
    profile = tmp_path / "gpus.yaml"
    profile.write_text(
        (REPO / "configs/clusters/slurm-default.yaml")
        .read_text()
        .replace("gpus_per_node: 0", "gpus_per_node: 2")
    )
    prompts = tmp_path / "data"
    _cli("prepare", "--apps", str(shared_apps), "--out", str(prompts))
    out = tmp_path / "s" / "base"
    _cli(
        "submit",
        "sample",
        "--cluster",
        str(profile),
        "--wait",
        "--model",
        str(tiny_model_dir),
        "--prompts",
        str(prompts / "prompts.jsonl"),
        "--out",
        str(out),
        "--engine",
        "transformers",
        "--n",
        "1",
        "--max-tokens",
        "8",
        "-q",
    )
    throughput = read_manifest(out / "manifest.json")["sample"]["base"]["throughput"]
    devices = {shard: t["cuda_visible_devices"] for shard, t in throughput.items()}
    assert set(devices) == {"0/2", "1/2"}
    assert all(d in ("0", "1") for d in devices.values()), devices
    assert len(read_jsonl(tmp_path / "s" / "base.jsonl")) == 9


def test_sbatch_fallback_eval_array(shared_apps: Path, tmp_path: Path) -> None:
    samples = _samples(shared_apps, tmp_path / "samples.jsonl")
    out = tmp_path / "results.jsonl"
    env = dict(os.environ, APPS_HPC=f"{sys.executable} -m apps_hpc")
    job = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--array=0-1",
            "--cpus-per-task=1",
            "--chdir",
            str(tmp_path),
            str(REPO / "slurm" / "eval.sbatch"),
            str(samples),
            str(shared_apps / "test-sample.jsonl"),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()

    def done() -> bool:
        states = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-o", "State", "-j", job], capture_output=True, text=True
        ).stdout.split()
        return len(states) == 2 and all(s == "COMPLETED" for s in states)

    wait_for(done)
    assert sorted(r["problem_id"] for r in read_jsonl(out)) == [0, 1, 2, 3, 4, 5, 2303, 2365, 4136]


def test_sbatch_scripts_are_shellcheck_clean() -> None:
    import shutil

    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        require(False, "shellcheck not installed")
    scripts = [*sorted(str(p) for p in (REPO / "slurm").iterdir()), str(REPO / ".ci" / "run")]
    r = subprocess.run([shellcheck, *scripts], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


@pytest.mark.slow
def test_sbatch_fallback_pipeline(tmp_path: Path, tiny_model_dir: Path, shared_apps: Path) -> None:
    """slurm/pipeline.sh: prepare, train, sample and eval arrays, report, with plain sbatch."""
    pytest.importorskip("llamafactory")
    import yaml

    exp = yaml.safe_load(EXP.read_text())
    exp.update(root=str(tmp_path), model=str(tiny_model_dir), apps=str(shared_apps))
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(exp))
    env = dict(
        os.environ,
        APPS_HPC=f"{sys.executable} -m apps_hpc",
        GPUS_PER_NODE="0",
        SAMPLE_SHARDS="2",
        EVAL_SHARDS="2",
        SAMPLE_ENGINE="transformers",
        SAMPLE_ARGS="--n 2 --max-tokens 16",
        REPORT_K="1,2",
    )
    r = subprocess.run(
        [
            "bash",
            str(REPO / "slurm" / "pipeline.sh"),
            str(config),
            "--cpus-per-task=1",
            f"--chdir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    report_id = r.stdout.strip().split("report ")[-1]
    summary = tmp_path / "cpu" / "report" / "summary.md"
    wait_for(summary.exists, timeout=300)
    assert "| base | 9 (1/8/0) |" in summary.read_text()
    state = subprocess.run(
        ["sacct", "-n", "-X", "-o", "State", "-j", report_id], capture_output=True, text=True
    ).stdout.split()
    assert state[:1] == ["COMPLETED"] or summary.exists()


@pytest.mark.slow
def test_relative_paths_offline_pipeline_on_slurm(tmp_path: Path) -> None:
    """From a fresh clone's folder, as docs/cluster.md's test-cluster commands: the demo
    experiment with its relative paths, fetched (nothing to download: local model and
    rows), then `submit pipeline` on the cluster; the jobs run offline (HF_HUB_OFFLINE and
    friends, set by the job itself) with the hub endpoint unreachable, to the report."""
    pytest.importorskip("llamafactory")
    from tests.test_real_run import DEMO, SMALL, clone_like, offline_cli

    work = clone_like(tmp_path)
    for args in (
        ["tiny-model", "--out", "experiments/tiny-model"],
        ["fetch", "--config", DEMO],
    ):
        r = offline_cli(work, *args, unshare=False)
        assert r.returncode == 0, r.stderr[-2000:]
    r = offline_cli(
        work, "submit", "pipeline", "--config", DEMO, "--cluster", "slurm-default", "--wait",
        *SMALL, unshare=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    summary = (work / "experiments/demo/report/summary.md").read_text()
    assert "| base | 20 (8/6/6) |" in summary and "| sft | 20 (8/6/6) |" in summary
