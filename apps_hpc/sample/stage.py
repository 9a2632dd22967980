"""`sample(cfg)`: prompts.jsonl -> samples shard files (and the merged samples file).

One shard per model replica. `--shard I/S` (or the SLURM array task) picks the shard;
`--gpus all` on a node without SLURM starts one spawned worker per replica, each with its
own CUDA_VISIBLE_DEVICES. A shard appends one line per finished problem and skips the
problems already in its file, so a killed run resumes; when every shard is complete the
shards are merged into `<out>.jsonl`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apps_hpc import hub
from apps_hpc.config import SampleSection, Sampling
from apps_hpc.errors import AppsHpcError
from apps_hpc.manifest import update_manifest
from apps_hpc.prompts import chat_prompt, extract_code
from apps_hpc.records import AppendLog, iter_jsonl
from apps_hpc.sample.engines import EngineOptions, Request, make_engine
from apps_hpc.schedenv import array_task, visible_gpus
from apps_hpc.shards import Shard, assign, merge_shards, problem_seed, shard_status

log = logging.getLogger(__name__)


@dataclass
class SampleConfig:
    model: str
    prompts: Path
    out: Path  # the shard folder: samples/<model_name>/
    engine: str = SampleSection.engine
    sampling: Sampling = field(default_factory=Sampling)
    shard: Shard | None = None  # None: the SLURM array task, else 0/1
    gpus: str | None = None  # "all": one worker per replica on this node
    gpus_per_model: int = SampleSection.gpus_per_model
    max_model_len: int = SampleSection.max_model_len
    model_name: str | None = None  # the samples' "model" field (default: folder name)
    manifest: Path | None = None
    progress: bool = True

    @property
    def name(self) -> str:
        return self.model_name or self.out.name

    @property
    def merged(self) -> Path:
        """The merged samples file beside the shard folder."""
        return self.out.with_suffix(".jsonl")

    def with_shard(self, shard: Shard) -> SampleConfig:
        """One array task's config: its shard, and no local spawning of replicas."""
        return replace(self, shard=shard, gpus=None)


def read_prompts(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise AppsHpcError(f"{path}: no such prompts file (run `apps-hpc prepare`)")
    prompts = []
    for lineno, rec in iter_jsonl(path):
        if not isinstance(rec, dict) or "problem_id" not in rec or "prompt" not in rec:
            raise AppsHpcError(f"{path}:{lineno}: expected problem_id and prompt")
        prompts.append(rec)
    return prompts


def _record(cfg: SampleConfig, prompt: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    return {
        "problem_id": prompt["problem_id"],
        "split": prompt.get("split", "test"),
        "difficulty": prompt["difficulty"],
        "model": cfg.name,
        "codes": [extract_code(t) for t in texts],
        "completions": texts,
    }


def _todo(cfg: SampleConfig, shard: Shard, log: AppendLog) -> list[dict[str, Any]]:
    done = {(r.get("split", "test"), r.get("problem_id")) for _, r in log.records}
    mine = assign(read_prompts(cfg.prompts), shard)
    return [p for p in mine if (p.get("split", "test"), p["problem_id"]) not in done]


def _options(cfg: SampleConfig) -> EngineOptions:
    return EngineOptions(
        model=cfg.model,
        sampling=cfg.sampling,
        gpus_per_model=cfg.gpus_per_model,
        max_model_len=cfg.max_model_len,
    )


def run_shard(cfg: SampleConfig, shard: Shard) -> dict[str, Any]:
    """Sample the problems of one shard not yet in its file; return the throughput."""
    log = AppendLog(cfg.out / shard.file_name())
    todo = _todo(cfg, shard, log)
    stats: dict[str, Any] = {
        "shard": str(shard),
        "problems": 0,
        "completions": 0,
        "tokens": 0,
        "seconds": 0.0,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if not todo:
        return stats
    engine = make_engine(cfg.engine, _options(cfg))
    requests = [
        Request(
            p,
            chat_prompt(p["prompt"]),
            problem_seed(cfg.sampling.seed, p.get("split", "test"), p["problem_id"]),
        )
        for p in todo
    ]
    start = time.monotonic()
    with tqdm(
        total=len(todo) * cfg.sampling.n,
        unit="compl",
        desc=f"sample {shard}",
        disable=not cfg.progress,
    ) as bar:
        for req, gen in engine.generate(requests):
            log.append(_record(cfg, req.key, gen.texts))
            stats["problems"] += 1
            stats["completions"] += len(gen.texts)
            stats["tokens"] += gen.tokens
            elapsed = max(time.monotonic() - start, 1e-9)
            bar.set_postfix(tok_s=f"{stats['tokens'] / elapsed:.1f}")
            bar.update(len(gen.texts))
    stats["seconds"] = round(time.monotonic() - start, 3)
    return stats


def _throughput_line(stats: dict[str, Any]) -> str:
    secs = stats["seconds"] or 1e-9
    return (
        f"shard {stats['shard']}: {stats['problems']} problems, {stats['completions']} "
        f"completions, {stats['tokens']} tokens in {stats['seconds']:.1f}s "
        f"({stats['completions'] / secs:.2f} completions/s, {stats['tokens'] / secs:.1f} tokens/s)"
    )


def _spawned_shard(cfg: SampleConfig, shard: Shard, devices: str) -> dict[str, Any]:
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    return run_shard(cfg, shard)


def _run_local_replicas(cfg: SampleConfig) -> list[dict[str, Any]]:
    """One spawned process per replica, each on its own GPUs."""
    gpus = visible_gpus()
    if not gpus:
        raise AppsHpcError("--gpus all: no GPU visible on this node")
    replicas = len(gpus) // cfg.gpus_per_model
    if replicas == 0:
        raise AppsHpcError(f"--gpus-per-model {cfg.gpus_per_model} > the {len(gpus)} GPUs here")
    groups = [
        ",".join(gpus[i * cfg.gpus_per_model : (i + 1) * cfg.gpus_per_model])
        for i in range(replicas)
    ]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(replicas) as pool:
        jobs = [
            pool.apply_async(
                _spawned_shard,
                (replace(cfg, progress=cfg.progress and i == 0), Shard(i, replicas), groups[i]),
            )
            for i in range(replicas)
        ]
        return [job.get() for job in jobs]


def merge_samples(folder: Path, out: Path | None = None, prompts: Path | None = None) -> Path:
    """Join complete shards into one samples file sorted by problem; a missing or
    incomplete shard, a problem twice, or one not in `prompts` is an error naming it."""
    if prompts is None:
        return merge_shards(folder, out, None)
    return merge_shards(folder, out, read_prompts(prompts), prompts)


def merge_shards_of(cfg: SampleConfig) -> Path:
    """The pipeline's merge step: `merge_samples` of the config's shard folder."""
    return merge_samples(cfg.out, prompts=cfg.prompts)


def sample(cfg: SampleConfig) -> Path:
    """Sample this process's shard (or every local replica); merge when all are done.
    Returns the merged samples file, or the shard folder while shards are missing."""
    # The model folder, or a hub id's fetched snapshot (offline): checked before anything.
    cfg = replace(cfg, model=str(hub.local(cfg.model, hub.MODEL)))
    cfg.out.mkdir(parents=True, exist_ok=True)
    if cfg.gpus == "all" and cfg.shard is None and array_task() is None:
        all_stats = _run_local_replicas(cfg)
    else:
        task = array_task()
        shard = cfg.shard or (Shard(*task) if task else Shard(0, 1))
        all_stats = [run_shard(cfg, shard)]
    for stats in all_stats:
        log.info(_throughput_line(stats))
        update_manifest(
            cfg.manifest or cfg.out / "manifest.json",
            ["sample", cfg.name, "throughput", stats["shard"]],
            stats,
        )
    if shard_status(cfg.out, read_prompts(cfg.prompts)):
        return cfg.out
    return merge_samples(cfg.out, prompts=cfg.prompts)


__all__ = ["SampleConfig", "merge_samples", "sample"]
