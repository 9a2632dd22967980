"""The evaluator's side of the warm workers: start them, feed them programs, restart
one that died (a program may kill it), and turn each child's records into a verdict.

The expected outputs stay here, in the evaluator's process: a worker gets a problem's
inputs only (`TestSpec.probe`). Each record the child sends (what a test printed or
returned) is compared here as it arrives (`semantics.judge`); at the first failure the
worker is told to stop the child, unless every test is wanted (`all_tests`)."""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Any

from apps_hpc.core.limits import Limits
from apps_hpc.core.schema import Verdict
from apps_hpc.evaluate import tree
from apps_hpc.evaluate.harness import TestSpec, lift_int_digits_limit
from apps_hpc.evaluate.semantics import (
    Judged,
    Outcome,
    clean_failure,
    collapse,
    failure_detail,
    judge,
    truncate,
)
from apps_hpc.evaluate.worker import CACHE_SIZE, Run, recv, send

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One distinct program of one problem."""

    key: Any  # the problem's key, for the worker's test cache
    code: str
    spec: TestSpec
    tag: Any = None  # the caller's own reference (which samples use this program)


@dataclass(frozen=True)
class ProgramResult:
    verdict: Verdict
    tests: list[bool | int]  # the reference encoding, one entry per test run
    runs: int  # 2 when a timeout was re-checked
    cpu_s: float
    wall_s: float
    detail: str = ""
    failure: dict[str, Any] | None = None  # the first failing test (records' "failures")
    wall_decided: bool = False  # a timeout the wall clock decided (machine load)


@dataclass(frozen=True)
class PoolOptions:
    workers: int = 1
    limits: Limits = field(default_factory=Limits)
    all_tests: bool = False
    recheck_timeouts: bool = True
    uid_base: int = 61000  # as root, each worker's children run as a free uid from here
    gid: int = 65534  # nogroup
    isolation: str = "auto"  # namespaces, falling back to none with a warning; or either


# What a worker's environment may hold from the evaluator's: where Python and its
# libraries are, the locale and the temporary folder. Nothing else: a cluster session's
# environment holds tokens (HF_TOKEN, AWS_SECRET_ACCESS_KEY...), and the environment a
# process was exec'd with stays in its memory (/proc/self/environ, the top of its stack)
# for every child forked from it, whatever os.environ says later.
WORKER_ENV_KEPT = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "VIRTUAL_ENV",
    "LD_LIBRARY_PATH",
)


def _worker_env() -> dict[str, str]:
    """The worker's whole environment at exec (see WORKER_ENV_KEPT)."""
    env = {k: v for k, v in os.environ.items() if k in WORKER_ENV_KEPT}
    env.update(
        PYTHONHASHSEED="0",  # set iteration order (and so printed output) is reproducible
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
        # glibc reserves 64 MiB of address space per thread arena: without a cap, a
        # program's thread pool alone can exhaust RLIMIT_AS (the reference has none).
        MALLOC_ARENA_MAX="2",
    )
    return env


class WorkerProcess:
    """One warm worker; `run` restarts it if it died."""

    def __init__(self, slot: int, options: PoolOptions) -> None:
        self.slot, self.options = slot, options
        self.proc: subprocess.Popen[bytes] | None = None
        self.cached: OrderedDict[Any, None] = OrderedDict()
        self.network = self.user = self.isolation = ""
        self.mode = "none" if options.isolation == "none" else "namespaces"
        self.judged: list[Judged] = []  # the records of the program being run

    def start(self) -> None:
        hello = self._launch()
        auto = self.options.isolation == "auto"
        if not hello.get("ready") and self.mode == "namespaces" and auto:
            self.close()
            self.mode = "none"
            fallback = self._launch()
            if fallback.get("ready"):
                log.warning(fallback_warning(hello.get("error", "no answer"), fallback))
            hello = fallback
        if not hello.get("ready"):
            raise RuntimeError(
                f"evaluation worker {self.slot} failed to start "
                f"(isolation {self.mode}): {hello.get('error', 'no answer')}"
            )
        self.network, self.user = hello["network"], hello["user"]
        self.isolation = hello["isolation"]

    def _launch(self) -> dict[str, Any]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apps_hpc.evaluate.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_worker_env(),
        )
        self.cached.clear()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        opts = self.options
        send(
            self.proc.stdin,
            {
                "limits": opts.limits,
                "slot": self.slot,
                "uid_base": opts.uid_base,
                "gid": opts.gid,
                "isolation": self.mode,
            },
        )
        return recv(self.proc.stdout) or {}

    def _send_job(self, job: Job) -> Run | None:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        fresh = job.key not in self.cached
        self.cached[job.key] = None
        self.cached.move_to_end(job.key)
        while len(self.cached) > CACHE_SIZE:
            self.cached.popitem(last=False)
        options = {"all_tests": self.options.all_tests}
        try:
            send(
                self.proc.stdin,
                {
                    "key": job.key,
                    "probe": job.spec.probe() if fresh else None,
                    "code": job.code,
                    "options": options,
                },
            )
            return self._receive(job)
        except (BrokenPipeError, OSError):
            return None

    def _receive(self, job: Job) -> Run | None:
        """Judge each record as it comes; tell the worker to stop the child at the first
        failure (unless all_tests). The worker's last message is the Run."""
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.judged = []
        call_based, stopped = job.spec.fn_name is not None, False
        while True:
            message = recv(self.proc.stdout)
            if not isinstance(message, tuple):
                return message if isinstance(message, Run) else None
            _, index, payload = message
            outputs = job.spec.outputs
            expected = outputs[index] if index < len(outputs) else None
            judged = judge(payload, expected, call_based, self.options.limits.max_output_lines)
            self.judged.append(judged)
            if judged.outcome is not Outcome.PASS and not stopped and not self.options.all_tests:
                send(self.proc.stdin, "stop")
                stopped = True

    def run(self, job: Job) -> tuple[Run, list[Judged]]:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        run = self._send_job(job)
        if run is None:  # the worker died under this program
            self.close()
            self.start()
            return Run("crashed", 0, 0.0, 0.0, detail="the program killed its worker"), []
        return run, self.judged

    def close(self) -> None:
        if self.proc is None:
            return
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        tree.remove_worker_cgroup(self.proc.pid)
        self.proc = None


def fallback_warning(error: str, hello: dict[str, Any]) -> str:
    """The one warning of a pool that could not use namespaces: what is not isolated."""
    from apps_hpc.evaluate.namespaces import kernel_settings

    settings = ", ".join(f"{k}={v}" for k, v in kernel_settings().items())
    reads = "what that user can read"
    if "CAP_DAC_READ_SEARCH" in hello["user"]:
        reads = "every file on the machine (CAP_DAC_READ_SEARCH)"
    return (
        f"sandbox: namespaces refused ({error}); programs run without them as "
        f"{hello['user']}, network {hello['network']}: NOT isolated are the filesystem "
        f"(they read {reads} and write where that user can, files up to the size "
        "limit), processes (they see and can signal that user's processes) and System V "
        f"IPC. Kernel: {settings or 'no user namespace settings found'} "
        "(see docs/evaluator.md, 'The sandbox')"
    )


def to_result(run: Run, judged: list[Judged], spec: TestSpec, all_tests: bool) -> ProgramResult:
    """A child's run and its judged records -> the verdict, the reference's per-test
    list and the failure. The first failure decides, wherever the child was stopped
    after it; with all_tests, or with no failure, every test must have a record from a
    child that exited normally, else the program as a whole failed (every test -1)."""
    first = next((i for i, j in enumerate(judged) if j.outcome is not Outcome.PASS), None)
    complete = run.status == "ok" and len(judged) == len(spec.probe().inputs)
    compiled = first is None or judged[first].outcome is not Outcome.COMPILE_ERROR
    if first is not None and (not all_tests or not compiled):
        judged = judged[: first + 1]
    elif not complete:
        return _no_answer(run, spec)
    outcomes = [j.outcome for j in judged]
    verdict = Verdict(collapse(outcomes).value)
    tests = [o.reference_code() for o in outcomes]
    failure = None
    if first is not None:
        failure = _failure(spec, first, judged[first])
    walls = judged[first].walls if first is not None else 0
    wall_decided = verdict is Verdict.TIMEOUT and walls > 0
    return ProgramResult(verdict, tests, 1, run.cpu_s, run.wall_s, "", failure, wall_decided)


def _failure(spec: TestSpec, index: int, judged: Judged) -> dict[str, Any] | None:
    if not spec.inputs:
        error = truncate(judged.error)
        return {"test": index, "input": None, "expected": None, "got": None, "error": error}
    fn = spec.fn_name is not None
    got, error = judged.got, judged.error
    return clean_failure(
        failure_detail(index, spec.inputs[index], spec.outputs[index], fn, got, error)
    )


def _no_answer(run: Run, spec: TestSpec) -> ProgramResult:
    """No verdict from the records (the child crashed, ran out of time, exited before
    its last test): the reference marks every test -1."""
    crashed = run.status in ("crashed", "ok", "stopped")
    verdict = Verdict.RUNTIME_ERROR if crashed else Verdict.TIMEOUT
    detail = run.detail or "crashed"
    if run.status == "ok":
        detail = f"the program exited before its last test ({run.detail})"
    error = "timeout" if verdict is Verdict.TIMEOUT else detail
    tests: list[bool | int] = [-1] * len(spec.inputs)
    failure = _budget_failure(spec, error)
    wall = run.status == "wall_limit"
    return ProgramResult(verdict, tests, 1, run.cpu_s, run.wall_s, detail, failure, wall)


def _budget_failure(spec: TestSpec, error: str) -> dict[str, Any]:
    """The program as a whole was stopped (budget, crash): every test failed, from 0."""
    if not spec.inputs:
        return {"test": 0, "input": None, "expected": None, "got": None, "error": error}
    fn = spec.fn_name is not None
    return failure_detail(0, spec.inputs[0], spec.outputs[0], fn, None, error)


def needs_recheck(result: ProgramResult) -> bool:
    """A timeout decided by the wall clock may be the machine's load, not the program:
    run it again. CPU-time limits do not depend on load and are recorded at once."""
    return result.verdict is Verdict.TIMEOUT and result.wall_decided


class EvalPool:
    """N warm workers; `run` yields (job, result) as programs finish."""

    def __init__(self, options: PoolOptions) -> None:
        lift_int_digits_limit()  # the evaluator compares and shows what programs return
        self.options = options
        self.workers = [WorkerProcess(i, options) for i in range(options.workers)]
        self._idle: queue.Queue[WorkerProcess] = queue.Queue()

    def __enter__(self) -> EvalPool:
        for worker in self.workers:
            worker.mode = self.workers[0].mode  # the first decides: one warning at most
            worker.start()
            self._idle.put(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            worker.close()

    @property
    def network(self) -> str:
        return self.workers[0].network if self.workers else ""

    @property
    def isolation(self) -> str:
        """The isolation in force, in words (starts with "namespaces" or "none")."""
        return self.workers[0].isolation if self.workers else ""

    @property
    def user(self) -> str:
        return self.workers[0].user if self.workers else ""

    def _evaluate(self, job: Job) -> ProgramResult:
        worker = self._idle.get()
        try:
            all_tests = self.options.all_tests
            result = to_result(*worker.run(job), job.spec, all_tests)
            if self.options.recheck_timeouts and needs_recheck(result):
                result = replace(to_result(*worker.run(job), job.spec, all_tests), runs=2)
            return result
        finally:
            self._idle.put(worker)

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, ProgramResult]]:
        executor = ThreadPoolExecutor(max_workers=len(self.workers))
        try:
            futures = {executor.submit(self._evaluate, job): job for job in jobs}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:  # on Ctrl-C or an error, drop what has not started
            executor.shutdown(wait=True, cancel_futures=True)
