"""Every call to the scheduler, and every use of submitit's internals, in one module.

- SLURM commands: `scontrol ping` (is the controller up), `sacct` (states and elapsed
  times from accounting, array tasks included), `scancel`.
- The job-state vocabulary: which states are final, which are failures, and how the
  states of an array's tasks combine into one.
- submitit has no public API for two things we need: the sbatch text of a submission
  without submitting it (`--dry-run`), and the outcome a finished local job left in its
  result pickle (`apps-hpc status` after the local executor). Both are read here; a test
  (`tests/launch/test_submitit_internals.py`) fails loudly when a submitit upgrade changes them.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import time
from pathlib import Path

import submitit
from submitit.core.utils import JobPaths

DEFAULT_CONF = "/etc/slurm/slurm.conf"
# Final states: a job in one of these will not run again (a requeued job is PENDING).
TERMINAL = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
    }
)
FAILURES = ("FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE")
# An array's state is the first of these that any task is in (worst first).
SEVERITY = (*FAILURES, "CANCELLED", "RUNNING", "REQUEUED", "PENDING", "UNKNOWN")


def combine(states: list[str]) -> str:
    """One state for an array: the worst one that matters."""
    for state in SEVERITY:
        if state in states:
            return state
    return states[0] if states else "UNKNOWN"


def is_failure(state: str) -> bool:
    return state in FAILURES


def client_config() -> str | None:
    """Why SLURM's clients have no configuration to read, or None when they have one
    ($SLURM_CONF, else the default /etc/slurm/slurm.conf; without either, clients fall
    back to slow DNS look-ups and retries)."""
    conf = os.environ.get("SLURM_CONF")
    if conf:
        return None if Path(conf).is_file() else f"SLURM_CONF={conf} does not exist"
    if Path(DEFAULT_CONF).is_file():
        return None
    return f"no SLURM configuration ({DEFAULT_CONF} missing and SLURM_CONF unset)"


def ping(timeout_s: float = 60) -> tuple[bool, str]:
    """Is a SLURM controller answering? (up, what `scontrol ping` said)."""
    if shutil.which("scontrol") is None:
        return False, "scontrol not found on this machine"
    missing = client_config()
    if missing:
        return False, missing
    try:
        out = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False, f"scontrol ping did not answer within {timeout_s:.0f} s"
    text = (out.stdout + out.stderr).strip().replace("\n", " ")
    return out.returncode == 0 and "UP" in out.stdout, text or "scontrol ping failed"


def has_sbatch() -> bool:
    return shutil.which("sbatch") is not None


def has_sacct() -> bool:
    return shutil.which("sacct") is not None


def sacct(ids: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> (state, elapsed), from accounting (array tasks included)."""
    if not ids or not has_sacct():
        return {}
    out = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-o", "JobID,State,Elapsed", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = {}
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            found[parts[0]] = (parts[1].split()[0], parts[2])
    return found


def wait(ids: list[str], poll_s: float = 2.0) -> dict[str, str]:
    """Poll accounting until every job is in a final state; return the states. (A
    requeued job is PENDING again, so it is waited for.)"""
    while True:
        states = {i: state for i, (state, _) in sacct(ids).items()}
        if all(states.get(i) in TERMINAL for i in ids):
            return states
        time.sleep(poll_s)


def master_id(job_id: str) -> str:
    """An array task's id (`123_4`) -> the array's id (`123`)."""
    return str(job_id).split("_", 1)[0]


def scancel(ids: list[str]) -> None:
    """Cancel jobs (an array task's id cancels its whole array)."""
    masters = sorted({master_id(i) for i in ids})
    if masters:
        subprocess.run(["scancel", *masters], check=False)


def sbatch_text(executor: submitit.SlurmExecutor, array: int | None) -> str:
    """The sbatch script a submission would use (submitit internals)."""
    from submitit.slurm.slurm import _make_sbatch_string

    params = dict(executor.parameters)
    if array:
        params["map_count"] = array
    command = executor._submitit_command_str
    return _make_sbatch_string(command=command, folder=executor.folder, **params)


def test_only(script: str, timeout_s: float = 60) -> str:
    """`sbatch --test-only` on a script: the scheduler's "would start at" line (it
    submits nothing), or its error."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".sbatch") as fh:
        fh.write(script)
        fh.flush()
        try:
            r = subprocess.run(
                ["sbatch", "--test-only", fh.name],
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"no estimate: {exc}"
    text = (r.stderr + r.stdout).strip().replace("sbatch: ", "")
    return text.splitlines()[-1] if text else f"no estimate (sbatch exited {r.returncode})"


def local_job_state(folder: str | Path, job_id: str) -> str:
    """COMPLETED / FAILED from a finished local job's result pickle (submitit writes
    `(outcome, value)` there), RUNNING while its process lives, else UNKNOWN."""
    result = JobPaths(folder, job_id=job_id, task_id=0).result_pickle
    if result.exists():
        outcome = pickle.loads(result.read_bytes())[0]
        return "COMPLETED" if outcome == "success" else "FAILED"
    try:
        os.kill(int(job_id), 0)
        return "RUNNING"
    except (OSError, ValueError):
        return "UNKNOWN"


def job_logs(folder: str | Path, job_id: str) -> tuple[Path, Path]:
    """(stdout, stderr) of a submitit job (task 0)."""
    paths = JobPaths(folder, job_id=job_id, task_id=0)
    return paths.stdout, paths.stderr


def local_job_elapsed(folder: str | Path, job_id: str) -> float | None:
    """Seconds a local job ran: from its submission pickle to its result pickle (or to
    now while it runs, to its last log line when it died without a result)."""
    paths = JobPaths(folder, job_id=job_id, task_id=0)
    if not paths.submitted_pickle.exists():
        return None
    start = paths.submitted_pickle.stat().st_mtime
    ends = [p.stat().st_mtime for p in (paths.result_pickle,) if p.exists()]
    if not ends and local_job_state(folder, job_id) == "RUNNING":
        ends = [time.time()]
    ends = ends or [p.stat().st_mtime for p in (paths.stdout, paths.stderr) if p.exists()]
    return max(0.0, max(ends) - start) if ends else None
