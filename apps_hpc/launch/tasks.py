"""What a job runs on its node: the same stage functions as the CLI, nothing more.

`StageTask` is submitit-checkpointable: on preemption or time limit (USR2) it is
requeued with the same arguments, and the stage resumes from its own files (train from
the newest checkpoint-*, sample/eval from their shard files).
"""

from __future__ import annotations

from typing import Any

import submitit


def run_stage(stage: str, cfg: Any) -> str:
    """Call the stage's entry function; return what it produced."""
    if stage == "prepare":
        from apps_hpc.prepare import prepare

        return str(prepare(cfg))
    if stage == "train":
        from apps_hpc.train import train

        return str(train(cfg))
    if stage == "sample":
        from apps_hpc.sample import sample

        return str(sample(cfg))
    if stage == "eval":
        from apps_hpc.evaluate import evaluate

        return str(evaluate(cfg))
    if stage == "merge-sample":
        from apps_hpc.sample import merge_samples

        return str(merge_samples(cfg.out, prompts=cfg.prompts))
    if stage == "merge-eval":
        from apps_hpc.evaluate.stage import merge_results

        return str(merge_results(cfg))
    if stage == "report":
        from apps_hpc.report import report

        return str(report(cfg))
    raise ValueError(f"unknown stage {stage!r}")


class StageTask(submitit.helpers.Checkpointable):
    """A stage as a submitit job; requeued (same arguments) when preempted."""

    def __call__(self, stage: str, cfg: Any) -> str:
        return run_stage(stage, cfg)
