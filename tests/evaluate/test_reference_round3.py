"""Issue 22's cases: model-style programs written for this project (tests/data/
reference_round3.json) with the per-test results the reference harness recorded for them
(its environment is in the file's "reference" entry). Each runs in the sandbox pool, with
every test and the reference's own limits, and must give exactly those results: pyext's
module builder, results the wire must carry as they are, input/exit/output paths,
Python-2 and 3.12-only syntax, markdown fences, indented programs, the declared program
environment and the recursion limit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps_hpc.core.limits import Limits
from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate.harness import module_names
from apps_hpc.evaluate.pool import EvalPool, PoolOptions
from apps_hpc.evaluate.semantics import PROGRAM_PACKAGES
from tests.evaluate.reference_corpus import evaluate_case, load_cases
from tests.evaluate.test_isolation import ROOT
from tests.helpers import apps_row, run_one
from tests.unprivileged import NOBODY, unprivileged_command

CASES = load_cases("reference_round3")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_program_gets_the_recorded_reference_results(
    reference_pool: EvalPool, case: dict[str, Any]
) -> None:
    r = evaluate_case(reference_pool, case)
    assert r.tests == case["results"], (r.detail, r.failure)


def test_the_corpus_covers_each_listed_behaviour() -> None:
    tags = {tag for case in CASES for tag in case["tags"]}
    listed = {
        "pyext-name", "pyext-docstring", "pyext-os-star", "decimal", "fraction",
        "numpy-scalar", "int-subclass", "float-subclass", "enum-int", "enum-str", "big-int",
        "in-open0", "in-buffer", "in-readline-alias", "os-exit", "atexit", "sys-exit-msg",
        "os-write", "py2-syntax", "py312-syntax", "markdown-fence", "indented",
        "pkg-sortedcontainers", "recursion",
    }  # fmt: skip
    assert listed <= tags, listed - tags
    assert {r for case in CASES for r in case["results"]} == {True, False, -1, -2}


@pytest.mark.parametrize(
    ("namespace", "error"),
    [
        ({"name": "alex", "f": len}, "'name'"),
        ({"docstring": "...", "f": len}, "'docstring'"),
        ({1: 2}, "keywords must be strings"),
    ],
)
def test_pyext_refuses_its_own_parameter_names(namespace: dict[Any, Any], error: str) -> None:
    with pytest.raises(TypeError, match=error):
        module_names(namespace)


def test_pyext_drops_its_own_globals_names() -> None:
    kept = module_names({"__name__": "x", "__doc__": "d", "__builtins__": {}, "f": len})
    assert kept == {"f": len}


# ------------------------------------------------- the programs' environment, in the sandbox

_IMPORTS = [f"import {name}\nprint({name}.__name__)\n" for name in PROGRAM_PACKAGES]


def test_each_program_package_imports_in_the_sandbox_as_root() -> None:
    options = PoolOptions(workers=1, limits=Limits(), isolation="namespaces")
    with EvalPool(options) as pool:
        assert pool.isolation.startswith("namespaces")
        for name, code in zip(PROGRAM_PACKAGES, _IMPORTS, strict=True):
            r = run_one(pool, code, [""], [name])
            assert r.verdict is Verdict.PASS, (name, r.failure)


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder the evaluating user (65534 as root) can reach (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="apps-hpc-programs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_each_program_package_imports_in_the_sandbox_unprivileged(work: Path) -> None:
    problems = [apps_row([""], [name + "\n"], i) for i, name in enumerate(PROGRAM_PACKAGES)]
    samples = [
        {"problem_id": i, "split": "test", "difficulty": "interview", "model": "m", "codes": [code]}
        for i, code in enumerate(_IMPORTS)
    ]
    for name, rows in (("test.jsonl", problems), ("samples.jsonl", samples)):
        (work / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        if ROOT:
            os.chown(work / name, NOBODY, NOBODY)
    if ROOT:
        os.chown(work, NOBODY, NOBODY)
    out = work / "results.jsonl"
    argv = [sys.executable, "-m", "apps_hpc", "eval", "-q", "--workers", "1"]
    argv += ["--isolation", "namespaces", "--out", str(out)]
    argv += ["--samples", str(work / "samples.jsonl"), "--apps", str(work / "test.jsonl")]
    env = dict(os.environ, HOME=str(work), PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run(
        unprivileged_command(argv), capture_output=True, text=True, cwd=work, env=env, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["verdicts"] for r in records] == [["pass"]] * len(PROGRAM_PACKAGES), records
