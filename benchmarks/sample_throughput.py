"""Sampling throughput of the engines: completions/s and tokens/s.

    python benchmarks/sample_throughput.py                       # tiny model, transformers, CPU
    python benchmarks/sample_throughput.py --model PATH --engine vllm   # on a GPU node
    python benchmarks/sample_throughput.py --compare [--vllm-python .venv-vllm/bin/python]

Without `--model` it builds the tiny local model (`apps-hpc tiny-model`; at hidden size
128, head_dim 32, which vLLM's CPU attention accepts). Prompts are the real test problems
of `../shared/apps` (or `--prompts prompts.jsonl`), formatted exactly as `apps-hpc
sample` sends them; every problem gets its own seed, as in real runs. `--compare` runs
both engines in one run on the same model and prompts, one after the other: transformers
in this interpreter, vLLM in `--vllm-python` (the `.venv-vllm` of `make vllm-env`: vLLM
cannot share the main environment) as a subprocess of this same script, and prints each
engine's figures and the ratio vLLM / transformers. Prints the device, the settings and
the figures; `--json` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
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

REPO = Path(__file__).resolve().parents[1]
SHARED_APPS = REPO.parent / "shared" / "apps"
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


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
    from apps_hpc.tools.tiny_model import TinySpec, tiny_model

    spec = TinySpec(hidden_size=128, intermediate_size=256)  # head_dim 32: vLLM's CPU minimum
    return str(tiny_model(Path(tempfile.mkdtemp(prefix="tiny-model-")), spec))


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


def _in_vllm_python(args: argparse.Namespace, model: str) -> dict[str, Any]:
    """This script with `--engine vllm` in the vLLM interpreter; its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "vllm.json"
        cmd = [str(args.vllm_python), str(Path(__file__).resolve()), "--engine", "vllm"]
        cmd += ["--model", model, "--apps", str(args.apps), "--problems", str(args.problems)]
        cmd += ["--n", str(args.n), "--max-tokens", str(args.max_tokens), "--json", str(out)]
        if args.prompts:
            cmd += ["--prompts", str(args.prompts)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Both engines on the same model and prompts, in one run; the ratio vLLM / HF and
    the machine's load average when it began."""
    args.model = _model(args)
    load = dict(zip(("load_1m", "load_5m", "load_15m"), os.getloadavg(), strict=True))
    hf = run(argparse.Namespace(**{**vars(args), "engine": "transformers"}))
    vllm = _in_vllm_python(args, args.model)
    ratio = {
        f"vllm_over_transformers_{key}": round(vllm[key] / hf[key], 2)
        for key in ("completions_per_s", "tokens_per_s")
    }
    return {"transformers": hf, "vllm": vllm, **ratio, "cpus": os.cpu_count(), **load}


def _print(figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        if isinstance(value, dict):
            print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
        else:
            print(f"{key}: {round(value, 2) if isinstance(value, float) else value}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--engine", default="transformers", choices=["transformers", "vllm"])
    parser.add_argument("--compare", action="store_true", help="both engines in one run")
    parser.add_argument("--vllm-python", type=Path, default=VLLM_PYTHON)
    parser.add_argument("--model", help="model folder (default: build the tiny model)")
    parser.add_argument("--apps", type=Path, default=SHARED_APPS)
    parser.add_argument("--prompts", type=Path, help="a prompts.jsonl instead of ../shared/apps")
    parser.add_argument("--problems", type=int, default=9)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = compare(args) if args.compare else run(args)
    _print(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
