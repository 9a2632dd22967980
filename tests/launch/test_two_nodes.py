"""Two nodes on one machine: a job with `--nodes=2` on the local two-node SLURM cluster
(two slurmd), one task per node, each rank taking its rendezvous from
`schedenv.rendezvous()` (the job's node list, expanded; the first host's address) and
meeting the other in a real torch.distributed all-reduce through torchrun; then
`apps-hpc submit train` with `nodes: 2` runs LlamaFactory across both nodes (real
`llamafactory-cli train` on the tiny model, gloo on CPU) and gives the loss curve of a
one-node run with the same global batch; hard-requeued after its first checkpoint, it
resumes from it and still gives that curve."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apps_hpc.core.schedenv import free_port
from apps_hpc.launch.slurm import TERMINAL, sacct
from tests.helpers import REPO, run_cli, wait_for
from tests.slurm_cluster import SlurmCluster

ALL_REDUCE = """
import json, os, sys, torch, torch.distributed as dist
dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
out = {"rank": dist.get_rank(), "world": dist.get_world_size(), "sum": value.item(),
       "node": os.environ["SLURMD_NODENAME"], "master": os.environ["MASTER_ADDR"]}
open(os.path.join(sys.argv[1], f"rank-{dist.get_rank()}.json"), "w").write(json.dumps(out))
dist.destroy_process_group()
"""

# Each task: rendezvous() as the train stage calls it, then torchrun with what it gave.
TASK = """
eval "$({python} -c 'from apps_hpc.core.schedenv import rendezvous
for k, v in rendezvous().items(): print(f"export {{k}}={{v}}")')"
exec {torchrun} --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node=1 \\
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" {script} {out}
"""


def _job(tmp_path: Path) -> Path:
    script = tmp_path / "all_reduce.py"
    script.write_text(ALL_REDUCE)
    torchrun = Path(sys.executable).with_name("torchrun")
    task = tmp_path / "task.sh"
    task.write_text(
        TASK.format(python=sys.executable, torchrun=torchrun, script=script, out=tmp_path)
    )
    job = tmp_path / "job.sbatch"
    job.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --nodes=2 --ntasks-per-node=1 --cpus-per-task=1 --output={tmp_path}/job.out\n"
        f"#SBATCH --chdir={REPO}\n"
        f"srun bash {task}\n"
    )
    return job


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="no SLURM client")
def test_a_two_node_job_meets_on_the_first_host(
    two_node_cluster: SlurmCluster, tmp_path: Path
) -> None:
    done = subprocess.run(
        ["sbatch", "--wait", str(_job(tmp_path))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    log = (tmp_path / "job.out").read_text() if (tmp_path / "job.out").exists() else ""
    assert done.returncode == 0, done.stdout + done.stderr + log
    ranks = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["sum"] for r in ranks] == [3.0, 3.0]
    assert len({r["node"] for r in ranks}) == 2  # one task on each SLURM node
    assert {r["master"] for r in ranks} == {"127.0.0.1"}  # <host>-n1 resolved via its NodeAddr


# The loss curves of the two-node run (2 processes x 2 per device, no accumulation) and of
# the one-node run (1 process x 2 per device x 2 accumulation): the same 4 samples in each
# step, so they differ only by how the loss is averaged (per process, then across
# processes, vs over the accumulated tokens) and by float order. Measured: <= 0.003.
LOSS_TOLERANCE = 0.02
# A two-node run resumed after a requeue against the same run uninterrupted: the same
# processes, data order and random state. Measured: identical to the logged 4 decimals.
RESUME_TOLERANCE = 0.001


def _train_experiment(root: Path, name: str, model: Path, apps: Path, steps: int = 6) -> Path:
    overrides = {
        "max_steps": steps,
        "save_steps": 2,
        "logging_steps": 1,
        "learning_rate": 1.0e-3,  # the curve moves within six steps
        "per_device_train_batch_size": 2,
        "bf16": False,
        "preprocessing_num_workers": 1,
        "cutoff_len": 256,
        "trust_remote_code": False,
    }
    train = {"deepspeed": None, "nproc_per_node": 1, "global_batch": 4, "overrides": overrides}
    exp = {"name": name, "root": str(root), "model": str(model), "apps": str(apps)}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**exp, "prepare": {"max_per_problem": 1}, "train": train}))
    run_cli("prepare", "--config", str(path), check=True)
    return path


def _profile(tmp_path: Path, nodes: int) -> Path:
    text = (REPO / "configs/clusters/slurm-default.yaml").read_text()
    path = tmp_path / f"nodes{nodes}.yaml"
    path.write_text(text.replace("nodes: 1 ", f"nodes: {nodes} "))
    return path


def _losses(train_dir: Path) -> dict[int, float]:
    state = json.loads((train_dir / "trainer_state.json").read_text())
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


def _own_port_env(**extra: str) -> dict[str, str]:
    """The job's environment with a free MASTER_PORT (kept by `rendezvous()`): the port
    from the job id would be the same for job 1 of every test cluster on this machine."""
    return {**os.environ, "MASTER_PORT": str(free_port()), **extra}


def _rank_logs(jobs: Path) -> str:
    return "\n".join(p.read_text() for p in jobs.glob("*_log.*"))


def _submit_train(exp: Path, nodes: int, wait: bool = True) -> str:
    """`apps-hpc submit train` on `nodes` nodes; the job's id."""
    profile = str(_profile(exp.parent, nodes))
    args = ("submit", "train", "--config", str(exp), "--cluster", profile)
    done = run_cli(*args, *(("--wait",) if wait else ()), check=True, env=_own_port_env())
    return done.stdout.split("train: ")[1].split()[0]


@pytest.fixture(scope="module")
def uninterrupted(
    two_node_cluster: SlurmCluster,
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model_dir: Path,
    shared_apps: Path,
) -> dict[int, Path]:
    """The one-node run (1 process x 2 per device x 2 accumulation) and the two-node run
    (2 x 2 x 1) of the same six steps, trained once for the module: nodes -> experiment."""
    pytest.importorskip("llamafactory")
    root = tmp_path_factory.mktemp("uninterrupted")
    for nodes, name in ((1, "one"), (2, "two")):
        _submit_train(_train_experiment(root, name, tiny_model_dir, shared_apps), nodes)
    return {1: root / "one", 2: root / "two"}


@pytest.mark.slow
def test_two_node_training_matches_one_node(uninterrupted: dict[int, Path]) -> None:
    text = _rank_logs(uninterrupted[2] / "jobs")
    for rank in (0, 1):  # each node's task logs its own rank of the one world
        assert f"Process rank: {rank}, world size: 2" in text
    out = uninterrupted[2] / "train"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        "checkpoint-2", "checkpoint-4", "checkpoint-6"
    ]  # fmt: skip
    batch = json.loads((out / "train_batch.json").read_text())
    assert (batch["processes"], batch["accumulation"], batch["global_batch"]) == (2, 1, 4)
    single, double = _losses(uninterrupted[1] / "train"), _losses(out)
    assert sorted(double) == sorted(single) == [1, 2, 3, 4, 5, 6]
    assert single[6] < single[1]  # it learns
    for step, loss in single.items():
        assert abs(double[step] - loss) <= LOSS_TOLERANCE, (step, single, double)
    assert (uninterrupted[2] / "report" / "train_results.json").is_file()


@pytest.mark.slow
def test_a_hard_requeued_two_node_run_resumes_from_its_checkpoint(
    two_node_cluster: SlurmCluster,
    tmp_path: Path,
    tiny_model_dir: Path,
    shared_apps: Path,
    uninterrupted: dict[int, Path],
) -> None:
    """`scontrol requeue` of the running two-node job once checkpoint-2 is written: both
    tasks are killed and started again, the stage resumes from checkpoint-2 (its optimizer
    state loaded to `cpu:0` through train/cpu_site/sitecustomize.py) and trains the steps
    after it: the curve of the uninterrupted two-node run, so that of the one-node run."""
    exp = _train_experiment(tmp_path, "requeued", tiny_model_dir, shared_apps)
    job = _submit_train(exp, nodes=2, wait=False)
    out = tmp_path / "requeued" / "train"

    def state() -> str:
        return sacct([job]).get(job, ("PENDING", ""))[0]

    # checkpoint-2 whole: rank 0 writes trainer_state.json last, each rank its RNG state
    last = [out / "checkpoint-2" / n for n in ("trainer_state.json", "rng_state_1.pth")]

    def written() -> bool:
        return all(p.is_file() for p in last)

    wait_for(lambda: written() or state() in TERMINAL, timeout=600, poll_s=0.2)
    assert written(), (state(), _rank_logs(tmp_path / "requeued" / "jobs")[-3000:])
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
    at_requeue = sorted(p.name for p in out.glob("checkpoint-*"))
    wait_for(lambda: state() in TERMINAL, timeout=900, poll_s=2)
    text = _rank_logs(tmp_path / "requeued" / "jobs")
    assert state() == "COMPLETED", text[-3000:]
    runs = subprocess.run(
        ["sacct", "-n", "-X", "-D", "-P", "-o", "State", "-j", job],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert runs == ["REQUEUED", "COMPLETED"], runs
    # the requeue lands after checkpoint-2 (~1-2 s before checkpoint-4 on the 2-core VM,
    # polled every 0.2 s); on a faster machine checkpoint-4 may be there too: the run
    # then resumes from it, which is as right
    assert at_requeue[:1] == ["checkpoint-2"] and "checkpoint-6" not in at_requeue, at_requeue
    resumed_from = re.search(r"resuming from \S*/(checkpoint-(\d+))", text)
    assert resumed_from and resumed_from.group(1) in at_requeue, text[-3000:]
    step = int(resumed_from.group(2))
    assert f"Continuing training from global step {step}" in text  # transformers loaded it
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        "checkpoint-2", "checkpoint-4", "checkpoint-6"
    ]  # fmt: skip
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6
    resumed = _losses(out)  # steps 1-2 from before the requeue, 3-6 trained after it
    assert sorted(resumed) == [1, 2, 3, 4, 5, 6]
    single, double = _losses(uninterrupted[1] / "train"), _losses(uninterrupted[2] / "train")
    for step, loss in resumed.items():
        assert abs(loss - double[step]) <= RESUME_TOLERANCE, (step, double, resumed)
        assert abs(loss - single[step]) <= LOSS_TOLERANCE, (step, single, resumed)
    assert (tmp_path / "requeued" / "report" / "train_results.json").is_file()


@pytest.mark.slow
def test_sbatch_fallback_trains_on_two_nodes(
    two_node_cluster: SlurmCluster, tmp_path: Path, tiny_model_dir: Path, shared_apps: Path
) -> None:
    """`sbatch --nodes=2 slurm/train.sbatch`: one task per node, one torchrun world."""
    pytest.importorskip("llamafactory")
    exp = _train_experiment(tmp_path, "fallback", tiny_model_dir, shared_apps, steps=2)
    env = _own_port_env(APPS_HPC=f"{sys.executable} -m apps_hpc", PYTHONPATH=str(REPO))
    done = subprocess.run(
        ["sbatch", "--wait", "--nodes=2", "--cpus-per-task=2", f"--chdir={tmp_path}",
         str(REPO / "slurm" / "train.sbatch"), str(exp)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    text = "\n".join(p.read_text() for p in tmp_path.glob("apps-hpc-train-*.out"))
    assert done.returncode == 0, done.stderr + text[-3000:]
    for rank in (0, 1):
        assert f"Process rank: {rank}, world size: 2" in text
    out = tmp_path / "fallback" / "train"
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert json.loads((out / "train_batch.json").read_text())["processes"] == 2
