"""`evaluate(cfg)`: samples file + APPS rows -> results file, one line per problem,
appended as problems finish, resumable after a kill."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apps_hpc.core.apps import Problem, load_problems
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.core.records import AppendLog, complete_records, dump_line, problem_key, read_samples
from apps_hpc.core.schedenv import cpus_granted
from apps_hpc.core.schema import ResultRecord, SampleRecord, Verdict
from apps_hpc.core.shards import Shard, assign, merge_shards, shard_status
from apps_hpc.evaluate.harness import TestSpec
from apps_hpc.evaluate.pool import EvalPool, Job, PoolOptions, ProgramResult
from apps_hpc.evaluate.sandbox import Limits
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


def _spec(problem: Problem) -> TestSpec:
    return TestSpec(problem.fn_name, problem.inputs, problem.outputs)


def provenance(sample: SampleRecord, problem: Problem, cfg: EvalConfig) -> str:
    """What a results record depends on: the programs, the tests, the limits."""
    return digest(
        {
            "codes": sample.codes,
            "tests": [problem.fn_name, problem.inputs, problem.outputs],
            "limits": dataclasses.asdict(cfg.limits),
            "all_tests": cfg.all_tests,
            "recheck_timeouts": cfg.recheck_timeouts,
        }
    )


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
        extra={FIELD: item.provenance},
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


def _inputs(cfg: EvalConfig) -> tuple[list[dict[str, Any]], list[_Pending]]:
    """(the problems the merged results will hold, this shard's pending problems).
    Samples whose APPS row was skipped as bad (--skip-bad-rows) are counted and said."""
    apps = hub.local(cfg.apps, hub.DATASET)  # a hub id: its fetched snapshot, offline
    problems, load = load_problems(apps, cfg.split, cfg.skip_bad_rows)
    if load.skipped:
        log.warning("skipped %d bad APPS rows; first: %s", len(load.skipped), load.skipped[0])
    all_samples = read_samples(cfg.samples)
    if not all_samples:
        raise AppsHpcError(f"{cfg.samples}: no samples (expected one JSON line per problem)")
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
        raise AppsHpcError(f"{cfg.samples}: no sample left to evaluate: every problem was skipped")
    samples = assign(kept, cfg.shard) if cfg.shard else kept
    return _keys(kept), _match(samples, problems, cfg)


def evaluate(cfg: EvalConfig) -> Path:
    """Evaluate every problem of `cfg.samples` not already in the results with the same
    provenance; return the results file (with a shard: the merged file once every shard
    is complete, else the shard's file)."""
    keys, pending = _inputs(cfg)
    out = shard_path(cfg.out, cfg.shard) if cfg.shard else cfg.out
    results = AppendLog(out)
    if results.repaired:
        log.warning("%s: dropped a half-written last line; that problem is redone", out)
    results, kept = _reuse(results, pending)
    todo = [p for p in pending if p.sample.key not in kept]
    log.info("%d problems already in %s, %d to do", len(kept), out, len(todo))
    _run(cfg, todo, results)
    if cfg.shard is None:
        return out
    if shard_status(cfg.out.with_suffix(""), keys):
        return out
    return merge_shards(cfg.out.with_suffix(""), cfg.out, keys, cfg.samples)


def expected_provenance(cfg: EvalConfig) -> dict[Any, str]:
    """Each problem's results provenance for these samples, APPS rows and limits."""
    _, pending = _inputs(dataclasses.replace(cfg, shard=None))
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


def _run(cfg: EvalConfig, pending: list[_Pending], results: AppendLog) -> None:
    jobs = _jobs(pending)
    if not jobs:
        return
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
            item = pending[job.tag]
            item.results[job.code] = result
            item.left -= 1
            if item.left == 0:
                results.append(_record(item).to_json())
            bar.update(1)
    elapsed = time.monotonic() - start
    log.info("evaluated %d programs in %.1fs (%.1f/s)", len(jobs), elapsed, len(jobs) / elapsed)


def merge_results(cfg: EvalConfig) -> Path:
    """Join the shard results of `cfg.out` into `cfg.out`; a missing or incomplete shard,
    a problem twice, or one not in the samples is an error naming the file."""
    expected = _keys(read_samples(cfg.samples))
    return merge_shards(cfg.out.with_suffix(""), cfg.out, expected, cfg.samples)
