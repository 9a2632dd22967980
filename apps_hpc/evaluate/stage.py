"""`evaluate(cfg)`: samples file + APPS rows -> results file, one line per problem,
appended as problems finish, resumable after a kill."""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apps_hpc.core.apps import Problem, load_problems
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.core.jsonl import AppendLog, complete_records, dump_line
from apps_hpc.core.limits import Limits
from apps_hpc.core.lock import OutputLock
from apps_hpc.core.records import problem_key, read_samples
from apps_hpc.core.schedenv import cpus_granted
from apps_hpc.core.schema import ResultRecord, SampleRecord, Verdict
from apps_hpc.core.shards import Shard, assign, merge_shards, shard_status
from apps_hpc.evaluate.cache import VerdictCache, program_key
from apps_hpc.evaluate.harness import TestSpec, lift_int_digits_limit
from apps_hpc.evaluate.pool import EvalPool, Job, PoolOptions, ProgramResult
from apps_hpc.evaluate.sandbox import in_force
from apps_hpc.hub import paths as hub
from apps_hpc.provenance.stamps import FIELD, digest

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    samples: Path
    apps: Path
    out: Path
    workers: int = 0  # 0: the CPUs granted (SLURM's, else affinity)
    all_tests: bool = False  # run every test even after a failure
    split: str | None = None  # force the split of the APPS rows
    skip_bad_rows: bool = False
    recheck_timeouts: bool = True
    limits: Limits = field(default_factory=Limits)
    isolation: str = "auto"  # sandbox namespaces: auto | namespaces | none (pool.py)
    progress: bool = True
    shard: Shard | None = None  # evaluate samples i::S into <out stem>/shard-i-of-S.jsonl
    # Streaming: a sample shard folder; shard I/S evaluates that folder's shard I/S (written
    # by sampling task I) instead of the merged samples file, so it can start as soon as
    # that one sampling task ends (`submit pipeline`: --dependency=aftercorr).
    stream: Path | None = None
    # The verdict cache folder (None: off): a program already judged with the same tests,
    # limits and evaluator is not executed again (cache.py). `recheck` executes the cached
    # ones anyway and says how many verdicts changed.
    cache: Path | None = None
    recheck: bool = False

    def with_shard(self, shard: Shard) -> EvalConfig:
        return replace(self, shard=shard)


@dataclass
class _Pending:
    """A problem whose programs are still running."""

    sample: SampleRecord
    problem: Problem
    results: dict[str, ProgramResult] = field(default_factory=dict)  # by program text
    left: int = 0
    provenance: str = ""  # the hash of its programs, tests and limits
    cached: set[str] = field(default_factory=set)  # programs whose result the cache gave


def _spec(problem: Problem) -> TestSpec:
    return TestSpec(problem.fn_name, problem.inputs, problem.outputs)


def provenance(sample: SampleRecord, problem: Problem, cfg: EvalConfig) -> str:
    """What a results record depends on: the programs, the tests, the limits, the
    isolation in force (the system-call filter, the tree limits' mode)."""
    return digest(
        {
            "codes": sample.codes,
            "tests": [problem.fn_name, problem.inputs, problem.outputs],
            "limits": dataclasses.asdict(cfg.limits),
            "all_tests": cfg.all_tests,
            "recheck_timeouts": cfg.recheck_timeouts,
            "isolation": _isolation(),
        }
    )


@functools.cache
def _isolation() -> dict[str, str]:
    """sandbox.in_force(), read once per process (it reads /proc and /sys)."""
    return in_force()


def _match(samples: list[SampleRecord], problems: dict, cfg: EvalConfig) -> list[_Pending]:
    pending, seen = [], set()
    for sample in samples:
        if sample.key in seen:
            raise AppsHpcError(
                f"{cfg.samples}: problem {sample.split}/{sample.problem_id} of model "
                f"{sample.model!r} appears twice"
            )
        seen.add(sample.key)
        problem = problems.get((sample.split, sample.problem_id))
        if problem is None:
            raise AppsHpcError(
                f"{cfg.samples}: problem {sample.split}/{sample.problem_id} is not in {cfg.apps}"
            )
        if not problem.has_tests:
            raise AppsHpcError(
                f"{cfg.apps}: problem {problem.split}/{problem.problem_id} has no tests"
            )
        pending.append(_Pending(sample, problem, provenance=provenance(sample, problem, cfg)))
    return pending


def _jobs(pending: list[_Pending]) -> list[Job]:
    """One job per distinct program of each problem: identical programs run once."""
    jobs = []
    for index, item in enumerate(pending):
        distinct = dict.fromkeys(item.sample.codes)
        item.left = len(distinct)
        spec = _spec(item.problem)
        jobs += [Job(item.problem.key, code, spec, tag=index) for code in distinct]
    return jobs


def _record(item: _Pending) -> ResultRecord:
    results = [item.results[code] for code in item.sample.codes]
    verdicts = [r.verdict.value for r in results]
    return ResultRecord(
        problem_id=item.sample.problem_id,
        split=item.sample.split,
        difficulty=item.problem.difficulty,
        model=item.sample.model,
        n=len(results),
        c=sum(v == Verdict.PASS.value for v in verdicts),
        verdicts=verdicts,
        tests=[r.tests for r in results],
        failures=[r.failure for r in results],
        extra={FIELD: item.provenance, "reused": sum(c in item.cached for c in item.sample.codes)},
    )


def _key_of(rec: dict[str, Any]) -> tuple[Any, Any, Any]:
    return (rec.get("model"), *problem_key(rec))


def _reuse(results: AppendLog, pending: list[_Pending]) -> tuple[AppendLog, set]:
    """Keep the records made from exactly these programs, tests and limits; rewrite the
    file without the others (said, with how many). Returns the log and the kept keys."""
    want = {p.sample.key: p.provenance for p in pending}
    kept: dict[Any, dict[str, Any]] = {}
    for _, rec in results.records:
        key = _key_of(rec)
        if key not in kept and key in want and rec.get(FIELD) == want[key]:
            kept[key] = rec
    stale = len(results.records) - len(kept)
    if stale:
        gone = sum(1 for _, r in results.records if _key_of(r) not in want)
        log.warning(
            "%s: %d results made from other programs, tests or limits are redone; "
            "%d results of problems no longer in the samples are dropped",
            results.path,
            stale - gone,
            gone,
        )
        write_atomic(results.path, "".join(dump_line(r) for r in kept.values()))
        results = AppendLog(results.path)
    return results, set(kept)


def shard_path(out: Path, shard: Shard) -> Path:
    """Where shard I/S of results file `out` goes: `<out without .jsonl>/shard-...`."""
    return out.with_suffix("") / shard.file_name()


def _keys(samples: list[SampleRecord]) -> list[dict[str, Any]]:
    return [{"split": s.split, "problem_id": s.problem_id} for s in samples]


def _samples_source(cfg: EvalConfig) -> Path:
    """The samples this task evaluates: its sample shard when streaming, else the merged
    samples file (of which a shard takes its share)."""
    if cfg.stream is not None and cfg.shard is not None:
        return cfg.stream / cfg.shard.file_name()
    return cfg.samples


def _merge_keys(cfg: EvalConfig, keys: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The problems the merged results hold. Streaming, a task saw only its own shard: the
    whole set is the merged samples file, which exists once every sampling task ended."""
    if cfg.stream is None:
        return keys
    return _keys(read_samples(cfg.samples)) if cfg.samples.exists() else None


def _inputs(cfg: EvalConfig) -> tuple[list[dict[str, Any]], list[_Pending]]:
    """(the problems the merged results will hold, this shard's pending problems).
    Samples whose APPS row was skipped as bad (--skip-bad-rows) are counted and said."""
    apps = hub.local(cfg.apps, hub.DATASET)  # a hub id: its fetched snapshot, offline
    lift_int_digits_limit()  # expected outputs may hold ints of more than 4,300 digits
    problems, load = load_problems(apps, cfg.split, cfg.skip_bad_rows)
    if load.skipped:
        log.warning("skipped %d bad APPS rows; first: %s", len(load.skipped), load.skipped[0])
    source = _samples_source(cfg)
    all_samples = read_samples(source)
    if not all_samples:
        raise AppsHpcError(f"{source}: no samples (expected one JSON line per problem)")
    orphans = {
        (s.split, s.problem_id)
        for s in all_samples
        if (s.split, s.problem_id) in load.skipped_keys and (s.split, s.problem_id) not in problems
    }
    if orphans:
        names = ", ".join(f"{split}/{pid}" for split, pid in sorted(orphans)[:5])
        log.warning("%d samples not evaluated: their APPS rows were bad (%s)", len(orphans), names)
    kept = [s for s in all_samples if (s.split, s.problem_id) not in orphans]
    if not kept:
        raise AppsHpcError(f"{source}: no sample left to evaluate: every problem was skipped")
    samples = assign(kept, cfg.shard) if cfg.shard and source == cfg.samples else kept
    return _keys(kept), _match(samples, problems, cfg)


def evaluate(cfg: EvalConfig) -> Path:
    """Evaluate every problem of `cfg.samples` not already in the results with the same
    provenance; return the results file (with a shard: the merged file once every shard
    is complete, else the shard's file)."""
    if cfg.cache is not None and cfg.cache.exists() and not cfg.cache.is_dir():
        raise AppsHpcError(f"--cache {cfg.cache}: not a folder (the verdict cache is one)")
    out = shard_path(cfg.out, cfg.shard) if cfg.shard else cfg.out
    with OutputLock(out):  # a second eval of the same --out is refused, not doubled
        keys, pending = _inputs(cfg)
        results, kept = _reuse(AppendLog(out), pending)
        todo = [p for p in pending if p.sample.key not in kept]
        log.info("%d problems already in %s, %d to do", len(kept), out, len(todo))
        _run(cfg, todo, results)
    merged = _merge_keys(cfg, keys)
    if cfg.shard is None or merged is None or shard_status(cfg.out.with_suffix(""), merged):
        return out
    return merge_shards(cfg.out.with_suffix(""), cfg.out, merged, cfg.samples)


def expected_provenance(cfg: EvalConfig) -> dict[Any, str]:
    """Each problem's results provenance for these samples, APPS rows and limits."""
    _, pending = _inputs(dataclasses.replace(cfg, shard=None, stream=None))
    return {p.sample.key: p.provenance for p in pending}


def is_done(cfg: EvalConfig) -> bool:
    """Is the results file complete, every record made from the current inputs?"""
    have = {_key_of(rec): rec.get(FIELD) for rec in complete_records(cfg.out)}
    return bool(have) and have == expected_provenance(cfg)


def _log_sandbox(workers: int, isolation: str) -> None:
    """Always said, whatever the progress setting: which isolation is in force (a warning
    without namespaces; the pool has said why)."""
    line = f"sandbox: {isolation}; {workers} workers"
    (log.info if isolation.startswith("namespaces") else log.warning)(line)


def _key(cfg: EvalConfig, job: Job, problem: Problem) -> str:
    tests = [problem.fn_name, problem.inputs, problem.outputs]
    settings = {"all_tests": cfg.all_tests, "recheck_timeouts": cfg.recheck_timeouts}
    # what is in force (filter, tree limits) and what was asked: a run that demands the
    # namespaces never reuses a verdict judged where they may have been refused
    settings["isolation"] = _isolation()
    settings["isolation_asked"] = cfg.isolation
    return program_key(job.code, tests, cfg.limits, settings)


class _Judged:
    """Where each program's result goes: its problem's record (appended once the problem
    is complete), and the cache; counts reuses and, re-checking, changed verdicts."""

    def __init__(self, cfg: EvalConfig, pending: list[_Pending], results: AppendLog) -> None:
        self.cfg, self.pending, self.results = cfg, pending, results
        self.cache = VerdictCache(cfg.cache) if cfg.cache else None
        self.flips: dict[tuple[str, str], int] = {}
        self.rechecked = 0

    def cached(self, job: Job, key: str) -> ProgramResult | None:
        return None if self.cache is None or self.cfg.recheck else self.cache.get(key)

    def record(self, job: Job, result: ProgramResult, key: str, reused: bool) -> None:
        item = self.pending[job.tag]
        item.results[job.code] = result
        item.left -= 1
        if reused:
            item.cached.add(job.code)
        elif self.cache is not None:
            self._compare(key, result)
            self.cache.put(key, result, rechecked=self.cfg.recheck)
        if item.left == 0:
            self.results.append(_record(item).to_json())

    def _compare(self, key: str, result: ProgramResult) -> None:
        old = self.cache.entries.get(key) if self.cache and self.cfg.recheck else None
        if old is not None:
            self.rechecked += 1
            if old.verdict != result.verdict:
                pair = (old.verdict.value, result.verdict.value)
                self.flips[pair] = self.flips.get(pair, 0) + 1

    def say(self, executed: int, reused: int) -> None:
        log.info(
            "verdict cache: %d programs executed, %d verdicts reused, %d not stored "
            "(timeouts the wall clock decided, executed again next time)",
            executed,
            reused,
            self.cache.not_stored if self.cache is not None else 0,
        )
        if self.cfg.recheck and self.cache is not None:
            changed = ", ".join(f"{a} -> {b}: {n}" for (a, b), n in sorted(self.flips.items()))
            log.warning(
                "recheck: %d cached verdicts executed again, %d changed%s",
                self.rechecked,
                sum(self.flips.values()),
                f" ({changed})" if changed else "",
            )
        if self.cache is not None:
            self.cache.close()


def _run(cfg: EvalConfig, pending: list[_Pending], results: AppendLog) -> None:
    jobs = _jobs(pending)
    if not jobs:
        return
    judged = _Judged(cfg, pending, results)
    keys = [_key(cfg, job, pending[job.tag].problem) for job in jobs]
    todo = []
    for job, key in zip(jobs, keys, strict=True):
        hit = judged.cached(job, key)
        if hit is None:
            todo.append((job, key))
        else:
            judged.record(job, hit, key, reused=True)
    if todo:
        _execute(cfg, [job for job, _ in todo], {(j.tag, j.code): k for j, k in todo}, judged)
    judged.say(len(todo), len(jobs) - len(todo))


def _execute(cfg: EvalConfig, jobs: list[Job], keys: dict[Any, str], judged: _Judged) -> None:
    workers = cfg.workers or cpus_granted()
    options = PoolOptions(
        workers=min(workers, len(jobs)),
        limits=cfg.limits,
        all_tests=cfg.all_tests,
        recheck_timeouts=cfg.recheck_timeouts,
        isolation=cfg.isolation,
    )
    start = time.monotonic()
    with (
        EvalPool(options) as pool,
        tqdm(
            total=len(jobs), unit="prog", desc="eval", disable=not cfg.progress, smoothing=0.05
        ) as bar,
    ):
        _log_sandbox(options.workers, pool.isolation)
        for job, result in pool.run(jobs):
            judged.record(job, result, keys[job.tag, job.code], reused=False)
            bar.update(1)
    elapsed = time.monotonic() - start
    log.info("evaluated %d programs in %.1fs (%.1f/s)", len(jobs), elapsed, len(jobs) / elapsed)


def merge_results(cfg: EvalConfig) -> Path:
    """Join the shard results of `cfg.out` into `cfg.out`; a missing or incomplete shard,
    a problem twice, or one not in the samples is an error naming the file."""
    expected = _keys(read_samples(cfg.samples))
    return merge_shards(cfg.out.with_suffix(""), cfg.out, expected, cfg.samples)
