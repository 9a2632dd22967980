"""`apps-hpc status` and `apps-hpc cancel`: one line per stage from manifest.json."""

from __future__ import annotations

import glob
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps_hpc.errors import AppsHpcError
from apps_hpc.launch import slurm


@dataclass(frozen=True)
class StageStatus:
    key: str
    ids: list[str]
    state: str
    elapsed: str
    progress: str
    log: str


def load_jobs(root: Path) -> dict[str, dict[str, Any]]:
    path = root / "manifest.json"
    if not path.exists():
        raise AppsHpcError(f"{root}: no manifest.json (nothing was submitted here)")
    return json.loads(path.read_text()).get("jobs", {})


def _count_lines(pattern: str) -> int:
    total = 0
    for path in glob.glob(pattern):
        with open(path, "rb") as fh:
            total += sum(1 for line in fh if line.endswith(b"\n"))
    return total


def is_complete(spec: dict[str, Any]) -> bool:
    """Are a step's outputs all there (so re-running the pipeline can skip it)?"""
    if "lines" in spec:
        source = Path(spec.get("expected_from", ""))
        return source.is_file() and _count_lines(spec["lines"]) >= _count_lines(str(source)) > 0
    if "trainer_log" in spec:
        return (Path(spec["trainer_log"]).parent / "train_results.json").exists()
    if "exists" in spec:
        return Path(spec["exists"]).exists()
    return False


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
        last = path.read_text().strip().splitlines()[-1:]
        rec = json.loads(last[0]) if last else {}
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
            found = [acct.get(i, ("PENDING", "00:00:00")) for i in rec["ids"]]
            state = slurm.combine([s for s, _ in found])
            elapsed = max((e for _, e in found), default="-")
        elif rec["ids"]:
            state = slurm.combine([slurm.local_job_state(rec["folder"], i) for i in rec["ids"]])
            elapsed = "-"
        else:
            state, elapsed = rec.get("state", "UNKNOWN"), "-"
        log = rec["logs"][0] if rec.get("logs") else "-"
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
