"""One path for an experiment, in this order, each step in one place:

1. **load** — the experiment YAML (a path or a shipped name) and `--set`, through the
   config's types (`core.config.load_experiment`); its own paths made absolute;
2. **resolve** — a stage config's paths made absolute against the folder the command was
   run in, once, before a job on another node (another working directory) sees it;
3. **check** — the config against `<experiment>/experiment.yaml`
   (`provenance.resolved`; `--force` to go on); `submit` adds its preflight
   (`launch.preflight`) after this step, before anything is queued;
4. **record** — what runs the stage (`provenance.identity.record_run`), into
   `manifest.json` `run/<step>/<task>`, before it starts;
5. **run** — the stage from the registry, offline, with the hub folder as HF_HOME.

A stage command calls `open_experiment`, then (`cli/common.dispatch`) `run_here`, or
`resolve` and `launch` to submit; the job on a node (`launch/tasks.StageTask`) calls
`run_here` with the step and task it runs as.
Neither holds a step of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from apps_hpc.core.config import Experiment, load_experiment, parse_sets
from apps_hpc.hub import paths as hub

C = TypeVar("C")


@dataclass(frozen=True)
class Record:
    """Where a run records what ran it: the experiment's manifest, the step as the
    pipeline names it (prepare, train, sample/<model>, ...) and the task."""

    manifest: Path
    step: str
    task: str


def load(config: Path | None, sets: Any = ()) -> Experiment:
    """Step 1: the experiment of --config/--set (defaults < YAML < --set)."""
    return load_experiment(config, parse_sets(sets))


def resolve(cfg: C) -> C:
    """Step 2: a stage config with every path made absolute against the current
    directory: Path fields, lists of them, and the `model` / `apps` / `tokenizer` strings
    that are local paths (hub ids stay ids). An experiment was resolved when loaded."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, Experiment):
        return cfg
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in ("model", "apps", "tokenizer") and isinstance(value, (str, Path)):
            changes[f.name] = type(value)(hub.absolute(str(value)))  # a hub id stays one
        elif isinstance(value, Path):
            changes[f.name] = value.expanduser().absolute()
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            changes[f.name] = [v.expanduser().absolute() for v in value]
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


def check(exp: Experiment, config: Path | None, force: bool = False) -> Experiment:
    """Step 3: an experiment named by --config is checked against its experiment.yaml
    (written by the first stage started; a difference stops us unless --force)."""
    from apps_hpc.provenance.resolved import check_resolved

    if config is not None:
        check_resolved(exp, force)
    return dataclasses.replace(exp, force=force)


def open_experiment(config: Path | None, sets: Any = (), force: bool = False) -> Experiment:
    """Steps 1 and 3 for a stage command: load, then check."""
    return check(load(config, sets), config, force)


def run_here(stage: str, cfg: Any, hub_dir: Path | None, record: Record | None) -> Path:
    """Steps 2, 4 and 5, here: resolve the config's paths (a no-op for a config already
    resolved, as a job's is), go offline with `hub_dir` as HF_HOME, record what runs the
    stage (when it belongs to an experiment), run it."""
    from apps_hpc.experiment.registry import run_stage
    from apps_hpc.provenance.identity import record_run

    cfg = resolve(cfg)
    if hub_dir is not None:
        hub.apply_offline(hub_dir)
    if record is not None:
        record_run(record.manifest.absolute(), record.step, record.task, stage, cfg)
    return run_stage(stage, cfg)
