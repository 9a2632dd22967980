"""The one mapping from an experiment to the configs of its stages.

The CLI (a single stage, with its flags as overrides) and `submit pipeline` (every stage)
both build their stage configs here, so an experiment's folder layout and its sections'
defaults are written once: `<root>/<name>/data`, `samples/<model>`, `results/<model>.jsonl`,
`report/`. An override of `None` means "not given": the experiment's value stays.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from apps_hpc.core.config import Experiment
from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.schema import first_problem
from apps_hpc.evaluate.stage import EvalConfig
from apps_hpc.hub import paths as hub
from apps_hpc.prepare.stage import PrepareConfig
from apps_hpc.report import ReportConfig
from apps_hpc.sample.stage import SampleConfig

C = TypeVar("C")
PUBLISHED_KS = ReportConfig.ks  # the published table: pass@1/5/10


def with_overrides(cfg: C, **overrides: Any) -> C:
    """`cfg` with every override that is not None applied; a value the schema refuses
    (`--temperature -3`) is one error naming the flag."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return dataclasses.replace(cfg, **given) if given else cfg  # type: ignore[type-var]
    except ValidationError as exc:
        key, problem = first_problem(exc, type(cfg))
        raise AppsHpcError(f"--{key.replace('_', '-')}: {problem}") from None


def fetched(exp: Experiment, value: str, repo_type: str) -> str:
    """A hub id replaced by its fetched snapshot in the experiment's hub folder (a stage
    then reads local files only); a local path, or a hub id not fetched yet, unchanged
    (the stage names what is missing, and preflight does before anything is queued)."""
    if not hub.is_hub_id(value):
        return value
    revision = exp.fetch.model_revision if repo_type == hub.MODEL else exp.fetch.apps_revision
    found = hub.snapshot(exp.hub_dir, value, repo_type, revision)
    return str(found) if found else value


def models(exp: Experiment) -> list[tuple[str, str, str]]:
    """(name, model, the stage it waits for): the base model samples as soon as the data is
    prepared, the fine-tuned one (the training folder) after training."""
    base = fetched(exp, exp.model, hub.MODEL)
    return [("base", base, "prepare"), ("sft", str(exp.train_dir), "train")]


def prepare_config(exp: Experiment, **overrides: Any) -> PrepareConfig:
    p = exp.prepare
    cfg = PrepareConfig(
        apps=fetched(exp, exp.apps, hub.DATASET),
        out=exp.data_dir,
        dataset_name=p.dataset_name,
        max_per_problem=p.max_per_problem,
        seed=p.seed,
    )
    return with_overrides(cfg, **overrides)


def samples_dir(exp: Experiment, name: str) -> Path:
    return exp.dir / "samples" / name


def sample_config(exp: Experiment, name: str, model: str, **overrides: Any) -> SampleConfig:
    s = exp.sample
    cfg = SampleConfig(
        model=model,
        prompts=exp.data_dir / "prompts.jsonl",
        out=samples_dir(exp, name),
        engine=s.engine,
        sampling=s.sampling,
        gpus_per_model=s.gpus_per_model,
        max_model_len=s.max_model_len,
        memory_utilization=s.memory_utilization,
        model_name=name,
        manifest=exp.dir / "manifest.json",
    )
    return with_overrides(cfg, **overrides)


def sampling_with(exp: Experiment, **overrides: Any) -> Any:
    """The experiment's sampling settings with some replaced (e.g. `n` from the CLI)."""
    return with_overrides(exp.sample.sampling, **overrides)


def eval_config(exp: Experiment, name: str, **overrides: Any) -> EvalConfig:
    cfg = EvalConfig(
        samples=samples_dir(exp, name).with_suffix(".jsonl"),
        apps=Path(fetched(exp, exp.apps, hub.DATASET)),
        out=exp.dir / "results" / f"{name}.jsonl",
        cache=exp.dir / "cache" / "verdicts",  # shared by both models and every re-run
        limits=exp.eval.as_limits(),
        all_tests=exp.eval.all_tests,
        recheck_timeouts=exp.eval.recheck_timeouts,
    )
    return with_overrides(cfg, **overrides)


def report_ks(exp: Experiment) -> tuple[int, ...]:
    """The published k values that the experiment's n allows (pass@k needs k <= n)."""
    return tuple(k for k in PUBLISHED_KS if k <= exp.sample.n) or (1,)


def report_config(exp: Experiment, results: list[Path], **overrides: Any) -> ReportConfig:
    cfg = ReportConfig(results=results, out=exp.report_dir, ks=report_ks(exp))
    return with_overrides(cfg, **overrides)
