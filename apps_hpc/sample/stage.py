"""`sample(cfg)`: prompts.jsonl -> samples shard files (and the merged samples file).

One shard per model replica. `--shard I/S` (or the SLURM array task) picks the shard;
`--gpus all` on a node without SLURM starts one spawned worker per replica, each with its
own CUDA_VISIBLE_DEVICES. A shard appends one line per finished problem and skips the
problems already in its file, so a killed run resumes; when every shard is complete the
shards are merged into `<out>.jsonl`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.core.jsonl import AppendLog, complete_records, dump_line, iter_jsonl
from apps_hpc.core.prompts import chat_prompt, extract_code
from apps_hpc.core.records import parse_prompt, problem_key
from apps_hpc.core.schedenv import array_task, visible_gpus
from apps_hpc.core.schema import SampleSection, Sampling
from apps_hpc.core.shards import (
    Shard,
    assign,
    merge_shards,
    problem_seed,
    shard_files,
    shard_status,
)
from apps_hpc.hub import paths as hub
from apps_hpc.provenance.manifest import update_manifest
from apps_hpc.provenance.stamps import FIELD, digest, model_fingerprint
from apps_hpc.sample.engines import EngineOptions, Request, make_engine

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
    memory_utilization: float | None = SampleSection.memory_utilization
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
    if not os.path.lexists(path):
        raise AppsHpcError(f"{path}: no such prompts file (run `apps-hpc prepare`)")
    prompts = []
    for lineno, rec in iter_jsonl(path):
        prompts.append(parse_prompt(rec, (str(path), lineno)))
    if not prompts:
        raise AppsHpcError(f"{path}: no prompts (expected one line per test problem)")
    return prompts


def _key(rec: dict[str, Any]) -> tuple[Any, Any]:
    return problem_key(rec)


class Provenance:
    """Each prompt's samples hash: the prompt, the model (a local folder by its files),
    the sampling settings and the engine."""

    def __init__(self, cfg: SampleConfig) -> None:
        self.settings = {
            "model": model_fingerprint(cfg.model),
            "sampling": dataclasses.asdict(cfg.sampling),
            "engine": cfg.engine,
            "max_model_len": cfg.max_model_len,
        }

    def of(self, prompt: dict[str, Any]) -> str:
        return digest({"prompt": prompt["prompt"], **self.settings})


def _record(prompt: dict[str, Any], texts: list[str], name: str, prov: str) -> dict[str, Any]:
    return {
        "problem_id": prompt["problem_id"],
        "split": problem_key(prompt)[0],
        "difficulty": prompt["difficulty"],
        "model": name,
        "codes": [extract_code(t) for t in texts],
        "completions": texts,
        FIELD: prov,
    }


def _reuse(shard_log: AppendLog, want: dict[Any, str]) -> AppendLog:
    """Keep the records sampled from exactly these prompts, model and settings; rewrite
    the shard without the others, and say how many are redone."""
    kept: dict[Any, dict[str, Any]] = {}
    for _, rec in shard_log.records:
        if _key(rec) in want and _key(rec) not in kept and rec.get(FIELD) == want[_key(rec)]:
            kept[_key(rec)] = rec
    stale = len(shard_log.records) - len(kept)
    if stale:
        log.warning(
            "%s: %d samples made from another prompt, model or sampling settings are redone",
            shard_log.path,
            stale,
        )
        write_atomic(shard_log.path, "".join(dump_line(r) for r in kept.values()))
        shard_log = AppendLog(shard_log.path)
    return shard_log


def expected_provenance(cfg: SampleConfig) -> dict[Any, str]:
    """Every prompt's key and samples hash."""
    prov = Provenance(cfg)
    return {_key(p): prov.of(p) for p in read_prompts(cfg.prompts)}


def _provenance_in(paths: list[Path]) -> dict[Any, str]:
    return {_key(r): r.get(FIELD) for path in paths for r in complete_records(path)}


def is_done(cfg: SampleConfig) -> bool:
    """Are this model's samples complete (the merged file, or every shard) and made from
    the current prompts, model and settings?"""
    want = expected_provenance(cfg)
    if _provenance_in([cfg.merged]) == want:
        return True
    shards = [path for _, path in shard_files(cfg.out).values()]
    return not shard_status(cfg.out, None) and _provenance_in(shards) == want


def merged_is_done(cfg: SampleConfig) -> bool:
    return _provenance_in([cfg.merged]) == expected_provenance(cfg)


def _options(cfg: SampleConfig) -> EngineOptions:
    return EngineOptions(
        model=cfg.model,
        sampling=cfg.sampling,
        gpus_per_model=cfg.gpus_per_model,
        max_model_len=cfg.max_model_len,
        gpu_memory_utilization=cfg.memory_utilization,
    )


def run_shard(cfg: SampleConfig, shard: Shard) -> dict[str, Any]:
    """Sample the problems of one shard not yet in its file; return the throughput."""
    prov = Provenance(cfg)
    mine = {_key(p): p for p in assign(read_prompts(cfg.prompts), shard)}
    want = {k: prov.of(p) for k, p in mine.items()}
    shard_log = _reuse(AppendLog(cfg.out / shard.file_name()), want)
    done = {_key(r) for _, r in shard_log.records}
    todo = [p for key, p in mine.items() if key not in done]
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
            problem_seed(cfg.sampling.seed, *problem_key(p)),
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
            shard_log.append(_record(req.key, gen.texts, cfg.name, want[_key(req.key)]))
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


SAMPLING_FILE = "sampling.json"  # in the shard folder: which prompts, model, settings


def _write_sampling(cfg: SampleConfig) -> None:
    info = {
        "prompts": str(cfg.prompts.resolve()),
        "model": cfg.model,
        "engine": cfg.engine,
        "sampling": dataclasses.asdict(cfg.sampling),
    }
    write_atomic(cfg.out / SAMPLING_FILE, json.dumps(info, indent=1) + "\n")


def _prompts_of(folder: Path) -> Path:
    """The prompts a shard folder was sampled from (recorded by `sample`)."""
    try:
        return Path(json.loads((folder / SAMPLING_FILE).read_text())["prompts"])
    except (OSError, ValueError, KeyError, TypeError):
        raise AppsHpcError(
            f"{folder}: cannot tell whether its shards are complete (no {SAMPLING_FILE}); "
            "pass --prompts data/prompts.jsonl"
        ) from None


def merge_samples(folder: Path, out: Path | None = None, prompts: Path | None = None) -> Path:
    """Join complete shards into one samples file sorted by problem; a missing or
    incomplete shard, a problem twice, or one not in the prompts is an error naming it.
    Without `prompts`, the prompts the folder was sampled from (its sampling.json) say
    what complete is."""
    if not folder.is_dir():
        raise AppsHpcError(f"{folder}: no such shard folder")
    prompts = prompts or _prompts_of(folder)
    return merge_shards(folder, out, read_prompts(prompts), prompts)


def merge_shards_of(cfg: SampleConfig) -> Path:
    """The pipeline's merge step: `merge_samples` of the config's shard folder."""
    return merge_samples(cfg.out, prompts=cfg.prompts)


def sample(cfg: SampleConfig) -> Path:
    """Sample this process's shard (or every local replica); merge when all are done.
    Returns the merged samples file, or the shard folder while shards are missing."""
    if cfg.merged == cfg.out or cfg.merged.is_dir():
        raise AppsHpcError(f"{cfg.out}: the shard folder and the merged file would clash")
    # The model folder, or a hub id's fetched snapshot (offline): checked before anything.
    cfg = replace(cfg, model=str(hub.local(cfg.model, hub.MODEL)))
    read_prompts(cfg.prompts)  # an empty or missing prompts file stops before any work
    if not (Path(cfg.model) / "config.json").is_file():  # else a loader's traceback
        raise AppsHpcError(f"{cfg.model}: not a model folder (it has no config.json)")
    cfg.out.mkdir(parents=True, exist_ok=True)
    _write_sampling(cfg)
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
