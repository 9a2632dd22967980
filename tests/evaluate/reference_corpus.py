"""The reference-agreement corpora written for this project (tests/data/reference_round*.json):
programs with the per-test results the reference harness recorded for them (each file's
"reference" entry says how). What their test modules share: reading a corpus, and running
one of its programs as those results were recorded (every test, the reference's own
limits: the `reference_pool` fixture in tests/conftest.py)."""

from __future__ import annotations

import json
from typing import Any

from apps_hpc.evaluate.harness import lift_int_digits_limit
from apps_hpc.evaluate.pool import EvalPool, ProgramResult
from tests.helpers import DATA, run_one


def load_cases(name: str) -> list[dict[str, Any]]:
    """The cases of tests/data/<name>.json."""
    cases: list[dict[str, Any]] = json.loads((DATA / f"{name}.json").read_text())["cases"]
    return cases


def evaluate_case(pool: EvalPool, case: dict[str, Any]) -> ProgramResult:
    """One case's program, evaluated in the sandbox pool with every test."""
    lift_int_digits_limit()  # round 3 has an expected output of 8,001 digits
    tests = json.loads(case["input_output"])
    return run_one(pool, case["code"], tests["inputs"], tests["outputs"], tests.get("fn_name"))
