"""`prepare(cfg)`: APPS rows -> the LlamaFactory SFT dataset and the sampling prompts.

Writes into the data folder:
- `<name>.json`: one alpaca-format example per (train problem, solution): the shared
  user prompt as `instruction`, the normalised solution as a fenced Python block as
  `output`; optionally at most `max_per_problem` solutions per problem, chosen with a
  seed. Problems without solutions or tests are dropped.
- `dataset_info.json`: the LlamaFactory entry for it (other entries are kept).
- `prompts.jsonl`: one line per test problem that has solutions, for `apps-hpc sample`.
- `stats.json` with `--stats`.
The same inputs and seed give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps_hpc.core.apps import Problem, iter_problems
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.core.jsonl import dump_line
from apps_hpc.core.prompts import answer, user_prompt
from apps_hpc.hub import paths as hub
from apps_hpc.provenance.stamps import files_fingerprint, stamp_matches, write_stamp

log = logging.getLogger(__name__)


@dataclass
class PrepareConfig:
    apps: str  # folder, .jsonl, parquet, or a hub id fetched by `apps-hpc fetch`
    out: Path
    dataset_name: str = "apps_train"
    max_per_problem: int | None = None
    seed: int = 42
    stats: bool = False
    tokenizer: str | None = None  # for --stats token lengths
    cutoff_len: int = 2048
    skip_bad_rows: bool = False


def sft_examples(problems: Iterable[Problem], cap: int | None, seed: int) -> list[dict]:
    """One alpaca example per (problem, solution), in problem-id order."""
    examples = []
    for problem in sorted(problems, key=lambda p: p.problem_id):
        if not problem.solutions or not problem.has_tests:
            continue
        solutions = list(enumerate(problem.solutions))
        if cap is not None and len(solutions) > cap:
            chosen = random.Random(f"{seed}:{problem.problem_id}").sample(solutions, cap)
            solutions = sorted(chosen)
        prompt = user_prompt(problem.question, problem.starter_code, problem.fn_name)
        for index, code in solutions:
            examples.append(
                {
                    "instruction": prompt,
                    "input": "",
                    "output": answer(code),
                    "problem_id": problem.problem_id,
                    "solution_index": index,
                    "difficulty": problem.difficulty,
                }
            )
    return examples


def prompt_records(problems: Iterable[Problem]) -> list[dict]:
    """The test problems that have solutions (the published run's 3,765 of 5,000)."""
    records = []
    for p in sorted(problems, key=lambda p: p.problem_id):
        if p.solutions and p.has_tests:
            records.append(
                {
                    "problem_id": p.problem_id,
                    "split": p.split,
                    "difficulty": p.difficulty,
                    "fn_name": p.fn_name,
                    "prompt": user_prompt(p.question, p.starter_code, p.fn_name),
                }
            )
    return records


def dataset_info_entry(file_name: str) -> dict[str, Any]:
    return {
        "file_name": file_name,
        "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output"},
    }


def load_splits(source: str, skip_bad: bool) -> dict[str, list[Problem]]:
    path = hub.local(source, hub.DATASET)  # a hub id: its fetched snapshot, offline
    splits: dict[str, list[Problem]] = {"train": [], "test": []}
    for problem in iter_problems(path, skip_bad=skip_bad):
        splits[problem.split].append(problem)
    return splits


def _write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, ensure_ascii=False, indent=1) + "\n")


def _write_jsonl(path: Path, records: list[dict]) -> None:
    write_atomic(path, "".join(dump_line(rec) for rec in records))


def _update_dataset_info(out: Path, name: str, file_name: str) -> None:
    info_path = out / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info[name] = dataset_info_entry(file_name)
    _write_json(info_path, dict(sorted(info.items())))


STAMP = "provenance.json"  # in the data folder: what the files were prepared from


def identity(cfg: PrepareConfig) -> dict[str, Any]:
    """What the prepared files depend on: the APPS files (name, size, mtime) or the hub
    dataset's name, the dataset name, the cap and its seed."""
    path = Path(cfg.apps)
    source: Any = cfg.apps
    if path.exists():
        files = [path] if path.is_file() else _apps_files(path)
        source = [f for file in files for f in files_fingerprint(file)]
    return {
        "apps": source,
        "dataset_name": cfg.dataset_name,
        "max_per_problem": cfg.max_per_problem,
        "seed": cfg.seed,
        "skip_bad_rows": cfg.skip_bad_rows,
    }


def _apps_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".jsonl", ".parquet"))


def is_done(cfg: PrepareConfig) -> bool:
    """Are the dataset and prompts there, prepared from these inputs and settings?"""
    outputs = (cfg.out / f"{cfg.dataset_name}.json", cfg.out / "prompts.jsonl")
    return all(p.is_file() for p in outputs) and stamp_matches(cfg.out / STAMP, identity(cfg))


def _nonempty(cfg: PrepareConfig, examples: list[dict], prompts: list[dict]) -> None:
    """An empty training set or prompt list is an error, before anything is written."""
    if not examples:
        raise AppsHpcError(
            f"{cfg.apps}: no train problems with solutions and tests "
            "(expected train rows for the fine-tuning set)"
        )
    if not prompts:
        raise AppsHpcError(
            f"{cfg.apps}: no test problems with solutions and tests "
            "(expected test rows for prompts.jsonl)"
        )


def prepare(cfg: PrepareConfig) -> Path:
    """Write the SFT dataset, its dataset_info entry and prompts.jsonl; return cfg.out.
    Files already prepared from the same inputs and settings are kept (said)."""
    if is_done(cfg) and not cfg.stats:
        log.info("skip prepare: %s already prepared from %s with these settings", cfg.out, cfg.apps)
        return cfg.out
    ident = identity(cfg)
    splits = load_splits(cfg.apps, cfg.skip_bad_rows)
    if not splits["train"] and not splits["test"]:
        raise AppsHpcError(f"{cfg.apps}: no APPS rows found")
    examples = sft_examples(splits["train"], cfg.max_per_problem, cfg.seed)
    prompts = prompt_records(splits["test"])
    _nonempty(cfg, examples, prompts)
    cfg.out.mkdir(parents=True, exist_ok=True)
    file_name = f"{cfg.dataset_name}.json"
    _write_json(cfg.out / file_name, examples)
    _update_dataset_info(cfg.out, cfg.dataset_name, file_name)
    _write_jsonl(cfg.out / "prompts.jsonl", prompts)
    if cfg.stats:
        from apps_hpc.prepare.stats import dataset_stats

        _write_json(cfg.out / "stats.json", dataset_stats(examples, cfg.tokenizer, cfg.cutoff_len))
    write_stamp(cfg.out / STAMP, ident, finished=True)
    return cfg.out
