"""The model-style corpus beside the repository (../shared/apps/model-style): programs in
the style of model output and the reference harness's recorded per-test results.

Read in place, never copied into the repository."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from apps_hpc.core.apps import Problem, load_problems

Key = tuple[str, int, int]  # (split, problem_id, index into codes)


def corpus_dir(shared_apps: Path) -> Path:
    return shared_apps / "model-style"


@cache
def programs(shared_apps: Path) -> dict[Key, str]:
    found = {}
    for line in (corpus_dir(shared_apps) / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for index, code in enumerate(rec["codes"]):
            found[(rec["split"], rec["problem_id"], index)] = code
    return found


@cache
def reference(shared_apps: Path) -> dict[Key, dict]:
    """(split, problem_id, index) -> the reference's line: kind, results, global_timeout."""
    found = {}
    for line in (corpus_dir(shared_apps) / "reference-verdicts.jsonl").read_text().splitlines():
        rec = json.loads(line)
        found[(rec["split"], rec["problem_id"], rec["index"])] = rec
    return found


@cache
def problems(shared_apps: Path) -> dict[tuple[str, int], Problem]:
    found: dict[tuple[str, int], Problem] = {}
    for split in ("test", "train"):
        found.update(load_problems(shared_apps / f"{split}-sample.jsonl")[0])
    return found
