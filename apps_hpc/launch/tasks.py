"""What a job runs on its node: the same stage functions as the CLI, nothing more.

`StageTask` is submitit-checkpointable: on preemption or time limit (USR2) it is
requeued with the same arguments, and the stage resumes from its own files (train from
the newest checkpoint-*, sample/eval from their shard files). Each run records when it
started and ended in the experiment's `manifest.json` (`timing/<step>/<task>`), which is
where `apps-hpc report` reads each stage's wall time, and what ran it (`run/<step>/<task>`:
apps-hpc's commit, the image, the lock, the versions, the model and data revisions; see
`apps_hpc/identity.record_run`, which a stage command run directly calls too), which the
report's "What ran" shows. It runs offline, with the experiment's hub folder as HF_HOME
(compute nodes often have no internet; `apps-hpc fetch` filled the folder beforehand).
"""

from __future__ import annotations

import os
import resource
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit

from apps_hpc.core.logs import setup_logging
from apps_hpc.experiment.lifecycle import Record, run_here
from apps_hpc.provenance.manifest import update_manifest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def task_name() -> str:
    """This task's id: the SLURM array task or job id, else the process id."""
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '0')}"
    return env.get("SLURM_JOB_ID", str(os.getpid()))


def peak_rss_mib() -> float:
    """The largest resident set of this process or any child it waited for (a job runs
    in a process of its own), in MiB: ru_maxrss is KiB on Linux."""
    whos = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    peak = max(resource.getrusage(who).ru_maxrss for who in whos)
    return round(peak / 1024, 1)


class StageTask(submitit.helpers.Checkpointable):
    """A stage as a submitit job; requeued (same arguments) when preempted."""

    def __init__(
        self, manifest: Path | None = None, step: str | None = None, hub_dir: Path | None = None
    ) -> None:
        self.manifest = manifest
        self.step = step
        self.hub_dir = hub_dir

    def _timing(self, record: dict[str, Any]) -> None:
        if self.manifest is not None and self.step is not None:
            update_manifest(self.manifest, ["timing", self.step, task_name()], record)

    def _record(self) -> Record | None:
        """Where this task records what runs it (run/<step>/<task>), if anywhere."""
        if self.manifest is None or self.step is None:
            return None
        return Record(self.manifest, self.step, task_name())

    def __call__(self, stage: str, cfg: Any) -> str:
        setup_logging()  # the job's own process: its log goes to the job's stderr file
        started, clock = _now(), time.monotonic()
        record = {"started": started, "host": socket.gethostname(), "state": "RUNNING"}
        if getattr(cfg, "shard", None) is not None:
            record["shard"] = str(cfg.shard)  # which task of the array: i/S
        self._timing(record)
        try:
            result = str(run_here(stage, cfg, self.hub_dir, self._record()))
        except BaseException:
            self._timing({**record, "ended": _now(), "state": "FAILED"})
            raise
        elapsed = round(time.monotonic() - clock, 3)
        done = {"ended": _now(), "elapsed_s": elapsed, "peak_rss_mib": peak_rss_mib()}
        self._timing({**record, **done, "state": "COMPLETED"})
        if stage == "train" and self.manifest is not None:
            from apps_hpc.launch.planner import record_trained

            record_trained(cfg, self.manifest)
        return result
