"""The rates a plan runs at: the published run's, or this site's earlier runs'.

The published run (DESIGN.md) gives wall times, not rates; each rate below is what those
times imply under a stated token count. Planning the published run back on its own
profile therefore reproduces its times: a check of the arithmetic, not of the model.
An earlier run on the same profile (its manifest holds the plan `submit pipeline` wrote
and the stages' measured wall times) replaces the published figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps_hpc.core.apps import PUBLISHED_COUNTS
from apps_hpc.launch import estimate as est
from apps_hpc.provenance.manifest import manifest_exists, read_manifest
from apps_hpc.report.timing import stage_wall

# deepseek-coder-6.7b's config.json (hidden_size, num_hidden_layers, num_attention_heads,
# intermediate_size, vocab_size); used when the model is not fetched yet.
DEEPSEEK_CODER_6_7B = est.ModelShape(
    hidden=4096, layers=32, heads=32, intermediate=11008, vocab=32256, kv_heads=32
)
KNOWN_SHAPES = {
    "deepseek-ai/deepseek-coder-6.7b-instruct": DEEPSEEK_CODER_6_7B,
    "deepseek-ai/deepseek-coder-6.7b-base": DEEPSEEK_CODER_6_7B,
}

# APPS train as the published recipe uses it (every solution of every train problem):
# 5,000 problems (the codeparrot/apps card); 15.24 solutions per problem and 2,654
# characters per example (prompt + fenced answer) are the means over the 153 real train
# rows in shared/apps (2,331 solutions); 3.5 characters per token is an assumption for
# a code BPE tokenizer. Replaced by counts as soon as the dataset is prepared.
APPS_TRAIN_PROBLEMS = 5000
SOLUTIONS_PER_PROBLEM = 2331 / 153
CHARS_PER_EXAMPLE = 2654
CHARS_PER_TOKEN = 3.5


@dataclass(frozen=True)
class Published:
    """The published run's facts (DESIGN.md)."""

    gpus: int = 8  # A100-PCIE-40GB
    epochs: float = 2.0
    train_s: float = 8 * 3600 + 58 * 60 + 33  # 8h58m33s
    prompts: int = sum(PUBLISHED_COUNTS.values())  # test problems with solutions
    n: int = 10
    sample_gpus: int = 8  # one vLLM replica per GPU
    sample_s: float = 16 * 60 + 35  # 16m35s
    eval_s: float = 20 * 60  # "~20 min", reference harness, CPUs not published


PUBLISHED = Published()
# Not published: an assumed mean completion length, for the token column only.
ASSUMED_COMPLETION_TOKENS = 400
# benchmarks/rehearsal.py --scale 0.1 (docs/benchmarks.md, "Rehearsal at the real size"):
# the published test split's shape and a model-like mix of programs (passes, wrong
# answers, errors, timeouts, duplicates the verdict cache saves) extrapolate to 24,897
# core-seconds for both models' 75,300 programs at the reference's 4 s per test.
BENCH_CPU_S_PER_PROGRAM = 24_897 / 75_300


def estimated_examples() -> int:
    return round(APPS_TRAIN_PROBLEMS * SOLUTIONS_PER_PROBLEM)


def estimated_tokens(examples: int) -> int:
    return round(examples * CHARS_PER_EXAMPLE / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Rate:
    value: float
    source: str


def published_train_rate(tokens: int) -> Rate:
    """FLOP/s per GPU implied by the published 8h58m33s for `tokens` per epoch."""
    p = PUBLISHED
    params = est.param_count(DEEPSEEK_CODER_6_7B)
    rate = est.calibrated_rate(params, tokens, p.epochs, p.gpus, p.train_s)
    return Rate(rate, f"published run: {p.gpus} GPUs, {p.epochs:g} epochs of {tokens:,} tokens")


def published_sample_rate() -> Rate:
    p = PUBLISHED
    rate = p.prompts * p.n / (p.sample_gpus * p.sample_s)
    return Rate(rate, f"published run: {p.prompts}x{p.n} completions, {p.sample_gpus} GPUs")


def bench_eval_rate() -> Rate:
    return Rate(BENCH_CPU_S_PER_PROGRAM, "benchmarks/rehearsal.py --scale 0.1 (docs/benchmarks.md)")


def _earlier(
    root: Path, profile: str, exclude: Path | None = None
) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, manifest) of the experiments under `root` whose plan was for `profile`,
    oldest plan first; `exclude` (the experiment being planned) left out, so a run never
    calibrates its own plan."""
    found = []
    skip = Path(exclude).resolve() if exclude is not None else None
    for folder in sorted(p for p in Path(root).glob("*") if p.is_dir()):
        path = folder / "manifest.json"
        if folder.resolve() == skip or not manifest_exists(path):
            continue
        manifest = read_manifest(path)
        plan = manifest.get("plan")
        if isinstance(plan, dict) and plan.get("profile") == profile:
            found.append((path.parent, manifest))
    return sorted(found, key=lambda f: str(f[1]["plan"].get("planned_at", "")))


def site_train_rate(root: Path, profile: str, exclude: Path | None = None) -> Rate | None:
    """FLOP/s per GPU of the newest earlier run's training: 6 x params x tokens x epochs
    over GPUs x its measured wall time. The figures are those counted when training ended
    (`measured/train`), else the plan's when it counted them (not an estimate)."""
    for folder, manifest in reversed(_earlier(root, profile, exclude)):
        t = (manifest.get("measured") or {}).get("train")
        if not isinstance(t, dict):
            t = manifest["plan"].get("training") or {}
            if str(t.get("tokens_source", "estimate")).startswith("estimate"):
                continue
        wall = stage_wall((manifest.get("timing") or {}).get("train"))
        if wall and t.get("params") and t.get("tokens") and t.get("gpus"):
            rate = est.calibrated_rate(t["params"], t["tokens"], t["epochs"], t["gpus"], wall)
            return Rate(
                rate,
                f"earlier run {folder.name}: {t['tokens']:,} tokens x {t['epochs']:g} epochs "
                f"on {t['gpus']} GPU(s) in {wall:.0f} s (manifest timing/train)",
            )
    return None


def site_sample_rate(root: Path, profile: str, exclude: Path | None = None) -> Rate | None:
    """Completions/s per GPU over every sampling shard of the newest earlier run."""
    for folder, manifest in reversed(_earlier(root, profile, exclude)):
        gpus = (manifest["plan"].get("sampling") or {}).get("gpus_per_model") or 1
        shards = [
            s
            for entry in (manifest.get("sample") or {}).values()
            if isinstance(entry, dict)
            for s in (entry.get("throughput") or {}).values()
        ]
        done = sum(s.get("completions", 0) for s in shards)
        secs = sum(s.get("seconds", 0) for s in shards)
        if done and secs:
            source = f"earlier run {folder.name}: {done:,} completions in {secs:.0f} GPU-s"
            return Rate(done / secs / gpus, f"{source} (manifest sample/*/throughput)")
    return None


def sampled(manifest: dict[str, Any], model: str) -> int | None:
    """The completions sampling recorded for `model` (the programs eval judged)."""
    entry = (manifest.get("sample") or {}).get(model)
    shards = (entry.get("throughput") or {}) if isinstance(entry, dict) else {}
    done = sum(s.get("completions", 0) for s in shards.values() if isinstance(s, dict))
    return done or None


def site_eval_rate(root: Path, profile: str, exclude: Path | None = None) -> Rate | None:
    """CPU-seconds per program: eval wall x CPUs / programs, of the newest earlier run."""
    for folder, manifest in reversed(_earlier(root, profile, exclude)):
        e = manifest["plan"].get("eval") or {}
        timing = manifest.get("timing") or {}
        walls = {k[5:]: stage_wall(v) for k, v in timing.items() if k.startswith("eval/")}
        if walls and None not in walls.values() and e.get("programs_per_model") and e.get("cpus"):
            cpu_s = sum(w or 0 for w in walls.values()) * e["cpus"] * e.get("shards", 1)
            programs = sum(sampled(manifest, m) or e["programs_per_model"] for m in walls)
            return Rate(
                cpu_s / programs,
                f"earlier run {folder.name}: {programs:,} programs in {cpu_s:.0f} CPU-s "
                "(manifest timing/eval)",
            )
    return None
