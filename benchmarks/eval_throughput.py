"""Evaluation throughput: the project's evaluator against a naive per-test baseline.

    python benchmarks/eval_throughput.py

(with the project's venv, from the repository root; `--help` lists the options).

Both sides evaluate the SAME programs against the SAME tests with the same number of
workers (`--workers`, default 2), and both stop a program at its first non-passing test:

* evaluator: `apps_hpc.evaluate.pool.EvalPool` with its default options (warm workers
  that fork a sandboxed child per program; a timeout is re-checked once, as in real runs).
* naive: what many APPS repositories do - for every (program, test) pair, a fresh
  `python` subprocess imports the harness, runs that one test and prints the outcome;
  `--workers` such subprocesses run at once (a thread pool). The test data goes to the
  child on stdin as JSON; a child that outlives its wall timeout (timeout x wall factor
  + startup) is killed and counted as a timeout. The child calls `reliability_guard()`
  before the program, like the real child, and caps its address space (so the hostile
  allocation below cannot take the host down), but has no further sandbox: no separate
  user, no network cut, no process or file limits, no per-program CPU budget.

Programs ("realistic"), chosen deterministically from both files in `--apps`: the first
`--solutions-per-problem` real solutions of every problem that has solutions and tests;
wrong programs derived from each problem's first solution (stdin: an extra output line
`print('__wrong__')` appended - not `print(0)`, which the reference's lenient comparison
often accepts - and a program that reads stdin and prints nothing; call-based: the method
made to return None); and a few hostile programs (infinite loop, 100 GiB allocation, an
exception, `os._exit`, a syntax error). Each problem keeps its first `--max-tests` tests
(0 = all, the default: the real test counts, 2 to 565 per problem). The defaults (1
solution per problem, every test) take about 4-5 minutes on a 2-core machine, nearly all
of it the naive side (3,400 subprocesses); `--max-tests 5` gives a quick run that favours
the naive side (its cost grows with the number of tests, the evaluator's barely does).

Prints the machine, the program and test-pair counts, programs/s of both sides, the
speedup, and every program whose verdict differs between the two sides.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apps_hpc.core.apps import Problem, load_problems
from apps_hpc.core.limits import Limits
from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate.harness import TestSpec
from apps_hpc.evaluate.pool import EvalPool, Job, PoolOptions
from apps_hpc.evaluate.semantics import Outcome, collapse

REPO = Path(__file__).resolve().parents[1]
DEFAULT_APPS = Path(__file__).resolve().parents[2] / "shared" / "apps"
DATA_FILES = ("test-sample.jsonl", "train-sample.jsonl")
STARTUP_S = 3.0  # wall allowance for a naive child's interpreter start and imports
MARKER = "@@naive-outcome "

HOSTILE = {
    "infinite-loop": "while True:\n    pass\n",
    "huge-alloc": "x = bytearray(100 * 2**30)\nprint(len(x))\n",
    "raise": "raise ValueError('boom')\n",
    "os-exit": "import os\nos._exit(3)\n",
    "syntax-error": "def f(:\n    pass\n",
}

# The naive child: read one test as JSON on stdin, run it with the project's harness.
NAIVE_CHILD = f"""
import json, resource, sys
job = json.loads(sys.stdin.read())
memory = job["memory_mb"] * 2**20
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
import random
import numpy as np
from apps_hpc.evaluate import wire
from apps_hpc.evaluate.harness import Probe, Timer, reliability_guard, run_program
from apps_hpc.evaluate.semantics import judge
random.seed(0)
np.random.seed(0)
probe = Probe(job["fn_name"], [job["input"]])
timer = Timer(job["timeout"], job["wall_factor"])
out = sys.stdout
reliability_guard()
records = []
run_program(job["code"], probe, timer, job["output_cap"], lambda i, r: records.append(r), False)
payload = wire.frame(0, records[0])[wire.FRAME.size :]
outcome = judge(payload, job["output"], job["fn_name"] is not None).outcome
out.write("\\n{MARKER}" + outcome.value + "\\n")
out.flush()
"""


@dataclass(frozen=True)
class Program:
    """One program to evaluate, and the tests of its problem."""

    name: str  # e.g. "train/2006 solution#1", "test/0 wrong:extra-line", "hostile:raise"
    kind: str  # real | wrong | hostile
    key: tuple[str, int]
    code: str
    spec: TestSpec


@dataclass
class Side:
    """What one side of the benchmark measured."""

    name: str
    seconds: float
    verdicts: list[Verdict]
    subprocesses: int | None  # naive side only: one per (program, test) pair run

    @property
    def programs(self) -> int:
        return len(self.verdicts)

    @property
    def rate(self) -> float:
        return self.programs / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------- the program set


def load_usable(apps: Path) -> list[Problem]:
    """Problems with solutions and tests from both data files, in (split, id) order."""
    found: dict[tuple[str, int], Problem] = {}
    for name in DATA_FILES:
        problems, _ = load_problems(apps / name)
        found.update(problems)
    return [found[k] for k in sorted(found) if found[k].solutions and found[k].has_tests]


def spec_of(problem: Problem, max_tests: int) -> TestSpec:
    n = max_tests or len(problem.inputs)
    return TestSpec(problem.fn_name, problem.inputs[:n], problem.outputs[:n])


def wrong_variants(problem: Problem) -> dict[str, str]:
    """Wrong programs derived from the problem's first real solution."""
    code, fn = problem.solutions[0], problem.fn_name
    if fn is None:
        return {
            "extra-line": code.rstrip("\n") + "\nprint('__wrong__')\n",
            "silent": "import sys\ndata = sys.stdin.read()\n",
        }
    if "class Solution" in code:
        return {"returns-none": code + f"\n\nSolution.{fn} = lambda self, *args: None\n"}
    return {"returns-none": code + f"\n\ndef {fn}(*args):\n    return None\n"}


def programs_of(problem: Problem, per_problem: int, max_tests: int) -> list[Program]:
    spec, key = spec_of(problem, max_tests), problem.key
    where = f"{problem.split}/{problem.problem_id}"
    real = [
        Program(f"{where} solution#{i}", "real", key, code, spec)
        for i, code in enumerate(problem.solutions[: per_problem or None])
    ]
    wrong = [
        Program(f"{where} wrong:{label}", "wrong", key, code, spec)
        for label, code in wrong_variants(problem).items()
    ]
    return real + wrong


def hostile_programs(problems: list[Problem], max_tests: int) -> list[Program]:
    """The hostile programs, run against the first standard-input problem."""
    host = next(p for p in problems if p.fn_name is None)
    spec = spec_of(host, max_tests)
    return [
        Program(f"hostile:{label}", "hostile", host.key, code, spec)
        for label, code in HOSTILE.items()
    ]


def build_programs(apps: Path, per_problem: int, max_tests: int) -> tuple[list[Program], int]:
    """The benchmark's programs, and how many problems they come from."""
    problems = load_usable(apps)
    programs = [p for prob in problems for p in programs_of(prob, per_problem, max_tests)]
    return programs + hostile_programs(problems, max_tests), len(problems)


# ---------------------------------------------------------------- the evaluator


def run_evaluator(
    programs: list[Program], workers: int, limits: Limits, isolation: str = "auto"
) -> Side:
    jobs = [Job(p.key, p.code, p.spec, tag=i) for i, p in enumerate(programs)]
    verdicts: list[Verdict] = [Verdict.RUNTIME_ERROR] * len(jobs)
    start = time.perf_counter()
    with EvalPool(PoolOptions(workers=workers, limits=limits, isolation=isolation)) as pool:
        print(f"evaluator sandbox: {pool.isolation}")
        for job, result in tqdm(pool.run(jobs), total=len(jobs), desc="evaluator"):
            verdicts[job.tag] = result.verdict
    return Side("evaluator", time.perf_counter() - start, verdicts, None)


# ---------------------------------------------------------------- the naive baseline


def child_env() -> dict[str, str]:
    """The same environment the evaluator's workers get."""
    env = dict(os.environ)
    env.update(
        PYTHONHASHSEED="0",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=str(REPO),
    )
    return env


def parse_outcome(stdout: str) -> Outcome:
    """The child's last outcome line; none (it died or exited early) = runtime error."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                return Outcome(line[len(MARKER) :].strip())
            except ValueError:
                break
    return Outcome.RUNTIME_ERROR


def naive_test(program: Program, index: int, limits: Limits, env: dict[str, str]) -> Outcome:
    """One (program, test) pair in a fresh interpreter."""
    job = {
        "code": program.code,
        "fn_name": program.spec.fn_name,
        "input": program.spec.inputs[index],
        "output": program.spec.outputs[index],
        "timeout": limits.test_timeout_s,
        "wall_factor": limits.wall_factor,
        "output_cap": limits.output_cap,
        "memory_mb": limits.memory_mb,
    }
    wall = limits.test_timeout_s * limits.wall_factor + STARTUP_S
    try:
        proc = subprocess.run(
            [sys.executable, "-c", NAIVE_CHILD],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=wall,
            env=env,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        return Outcome.TIMEOUT
    return parse_outcome(proc.stdout)


def naive_program(program: Program, limits: Limits, env: dict[str, str]) -> list[Outcome]:
    """A program's tests in order, one subprocess each, up to the first failure."""
    outcomes: list[Outcome] = []
    for index in range(len(program.spec.inputs)):
        outcomes.append(naive_test(program, index, limits, env))
        if outcomes[-1] is not Outcome.PASS:
            break
    return outcomes


def run_naive(programs: list[Program], workers: int, limits: Limits) -> Side:
    env = child_env()
    verdicts: list[Verdict] = [Verdict.RUNTIME_ERROR] * len(programs)
    subprocesses = 0
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as executor:
        futures = {
            executor.submit(naive_program, p, limits, env): i for i, p in enumerate(programs)
        }
        for future in tqdm(as_completed(futures), total=len(futures), desc="naive"):
            outcomes = future.result()
            verdicts[futures[future]] = Verdict(collapse(outcomes).value)
            subprocesses += len(outcomes)
    return Side("naive", time.perf_counter() - start, verdicts, subprocesses)


# ---------------------------------------------------------------- the report


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
    }


def disagreements(programs: list[Program], a: Side, b: Side) -> list[dict[str, str]]:
    return [
        {"program": p.name, a.name: va.value, b.name: vb.value}
        for p, va, vb in zip(programs, a.verdicts, b.verdicts, strict=True)
        if va is not vb
    ]


def verdict_counts(side: Side) -> dict[str, int]:
    counts: dict[str, int] = {}
    for verdict in side.verdicts:
        counts[verdict.value] = counts.get(verdict.value, 0) + 1
    return dict(sorted(counts.items()))


def side_figures(side: Side) -> dict[str, Any]:
    return {
        "programs": side.programs,
        "seconds": round(side.seconds, 2),
        "programs_per_s": round(side.rate, 2),
        "subprocesses": side.subprocesses,
        "verdicts": verdict_counts(side),
    }


def print_side(side: Side) -> None:
    extra = f" ({side.subprocesses} subprocesses)" if side.subprocesses is not None else ""
    print(
        f"{side.name + ':':<10} {side.programs} programs, {side.seconds:.1f} s, "
        f"{side.rate:.2f} programs/s{extra}  {verdict_counts(side)}"
    )


def print_report(figures: dict[str, Any], sides: list[Side], differ: list[dict[str, str]]) -> None:
    for side in sides:
        print_side(side)
    speedup = figures["speedup"]
    print(f"speedup: {speedup:.1f}x" if speedup is not None else "speedup: n/a")
    agree = figures["programs"] - len(differ)
    print(f"verdicts: {agree} agree, {len(differ)} differ")
    for row in differ:
        print("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    print(f"wall time of the run: {figures['wall_s']:.1f} s")


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=Path, default=DEFAULT_APPS, help="folder of APPS rows")
    parser.add_argument("--workers", type=int, default=2, help="workers on each side")
    parser.add_argument(
        "--solutions-per-problem",
        type=int,
        default=1,
        help="real solutions per problem (0 = all; the naive side then takes hours)",
    )
    parser.add_argument(
        "--max-tests", type=int, default=0, help="tests kept per problem (0 = all, the default)"
    )
    parser.add_argument("--timeout", type=float, default=4.0, help="CPU seconds per test")
    parser.add_argument(
        "--isolation",
        choices=("auto", "namespaces", "none"),
        default="auto",
        help="the evaluator's sandbox isolation (as apps-hpc eval --isolation)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def describe_set(programs: list[Program], n_problems: int) -> dict[str, Any]:
    kinds = {k: sum(p.kind == k for p in programs) for k in ("real", "wrong", "hostile")}
    pairs = sum(len(p.spec.inputs) for p in programs)
    print(f"programs: {len(programs)} {kinds} from {n_problems} problems")
    print(f"test pairs: {pairs} (every test of every program; both sides stop early)")
    return {"programs": len(programs), "kinds": kinds, "test_pairs": pairs}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    begin = time.perf_counter()
    info = machine()
    print(f"machine: nproc {info['nproc']}, {info['cpu']}, Python {info['python']}")
    programs, n_problems = build_programs(args.apps, args.solutions_per_problem, args.max_tests)
    figures: dict[str, Any] = {"machine": info, **describe_set(programs, n_problems)}
    limits = Limits(test_timeout_s=args.timeout)
    evaluator = run_evaluator(programs, args.workers, limits, args.isolation)
    naive = run_naive(programs, args.workers, limits)
    differ = disagreements(programs, evaluator, naive)
    figures.update(
        options={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        evaluator=side_figures(evaluator),
        naive=side_figures(naive),
        speedup=round(evaluator.rate / naive.rate, 2) if naive.rate else None,
        disagreements=differ,
        wall_s=round(time.perf_counter() - begin, 1),
    )
    print_report(figures, [evaluator, naive], differ)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
