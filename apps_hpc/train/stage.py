"""`train(exp)`: render the LlamaFactory config into `<experiment>/train/` and run
`llamafactory-cli train` on it.

    apps-hpc train --config configs/experiments/dscoder_apps.yaml --set train.overrides.max_steps=10

The rendered `llamafactory.yaml` is the shipped YAML with the paths filled in
(model, dataset_dir, output_dir, deepspeed) and the experiment's overrides applied last;
the overrides are also recorded in `overrides.json`. A distributed or DeepSpeed run uses
`FORCE_TORCHRUN=1` with NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT from the SLURM job when
there is one; a single process without DeepSpeed trains in llamafactory-cli's process. A requeued
or re-run job resumes from the newest `checkpoint-*`; a multi-process run without a GPU
gets `cpu_site/` first on PYTHONPATH, whose sitecustomize lets torch load that checkpoint's
`cpu:N` storages. The loss plot and final metrics are copied into `<experiment>/report/`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from apps_hpc.core.config import Experiment
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.core.schedenv import rendezvous
from apps_hpc.hub import paths as hub
from apps_hpc.provenance.stamps import (
    diff_keys,
    digest,
    file_digest,
    read_stamp,
    stamp_matches,
    write_stamp,
)

log = logging.getLogger(__name__)

# Its sitecustomize.py lets a multi-process CPU run load a checkpoint (storages at `cpu:N`)
CPU_SITE = Path(__file__).with_name("cpu_site")

REPORT_FILES = (
    "training_loss.png",
    "train_results.json",
    "all_results.json",
    "trainer_log.jsonl",
    "train_batch.json",
)


def newest_checkpoint(output_dir: Path) -> Path | None:
    """The `checkpoint-N` folder with the largest N, if any."""
    found = []
    for child in output_dir.glob("checkpoint-*") if output_dir.is_dir() else []:
        match = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def render(
    exp: Experiment,
    base: dict[str, Any],
    deepspeed: Path | None,
    resume: Path | None,
    model: str | None = None,
    world: int | None = None,
) -> dict[str, Any]:
    """The final LlamaFactory config (pure); `model`: the local model folder (default:
    the experiment's model as written); `world`: the training processes, from which
    `train.global_batch` chooses the accumulation (it wins over the overrides')."""
    cfg = dict(base)
    cfg.update(
        model_name_or_path=model or exp.model,
        dataset_dir=str(exp.data_dir.resolve()),
        dataset=exp.prepare.dataset_name,
        output_dir=str(exp.train_dir.resolve()),
    )
    if deepspeed is None:
        cfg.pop("deepspeed", None)
    else:
        cfg["deepspeed"] = str(deepspeed)
    cfg.update(exp.train.overrides)
    if exp.train.global_batch is not None and world is not None:
        cfg["gradient_accumulation_steps"] = accumulation(exp.train.global_batch, cfg, world)
    if resume is not None:
        cfg["resume_from_checkpoint"] = str(resume)
    return cfg


def accumulation(global_batch: int, cfg: dict[str, Any], world: int) -> int:
    """The gradient accumulation that keeps `global_batch` on `world` processes."""
    per = int(cfg.get("per_device_train_batch_size", 1))
    if global_batch % (per * world):
        raise AppsHpcError(
            f"train.global_batch {global_batch} is not a multiple of {per} per device "
            f"x {world} processes"
        )
    return global_batch // (per * world)


def batch_record(cfg: dict[str, Any], world: int) -> dict[str, int]:
    """What training used: per device x accumulation x processes = the global batch."""
    per = int(cfg.get("per_device_train_batch_size", 1))
    accum = int(cfg.get("gradient_accumulation_steps", 1))
    return {
        "per_device": per,
        "accumulation": accum,
        "processes": world,
        "global_batch": per * accum * world,
    }


def launch_env(exp: Experiment, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `llamafactory-cli train` runs with."""
    env = dict(os.environ if environ is None else environ)
    env.update(rendezvous(env))
    bindir = str(Path(sys.executable).parent)  # torchrun lives beside this Python
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")]).rstrip(os.pathsep)
    env.setdefault("NPROC_PER_NODE", str(exp.train.nproc_per_node or _local_devices()))
    env.setdefault("LOCAL_SIZE", env["NPROC_PER_NODE"])  # else DeepSpeed on CPU calls numactl
    if needs_torchrun(exp, env):
        env["FORCE_TORCHRUN"] = "1"
    else:
        env.pop("FORCE_TORCHRUN", None)
    if world_size(env) > 1 and _gpus() == 0:  # every training process runs its sitecustomize
        env["PYTHONPATH"] = _in_front(str(CPU_SITE), env.get("PYTHONPATH", ""))
    return env


def _in_front(entry: str, path: str) -> str:
    """The search path `path` with `entry` first, once."""
    rest = [p for p in path.split(os.pathsep) if p != entry] if path else []
    return os.pathsep.join([entry, *rest])


def needs_torchrun(exp: Experiment, env: dict[str, str]) -> bool:
    """Several processes, or DeepSpeed, go through torchrun; one process without DeepSpeed
    trains inside llamafactory-cli's own process (torchrun would start and import
    everything a second time: ~10 s of the CPU demo)."""
    return world_size(env) > 1 or bool(exp.train.deepspeed)


def _gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def _local_devices() -> int:
    return _gpus() or 1


def _load_base(exp: Experiment) -> dict[str, Any]:
    path = exp.resolve(exp.train.llamafactory)
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise AppsHpcError(f"{path}: expected a LlamaFactory YAML mapping")
    return data


def world_size(env: dict[str, str]) -> int:
    return int(env.get("NNODES", "1") or 1) * int(env.get("NPROC_PER_NODE", "1") or 1)


def write_config(exp: Experiment, world: int = 1) -> Path:
    """Render and write `<experiment>/train/llamafactory.yaml` (and `train_batch.json`,
    the global batch it makes on `world` processes); return its path. Every node of a
    multi-node job writes the same files at the same moment: atomically, so no node reads
    another's half-written copy."""
    out = exp.train_dir
    out.mkdir(parents=True, exist_ok=True)
    deepspeed = None
    if exp.train.deepspeed:
        deepspeed = out / "ds_config.json"
        write_atomic(deepspeed, exp.resolve(exp.train.deepspeed).read_text())
    resume = newest_checkpoint(out)
    model = hub.local(exp.model, hub.MODEL, exp.fetch.model_revision, exp.hub_dir)
    cfg = render(exp, _load_base(exp), deepspeed, resume, str(model), world)
    write_atomic(out / "overrides.json", json.dumps(exp.train.overrides, indent=1) + "\n")
    batch = batch_record(cfg, world)
    write_atomic(out / "train_batch.json", json.dumps(batch, indent=1) + "\n")
    path = out / "llamafactory.yaml"
    header = (
        f"# rendered by apps-hpc from {exp.train.llamafactory}; overrides in overrides.json\n"
        f"# global batch {batch['global_batch']} = {batch['per_device']} per device x "
        f"{batch['accumulation']} accumulation x {world} processes\n"
    )
    write_atomic(path, header + yaml.safe_dump(cfg, sort_keys=False))
    return path


def _cli() -> list[str]:
    exe = shutil.which("llamafactory-cli") or str(Path(sys.executable).parent / "llamafactory-cli")
    if not Path(exe).exists():
        raise AppsHpcError("llamafactory-cli not found: pip install 'apps-hpc[train]'")
    return [exe]


def collect_report(exp: Experiment) -> list[Path]:
    exp.report_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in REPORT_FILES:
        src = exp.train_dir / name
        if src.exists():
            copied.append(Path(shutil.copyfile(src, exp.report_dir / name)))
    return copied


STAMP = "provenance.json"  # in the training folder: the identity of the run, finished or not


def identity(exp: Experiment) -> dict[str, Any]:
    """What a training run's result depends on: the rendered LlamaFactory config (its
    folder paths left out, so a moved experiment is the same run), the training data's
    and the DeepSpeed config's contents."""
    cfg = render(exp, _load_base(exp), None, None)
    for key in ("output_dir", "dataset_dir"):
        cfg.pop(key, None)
    data = exp.data_dir / f"{exp.prepare.dataset_name}.json"
    ds = exp.resolve(exp.train.deepspeed) if exp.train.deepspeed else None
    return {
        "llamafactory": cfg,
        "dataset_sha256": file_digest(data) if data.is_file() else None,
        "deepspeed": json.loads(ds.read_text()) if ds else None,
    }


def is_done(exp: Experiment) -> bool:
    """Finished, with this config and data (train_results.json written)?"""
    if not (exp.train_dir / "train_results.json").is_file():
        return False
    return stamp_matches(exp.train_dir / STAMP, identity(exp))


def _check_previous(exp: Experiment, ident: dict[str, Any]) -> None:
    """A run of another config in the training folder stops us, unless --force (then
    it is resumed from its checkpoints with the new config)."""
    stamp = read_stamp(exp.train_dir / STAMP)
    started = newest_checkpoint(exp.train_dir) is not None
    if stamp is None or stamp.get("hash") == digest(ident) or not (started or stamp["finished"]):
        return
    keys = ", ".join(diff_keys(stamp.get("config"), ident)[:8])
    if not exp.force:
        raise AppsHpcError(
            f"{exp.train_dir}: holds a training run of another config (differs in: {keys}); "
            "pass --force to resume it with this config, or use a new experiment name"
        )
    log.warning("--force: resuming the run in %s with a config that differs in %s", exp.dir, keys)


def train(exp: Experiment) -> Path:
    """Run (or resume) the fine-tuning; return the output folder. A run that finished
    with this config is not run again (no 0-step resume rewriting its results). On several
    nodes every node runs this (one task per node); the first node (NODE_RANK 0, whose
    rank 0 writes the checkpoints and results) alone marks the run finished and copies the
    report: another node's torchrun may end before rank 0 has written them."""
    if not (exp.data_dir / "dataset_info.json").exists():
        raise AppsHpcError(f"{exp.data_dir}: no dataset_info.json; run `apps-hpc prepare` first")
    ident = identity(exp)
    if is_done(exp):
        log.info("skip train: finished in %s with this config (train_results.json)", exp.train_dir)
        collect_report(exp)
        return exp.train_dir
    _check_previous(exp, ident)
    write_stamp(exp.train_dir / STAMP, ident, finished=False)
    env = launch_env(exp)
    config = write_config(exp, world_size(env))
    resume = newest_checkpoint(exp.train_dir)
    if resume is not None:
        log.info("resuming from %s", resume)
    proc = subprocess.run([*_cli(), "train", str(config)], env=env, cwd=exp.train_dir)
    if proc.returncode != 0:
        raise AppsHpcError(
            f"llamafactory-cli train failed (exit {proc.returncode}); see its log above"
        )
    if env.get("NODE_RANK", "0") == "0":
        write_stamp(exp.train_dir / STAMP, ident, finished=True)
        collect_report(exp)
    return exp.train_dir
