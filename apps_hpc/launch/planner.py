"""`apps-hpc plan`: what each stage of an experiment will cost on a profile, and whether
training fits, before anything is queued. The inputs are read here (the model's
config.json, the prepared dataset, the recipe, earlier runs); the arithmetic is
`launch/estimate.py`, the rates `launch/calibration.py`."""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from apps_hpc.core.checks import Check
from apps_hpc.core.config import Experiment
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.jsonl import iter_jsonl
from apps_hpc.core.schema import Profile, mem_mb
from apps_hpc.hub import paths as hub
from apps_hpc.launch import calibration as cal
from apps_hpc.launch import estimate as est
from apps_hpc.launch.executor import stage_resources
from apps_hpc.launch.preflight import train_gpus
from apps_hpc.provenance.manifest import manifest_exists, read_manifest, update_manifest

MB = 2**20


@dataclass(frozen=True)
class Recipe:
    """What the rendered LlamaFactory + DeepSpeed configs say about cost."""

    micro_batch: int
    accumulation: int
    epochs: float
    cutoff: int
    zero: int  # 0: no DeepSpeed
    checkpointing: bool
    max_steps: int | None


def recipe(exp: Experiment) -> Recipe:
    base: dict[str, Any] = yaml.safe_load(exp.resolve(exp.train.llamafactory).read_text())
    cfg = {**base, **exp.train.overrides}
    zero = 0
    if exp.train.deepspeed:
        ds = json.loads(exp.resolve(exp.train.deepspeed).read_text())
        zero = int((ds.get("zero_optimization") or {}).get("stage", 0))
    max_steps = int(cfg.get("max_steps", -1))
    return Recipe(
        micro_batch=int(cfg.get("per_device_train_batch_size", 1)),
        accumulation=int(cfg.get("gradient_accumulation_steps", 1)),
        epochs=float(cfg.get("num_train_epochs", 3.0)),
        cutoff=int(cfg.get("cutoff_len", 2048)),
        zero=zero,
        checkpointing=not cfg.get("disable_gradient_checkpointing", False),
        max_steps=max_steps if max_steps > 0 else None,
    )


def model_dir(exp: Experiment) -> Path | None:
    try:
        return hub.local(exp.model, hub.MODEL, exp.fetch.model_revision, exp.hub_dir)
    except AppsHpcError:
        return None


def model_shape(exp: Experiment) -> tuple[est.ModelShape, str]:
    """The model's shape from its config.json (fetched or local), else a built-in one."""
    folder = model_dir(exp)
    if folder is not None and (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
        return est.ModelShape.from_config(config), str(folder / "config.json")
    if exp.model in cal.KNOWN_SHAPES:
        return cal.KNOWN_SHAPES[exp.model], "built-in config.json numbers (model not fetched)"
    raise AppsHpcError(f"{exp.model}: no config.json (run `apps-hpc fetch --config EXP` first)")


def _tokenizer(exp: Experiment) -> Any | None:
    folder = model_dir(exp)
    if folder is None:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception:  # no transformers, or no tokenizer files: fall back to characters
        return None


def count_tokens(texts: list[str], cutoff: int, tokenizer: Any | None) -> tuple[int, bool]:
    """(tokens, exact) of the examples, each at most `cutoff`: counted with the tokenizer,
    else characters / CHARS_PER_TOKEN (an estimate)."""
    if tokenizer is not None:
        lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
        return sum(min(n, cutoff) for n in lengths), True
    return sum(min(round(len(t) / cal.CHARS_PER_TOKEN), cutoff) for t in texts), False


def dataset_counts(exp: Experiment, cutoff: int) -> tuple[int, int, str]:
    """(examples, tokens per epoch, where they come from)."""
    path = exp.data_dir / f"{exp.prepare.dataset_name}.json"
    if path.is_file():
        rows = json.loads(path.read_text())
        texts = [
            f"{r.get('instruction', '')}{r.get('input', '')}{r.get('output', '')}" for r in rows
        ]
        tokens, exact = count_tokens(texts, cutoff, _tokenizer(exp))
        how = "counted with the model's tokenizer" if exact else "estimate: characters / 3.5"
        return len(rows), tokens, f"{path} ({how})"
    rows, where = local_rows(exp, "train")
    problems = rows if rows is not None else cal.APPS_TRAIN_PROBLEMS
    examples = round(problems * cal.SOLUTIONS_PER_PROBLEM)
    if exp.prepare.max_per_problem is not None:
        cap = min(exp.prepare.max_per_problem, cal.SOLUTIONS_PER_PROBLEM)
        examples = round(problems * cap)
    tokens = cal.estimated_tokens(examples)
    return examples, tokens, f"estimate (not prepared yet): {where}, APPS train means"


def local_rows(exp: Experiment, split: str) -> tuple[int | None, str]:
    """The rows of a local APPS folder's `<split>.jsonl` (problems before prepare drops
    those without solutions or tests), else None and the published count's name."""
    path = Path(exp.apps) / f"{split}.jsonl"
    if not path.is_file():
        return None, f"{cal.APPS_TRAIN_PROBLEMS:,} APPS {split} problems"
    with path.open("rb") as f:
        rows = sum(1 for line in f if line.strip())
    return rows, f"{rows} problems in {path}"


def states_fn() -> tuple[Any, Any, str]:
    """DeepSpeed's estimators when DeepSpeed is installed, else the same formulas. Its
    import logs to stdout: that goes to stderr, so `--format json` stays JSON."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            import deepspeed
            from deepspeed.runtime.zero.stage3 import (
                estimate_zero3_model_states_mem_needs as z3,
            )
            from deepspeed.runtime.zero.stage_1_and_2 import (
                estimate_zero2_model_states_mem_needs as z2,
            )
        return z2, z3, f"DeepSpeed {deepspeed.__version__} estimators"
    except ImportError:
        return None, None, "DeepSpeed not installed: its published formulas (launch/estimate.py)"


def memory_rows(
    shape: est.ModelShape, r: Recipe, gpus_per_node: int, nodes: int
) -> tuple[list[est.MemoryRow], str]:
    params, largest = est.param_count(shape), est.largest_layer(shape)
    z2, z3, source = states_fn()
    act = est.activation_bytes(shape, r.cutoff, r.micro_batch, r.checkpointing)
    rows = []
    for zero in (2, 3):
        for offload in est.OFFLOADS[:2] if zero == 2 else est.OFFLOADS:
            if z2 is None:
                cpu, gpu = est.zero_states(zero, params, largest, gpus_per_node, nodes, offload)
            elif zero == 2:
                cpu, gpu = z2(params, gpus_per_node, nodes, cpu_offload=offload != "none")
            else:
                on, both = offload != "none", offload == "optimizer+params"
                cpu, gpu, _ = z3(params, largest, gpus_per_node, nodes, on, both, True)
            rows.append(est.MemoryRow(zero, offload, int(gpu), act, int(cpu)))
    return rows, source


def _gib(n: float) -> float:
    return round(n / est.GIB, 2)


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def gpu_bytes(profile: Profile) -> int:
    """The profile's GPU memory (`gpu_mem`), 0 for a profile without GPUs."""
    if profile.gpus_per_node <= 0 or not profile.gpu_mem:
        return 0
    return mem_mb(profile.gpu_mem) * MB


def memory_section(
    shape: est.ModelShape, r: Recipe, exp: Experiment, profile: Profile
) -> dict[str, Any]:
    """Memory per GPU for ZeRO-2 and ZeRO-3, the verdict for the recipe's stage, and the
    largest micro-batch that fits without offload."""
    per_node = max(1, exp.train.nproc_per_node or profile.gpus_per_node)
    rows, source = memory_rows(shape, r, per_node, profile.nodes)
    gpu = gpu_bytes(profile)
    node = mem_mb(profile.mem_per_node) * MB if profile.mem_per_node else None
    per_sample = est.activation_bytes(shape, r.cutoff, 1, r.checkpointing)
    zero = r.zero if r.zero in (2, 3) else 3
    return {
        "gpu_mem_gib": _gib(gpu),
        "zero": r.zero,
        "verdict": est.verdict(rows, zero, gpu, node).value,
        "verdicts": {f"zero{z}": est.verdict(rows, z, gpu, node).value for z in (2, 3)},
        "largest_micro_batch": {
            f"zero{row.zero}": est.largest_micro_batch(row.states, per_sample, gpu)
            for row in rows
            if row.offload == "none"
        },
        "rows": [
            {
                "zero": row.zero,
                "offload": row.offload,
                "states_gib": _gib(row.states),
                "activations_gib": _gib(row.activations),
                "overhead_gib": _gib(est.OVERHEAD_BYTES),
                "total_gib": _gib(row.total),
                "cpu_per_node_gib": _gib(row.cpu),
                "fits": gpu > 0 and row.fits(gpu, node),
            }
            for row in rows
        ],
        "states_source": source,
    }


def train_rate(exp: Experiment, profile: Profile, counted: tuple[int, str]) -> cal.Rate:
    """This site's measured rate, else the published run's: its tokens are the prepared
    dataset's when that is the published recipe's (every solution), else the estimate."""
    site = cal.site_train_rate(Path(exp.root), profile.name, exp.dir)
    if site is not None:
        return site
    tokens, source = counted
    published_data = exp.prepare.max_per_problem is None and not source.startswith("estimate")
    return cal.published_train_rate(
        tokens if published_data else cal.estimated_tokens(cal.estimated_examples())
    )


def training_counts(exp: Experiment, gpus: int) -> dict[str, Any]:
    """What training on `gpus` GPUs will process: parameters, examples, tokens, epochs,
    steps (counted on the prepared dataset when it exists, else estimated)."""
    shape, shape_source = model_shape(exp)
    r = recipe(exp)
    params = est.param_count(shape)
    examples, tokens, data_source = dataset_counts(exp, r.cutoff)
    steps = est.update_steps(examples, r.micro_batch, r.accumulation, gpus, r.epochs)
    epochs = r.epochs
    if r.max_steps is not None:  # max_steps wins over epochs, as in the Trainer
        epochs = r.epochs * r.max_steps / steps
        steps = r.max_steps
    return {
        "params": params,
        "params_source": shape_source,
        "examples": examples,
        "tokens": tokens,
        "tokens_source": data_source,
        "epochs": round(epochs, 4),
        "steps": steps,
        "gpus": gpus,
    }


def training_section(exp: Experiment, profile: Profile) -> dict[str, Any]:
    shape, _ = model_shape(exp)
    r = recipe(exp)
    counts = training_counts(exp, train_gpus(exp, profile))
    params, tokens, epochs, gpus = (counts[k] for k in ("params", "tokens", "epochs", "gpus"))
    rate = train_rate(exp, profile, (tokens, counts["tokens_source"]))
    seconds = est.train_seconds(params, tokens, epochs, gpus, rate.value)
    return {
        **counts,
        "flops": est.train_flops(params, tokens, epochs),
        "rate_tflops_per_gpu": round(rate.value / 1e12, 2),
        "rate_source": rate.source,
        "seconds": round(seconds),
        "gpu_hours": _hours(seconds * gpus),
        "memory": memory_section(shape, r, exp, profile),
    }


def _prompts(exp: Experiment) -> tuple[int, str]:
    path = exp.data_dir / "prompts.jsonl"
    if path.is_file():
        return sum(1 for _ in iter_jsonl(path)), str(path)
    rows, where = local_rows(exp, "test")
    if rows is not None:
        return rows, f"estimate (not prepared yet): {where}"
    return cal.PUBLISHED.prompts, "published: test problems with solutions"


def sampling_section(exp: Experiment, profile: Profile, shards: int) -> dict[str, Any]:
    prompts, source = _prompts(exp)
    site = cal.site_sample_rate(Path(exp.root), profile.name, exp.dir)
    rate = site or cal.published_sample_rate()
    res = stage_resources("sample", profile, exp.sample.gpus_per_model)
    gpus = max(1, res.gpus) * shards
    completions = prompts * exp.sample.n
    seconds = est.sample_seconds(completions, gpus, rate.value)
    return {
        "models": 2,
        "prompts": prompts,
        "prompts_source": source,
        "n": exp.sample.n,
        "completions_per_model": completions,
        "tokens_per_model": completions * min(cal.ASSUMED_COMPLETION_TOKENS, exp.sample.max_tokens),
        "tokens_source": f"assumed {cal.ASSUMED_COMPLETION_TOKENS} per completion (not published)",
        "rate_completions_per_gpu_s": round(rate.value, 3),
        "rate_source": rate.source,
        "shards": shards,
        "gpus_per_model": max(1, res.gpus),
        "seconds_per_model": round(seconds),
        "gpu_hours": _hours(2 * seconds * gpus),
    }


def eval_section(exp: Experiment, profile: Profile, shards: int, prompts: int) -> dict[str, Any]:
    rate = cal.site_eval_rate(Path(exp.root), profile.name, exp.dir) or cal.bench_eval_rate()
    res = stage_resources("eval", profile)
    programs = prompts * exp.sample.n
    cpu_s, wall = est.eval_seconds(programs, rate.value, res.cpus * shards)
    return {
        "models": 2,
        "programs_per_model": programs,
        "cpu_s_per_program": round(rate.value, 4),
        "rate_source": rate.source,
        "cpus": res.cpus,
        "shards": shards,
        "cpu_hours": _hours(2 * cpu_s),
        "seconds_per_model": round(wall),
        "node_hours": _hours(2 * wall * shards),
    }


def make_plan(
    exp: Experiment, profile: Profile, sample_shards: int, eval_shards: int
) -> dict[str, Any]:
    """The whole plan as JSON-able data (what `--format json` prints and the manifest keeps)."""
    sampling = sampling_section(exp, profile, sample_shards)
    return {
        "experiment": exp.name,
        "profile": profile.name,
        "training": training_section(exp, profile),
        "sampling": sampling,
        "eval": eval_section(exp, profile, eval_shards, sampling["prompts"]),
    }


def recipe_offload(exp: Experiment) -> str:
    """The recipe's DeepSpeed offload: none, optimizer, or optimizer+params."""
    if not exp.train.deepspeed:
        return "none"
    zero = json.loads(exp.resolve(exp.train.deepspeed).read_text()).get("zero_optimization") or {}
    on = [
        k
        for k in ("offload_optimizer", "offload_param")
        if (zero.get(k) or {}).get("device") == "cpu"
    ]
    return {0: "none", 1: "optimizer"}.get(len(on), "optimizer+params")


def check_memory(exp: Experiment, profile: Profile) -> Check:
    """Does the recipe's ZeRO stage and offload fit the profile's GPUs? (DeepSpeed's
    formulas, without importing it: `launch/estimate.zero_states`, tested equal.)"""
    r = recipe(exp)
    gpu = gpu_bytes(profile)
    if gpu == 0 or r.zero not in (2, 3):
        why = "no gpu_mem in the profile" if gpu == 0 else "no DeepSpeed ZeRO-2/3 recipe"
        return Check("memory per GPU", "skip", why)
    try:
        shape, _ = model_shape(exp)
    except AppsHpcError as exc:
        return Check("memory per GPU", "skip", str(exc))
    per_node = max(1, exp.train.nproc_per_node or profile.gpus_per_node)
    p, big = est.param_count(shape), est.largest_layer(shape)
    offload = recipe_offload(exp)
    _, states = est.zero_states(r.zero, p, big, per_node, profile.nodes, offload)
    act = est.activation_bytes(shape, r.cutoff, r.micro_batch, r.checkpointing)
    row = est.MemoryRow(r.zero, offload, states, act, 0)
    detail = f"ZeRO-{r.zero} ({offload} offload): {_gib(row.total)} of {_gib(gpu)} GiB"
    if row.fits(gpu, None):
        return Check("memory per GPU", "ok", detail)
    if not exp.train.memory_check:
        return Check("memory per GPU", "warn", f"{detail}: does not fit (train.memory_check=false)")
    return Check(
        "memory per GPU",
        "fail",
        f"{detail}: does not fit (see `apps-hpc plan`; submit anyway with "
        "--set train.memory_check=false)",
    )


def plan_summary(plan: dict[str, Any]) -> dict[str, Any]:
    """Per pipeline step, what the plan expects: wall seconds and, for training, memory
    per GPU (the recipe's ZeRO stage) — what the report sets beside the measured."""
    t, s, e = plan["training"], plan["sampling"], plan["eval"]
    memory = t["memory"]
    rows = [r for r in memory["rows"] if r["zero"] == memory["zero"] and r["offload"] == "none"]
    train: dict[str, Any] = {"seconds": t["seconds"], "tokens": t["tokens"], "steps": t["steps"]}
    if rows:
        train["gpu_mem_gib"] = rows[0]["total_gib"]
    steps = {"train": train}
    for model in ("base", "sft"):
        steps[f"sample/{model}"] = {"seconds": s["seconds_per_model"]}
        steps[f"eval/{model}"] = {"seconds": e["seconds_per_model"]}
    return steps


def record_plan(
    exp: Experiment, profile: Profile, sample_shards: int, eval_shards: int, force: bool
) -> dict[str, Any] | None:
    """`submit pipeline`: the plan into the experiment's manifest (`plan`, with `steps`,
    the per-step figures the report shows beside the measured ones). Kept from the first
    submission (a resubmission resumes the same run) unless --force reruns it; a plan that
    cannot be made (no model config) is left out with a warning, never a refusal."""
    manifest = exp.dir / "manifest.json"
    if not force and manifest_exists(manifest) and "plan" in read_manifest(manifest):
        return None
    try:
        plan = make_plan(exp, profile, sample_shards, eval_shards)
    except (AppsHpcError, OSError, ValueError) as exc:
        print(f"plan not recorded: {exc}", file=sys.stderr)
        return None
    plan["steps"] = plan_summary(plan)
    plan["planned_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    update_manifest(manifest, ["plan"], plan)
    return plan


def record_trained(exp: Experiment, manifest: Path) -> None:
    """After training, what it processed, counted on the prepared dataset (`measured/
    train`): the figures the next plan's rate is calibrated from, which the plan made at
    submission could only estimate (the dataset was not prepared yet). On the plan's
    GPUs; nothing without a plan."""
    plan = read_manifest(manifest).get("plan") if manifest_exists(manifest) else None
    if not isinstance(plan, dict):
        return
    try:
        counts = training_counts(exp, int(plan["training"]["gpus"]))
    except (AppsHpcError, OSError, ValueError, KeyError) as exc:
        print(f"training counts not recorded: {exc}", file=sys.stderr)
        return
    update_manifest(manifest, ["measured", "train"], counts)
