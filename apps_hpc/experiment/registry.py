"""The stage registry: every stage is named here once.

An entry says which function runs the stage (`module:function`, imported only when the
stage runs, so heavy dependencies stay lazy), which config type it takes, what one task
asks the scheduler for, whether it runs as a job array over shards and which stage joins
the shards, and how `apps-hpc status` counts its progress. The CLI, `apps-hpc submit`,
the local executor's ordering and the job that runs on a node (`launch/tasks.py`) all read
this table.

Adding a stage: write its module with `config` dataclass and `entry(cfg) -> Path`, add one
`Stage(...)` below, and (for a command) one click command in `apps_hpc/cli/`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from apps_hpc.core.errors import AppsHpcError

# What one task asks for (launch/executor.stage_resources sizes it on a profile): every
# node and GPU of the profile (training), one model replica's GPUs and its share of the
# node (a sampling shard), a whole CPU node and no GPU (evaluation), or a little (small).
Resources = Literal["nodes", "replica", "cpu", "small"]
Progress = Callable[[Any], dict[str, str]]


def _exists(path: Path) -> dict[str, str]:
    return {"exists": str(path)}


@dataclass(frozen=True)
class Stage:
    name: str
    entry: str  # "module:function"; the function takes the config and returns a Path
    config: str  # "module:Class"
    resources: Resources
    progress: Progress  # how `status` counts the records of one step (pure)
    done: str = ""  # "module:function": are the outputs complete and made from this config?
    array: bool = False  # runs as a job array, one shard per task (cfg.with_shard)
    merge: str | None = None  # the stage that joins the array's shards
    merge_single: bool = False  # merge even a single shard (the stage writes a shard folder)
    summary: str = ""

    def function(self) -> Callable[[Any], Path]:
        return _load(self.entry)

    def config_type(self) -> type:
        return _load(self.config)

    def is_done(self, cfg: Any) -> bool:
        """Finished means finished: the outputs are all there and their provenance is
        this config's, so a re-run may skip the stage (an input error: not done)."""
        if not self.done:
            return False
        try:
            return bool(_load(self.done)(cfg))
        except (AppsHpcError, OSError):
            return False


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _sample_lines(cfg: Any) -> dict[str, str]:
    return {"lines": str(cfg.out / "shard-*.jsonl"), "expected_from": str(cfg.prompts)}


def _eval_lines(cfg: Any) -> dict[str, str]:
    written = cfg.out.with_suffix("") / "shard-*.jsonl" if cfg.shard else cfg.out
    return {"lines": str(written), "expected_from": str(cfg.samples)}


_ALL = (
    Stage(
        "prepare",
        "apps_hpc.prepare.stage:prepare",
        "apps_hpc.prepare.stage:PrepareConfig",
        "small",
        lambda cfg: _exists(cfg.out / "prompts.jsonl"),
        done="apps_hpc.prepare.stage:is_done",
        summary="APPS rows -> LlamaFactory dataset, dataset_info.json, prompts.jsonl",
    ),
    Stage(
        "train",
        "apps_hpc.train.stage:train",
        "apps_hpc.core.config:Experiment",
        "nodes",
        lambda exp: {"trainer_log": str(exp.train_dir / "trainer_log.jsonl")},
        done="apps_hpc.train.stage:is_done",
        summary="full SFT with llamafactory-cli (torchrun when distributed, resumes)",
    ),
    Stage(
        "sample",
        "apps_hpc.sample.stage:sample",
        "apps_hpc.sample.stage:SampleConfig",
        "replica",
        _sample_lines,
        array=True,
        merge="merge-sample",
        merge_single=True,
        done="apps_hpc.sample.stage:is_done",
        summary="n completions per prompt, one shard per model replica",
    ),
    Stage(
        "merge-sample",
        "apps_hpc.sample.stage:merge_shards_of",
        "apps_hpc.sample.stage:SampleConfig",
        "small",
        lambda cfg: _exists(cfg.merged),
        done="apps_hpc.sample.stage:merged_is_done",
        summary="join the sampling shards into <out>.jsonl",
    ),
    Stage(
        "eval",
        "apps_hpc.evaluate.stage:evaluate",
        "apps_hpc.evaluate.stage:EvalConfig",
        "cpu",
        _eval_lines,
        array=True,
        merge="merge-eval",
        done="apps_hpc.evaluate.stage:is_done",
        summary="run every program against its APPS tests, sandboxed",
    ),
    Stage(
        "merge-eval",
        "apps_hpc.evaluate.stage:merge_results",
        "apps_hpc.evaluate.stage:EvalConfig",
        "small",
        lambda cfg: _exists(cfg.out),
        done="apps_hpc.evaluate.stage:is_done",
        summary="join the evaluation shards into <out>",
    ),
    Stage(
        "report",
        "apps_hpc.report:report",
        "apps_hpc.report:ReportConfig",
        "small",
        lambda cfg: _exists(cfg.folder / "summary.md"),
        done="apps_hpc.report:is_done",
        summary="pass@k tables and plots",
    ),
)
STAGES: dict[str, Stage] = {s.name: s for s in _ALL}


def get(name: str) -> Stage:
    if name not in STAGES:
        raise AppsHpcError(f"unknown stage {name!r} (known: {', '.join(STAGES)})")
    return STAGES[name]


def run_stage(name: str, cfg: Any) -> Path:
    """Call the stage's entry function on its config; return what it produced."""
    stage = get(name)
    expected = stage.config_type()
    if not isinstance(cfg, expected):
        raise TypeError(f"stage {name} takes a {expected.__name__}, not {type(cfg).__name__}")
    return stage.function()(cfg)
