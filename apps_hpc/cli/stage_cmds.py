"""The stage commands that build a model's inputs and outputs: prepare, train, sample,
merge-samples, tiny-model. Each builds its stage config (from the experiment, through
`apps_hpc.experiment.stage_configs`, with its flags as overrides) and hands it to `dispatch`, with,
given an experiment (--config), the step its run record goes under in manifest.json."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from apps_hpc.cli.common import (
    CONTEXT,
    config_option,
    dispatch,
    force_option,
    quiet_option,
    recorded_in,
    schema_option,
    sets_option,
)
from apps_hpc.core.schema import ENGINES, PrepareSection, SampleSection
from apps_hpc.experiment.lifecycle import open_experiment
from apps_hpc.hub import paths as hub
from apps_hpc.prepare.stage import PrepareConfig


def _show_prepared(stats: bool) -> object:
    def show(folder: Path) -> None:
        if stats:
            click.echo((folder / "stats.json").read_text(encoding="utf-8"), nl=False)
        click.echo(str(folder))

    return show


@click.command("prepare", context_settings=CONTEXT)
@click.option(
    "--apps",
    default=None,
    help="APPS: a folder with train.jsonl/test.jsonl, one such "
    "file, parquet, or a hub dataset name (online). Default: the experiment's.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Data folder. Default: <experiment>/data.",
)
@config_option(what=" (its `prepare` section gives the defaults)")
@sets_option()
@click.option(
    "--max-per-problem",
    type=click.IntRange(1),
    default=None,
    help="At most this many solutions per train problem (seeded choice).",
)
@click.option(
    "--seed", type=int, default=None, help=f"Seed for --max-per-problem ({PrepareSection.seed})."
)
@click.option(
    "--dataset-name", default=None, help=f"dataset_info.json entry ({PrepareSection.dataset_name})."
)
@click.option("--stats", is_flag=True, help="Also write and print stats.json.")
@click.option("--tokenizer", default=None, help="Tokenizer for --stats token lengths.")
@click.option(
    "--cutoff-len",
    default=PrepareConfig.cutoff_len,
    show_default=True,
    type=click.IntRange(1),
    help="For --stats: count the examples this would truncate.",
)
@click.option("--skip-bad-rows", is_flag=True, help="Count and report bad rows, not fail.")
@force_option()
def prepare_cmd(config: Path | None, sets: tuple[str, ...], force: bool, **flags: object) -> None:
    """APPS rows -> LlamaFactory SFT dataset, dataset_info.json and prompts.jsonl.

    \b
    Example:
      apps-hpc prepare --apps ../shared/apps --out experiments/demo/data --stats
    """
    from apps_hpc.experiment import stage_configs as sc

    exp = open_experiment(config, sets, force)
    if isinstance(flags.get("apps"), str):
        flags["apps"] = sc.fetched(exp, hub.absolute(flags["apps"]), hub.DATASET)
    cfg = sc.prepare_config(exp, **flags)
    show = _show_prepared(cfg.stats)
    record = recorded_in(exp, config, "prepare")
    dispatch("prepare", cfg, show, exp.hub_dir, record)  # type: ignore[arg-type]


@click.command("train", context_settings=CONTEXT)
@config_option(required=True)
@sets_option()
@force_option()
def train_cmd(config: Path, sets: tuple[str, ...], force: bool) -> None:
    """Fine-tune with `llamafactory-cli train` (torchrun when distributed; resumes).

    \b
    Example:
      apps-hpc train --config configs/experiments/dscoder_apps.yaml
    """
    exp = open_experiment(config, sets, force)
    dispatch("train", exp, hub_dir=exp.hub_dir, record=recorded_in(exp, config, "train"))


@click.command("tiny-model", context_settings=CONTEXT)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder.")
@click.option(
    "--hidden-size",
    type=click.IntRange(min=8),
    default=None,
    help="Width (64; the demo builds 128, intermediate size twice the width).",
)
def tiny_model_cmd(out: Path, hidden_size: int | None) -> None:
    """Build a tiny random Llama + byte-level BPE tokenizer locally (deepseek-coder chat
    format, <|EOT|>), for tests and the laptop demo.

    \b
    Example:
      apps-hpc tiny-model --out experiments/tiny-model --hidden-size 128
    """
    from apps_hpc.tools.tiny_model import TinySpec, tiny_model

    spec = TinySpec()
    if hidden_size:
        spec = TinySpec(hidden_size=hidden_size, intermediate_size=2 * hidden_size)
    click.echo(str(tiny_model(out, spec)))


def _sampling_options(command: click.Command) -> click.Command:
    """--n, --max-tokens, --temperature, --top-p, --seed: type, bounds, help and defaults
    from the schema (`core/schema.Sampling`); unset, the experiment's own values apply."""
    options = [
        ("--n", "n"),
        ("--max-tokens", "max_tokens"),
        ("--temperature", "temperature"),
        ("--top-p", "top_p"),
        ("--seed", "seed"),
    ]
    for flag, name in reversed(options):
        option = schema_option(SampleSection, name, flag, unset=", or the experiment's own")
        command = option(command)
    return command


@click.command("sample", context_settings=CONTEXT)
@click.option("--model", default=None, help="Model folder or hub id. Default: the experiment's.")
@click.option(
    "--prompts",
    type=click.Path(path_type=Path),
    default=None,
    help="prompts.jsonl from prepare. Default: <experiment>/data/prompts.jsonl.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="x.jsonl: the merged samples file (shards in x/ beside it); a folder: the shard "
    "folder (merged into <folder>.jsonl). Default: <experiment>/samples/<name>.",
)
@config_option(what=" (its `sample` section gives the defaults)")
@sets_option()
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=None,
    help=f"Default: the experiment's ({SampleSection.engine}).",
)
@_sampling_options
@click.option(
    "--shard",
    default=None,
    metavar="I/S",
    help="This shard (default: the SLURM array task, else 0/1).",
)
@click.option(
    "--gpus",
    type=click.Choice(["all"]),
    default=None,
    help="all: one spawned worker per replica on this node.",
)
@click.option(
    "--gpus-per-model",
    type=click.IntRange(1),
    default=None,
    help=f"GPUs per replica (tensor parallel inside it; {SampleSection.gpus_per_model}).",
)
@click.option(
    "--model-name", default=None, help="The samples' model field (default: --out's name)."
)
@force_option()
@quiet_option()
def sample_cmd(
    model: str | None,
    config: Path | None,
    sets: tuple[str, ...],
    force: bool,
    out: Path | None,
    model_name: str | None,
    shard: str | None,
    quiet: bool,
    **flags: object,
) -> None:
    """Generate n completions per prompt and extract the programs (resumable shards).

    \b
    Example:
      apps-hpc sample --model experiments/x/train --prompts experiments/x/data/prompts.jsonl \\
        --out experiments/x/samples/sft --engine vllm --gpus all
    """
    from apps_hpc.core.schema import Sampling
    from apps_hpc.core.shards import output_paths, parse_shard
    from apps_hpc.experiment import stage_configs as sc

    exp = open_experiment(config, sets, force)
    out = output_paths(out, "samples")[1] if out else None
    names = [f.name for f in dataclasses.fields(Sampling)]
    sampling = sc.sampling_with(exp, **{k: flags.pop(k) for k in names})
    name = model_name or (out.name if out else "model")
    cfg = sc.sample_config(
        exp,
        name,
        sc.fetched(exp, hub.absolute(model or exp.model), hub.MODEL),
        out=out,
        sampling=sampling,
        shard=parse_shard(shard) if shard else None,
        progress=not quiet,
        **flags,
    )
    # Only an experiment's own run records its throughput in the experiment's manifest.
    cfg = dataclasses.replace(cfg, model_name=model_name, manifest=cfg.manifest if config else None)
    record = recorded_in(exp, config, f"sample/{name}")  # the pipeline's sample/base, ...
    dispatch("sample", cfg, hub_dir=exp.hub_dir, record=record)


@click.command("merge-samples", context_settings=CONTEXT)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Merged samples file (default: <folder>.jsonl).",
)
@click.option(
    "--prompts",
    type=click.Path(path_type=Path),
    default=None,
    help="prompts.jsonl: also check that every shard is complete.",
)
def merge_samples_cmd(folder: Path, out: Path | None, prompts: Path | None) -> None:
    """Join the shard files of a samples folder; a missing or incomplete shard is named.

    \b
    Example:
      apps-hpc merge-samples experiments/x/samples/sft --prompts experiments/x/data/prompts.jsonl
    """
    from apps_hpc.sample import merge_samples

    click.echo(str(merge_samples(folder, out, prompts)))


COMMANDS = [prepare_cmd, train_cmd, tiny_model_cmd, sample_cmd, merge_samples_cmd]
