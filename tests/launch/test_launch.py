"""The launcher without a cluster: profiles, plans, dry-run scripts against saved
reference files, clear errors with nothing submitted, and the whole pipeline on the
local executor with the tiny model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from apps_hpc.core.config import load_experiment, parse_sets
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.launch.executor import Resources, slurm_parameters, stage_resources
from apps_hpc.launch.plan import pipeline
from apps_hpc.launch.profiles import load_profile
from apps_hpc.launch.submit import dependency, fits
from apps_hpc.provenance.manifest import manifest_exists, read_manifest
from tests.helpers import CPU_EXPERIMENT, DRYRUN, REPO, pipeline_args, require
from tests.helpers import run_cli as _cli

EXP = CPU_EXPERIMENT
UPDATE = os.environ.get("APPS_HPC_UPDATE_REFERENCES") == "1"


def test_shipped_profiles_load() -> None:
    assert load_profile("slurm-default").partition is None
    assert load_profile("local").executor == "local"
    a100 = load_profile("example-a100")
    assert (a100.gpus_per_node, a100.image) == (8, "/lustre/containers/apps-hpc.sif")


def test_profile_missing_field_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text("executor: slurm\ncpus_per_node: 2\n")
    with pytest.raises(AppsHpcError, match=r"site.yaml: missing field\(s\) gpus_per_node, mem_p"):
        load_profile(str(bad))


def test_resources_per_stage() -> None:
    p = load_profile("example-a100")  # 8 GPUs, 64 CPUs, 480G per GPU node; a CPU partition
    assert stage_resources("train", p) == Resources(1, 8, 64, "480G", 720, "gpu")
    assert stage_resources("sample", p) == Resources(1, 1, 8, "60G", 720, "gpu")
    assert stage_resources("sample", p, gpus_per_model=2) == Resources(1, 2, 16, "120G", 720, "gpu")
    assert stage_resources("eval", p) == Resources(1, 0, 128, "240G", 720, "cpu", cpu_side=True)
    for small in ("prepare", "merge-sample", "merge-eval", "report"):
        assert stage_resources(small, p) == Resources(1, 0, 2, "16G", 720, "cpu", cpu_side=True)
    params = slurm_parameters(p, stage_resources("sample", p), "x", "afterok:1:2")
    assert params["gres"] == "gpu:1" and params["partition"] == "gpu"
    assert params["dependency"] == "afterok:1:2"
    assert params["additional_parameters"] == {"constraint": "a100", "kill-on-invalid-dep": "yes"}
    cpu = slurm_parameters(p, stage_resources("eval", p), "x", None)
    assert cpu["partition"] == "cpu" and "gres" not in cpu and cpu["additional_parameters"] == {}
    assert "array_parallelism" not in cpu  # submitit's own default (no limit of ours)


def test_array_parallelism_reaches_the_sbatch_array_line(tmp_path: Path) -> None:
    import submitit

    from apps_hpc.launch.slurm import sbatch_text

    site = tmp_path / "site.yaml"
    text = (REPO / "configs/clusters/slurm-default.yaml").read_text()
    site.write_text(text.replace("array_parallelism: null", "array_parallelism: 1"))
    p = load_profile(str(site))
    params = slurm_parameters(p, stage_resources("sample", p), "x", None)
    assert params["array_parallelism"] == 1
    ex = submitit.SlurmExecutor(folder=tmp_path / "jobs")
    ex.update_parameters(**params)
    assert "#SBATCH --array=0-3%1" in sbatch_text(ex, 4)


def test_resources_without_a_cpu_partition(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "executor: slurm\npartition: gpu\ngpus_per_node: 4\ncpus_per_node: 30\n"
        "mem_per_node: 1000M\ntime: 60\nsmall_cpus: 64\n"
    )
    p = load_profile(str(site))
    assert stage_resources("sample", p) == Resources(1, 1, 7, "250M", 60, "gpu")
    assert stage_resources("eval", p) == Resources(1, 0, 30, "1000M", 60, "gpu")
    assert stage_resources("report", p) == Resources(1, 0, 30, "1000M", 60, "gpu")  # capped


def test_profile_old_field_name_names_the_new_one(tmp_path: Path) -> None:
    site = tmp_path / "old.yaml"
    site.write_text("executor: local\ngpus_per_node: 0\ncpus_per_task: 3\nmem: 2G\ntime: 5\n")
    with pytest.raises(
        AppsHpcError, match=r"unknown key 'cpus_per_task' \(did you mean 'cpus_per_node'"
    ):
        load_profile(str(site))


def test_pipeline_plan_chains_both_models(tmp_path: Path) -> None:
    exp = load_experiment(EXP, parse_sets([f"root={tmp_path}"]))
    steps = {s.key: s for s in pipeline(exp, sample_shards=2, eval_shards=3)}
    assert steps["train"].deps == ["prepare"]
    assert steps["sample/base"].deps == ["prepare"]  # in parallel with training
    assert steps["sample/sft"].deps == ["train"]
    assert len(steps["sample/sft"].cfgs) == 2 and len(steps["eval/sft"].cfgs) == 3
    assert steps["eval/sft"].deps == ["merge-sample/sft"]
    assert steps["report"].deps == ["merge-eval/base", "merge-eval/sft"]
    assert steps["sample/sft"].cfgs[0].model == str(exp.train_dir)
    assert all(s.corr is None for s in steps.values())  # 2 samplers, 3 judges: no streaming


def test_eval_streams_behind_sampling_with_as_many_shards(tmp_path: Path) -> None:
    exp = load_experiment(EXP, parse_sets([f"root={tmp_path}"]))
    steps = {s.key: s for s in pipeline(exp, sample_shards=2, eval_shards=2)}
    for name in ("base", "sft"):
        judge = steps[f"eval/{name}"]
        assert judge.deps == [f"sample/{name}"] and judge.corr == f"sample/{name}"
        assert [c.stream for c in judge.cfgs] == [exp.dir / "samples" / name] * 2
        assert steps[f"merge-eval/{name}"].deps == [f"eval/{name}", f"merge-sample/{name}"]
    ids = {"sample/base": "11", "merge-sample/base": "12", "eval/base": "13"}
    assert dependency(steps["eval/base"], ids) == "aftercorr:11"
    assert dependency(steps["merge-eval/base"], ids) == "afterok:13:12"
    assert dependency(steps["eval/base"], {}) is None  # sampling skipped: already done


def _normalise(text: str, root: Path) -> str:
    return text.replace(str(root), "<ROOT>").replace(sys.executable, "<PYTHON>")


@pytest.mark.parametrize("cluster", ["slurm-default", "example-a100", "local"])
def test_dry_run_matches_reference(
    tmp_path: Path, cluster: str, tiny_model_dir: Path, shared_apps: Path
) -> None:
    image = tmp_path / "apps-hpc.sif"
    r = _cli(
        *pipeline_args(tmp_path, tiny_model_dir, shared_apps),
        "--cluster",
        cluster,
        "--dry-run",
        "--sample-shards",
        "2",
        "--eval-shards",
        "2",
    )
    # the scripts come first; then the preflight: only the cluster's checks can fail here
    assert "error: model" not in r.stderr and "error: apps" not in r.stderr, r.stderr
    assert r.returncode == 0 or "error: image" in r.stderr or "error: controller" in r.stderr
    text = _normalise(r.stdout, tmp_path)
    reference = DRYRUN / f"pipeline-{cluster}.txt"
    if UPDATE:
        reference.write_text(text)
    assert text == reference.read_text()
    assert not manifest_exists(tmp_path / "cpu" / "manifest.json") and not image.exists()


def test_published_experiment_on_an_8_gpu_profile(tmp_path: Path) -> None:
    """The shipped published config as written (8 sampling shards: one per GPU), on the
    8xA100 example profile: each job's CPUs, memory, GPUs and partition."""
    r = _cli(
        "submit", "pipeline", "--config", "dscoder_apps", "--set", f"root={tmp_path}",
        "--cluster", "example-a100", "--dry-run", "--eval-shards", "8",
    )  # fmt: skip
    assert r.returncode == 2  # refused: nothing fetched, no image here
    assert f"error: apps: codeparrot/apps is not fetched into {tmp_path}/hub" in r.stderr
    assert "error: model: deepseek-ai/deepseek-coder-6.7b-instruct is not fetched" in r.stderr
    assert "image /lustre/containers/apps-hpc.sif does not exist" in r.stderr
    assert "global batch" not in r.stderr  # 2 x 16 x 8 GPUs = 256, as published
    assert "warning: experiment root: " in r.stderr and "is under /tmp" in r.stderr
    text = _normalise(r.stdout, tmp_path)
    reference = DRYRUN / "pipeline-dscoder_apps-example-a100.txt"
    if UPDATE:
        reference.write_text(text)
    assert text == reference.read_text()
    jobs = {part.split(" ")[0]: part for part in text.split("### ")[1:]}
    want = {  # stage: (cpus, mem, gres, partition)
        "train": ("64", "480G", "gpu:8", "gpu"),
        "sample/base": ("8", "60G", "gpu:1", "gpu"),
        "sample/sft": ("8", "60G", "gpu:1", "gpu"),
        "eval/sft": ("128", "240G", None, "cpu"),
        "prepare": ("2", "16G", None, "cpu"),
        "merge-sample/sft": ("2", "16G", None, "cpu"),
        "merge-eval/base": ("2", "16G", None, "cpu"),
        "report": ("2", "16G", None, "cpu"),
    }
    for key, (cpus, mem, gres, partition) in want.items():
        job = jobs[key]
        assert f"--cpus-per-task={cpus}\n" in job and f"--mem={mem}\n" in job, key
        assert f"--partition={partition}\n" in job, key
        assert (f"--gres={gres}\n" in job) if gres else "--gres" not in job, key
        assert ("--constraint=a100" in job) == (partition == "gpu"), key
    assert "#SBATCH --array=0-7%8" in jobs["sample/sft"]
    assert "#SBATCH --array=0-7%8" in jobs["eval/base"]


def test_nonexistent_image_submits_nothing(
    tmp_path: Path, tiny_model_dir: Path, shared_apps: Path
) -> None:
    profile = tmp_path / "site.yaml"
    profile.write_text(
        (REPO / "configs/clusters/local.yaml")
        .read_text()
        .replace("image: null", f"image: {tmp_path}/missing.sif")
    )
    r = _cli(
        *pipeline_args(tmp_path, tiny_model_dir, shared_apps),
        "--cluster",
        str(profile),
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"image {tmp_path}/missing.sif does not exist" in r.stderr
    assert not (tmp_path / "cpu").exists()


def test_unreachable_cluster_submits_nothing(tmp_path: Path) -> None:
    require(shutil_which("scontrol"), "no SLURM client on this machine")
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=nowhere\nSlurmctldHost=nowhere(127.0.0.1)\nSlurmctldPort=1\n"
        "MessageTimeout=2\nNodeName=n1 NodeAddr=127.0.0.1\n"
        "PartitionName=p Nodes=n1 Default=YES\n"
    )
    env = dict(os.environ, SLURM_CONF=str(conf))
    r = _cli(
        "submit",
        "eval",
        "--cluster",
        "slurm-default",
        "--samples",
        "s.jsonl",
        "--apps",
        "a",
        "--out",
        str(tmp_path / "r" / "res.jsonl"),
        env=env,
    )
    assert r.returncode == 2 and "error: controller: unreachable: " in r.stderr
    assert not (tmp_path / "r").exists()


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


@pytest.mark.slow
def test_pipeline_on_the_local_executor(
    tmp_path: Path, tiny_model_dir: Path, shared_apps: Path
) -> None:
    pytest.importorskip("llamafactory")
    r = _cli(*pipeline_args(tmp_path, tiny_model_dir, shared_apps), "--cluster", "local")
    assert r.returncode == 0, r.stderr[-3000:]
    exp = tmp_path / "cpu"
    summary = (exp / "report" / "summary.md").read_text()
    assert "| base | 9 (1/8/0) |" in summary and "| sft | 9 (1/8/0) |" in summary
    assert (exp / "report" / "training_loss.png").exists()
    status = _cli("status", str(exp)).stdout
    assert status.count("COMPLETED") == 9 and "report " in status
    jobs = read_manifest(exp / "manifest.json")["jobs"]
    assert list(jobs) == [
        "prepare",
        "train",
        "sample/base",
        "merge-sample/base",
        "eval/base",
        "sample/sft",
        "merge-sample/sft",
        "eval/sft",
        "report",
    ]
    # The local profile's 2 CPUs are the machine and each step asks for both: the
    # independent train and sample/base branches take turns, they do not share the cores.
    timing = read_manifest(exp / "manifest.json")["timing"]
    train, base = (next(iter(timing[key].values())) for key in ("train", "sample/base"))
    assert base["started"] >= train["ended"] or train["started"] >= base["ended"]


def test_a_local_step_starts_when_its_cpus_fit() -> None:
    assert fits(2, 0, 2) and fits(1, 1, 2) and fits(8, 0, 2)  # alone, even if too big
    assert not fits(2, 2, 2) and not fits(2, 1, 2)


@pytest.mark.slow
def test_a_failing_stage_cancels_its_dependants_locally(
    tmp_path: Path, tiny_model_dir: Path, shared_apps: Path
) -> None:
    r = _cli(
        *pipeline_args(tmp_path, tiny_model_dir, shared_apps),
        "--set",
        "train.overrides.no_such_llamafactory_key=1",  # llamafactory-cli refuses it: train fails
        "--cluster",
        "local",
    )
    assert r.returncode == 2 and "stage(s) failed: train" in r.stderr
    status = _cli("status", str(tmp_path / "cpu")).stdout
    lines = {line.split()[0]: line for line in status.splitlines()[1:] if line.strip()}
    assert "FAILED" in lines["train"] and "COMPLETED" in lines["eval/base"]
    for key in ("sample/sft", "merge-sample/sft", "eval/sft", "report"):
        assert "CANCELLED" in lines[key], lines[key]
    assert "stage train failed: see " in status
