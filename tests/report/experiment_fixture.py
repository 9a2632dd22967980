"""A small experiment folder written by hand in the records' shapes (results with the
per-program failure detail, samples, prompts, trainer log, manifest with job logs), for
the report tests."""

from __future__ import annotations

import json
from pathlib import Path

DIFFS = ("introductory", "interview", "competition")
VERDICT_CYCLE = ("wrong_answer", "runtime_error", "timeout", "compile_error")


def _failure(verdict: str, pid: int, j: int) -> dict | None:
    if verdict == "pass":
        return None
    if verdict == "wrong_answer":
        return {
            "test": 1,
            "input": f"{pid} {j}\n",
            "expected": f"{pid + j}",
            "got": "0",
            "error": None,
        }
    if verdict == "timeout":
        return {"test": 0, "input": "9" * 20, "expected": "1", "got": None, "error": "timeout"}
    error = (
        "ZeroDivisionError: division by zero"
        if verdict == "runtime_error"
        else ("SyntaxError: invalid syntax")
    )
    return {"test": 0, "input": "1\n", "expected": "1", "got": None, "error": error}


def solved_counts(model: str, problems: int) -> list[int]:
    """c per problem: sft solves more, base solves a few sft does not."""
    if model == "base":
        return [(i * 3) % 4 if i % 5 else 0 for i in range(problems)]
    return [min(10, (i * 3) % 4 + 2) if i % 5 != 3 else 0 for i in range(problems)]


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _model_files(exp: Path, model: str, problems: int, n: int) -> None:
    samples, results = [], []
    for pid, c in enumerate(solved_counts(model, problems)):
        verdicts = ["pass"] * c + [VERDICT_CYCLE[(pid + j) % 4] for j in range(n - c)]
        difficulty = DIFFS[pid % 3]
        codes = [
            f"# {model} program {j} for problem {pid}\nprint(int(input()) + {j})\n"
            for j in range(n)
        ]
        base = {"problem_id": pid, "split": "test", "difficulty": difficulty, "model": model}
        samples.append({**base, "codes": codes})
        results.append(
            {
                **base,
                "n": n,
                "c": c,
                "verdicts": verdicts,
                "tests": [[v == "pass"] for v in verdicts],
                "failures": [_failure(v, pid, j) for j, v in enumerate(verdicts)],
            }
        )
    _write_jsonl(exp / "samples" / f"{model}.jsonl", samples)
    _write_jsonl(exp / "results" / f"{model}.jsonl", results)


HUB_MODEL = {
    "repo": "deepseek-ai/deepseek-coder-6.7b-instruct",
    "revision": "main",
    "commit": "e5d6",
}
HUB_APPS = {"repo": "codeparrot/apps", "revision": "main", "commit": "21e7"}


def run_record(step: str, i: int) -> dict:
    """What identity.record_run records for a task (identity.run_record's shape)."""
    sources = {
        "prepare": {"apps": HUB_APPS},
        "train": {"model": HUB_MODEL, "apps": HUB_APPS},
        "sample/base": {"model": HUB_MODEL},
        "sample/sft": {"model": {"path": "/exp/train", "digest": "5f7a0c2e9b1d4e3f"}},
    }.get(step, {"apps": HUB_APPS} if step.startswith("eval") else {})
    software = {
        "apps_hpc": "0.1.0",
        "git": {"commit": "abc1234", "dirty": False, "from": "APPS_HPC_GIT_SHA"},
        "image": "apps-hpc:0.1.0-abc1234",
        "sif": "/lustre/containers/apps-hpc.sif",
        "lock": "2b5720b976c4eb65",
        "python": "3.10.14",
        "packages": {
            "torch": "2.1.2",
            "transformers": "4.49.0",
            "vllm": "0.4.0.post1",
            "llamafactory": "0.9.2",
        },
        "host": f"gpu{i % 2:02d}",
    }
    return {
        "stage": step.split("/")[0],
        "software": software,
        "sources": sources,
        "experiment_yaml": "0c1d2e3f4a5b6c7d",
    }


def _manifest(exp: Path) -> None:
    jobs, timing = {}, {}
    for i, key in enumerate(
        ["prepare", "train", "sample/base", "eval/base", "sample/sft", "eval/sft", "report"]
    ):
        log = str(exp / "jobs" / f"{100 + i}_0_log.out")
        # what launch/tasks.StageTask records: each task's start and end
        timing[key] = {
            str(100 + i): {
                "started": f"2024-05-01T10:{i:02d}:00+00:00",
                "ended": f"2024-05-01T10:{i:02d}:42+00:00",
                "state": "COMPLETED",
            }
        }
        jobs[key] = {
            "stage": key.split("/")[0],
            "executor": "local",
            "ids": [str(100 + i)],
            "logs": [log],
            "submitted": f"2024-05-01T10:{i:02d}:00+00:00",
        }
    throughput = {
        "shard-0-of-2": {
            "shard": "0/2",
            "problems": 15,
            "completions": 150,
            "tokens": 30000,
            "seconds": 60.0,
        },
        "shard-1-of-2": {
            "shard": "1/2",
            "problems": 15,
            "completions": 150,
            "tokens": 27000,
            "seconds": 50.0,
        },
    }
    manifest = {
        "jobs": jobs,
        "timing": timing,
        "sample": {"sft": {"throughput": throughput}},
        "run": {key: {str(100 + i): run_record(key, i)} for i, key in enumerate(timing)},
    }
    (exp / "manifest.json").write_text(json.dumps(manifest, indent=1))


def make_experiment(root: Path, name: str = "demo", problems: int = 30, n: int = 10) -> Path:
    """<root>/<name> with base and sft results; returns the experiment folder."""
    exp = root / name
    for model in ("base", "sft"):
        _model_files(exp, model, problems, n)
    prompts = [
        {
            "problem_id": pid,
            "split": "test",
            "difficulty": DIFFS[pid % 3],
            "fn_name": None,
            "prompt": f"Problem {pid}: read a number and print it plus one.",
        }
        for pid in range(problems)
    ]
    _write_jsonl(exp / "data" / "prompts.jsonl", prompts)
    log = [
        {
            "current_steps": s,
            "total_steps": 20,
            "loss": round(3.0 / s, 4),
            "epoch": s / 10,
            "elapsed_time": f"0:00:{s:02d}",
        }
        for s in range(1, 21)
    ]
    _write_jsonl(exp / "train" / "trainer_log.jsonl", log)
    _manifest(exp)
    (exp / "experiment.yaml").write_text(f"name: {name}\nroot: {root}\nmodel: tiny-llama\n")
    return exp
