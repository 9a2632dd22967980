"""Submit a plan: SLURM jobs chained with afterok (then return, or --wait), or the local
executor run in dependency order. Every job id goes into `<experiment>/manifest.json`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import submitit

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.schema import Profile
from apps_hpc.experiment.registry import get
from apps_hpc.launch import slurm
from apps_hpc.launch.executor import (
    dry_run_text,
    make_executor,
    stage_resources,
)
from apps_hpc.launch.plan import Step
from apps_hpc.launch.tasks import StageTask
from apps_hpc.provenance.manifest import update_manifest

log = logging.getLogger(__name__)


@dataclass
class Launch:
    profile: Profile
    root: Path  # the experiment folder: manifest.json and jobs/ live here
    wait: bool = False
    dry_run: bool = False
    gpus_per_model: int = 1
    hub_dir: Path | None = None  # HF_HOME of every job (offline), bound into the container


def step_executor(launch: Launch, step: Step, dependency: str | None) -> submitit.Executor:
    res = stage_resources(step.stage, launch.profile, launch.gpus_per_model)
    name = f"apps-hpc-{step.key.replace('/', '-')}"
    binds = [launch.root, *([launch.hub_dir] if launch.hub_dir else [])]
    return make_executor(launch.profile, launch.root / "jobs", binds, res, name, dependency)


def _submit_step(
    launch: Launch, step: Step, dependency: str | None, index: int | None = None
) -> list[submitit.Job]:
    """The step's job(s): the whole array, or (with `index`) only that task of it."""
    ex = step_executor(launch, step, dependency)
    task = StageTask(launch.root / "manifest.json", step.key, launch.hub_dir)
    if index is not None:
        return [ex.submit(task, step.stage, step.cfgs[index])]
    if step.array:
        return ex.map_array(task, [step.stage] * len(step.cfgs), step.cfgs)
    return [ex.submit(task, step.stage, step.cfgs[0])]


def _record(launch: Launch, step: Step, jobs: list[submitit.Job]) -> None:
    update_manifest(
        launch.root / "manifest.json",
        ["jobs", step.key],
        {
            "stage": step.stage,
            "executor": launch.profile.executor,
            "profile": launch.profile.name,
            "ids": [str(j.job_id) for j in jobs],
            "logs": [str(j.paths.stdout) for j in jobs],
            "folder": str(launch.root / "jobs"),
            "deps": step.deps,
            "corr": step.corr,
            "progress": step.progress,
            "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )


def dependency(step: Step, ids: dict[str, str]) -> str | None:
    """SLURM's --dependency for a step (pure): aftercorr on the array it follows task by
    task, afterok on the rest; `ids` maps a step key to its (master) job id, and a step
    missing from it (skipped: its outputs were complete) is no dependency."""
    corr = [ids[d] for d in step.deps if d == step.corr and d in ids]
    ok = [ids[d] for d in step.deps if d != step.corr and d in ids]
    parts = [f"aftercorr:{corr[0]}"] if corr else []
    parts += [f"afterok:{':'.join(ok)}"] if ok else []
    return ",".join(parts) or None


def dry_run(launch: Launch, steps: list[Step]) -> str:
    parts = []
    for step in steps:
        ex = step_executor(launch, step, dependency(step, {d: f"<{d}>" for d in step.deps}))
        tasks = f", array of {len(step.cfgs)}" if step.array else ""
        after = [d for d in step.deps if d != step.corr]
        deps = f", task by task after {step.corr}" if step.corr else ""
        deps += f", after {', '.join(after)}" if after else ""
        parts.append(f"### {step.key} ({step.stage}{tasks}{deps})\n")
        parts.append(dry_run_text(ex, len(step.cfgs) if step.array else None))
    return "".join(parts)


def _done(step: Step) -> bool:
    """Are the step's outputs complete and made from this very config?"""
    return get(step.stage).is_done(step.cfgs[0])


def _skip(launch: Launch, step: Step) -> None:
    log.info(f"skip {step.key}: already done (outputs complete, same inputs and config)")
    update_manifest(
        launch.root / "manifest.json",
        ["jobs", step.key],
        {
            "stage": step.stage,
            "state": "COMPLETED",
            "ids": [],
            "logs": [],
            "deps": step.deps,
            "progress": step.progress,
            "skipped": True,
        },
    )


def _submit_chained(launch: Launch, steps: list[Step]) -> dict[str, list[submitit.Job]]:
    jobs: dict[str, list[submitit.Job]] = {}
    skipped: set[str] = set()
    for step in steps:
        if all(d in skipped for d in step.deps) and _done(step):
            skipped.add(step.key)
            _skip(launch, step)
            continue
        ids = {d: slurm.master_id(jobs[d][0].job_id) for d in step.deps if d in jobs}
        jobs[step.key] = _submit_step(launch, step, dependency(step, ids))
        _record(launch, step, jobs[step.key])
        log.info("submitted %s: %s", step.key, ", ".join(str(j.job_id) for j in jobs[step.key]))
    return jobs


def _finished(jobs: list[submitit.Job]) -> bool:
    return all(job.done() for job in jobs)


def _job_failed(job: submitit.Job) -> bool:
    """A finished job failed if it left no result, an exception, or was cancelled."""
    try:
        return job.exception() is not None
    except Exception:  # cancelled, or killed without a result
        return True


def _failed(jobs: list[submitit.Job]) -> bool:
    return any(_job_failed(job) for job in jobs)


def fits(want: int, busy: int, capacity: int) -> bool:
    """May a step asking `want` CPUs start while running steps hold `busy` of `capacity`?
    One that asks for more than the machine has starts alone, when nothing else runs."""
    return busy == 0 or busy + want <= capacity


class _LocalRun:
    """The local executor knows neither dependencies nor CPUs: start each step once its
    deps are done and its CPUs (the profile's `cpus_per_node` is the machine) are free, so
    independent branches share the cores instead of fighting over them; a failure cancels
    its dependants."""

    def __init__(self, launch: Launch, steps: list[Step]) -> None:
        self.launch, self.pending = launch, list(steps)
        self.jobs: dict[str, list[submitit.Job]] = {}
        self.failed: set[str] = set()
        self.done: set[str] = set()
        self.started: dict[str, float] = {}
        self.cpus: dict[str, int] = {}
        self.checked: set[str] = set()
        self.tasks: dict[str, dict[int, submitit.Job]] = {}  # steps started task by task
        self.capacity = max(1, launch.profile.cpus_per_node)

    def _task_cpus(self, step: Step) -> int:
        return stage_resources(step.stage, self.launch.profile, self.launch.gpus_per_model).cpus

    def _want(self, step: Step) -> int:
        return self._task_cpus(step) * len(step.cfgs)

    def _busy(self) -> int:
        """The CPUs of every task still running (an array's finished tasks free theirs)."""
        running = [*self.jobs.items(), *((k, list(t.values())) for k, t in self.tasks.items())]
        return sum(self.cpus[key] * sum(not j.done() for j in js) for key, js in running)

    def _collect(self) -> None:
        for key, js in self.jobs.items():
            if key not in self.done and key not in self.failed and _finished(js):
                (self.failed if _failed(js) else self.done).add(key)
                outcome = "FAILED, see " + str(js[0].paths.stdout) if key in self.failed else "done"
                log.info(f"[{time.monotonic() - self.started[key]:6.1f}s] {key}: {outcome}")

    def _cancel(self, step: Step) -> None:
        self.failed.add(step.key)
        self.pending.remove(step)
        if step.key in self.tasks:  # tasks already started run to their end: wait for them
            self.jobs[step.key] = list(self.tasks.pop(step.key).values())
            return
        update_manifest(
            self.launch.root / "manifest.json",
            ["jobs", step.key],
            {
                "stage": step.stage,
                "state": "CANCELLED",
                "ids": [],
                "logs": [],
                "deps": step.deps,
                "progress": step.progress,
            },
        )

    def _skipped(self, step: Step) -> bool:
        """Skip a step whose outputs are complete, when no dependency ran now (checked
        once, when it becomes ready)."""
        if step.key in self.checked:
            return False
        self.checked.add(step.key)
        if any(d in self.jobs for d in step.deps) or not _done(step):
            return False
        self.pending.remove(step)
        self.done.add(step.key)
        _skip(self.launch, step)
        return True

    def _start(self, step: Step) -> None:
        self.pending.remove(step)
        self.cpus[step.key] = self._task_cpus(step)
        self.jobs[step.key] = _submit_step(self.launch, step, None)
        self.started[step.key] = time.monotonic()
        _record(self.launch, step, self.jobs[step.key])
        log.info(f"started {step.key} (log: {self.jobs[step.key][0].paths.stdout})")

    def _step(self) -> None:
        """Cancel the dependants of failures, skip what is done, start ready steps in plan
        order while their CPUs fit (first come, first served: no step is overtaken)."""
        self._collect()
        for step in list(self.pending):
            if any(d in self.failed for d in step.deps):
                self._cancel(step)
            elif self._streaming(step):
                self._start_tasks(step)
            elif not all(d in self.done for d in step.deps) or self._skipped(step):
                continue
            elif fits(self._want(step), self._busy(), self.capacity):
                self._start(step)
            else:
                break

    def _streaming(self, step: Step) -> bool:
        """A step that follows an array task by task, that array started now, and its
        other dependencies done: its tasks start one by one (`_start_tasks`)."""
        others = [d for d in step.deps if d != step.corr]
        return step.corr in self.jobs and all(d in self.done for d in others)

    def _fits_task(self, step: Step) -> bool:
        """A streamed task fits where the CPUs are free, or in the place of the task it
        follows, which just ended (an array may have started over the machine's size)."""
        want = self.cpus[step.key]
        return fits(want, self._busy(), self.capacity) or want <= self.cpus[step.corr or ""]

    def _start_tasks(self, step: Step) -> None:
        """Start task i once task i of the followed array ended well and its CPUs are
        free; when every task has started, the step runs as a whole."""
        started = self.tasks.setdefault(step.key, {})
        self.cpus[step.key] = self._task_cpus(step)
        for index, job in enumerate(self.jobs[step.corr or ""]):
            if index in started or not job.done():
                continue
            if _job_failed(job) or not self._fits_task(step):
                return  # a failed task: the whole array is marked failed when it ends
            started[index] = _submit_step(self.launch, step, None, index)[0]
            self.started.setdefault(step.key, time.monotonic())
            log.info(f"started {step.key} task {index} (log: {started[index].paths.stdout})")
            _record(self.launch, step, [started[i] for i in sorted(started)])
        if len(started) == len(step.cfgs):
            self.pending.remove(step)
            self.jobs[step.key] = [started[i] for i in range(len(step.cfgs))]
            del self.tasks[step.key]

    def run(self) -> dict[str, list[submitit.Job]]:
        while self.pending:
            self._step()
            time.sleep(0.2)
        while not all(_finished(js) for js in self.jobs.values()):
            time.sleep(0.2)
        self._collect()
        return self.jobs


def submit(launch: Launch, steps: list[Step]) -> dict[str, list[str]]:
    """Submit (or print, with dry_run) the plan; return job ids by step."""
    if launch.dry_run:
        print(dry_run(launch, steps), end="")
        return {}
    launch.root.mkdir(parents=True, exist_ok=True)
    if launch.profile.executor == "local":
        jobs = _LocalRun(launch, steps).run()
    else:
        jobs = _submit_chained(launch, steps)
    ids = {key: [str(j.job_id) for j in js] for key, js in jobs.items()}
    bad: list[str] = []
    if launch.profile.executor == "local":
        bad = [key for key, js in jobs.items() if _failed(js)]
    elif launch.wait:
        states = slurm.wait([i for key_ids in ids.values() for i in key_ids])
        bad = [
            key
            for key, key_ids in ids.items()
            if any(states.get(i) != "COMPLETED" for i in key_ids)
        ]
    if bad:
        raise AppsHpcError(
            f"stage(s) failed: {', '.join(bad)}; see `apps-hpc status {launch.root}`"
        )
    return ids


__all__ = ["Launch", "dry_run", "submit"]
