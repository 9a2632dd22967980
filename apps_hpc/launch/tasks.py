"""What a job runs on its node: the same stage functions as the CLI, nothing more.

`StageTask` is submitit-checkpointable: on preemption or time limit (USR2) it is
requeued with the same arguments, and the stage resumes from its own files (train from
the newest checkpoint-*, sample/eval from their shard files).
"""

from __future__ import annotations

from typing import Any

import submitit

from apps_hpc.logs import setup_logging
from apps_hpc.stages import run_stage


class StageTask(submitit.helpers.Checkpointable):
    """A stage as a submitit job; requeued (same arguments) when preempted."""

    def __call__(self, stage: str, cfg: Any) -> str:
        setup_logging()  # the job's own process: its log goes to the job's stderr file
        return str(run_stage(stage, cfg))
