"""`apps-hpc status` and `apps-hpc cancel`: one line per stage from manifest.json."""

from __future__ import annotations

import glob
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.jsonl import iter_jsonl
from apps_hpc.launch import slurm
from apps_hpc.provenance.manifest import read_manifest


@dataclass(frozen=True)
class StageStatus:
    key: str
    ids: list[str]
    state: str
    elapsed: str
    progress: str
    log: str


SBATCH_JOBS = Path("jobs") / "sbatch-jobs.tsv"  # slurm/pipeline.sh: step, job id, log


def load_jobs(root: Path) -> dict[str, dict[str, Any]]:
    """The experiment's jobs: those `apps-hpc submit` recorded in manifest.json, and
    those slurm/pipeline.sh recorded in jobs/sbatch-jobs.tsv."""
    path = root / "manifest.json"
    jobs = dict(read_manifest(path).get("jobs", {}))  # a bad file: an error naming it
    jobs.update(_sbatch_jobs(root / SBATCH_JOBS))
    if not jobs:
        raise AppsHpcError(
            f"{root}: no jobs recorded here (no manifest.json from `apps-hpc submit`, "
            f"no {SBATCH_JOBS} from slurm/pipeline.sh)"
        )
    return jobs


def _sbatch_jobs(path: Path) -> dict[str, dict[str, Any]]:
    """slurm/pipeline.sh's records: one `step<TAB>job id(s)<TAB>log` line per submission."""
    jobs: dict[str, dict[str, Any]] = {}
    lines = path.read_text().splitlines() if path.is_file() else []
    for line in lines:
        parts = line.split("\t")
        if len(parts) == 3:
            key, job_id, log = parts
            ids = job_id.split(",")
            jobs[key] = {"executor": "slurm", "ids": ids, "logs": [log], "progress": {}}
    return jobs


def error_log(stdout: str) -> str:
    """The log to read: of a job's `_log.out` and `_log.err`, the one that holds a
    traceback or an error line, else the stderr log (where stages log), else stdout."""
    out = Path(stdout)
    err = out.with_name(out.name[: -len(".out")] + ".err") if out.name.endswith(".out") else out
    candidates = [p for p in (err, out) if p.is_file()]
    for path in candidates:
        text = path.read_text(errors="replace")
        if "Traceback" in text or "error:" in text.lower():
            return str(path)
    return str(candidates[0]) if candidates else stdout


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _count_lines(pattern: str) -> int:
    total = 0
    for path in glob.glob(pattern):
        with open(path, "rb") as fh:
            total += sum(1 for line in fh if line.endswith(b"\n"))
    return total


def progress_of(spec: dict[str, Any]) -> str:
    if "lines" in spec:
        done = _count_lines(spec["lines"])
        source = Path(spec.get("expected_from", ""))
        expected = _count_lines(str(source)) if source.is_file() else "?"
        return f"{done}/{expected}"
    if "trainer_log" in spec:
        path = Path(spec["trainer_log"])
        if not path.exists():
            return "-"
        records = [r for _, r in iter_jsonl(path, on_torn=lambda torn: None)]  # still written
        rec = records[-1] if records and isinstance(records[-1], dict) else {}
        return f"{rec.get('current_steps', 0)}/{rec.get('total_steps', '?')} steps"
    if "exists" in spec:
        return "1/1" if Path(spec["exists"]).exists() else "0/1"
    return "-"


def stage_statuses(root: Path) -> list[StageStatus]:
    jobs = load_jobs(root)
    slurm_ids = [i for rec in jobs.values() if rec.get("executor") == "slurm" for i in rec["ids"]]
    acct = slurm.sacct(slurm_ids)
    rows = []
    for key, rec in jobs.items():
        if rec.get("executor") == "slurm":
            missing = ("PENDING", "00:00:00") if slurm.has_sacct() else ("UNKNOWN", "-")
            found = [acct.get(i, missing) for i in rec["ids"]]
            state = slurm.combine([s for s, _ in found])
            elapsed = max((e for _, e in found), default="-")
        elif rec["ids"]:
            state = slurm.combine([slurm.local_job_state(rec["folder"], i) for i in rec["ids"]])
            times = [slurm.local_job_elapsed(rec["folder"], i) for i in rec["ids"]]
            elapsed = _clock(max((t for t in times if t is not None), default=None))
        else:
            state, elapsed = rec.get("state", "UNKNOWN"), "-"
        log = error_log(rec["logs"][0]) if rec.get("logs") else "-"
        rows.append(StageStatus(key, rec["ids"], state, elapsed, progress_of(rec["progress"]), log))
    return rows


def format_statuses(rows: list[StageStatus]) -> str:
    lines = [f"{'stage':<18} {'job id(s)':<22} {'state':<11} {'elapsed':<10} {'progress':<14} log"]
    for r in rows:
        ids = ",".join(r.ids) if len(r.ids) <= 2 else f"{r.ids[0]}..({len(r.ids)})"
        lines.append(
            f"{r.key:<18} {ids or '-':<22} {r.state:<11} {r.elapsed:<10} {r.progress:<14} {r.log}"
        )
    failed = [r for r in rows if slurm.is_failure(r.state)]
    for r in failed:
        lines.append(f"stage {r.key} failed: see {r.log}")
    return "\n".join(lines) + "\n"


def cancel(root: Path) -> list[str]:
    """Cancel every job of the experiment; return the ids."""
    jobs = load_jobs(root)
    slurm_ids = [i for rec in jobs.values() if rec.get("executor") == "slurm" for i in rec["ids"]]
    slurm.scancel(slurm_ids)
    local = [i for rec in jobs.values() if rec.get("executor") == "local" for i in rec["ids"]]
    for job_id in local:
        try:
            os.kill(int(job_id), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    return slurm_ids + local
