"""Shared fixtures: the real APPS rows in ../shared, and a warm sandbox pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps_hpc.evaluate.harness import TestSpec
from apps_hpc.evaluate.pool import EvalPool, Job, PoolOptions, ProgramResult
from apps_hpc.evaluate.sandbox import Limits

REPO = Path(__file__).resolve().parents[1]
SHARED_APPS = REPO.parent / "shared" / "apps"

# Small limits keep hostile-program tests quick; the semantics do not change with them.
FAST_LIMITS = Limits(test_timeout_s=1.0, program_budget_s=3.0, wall_factor=3.0, memory_mb=1024)


@pytest.fixture(scope="session")
def shared_apps() -> Path:
    if not (SHARED_APPS / "reference-verdicts.jsonl").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_APPS} is missing in CI")
        pytest.skip(f"{SHARED_APPS} not present (the real APPS rows live beside the repo)")
    return SHARED_APPS


@pytest.fixture(scope="module")
def pool() -> Iterator[EvalPool]:
    with EvalPool(PoolOptions(workers=2, limits=FAST_LIMITS)) as p:
        yield p


@pytest.fixture(scope="module")
def pool_all_tests() -> Iterator[EvalPool]:
    with EvalPool(PoolOptions(workers=1, limits=FAST_LIMITS, all_tests=True)) as p:
        yield p


def run_one(
    pool: EvalPool, code: str, inputs: list, outputs: list, fn_name: str | None = None
) -> ProgramResult:
    """Evaluate one program in the sandbox pool (never in this process)."""
    job = Job(
        key=("t", hash((code, repr(inputs), repr(outputs), fn_name))),
        code=code,
        spec=TestSpec(fn_name, inputs, outputs),
    )
    [(_, result)] = list(pool.run([job]))
    return result


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model and tokenizer, built locally once per session (needs [train])."""
    pytest.importorskip("transformers", reason="the tiny model needs the train extra")
    from apps_hpc.tiny_model import tiny_model

    return tiny_model(tmp_path_factory.mktemp("tiny-model"))


def run_cli(
    *args: str, check: bool = False, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m apps_hpc ARGS` in a real subprocess; with check, a failure shows stderr."""
    r = subprocess.run(
        [sys.executable, "-m", "apps_hpc", *args], capture_output=True, text=True, env=env
    )
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


CPU_EXPERIMENT = Path(__file__).resolve().parent / "data" / "experiment-cpu.yaml"


def pipeline_args(root: Path, model: Path | None = None, apps: Path | None = None) -> list[str]:
    """`submit pipeline` on the tiny CPU experiment, rooted at `root`."""
    args = ["submit", "pipeline", "--config", str(CPU_EXPERIMENT), "--set", f"root={root}"]
    if model is not None:
        args += ["--set", f"model={model}"]
    if apps is not None:
        args += ["--set", f"apps={apps}"]
    return args
