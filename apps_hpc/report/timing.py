"""What the manifest says about the run: each stage's jobs and wall time, sampling
throughput per shard, eval programs/s, and the facts that identify the run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml

from apps_hpc.provenance import identity
from apps_hpc.report.experiment import ExperimentFiles
from apps_hpc.report.load import ModelResults

RUN_KEYS = ("image", "lock", "git", "commit", "revision", "version", "sha", "digest")
# An experiment whose stages ran before they recorded what ran them, or outside it (a
# stage command given file paths only, no --config, records nothing in its manifest).
NOT_RECORDED = (
    "image, lock hash, git commit, revisions",
    "not recorded in manifest.json (no job of `apps-hpc submit` and no stage command run "
    "with --config recorded them)",
)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _seconds(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return None


def stage_wall(tasks: dict[str, Any] | None) -> float | None:
    """A step's wall time from the start and end times its tasks recorded in the manifest
    (`timing/<step>/<task>`): from the first start to the last end; None while a task
    has not ended."""
    records = [t for t in (tasks or {}).values() if isinstance(t, dict)]
    starts = [_seconds(t.get("started")) for t in records]
    ends = [_seconds(t.get("ended")) for t in records]
    if not records or None in starts or None in ends:
        return None
    return max(e for e in ends if e is not None) - min(s for s in starts if s is not None)


def eval_rate(key: str, wall: float | None, models: list[ModelResults]) -> str:
    """Programs per second of an `eval/<model>` step over its wall time."""
    name = key.split("/", 1)[1] if key.startswith("eval/") else None
    model = next((m for m in models if m.name == name), None)
    if model is None or not wall:
        return ""
    programs = sum(len(r.verdicts) for r in model.records)
    return f"{programs} programs, {programs / wall:.1f}/s"


def stage_rows(manifest: dict[str, Any], models: list[ModelResults]) -> list[list[Any]]:
    """[step, state, executor, jobs, submitted, wall time, rate] per manifest job entry."""
    rows = []
    timing = manifest.get("timing") or {}
    for key, entry in (manifest.get("jobs") or {}).items():
        if not isinstance(entry, dict):
            continue
        wall = stage_wall(timing.get(key))
        rows.append(
            [
                key,
                entry.get("state", "–"),
                entry.get("executor", "–"),
                ", ".join(entry.get("ids") or []) or "–",
                entry.get("submitted", "–"),
                duration(wall),
                eval_rate(key, wall, models),
            ]
        )
    return rows


PLANNED_HEAD = [
    "stage",
    "planned wall",
    "measured wall",
    "measured / planned",
    "planned GPU memory",
    "measured peak RSS",
]


def _peak_rss(tasks: dict[str, Any] | None) -> str:
    """The largest peak resident set a task of the step recorded (`peak_rss_mib`)."""
    peaks = [t.get("peak_rss_mib") for t in (tasks or {}).values() if isinstance(t, dict)]
    known = [p for p in peaks if isinstance(p, (int, float))]
    return f"{max(known):,.0f} MiB" if known else "–"


def planned_rows(manifest: dict[str, Any]) -> list[list[str]]:
    """[stage, planned wall, measured wall, ratio, planned GPU memory, measured peak
    RSS] per step of the plan `submit pipeline` recorded (`plan/steps`); [] without one."""
    plan = manifest.get("plan")
    steps = plan.get("steps") if isinstance(plan, dict) else None
    if not isinstance(steps, dict):
        return []
    timing = manifest.get("timing") or {}
    rows = []
    for step, planned in steps.items():
        seconds = planned.get("seconds") if isinstance(planned, dict) else None
        wall = stage_wall(timing.get(step))
        ratio = f"{wall / seconds:.2f}x" if wall and seconds else "–"
        mem = planned.get("gpu_mem_gib") if isinstance(planned, dict) else None
        mem_cell = f"{mem} GiB per GPU" if mem is not None else "–"
        rows.append(
            [step, duration(seconds), duration(wall), ratio, mem_cell, _peak_rss(timing.get(step))]
        )
    return rows


def planned_section(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The planned-vs-measured table as data (summary.json's `planned_vs_measured`,
    rendered into summary.md and the page), None without a plan in the manifest."""
    rows = planned_rows(manifest)
    if not rows:
        return None
    plan = manifest["plan"]
    title = f"Planned vs measured (plan for {plan.get('profile')}, {plan.get('planned_at', '–')})"
    return {"title": title, "head": PLANNED_HEAD, "rows": rows}


def throughput_rows(manifest: dict[str, Any]) -> list[list[Any]]:
    """[model, shard, problems, completions, tokens, seconds, tokens/s] per sampling shard."""
    rows = []
    for model, entry in (manifest.get("sample") or {}).items():
        shards = entry.get("throughput") if isinstance(entry, dict) else None
        for shard, st in sorted((shards or {}).items()):
            secs = st.get("seconds") or 0
            rate = f"{st.get('tokens', 0) / secs:.1f}" if secs else "–"
            row = [st.get(f, "–") for f in ("problems", "completions", "tokens", "seconds")]
            rows.append([model, shard, *row, rate])
    return rows


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    elif not isinstance(value, list):
        out.append((prefix, value))


def _run_records(manifest: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(step, task, record) of every task's run record (`run/<step>/<task>`, written by
    identity.record_run for a job or a stage command run directly), in the manifest's
    order."""
    found = []
    for step, tasks in (manifest.get("run") or {}).items():
        if isinstance(tasks, dict):
            found += [(step, t, tasks[t]) for t in sorted(tasks) if isinstance(tasks[t], dict)]
    return found


def _merged(values: dict[str, list[str]], label: str) -> str:
    """One value as it is; several with the steps that recorded each (hosts: listed)."""
    if len(values) == 1 or label == "host":
        return ", ".join(values)
    return "; ".join(f"{value} ({', '.join(steps)})" for value, steps in values.items())


def identity_facts(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of what ran the steps (identity.facts of every task's run record,
    then how it ran: a job of `apps-hpc submit` or a stage command run directly), each
    label once: a value every step shares once, differing values with their steps."""
    seen: dict[str, dict[str, list[str]]] = {}
    for step, task, record in _run_records(manifest):
        for label, value in [*identity.facts(record), ("ran as", identity.ran_as(task))]:
            values = seen.setdefault(label, {})
            if value is not None and step not in values.setdefault(value, []):
                values[value].append(step)
    return [(label, _merged(values, label)) for label, values in seen.items() if values]


def run_facts(files: ExperimentFiles) -> list[tuple[str, Any]]:
    """(label, value): the folder, model and data of the config; what ran the steps (the
    run records of manifest.json: image, lock hash, git commit, versions, the model and
    data revisions, experiment.yaml's digest, hosts, how it ran), or that an experiment has
    none; then every other manifest entry naming an image, lock, commit, revision or
    version (e.g. what `apps-hpc fetch` recorded)."""
    facts: list[tuple[str, Any]] = [("experiment folder", files.folder or "–")]
    try:
        config = yaml.safe_load(files.experiment_yaml or "") or {}
    except yaml.YAMLError:
        config = {}
    if isinstance(config, dict):
        facts += [(k, config[k]) for k in ("name", "model", "apps") if k in config]
    ran = identity_facts(files.manifest)
    facts += ran or [NOT_RECORDED]
    found: list[tuple[str, Any]] = []
    for key, value in files.manifest.items():
        if key not in ("jobs", "sample", "run", "timing", "plan", "measured"):
            _flatten(key, value, found)
    return facts + [(k, v) for k, v in found if any(w in k.lower() for w in RUN_KEYS)]
