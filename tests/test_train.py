"""The training stage: shipped configs, rendering, rendezvous, and real
`llamafactory-cli train` on CPU with the tiny model (then a resume)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apps_hpc.core.config import load_experiment, parse_sets
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.schedenv import expand_nodelist, first_host, rendezvous, scontrol_hostnames
from apps_hpc.train import stage
from apps_hpc.train.stage import CPU_SITE, launch_env, newest_checkpoint, render
from tests.helpers import run_cli as _cli

REPO_ROOT = Path(__file__).resolve().parents[1]
LF_YAML = REPO_ROOT / "configs/llamafactory/dscoderinst_full_sft_ds3.yaml"
DS_JSON = REPO_ROOT / "configs/deepspeed/ds_z3_config.json"
EXP_YAML = REPO_ROOT / "configs/experiments/dscoder_apps.yaml"


def test_shipped_llamafactory_yaml_has_the_published_values() -> None:
    cfg = yaml.safe_load(LF_YAML.read_text())
    assert cfg["model_name_or_path"] == "deepseek-ai/deepseek-coder-6.7b-instruct"
    expected = {
        "stage": "sft",
        "finetuning_type": "full",
        "dataset": "apps_train",
        "template": "deepseekcoder",
        "cutoff_len": 2048,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 16,
        "learning_rate": 2e-5,
        "num_train_epochs": 2.0,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 25,
        "bf16": True,
        "seed": 42,
        "plot_loss": True,
        "deepspeed": "ds_z3_config.json",
    }
    assert {k: cfg[k] for k in expected} == expected


def test_shipped_deepspeed_json_is_zero3_with_auto_fields() -> None:
    ds = json.loads(DS_JSON.read_text())
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["bf16"]["enabled"] == "auto"


def test_shipped_experiment_loads_and_resolves() -> None:
    exp = load_experiment(EXP_YAML)
    assert exp.resolve(exp.train.llamafactory) == LF_YAML.resolve()  # configs/ is a link
    assert exp.resolve(exp.train.deepspeed or "") == DS_JSON.resolve()


def test_unknown_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "e.yaml"
    bad.write_text("train:\n  learning_rate: 1\n")
    with pytest.raises(AppsHpcError, match=r"e.yaml: unknown key 'train.learning_rate'"):
        load_experiment(bad)


def test_render_fills_paths_and_applies_overrides_last(tmp_path: Path) -> None:
    exp = load_experiment(
        EXP_YAML,
        parse_sets(
            [
                f"root={tmp_path}",
                "train.overrides.learning_rate=1e-5",
                "train.overrides.max_steps=7",
            ]
        ),
    )
    cfg = render(
        exp, yaml.safe_load(LF_YAML.read_text()), tmp_path / "ds.json", tmp_path / "checkpoint-9"
    )
    assert cfg["output_dir"] == str((tmp_path / "dscoder-apps" / "train").resolve())
    assert cfg["dataset_dir"] == str((tmp_path / "dscoder-apps" / "data").resolve())
    assert cfg["learning_rate"] == 1e-5 and cfg["max_steps"] == 7
    assert cfg["deepspeed"] == str(tmp_path / "ds.json")
    assert cfg["resume_from_checkpoint"] == str(tmp_path / "checkpoint-9")


def test_two_node_job_gets_rank_variables() -> None:
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
        "SLURM_NNODES": "2",
        "SLURM_NODEID": "1",
        "PATH": "/usr/bin",
    }
    exp = load_experiment(EXP_YAML, parse_sets(["train.nproc_per_node=8"]))
    env = launch_env(exp, slurm)
    assert (env["NNODES"], env["NODE_RANK"], env["MASTER_ADDR"]) == ("2", "1", "gpu07")
    assert env["MASTER_PORT"] == str(20000 + 4242) and env["FORCE_TORCHRUN"] == "1"
    assert env["NPROC_PER_NODE"] == "8"
    # the same job on node 0 agrees on the master
    assert rendezvous(slurm | {"SLURM_NODEID": "0"})["MASTER_ADDR"] == "gpu07"


def test_one_process_without_deepspeed_skips_torchrun() -> None:
    one = load_experiment(EXP_YAML, parse_sets(["train.nproc_per_node=1", "train.deepspeed=null"]))
    env = launch_env(one, {"PATH": "/usr/bin", "FORCE_TORCHRUN": "1"})
    assert "FORCE_TORCHRUN" not in env and env["NPROC_PER_NODE"] == "1"
    with_ds = load_experiment(EXP_YAML, parse_sets(["train.nproc_per_node=1"]))
    assert with_ds.train.deepspeed and launch_env(with_ds, {"PATH": "/usr/bin"})["FORCE_TORCHRUN"]


# What transformers does on resuming a world of several CPU processes: the optimizer
# loaded with map_location=args.device, which accelerate sets to torch.device("cpu", 0).
LOAD_AT_CPU_0 = """
import io, json, os, torch
buf = io.BytesIO()
torch.save({"state": {0: {"exp_avg": torch.arange(3.0)}}, "step": torch.tensor(2)}, buf)
buf.seek(0)
loaded = torch.load(buf, map_location=torch.device("cpu", 0))
avg = loaded["state"][0]["exp_avg"]
print(json.dumps([avg.tolist(), str(avg.device), os.environ.get("SITE_CHAINED")]))
"""


def test_a_cpu_world_of_two_loads_checkpoints_tagged_cpu_n(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sitecustomize that launch_env puts first on PYTHONPATH, run for real in a fresh
    Python: torch.load to `cpu:0` works, and the site's own sitecustomize still runs."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['SITE_CHAINED'] = 'yes'\n")
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
        "SLURM_NNODES": "2",
        "SLURM_NODEID": "0",
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(site),
    }
    exp = load_experiment(EXP_YAML, parse_sets(["train.nproc_per_node=1"]))
    monkeypatch.setattr(stage, "_gpus", lambda: 0)
    env = launch_env(exp, slurm)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(CPU_SITE), str(site)]
    assert launch_env(exp, env)["PYTHONPATH"] == env["PYTHONPATH"]  # once
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AT_CPU_0], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == [[0.0, 1.0, 2.0], "cpu", "yes"]
    one = launch_env(exp, {"PATH": "/usr/bin", "PYTHONPATH": str(site)})  # one process
    assert one["PYTHONPATH"] == str(site)
    monkeypatch.setattr(stage, "_gpus", lambda: 2)  # GPUs: devices are cuda:N, left alone
    assert launch_env(exp, slurm)["PYTHONPATH"] == str(site)


NODE_LISTS = {
    "rack[1-2]-node[01-02]": ["rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"],
    "gpu[001-003,007]": ["gpu001", "gpu002", "gpu003", "gpu007"],
    "a,b[1-2]": ["a", "b1", "b2"],
    "gpu[03-05,9],cpu1": ["gpu03", "gpu04", "gpu05", "gpu9", "cpu1"],
    "a1,a2": ["a1", "a2"],
    "node7": ["node7"],
    "n[8-11]": ["n8", "n9", "n10", "n11"],
    "x[098-101]": ["x098", "x099", "x100", "x101"],
    "x[9-011]": ["x9", "x10", "x11"],
}


@pytest.mark.parametrize("nodelist", list(NODE_LISTS))
def test_node_lists_expand_as_slurm_does(nodelist: str) -> None:
    assert expand_nodelist(nodelist) == NODE_LISTS[nodelist]
    assert first_host(nodelist) == NODE_LISTS[nodelist][0]


@pytest.mark.parametrize("bad", ["gpu[1-2", "gpu[a-b]", "", " , "])
def test_bad_node_lists_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        first_host(bad)


def test_the_pure_parser_agrees_with_scontrol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("scontrol") is None:
        pytest.skip("no scontrol here")
    conf = tmp_path / "slurm.conf"  # scontrol reads a configuration before anything else
    conf.write_text("ClusterName=x\nSlurmctldHost=localhost\nNodeName=n1 CPUs=1\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    expanded = scontrol_hostnames(",".join(NODE_LISTS))
    assert expanded == [host for hosts in NODE_LISTS.values() for host in hosts]


def test_newest_checkpoint(tmp_path: Path) -> None:
    assert newest_checkpoint(tmp_path) is None
    for n in (2, 10, 9):
        (tmp_path / f"checkpoint-{n}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert newest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"


def _experiment(tmp_path: Path, model: Path, shared: Path) -> Path:
    overrides = {
        "max_steps": 3,
        "save_steps": 2,
        "logging_steps": 1,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "bf16": False,
        "preprocessing_num_workers": 1,
        "cutoff_len": 256,
        "trust_remote_code": False,
    }
    exp = {
        "name": "cpu",
        "root": str(tmp_path),
        "model": str(model),
        "apps": str(shared),
        "prepare": {"max_per_problem": 1},
        "train": {"deepspeed": None, "nproc_per_node": 1, "overrides": overrides},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


@pytest.mark.slow
def test_real_llamafactory_train_then_resume(
    tmp_path: Path, tiny_model_dir: Path, shared_apps: Path
) -> None:
    pytest.importorskip("llamafactory")
    exp = _experiment(tmp_path, tiny_model_dir, shared_apps)
    assert _cli("prepare", "--config", str(exp)).returncode == 0
    first = _cli("train", "--config", str(exp))
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "cpu" / "train"
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert (out / "model.safetensors").stat().st_size > 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    report = tmp_path / "cpu" / "report"
    assert (report / "training_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "train_loss" in json.loads((report / "train_results.json").read_text())
    results, log = (
        (out / "train_results.json").read_bytes(),
        (out / "trainer_log.jsonl").read_bytes(),
    )
    again = _cli("train", "--config", str(exp))  # finished: skipped, nothing rewritten
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"skip train: finished in {out}" in again.stderr and "resuming" not in again.stderr
    assert (out / "train_results.json").read_bytes() == results
    assert (out / "trainer_log.jsonl").read_bytes() == log
    more = ["--set", "train.overrides.max_steps=5"]
    refused = _cli("train", "--config", str(exp), *more)
    assert refused.returncode == 2 and "train.overrides.max_steps (3 -> 5)" in refused.stderr
    second = _cli("train", "--config", str(exp), *more, "--force")
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from {out / 'checkpoint-3'}" in second.stderr
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 5
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps == [1, 2, 3, 4, 5]  # continued, not restarted
    rendered = yaml.safe_load((out / "llamafactory.yaml").read_text())
    assert rendered["resume_from_checkpoint"] == str(out / "checkpoint-3")


@pytest.mark.slow
def test_shipped_zero3_config_trains_on_cpu(
    tmp_path: Path, tiny_model_dir: Path, shared_apps: Path
) -> None:
    """The published DeepSpeed ZeRO-3 JSON ("auto" fields) through LlamaFactory, for real."""
    pytest.importorskip("llamafactory")
    pytest.importorskip("deepspeed")
    exp = _experiment(tmp_path, tiny_model_dir, shared_apps)
    data = yaml.safe_load(exp.read_text())
    data["train"]["deepspeed"] = str(DS_JSON)
    data["train"]["overrides"]["max_steps"] = 2
    exp.write_text(yaml.safe_dump(data))
    assert _cli("prepare", "--config", str(exp)).returncode == 0
    r = _cli("train", "--config", str(exp))
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "cpu" / "train"
    assert json.loads((out / "ds_config.json").read_text())["zero_optimization"]["stage"] == 3
    assert (out / "checkpoint-2" / "global_step2").is_dir()  # a DeepSpeed (ZeRO) checkpoint
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2


def test_train_without_prepare_is_a_clear_error(tmp_path: Path) -> None:
    exp = tmp_path / "e.yaml"
    exp.write_text(f"root: {tmp_path}\nname: x\n")
    r = _cli("train", "--config", str(exp))
    assert r.returncode == 2 and "run `apps-hpc prepare` first" in r.stderr
