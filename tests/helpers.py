"""What many tests share (import it: `from tests.helpers import run_cli`): paths, the
fast sandbox limits, and ways to run the real CLI and the real evaluator."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from apps_hpc.core.jsonl import iter_jsonl
from apps_hpc.core.limits import Limits
from apps_hpc.evaluate.harness import TestSpec
from apps_hpc.evaluate.pool import EvalPool, Job, ProgramResult

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data"
SHARED_APPS = REPO.parent / "shared" / "apps"
CPU_EXPERIMENT = DATA / "experiment-cpu.yaml"
DRYRUN = DATA / "dryrun"

# Small limits keep hostile-program tests quick; the semantics do not change with them.
FAST_LIMITS = Limits(test_timeout_s=1.0, program_budget_s=3.0, wall_factor=3.0, memory_mb=1024)


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


F = TypeVar("F", bound=Callable[..., Any])


def require(condition: object, reason: str) -> None:
    """Skip the test when a requirement is missing (namespaces, root, Chromium, SLURM,
    LlamaFactory, vLLM's wheel, a tool); where `CI` is set, fail instead: CI installs
    them all, so a missing one is a broken CI, not a test to leave out in silence.
    A GPU is not such a requirement: GPU tests skip with `pytest.skip` everywhere."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"requirement missing in CI: {reason}")
    pytest.skip(reason)


def needs(condition: object, reason: str) -> Callable[[F], F]:
    """`require` as a decorator: the test, or, when the requirement is missing, a test of
    the same name and fixtures that skips (fails in CI)."""

    def wrap(test: F) -> F:
        if condition:
            return test

        @functools.wraps(test)
        def missing(*args: Any, **kwargs: Any) -> None:
            require(False, reason)

        return missing  # type: ignore[return-value]

    return wrap


def run_cli(
    *args: str, check: bool = False, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m apps_hpc ARGS` in a real subprocess (in `cwd`); with check, a failure
    shows stderr."""
    r = subprocess.run(
        [sys.executable, "-m", "apps_hpc", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def wait_for(predicate: Callable[[], object], timeout: float = 120.0, poll_s: float = 0.5) -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll_s)


def read_jsonl(path: Path) -> list[dict]:
    return [rec for _, rec in iter_jsonl(path)]


def pipeline_args(root: Path, model: Path | None = None, apps: Path | None = None) -> list[str]:
    """`submit pipeline` on the tiny CPU experiment, rooted at `root`."""
    args = ["submit", "pipeline", "--config", str(CPU_EXPERIMENT), "--set", f"root={root}"]
    if model is not None:
        args += ["--set", f"model={model}"]
    if apps is not None:
        args += ["--set", f"apps={apps}"]
    return args


def apps_row(inputs: list, outputs: list, problem_id: int = 0) -> dict:
    """A minimal standard-input APPS row (codeparrot schema) with these tests."""
    return {
        "problem_id": problem_id,
        "question": "q",
        "solutions": "[]",
        "url": "",
        "starter_code": "",
        "difficulty": "interview",
        "input_output": json.dumps({"inputs": inputs, "outputs": outputs}),
    }
