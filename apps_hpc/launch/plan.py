"""Which jobs a submission makes (pure): one step per stage, arrays for the shards,
dependencies for the afterok chain."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps_hpc.config import Experiment
from apps_hpc.evaluate.stage import EvalConfig
from apps_hpc.prepare import PrepareConfig
from apps_hpc.report import ReportConfig
from apps_hpc.sample.engines import Sampling
from apps_hpc.sample.stage import SampleConfig
from apps_hpc.shards import Shard


@dataclass
class Step:
    key: str  # unique in the plan: prepare, train, sample/base, eval/sft, ...
    stage: str  # what run_stage calls
    cfgs: list[Any]  # one per task; more than one = a job array
    deps: list[str] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)  # how `status` counts records

    @property
    def array(self) -> bool:
        return len(self.cfgs) > 1


def _shards_of(cfg: Any, count: int) -> list[Any]:
    return [dataclasses.replace(cfg, shard=Shard(i, count)) for i in range(count)]


def sample_steps(cfg: SampleConfig, shards: int, key: str, deps: list[str]) -> list[Step]:
    """A job array (one shard per task) and a merge step."""
    progress = {"lines": str(cfg.out / "shard-*.jsonl"), "expected_from": str(cfg.prompts)}
    cfgs = _shards_of(dataclasses.replace(cfg, gpus=None), shards)
    return [
        Step(key, "sample", cfgs, deps, progress),
        Step(
            f"merge-{key}",
            "merge-sample",
            [cfg],
            [key],
            {"exists": str(cfg.out.with_suffix(".jsonl"))},
        ),
    ]


def eval_steps(cfg: EvalConfig, shards: int, key: str, deps: list[str]) -> list[Step]:
    """A CPU job array over shards of the samples, then the merge of its results."""
    folder = cfg.out.with_suffix("")
    written = folder / "shard-*.jsonl" if shards > 1 else cfg.out
    progress = {"lines": str(written), "expected_from": str(cfg.samples)}
    cfgs = _shards_of(cfg, shards) if shards > 1 else [cfg]
    steps = [Step(key, "eval", cfgs, deps, progress)]
    if shards > 1:
        steps.append(Step(f"merge-{key}", "merge-eval", [cfg], [key], {"exists": str(cfg.out)}))
    return steps


def last_key(steps: list[Step]) -> str:
    return steps[-1].key


def pipeline(exp: Experiment, sample_shards: int, eval_shards: int) -> list[Step]:
    """prepare -> train -> sample -> eval for the fine-tuned model, sample -> eval for the
    base model in parallel with training, then the report comparing both."""
    prep = PrepareConfig(
        apps=exp.apps,
        out=exp.data_dir,
        dataset_name=exp.prepare.dataset_name,
        max_per_problem=exp.prepare.max_per_problem,
        seed=exp.prepare.seed,
    )
    steps = [
        Step("prepare", "prepare", [prep], [], {"exists": str(exp.data_dir / "prompts.jsonl")}),
        Step(
            "train",
            "train",
            [exp],
            ["prepare"],
            {"trainer_log": str(exp.train_dir / "trainer_log.jsonl")},
        ),
    ]
    s = exp.sample
    sampling = Sampling(
        n=s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed
    )
    merged_results = []
    models = (("base", exp.model, "prepare"), ("sft", str(exp.train_dir), "train"))
    for name, model, after in models:
        scfg = SampleConfig(
            model=model,
            prompts=exp.data_dir / "prompts.jsonl",
            out=exp.dir / "samples" / name,
            engine=s.engine,
            sampling=sampling,
            gpus_per_model=s.gpus_per_model,
            max_model_len=s.max_model_len,
            model_name=name,
            manifest=exp.dir / "manifest.json",
            progress=False,
        )
        sample = sample_steps(scfg, sample_shards, f"sample/{name}", [after])
        ecfg = EvalConfig(
            samples=scfg.out.with_suffix(".jsonl"),
            apps=Path(exp.apps),
            out=exp.dir / "results" / f"{name}.jsonl",
            progress=False,
        )
        evals = eval_steps(ecfg, eval_shards, f"eval/{name}", [last_key(sample)])
        steps += sample + evals
        merged_results.append((last_key(evals), ecfg.out))
    ks = tuple(k for k in (1, 5, 10) if k <= s.n) or (1,)  # pass@k needs k <= n
    report = ReportConfig(results=[out for _, out in merged_results], out=exp.report_dir, ks=ks)
    steps.append(
        Step(
            "report",
            "report",
            [report],
            [k for k, _ in merged_results],
            {"exists": str(exp.report_dir / "summary.md")},
        )
    )
    return steps
