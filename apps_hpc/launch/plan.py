"""Which jobs a submission makes (pure): one step per stage, arrays for the shards,
dependencies for the afterok chain. What each stage is comes from `apps_hpc.experiment.registry`;
its config from `apps_hpc.experiment.stage_configs`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps_hpc.core.config import Experiment
from apps_hpc.core.shards import Shard
from apps_hpc.experiment import stage_configs as sc
from apps_hpc.experiment.registry import get
from apps_hpc.launch.profiles import Profile


@dataclass
class Step:
    key: str  # unique in the plan: prepare, train, sample/base, eval/sft, ...
    stage: str  # a name in the stage registry
    cfgs: list[Any]  # one per task; more than one = a job array
    deps: list[str] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)  # how `status` counts records
    # An array that follows another of the same size task by task (one of `deps`): task i
    # starts when that array's task i ended well (SLURM's aftercorr), not after all of it.
    corr: str | None = None

    @property
    def array(self) -> bool:
        return len(self.cfgs) > 1


def single_step(
    stage: str, cfg: Any, key: str | None = None, deps: list[str] | None = None
) -> Step:
    return Step(key or stage, stage, [cfg], list(deps or []), get(stage).progress(cfg))


def stage_steps(stage: str, cfg: Any, shards: int, key: str, deps: list[str]) -> list[Step]:
    """One step, or, for an array stage split in shards, the array and its merge step."""
    spec = get(stage)
    if not spec.array or (shards == 1 and not spec.merge_single):
        return [single_step(stage, cfg, key, deps)]
    cfgs = [cfg.with_shard(Shard(i, shards)) for i in range(shards)]
    steps = [Step(key, stage, cfgs, list(deps), spec.progress(cfgs[0]))]
    if spec.merge:
        steps.append(single_step(spec.merge, cfg, f"merge-{key}", [key]))
    return steps


def last_key(steps: list[Step]) -> str:
    return steps[-1].key


def streamed_eval(exp: Experiment, name: str, sample: list[Step], shards: int) -> list[Step]:
    """The eval steps of one model. With as many eval tasks as sampling tasks, eval task i
    judges sample shard i as soon as sampling task i ended (aftercorr), and the merge of
    the results also waits for the merged samples; otherwise eval waits for all samples."""
    array = sample[0]
    if not (array.array and len(array.cfgs) == shards and shards > 1):
        ecfg = sc.eval_config(exp, name, progress=False)
        return stage_steps("eval", ecfg, shards, f"eval/{name}", [last_key(sample)])
    ecfg = sc.eval_config(exp, name, progress=False, stream=array.cfgs[0].out)
    steps = stage_steps("eval", ecfg, shards, f"eval/{name}", [array.key])
    steps[0].corr = array.key
    steps[-1].deps.append(last_key(sample))  # merge-eval: also after merge-sample
    return steps


def pipeline(exp: Experiment, sample_shards: int, eval_shards: int) -> list[Step]:
    """prepare -> train -> sample -> eval for the fine-tuned model, sample -> eval for the
    base model in parallel with training, then the report comparing both. Eval streams
    behind sampling when both have the same number of shards (`streamed_eval`)."""
    steps = [
        single_step("prepare", sc.prepare_config(exp)),
        single_step("train", exp, deps=["prepare"]),
    ]
    merged_results = []
    for name, model, after in sc.models(exp):
        scfg = sc.sample_config(exp, name, model, progress=False)
        sample = stage_steps("sample", scfg, sample_shards, f"sample/{name}", [after])
        evals = streamed_eval(exp, name, sample, eval_shards)
        steps += sample + evals
        merged_results.append((last_key(evals), evals[0].cfgs[0].out))
    report = sc.report_config(exp, [out for _, out in merged_results])
    steps.append(single_step("report", report, deps=[k for k, _ in merged_results]))
    return steps


def default_sample_shards(profile: Profile, gpus_per_model: int) -> int:
    """One sampling task per GPU replica of the profile's training nodes, else 1."""
    if profile.gpus_per_node <= 0:
        return 1
    return max(1, profile.nodes * profile.gpus_per_node // gpus_per_model)
