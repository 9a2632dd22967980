"""Sampling throughput of the engine at hand: completions/s and tokens/s.

    python benchmarks/sample_throughput.py                       # tiny model, transformers, CPU
    python benchmarks/sample_throughput.py --model PATH --engine vllm   # on a GPU node

Without `--model` it builds the tiny local model (`apps-hpc tiny-model`). Prompts are the
real test problems of `../shared/apps` (or `--prompts prompts.jsonl`), formatted exactly
as `apps-hpc sample` sends them; every problem gets its own seed, as in real runs.
Prints the device, the settings and the figures; `--json` also writes them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from apps_hpc.core.apps import load_problems
from apps_hpc.core.prompts import chat_prompt
from apps_hpc.core.shards import problem_seed
from apps_hpc.prepare.stage import prompt_records
from apps_hpc.sample.engines import EngineOptions, Request, Sampling, make_engine

SHARED_APPS = Path(__file__).resolve().parents[2] / "shared" / "apps"


def _prompts(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.prompts:
        return [json.loads(x) for x in args.prompts.read_text().splitlines()][: args.problems]
    problems, _ = load_problems(args.apps / "test-sample.jsonl")
    return prompt_records(problems.values())[: args.problems]


def _device(engine: str) -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    except ImportError:
        pass
    return f"CPU ({platform.processor() or platform.machine()})"


def _model(args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    from apps_hpc.tools.tiny_model import tiny_model

    return str(tiny_model(Path(tempfile.mkdtemp(prefix="tiny-model-"))))


def run(args: argparse.Namespace) -> dict[str, Any]:
    sampling = Sampling(n=args.n, max_tokens=args.max_tokens)
    engine = make_engine(args.engine, EngineOptions(model=_model(args), sampling=sampling))
    requests = [
        Request(p, chat_prompt(p["prompt"]), problem_seed(42, "test", p["problem_id"]))
        for p in _prompts(args)
    ]
    start, completions, tokens = time.monotonic(), 0, 0
    for _, gen in engine.generate(requests):
        completions += len(gen.texts)
        tokens += gen.tokens
    seconds = time.monotonic() - start
    return {
        "engine": args.engine,
        "device": _device(args.engine),
        "problems": len(requests),
        "n": args.n,
        "max_tokens": args.max_tokens,
        "completions": completions,
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "completions_per_s": round(completions / seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--engine", default="transformers", choices=["transformers", "vllm"])
    parser.add_argument("--model", help="model folder (default: build the tiny model)")
    parser.add_argument("--apps", type=Path, default=SHARED_APPS)
    parser.add_argument("--prompts", type=Path, help="a prompts.jsonl instead of ../shared/apps")
    parser.add_argument("--problems", type=int, default=9)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = run(args)
    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
