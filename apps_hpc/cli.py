"""The `apps-hpc` command: a thin layer over the stage functions (no logic lives here)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from apps_hpc import __version__
from apps_hpc.errors import AppsHpcError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


LAUNCH_KEY = "apps_hpc.launch"


def _launching() -> bool:
    return LAUNCH_KEY in click.get_current_context().meta


def _dispatch(stage: str, cfg: Any) -> None:
    """Run the stage here, or, under `apps-hpc submit`, send it to the cluster."""
    options = click.get_current_context().meta.get(LAUNCH_KEY)
    if options is None:
        from apps_hpc.launch.tasks import run_stage

        click.echo(run_stage(stage, cfg))
        return
    from apps_hpc.launch.cli_support import submit_stage

    for key, ids in submit_stage(stage, cfg, **options).items():
        click.echo(f"{key}: {' '.join(ids)}")


class _Group(click.Group):
    """Turns AppsHpcError into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except AppsHpcError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version")
def cli() -> None:
    """Fine-tune, sample and evaluate code LLMs on APPS, reproducibly, on SLURM clusters."""


def _ks(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in value.split(",") if k.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


@cli.command("eval", context_settings=CONTEXT)
@click.option("--samples", required=True, type=click.Path(path_type=Path), help="Samples JSONL.")
@click.option(
    "--apps",
    required=True,
    type=click.Path(path_type=Path),
    help="APPS rows: a .jsonl, a folder with test.jsonl/train.jsonl, or parquet.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Results JSONL (appended; re-running resumes).",
)
@click.option(
    "--workers",
    default=0,
    show_default="CPUs granted",
    type=click.IntRange(0),
    help="Warm sandbox workers.",
)
@click.option("--all-tests", is_flag=True, help="Run every test, even after a failure.")
@click.option(
    "--split",
    type=click.Choice(["train", "test"]),
    default=None,
    help="Split of the APPS rows when the file name does not say it.",
)
@click.option("--skip-bad-rows", is_flag=True, help="Count and report bad APPS rows, not fail.")
@click.option(
    "--timeout",
    default=4.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="CPU seconds per test (the reference's 4 s).",
)
@click.option(
    "--budget",
    default=11.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="CPU seconds for all tests of one program (the reference's 10 s + 1).",
)
@click.option(
    "--memory-mb",
    default=4096,
    show_default=True,
    type=click.IntRange(64),
    help="Address-space limit per program.",
)
@click.option("--no-recheck", is_flag=True, help="Record a timeout without running it again.")
@click.option(
    "--shard",
    default=None,
    metavar="I/S",
    help="Evaluate samples I, I+S, ... into <out>/shard-I-of-S.jsonl (merged into "
    "--out when every shard is done).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def eval_cmd(
    samples: Path,
    apps: Path,
    out: Path,
    workers: int,
    all_tests: bool,
    split: str | None,
    skip_bad_rows: bool,
    timeout: float,
    budget: float,
    memory_mb: int,
    no_recheck: bool,
    shard: str | None,
    quiet: bool,
) -> None:
    """Run every sampled program against its APPS tests, sandboxed.

    \b
    Example:
      apps-hpc eval --samples samples/sft.jsonl --apps data/apps --out results/sft.jsonl
    """
    from apps_hpc.evaluate import EvalConfig
    from apps_hpc.evaluate.sandbox import Limits
    from apps_hpc.shards import parse_shard

    limits = Limits(test_timeout_s=timeout, program_budget_s=budget, memory_mb=memory_mb)
    cfg = EvalConfig(
        samples=samples,
        apps=apps,
        out=out,
        workers=workers,
        all_tests=all_tests,
        split=split,
        skip_bad_rows=skip_bad_rows,
        recheck_timeouts=not no_recheck,
        limits=limits,
        progress=not quiet,
        shard=parse_shard(shard) if shard else None,
    )
    _dispatch("eval", cfg)


@cli.command("report", context_settings=CONTEXT)
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="What to print.",
)
@click.option(
    "--k",
    "ks",
    default="1,5,10",
    show_default=True,
    callback=lambda c, p, v: _ks(v),
    help="Comma-separated k values.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Report folder (default: <experiment>/report, else ./report).",
)
@click.option("--no-plot", is_flag=True, help="Skip pass_at_k.png.")
def report_cmd(
    results: tuple[Path, ...], fmt: str, ks: tuple[int, ...], out: Path | None, no_plot: bool
) -> None:
    """pass@k by difficulty for one or more results files, side by side with deltas.

    \b
    Example:
      apps-hpc report results/base.jsonl results/sft.jsonl --k 1,5,10
    """
    from apps_hpc.report import ReportConfig, report

    cfg = ReportConfig(results=list(results), out=out, ks=ks, plot=not no_plot)
    if _launching():
        _dispatch("report", cfg)
        return
    folder = report(cfg)
    if fmt == "json":
        click.echo((folder / "summary.json").read_text(encoding="utf-8"), nl=False)
    else:
        click.echo((folder / "summary.md").read_text(encoding="utf-8"), nl=False)
    click.echo(f"report written to {folder}", err=True)


@cli.command("prepare", context_settings=CONTEXT)
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
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment YAML (its `prepare` section gives the defaults).",
)
@click.option(
    "--max-per-problem",
    type=click.IntRange(1),
    default=None,
    help="At most this many solutions per train problem (seeded choice).",
)
@click.option("--seed", type=int, default=None, help="Seed for --max-per-problem (42).")
@click.option("--dataset-name", default=None, help="dataset_info.json entry (apps_train).")
@click.option("--stats", is_flag=True, help="Also write and print stats.json.")
@click.option("--tokenizer", default=None, help="Tokenizer for --stats token lengths.")
@click.option(
    "--cutoff-len",
    default=2048,
    show_default=True,
    type=click.IntRange(1),
    help="For --stats: count the examples this would truncate.",
)
@click.option("--skip-bad-rows", is_flag=True, help="Count and report bad rows, not fail.")
def prepare_cmd(
    apps: str | None,
    out: Path | None,
    config: Path | None,
    max_per_problem: int | None,
    seed: int | None,
    dataset_name: str | None,
    stats: bool,
    tokenizer: str | None,
    cutoff_len: int,
    skip_bad_rows: bool,
) -> None:
    """APPS rows -> LlamaFactory SFT dataset, dataset_info.json and prompts.jsonl.

    \b
    Example:
      apps-hpc prepare --apps ../shared/apps --out experiments/demo/data --stats
    """
    from apps_hpc.config import load_experiment
    from apps_hpc.prepare import PrepareConfig, prepare

    exp = load_experiment(config)
    p = exp.prepare
    cfg = PrepareConfig(
        apps=apps or exp.apps,
        out=out or exp.data_dir,
        dataset_name=dataset_name or p.dataset_name,
        max_per_problem=max_per_problem if max_per_problem is not None else p.max_per_problem,
        seed=seed if seed is not None else p.seed,
        stats=stats,
        tokenizer=tokenizer,
        cutoff_len=cutoff_len,
        skip_bad_rows=skip_bad_rows,
    )
    if _launching():
        _dispatch("prepare", cfg)
        return
    folder = prepare(cfg)
    if stats:
        click.echo((folder / "stats.json").read_text(encoding="utf-8"), nl=False)
    click.echo(str(folder))


@cli.command("train", context_settings=CONTEXT)
@click.option(
    "--config", "config", required=True, type=click.Path(path_type=Path), help="Experiment YAML."
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set train.overrides.max_steps=10 (repeatable).",
)
def train_cmd(config: Path, sets: tuple[str, ...]) -> None:
    """Fine-tune with `llamafactory-cli train` (FORCE_TORCHRUN, resumes from checkpoints).

    \b
    Example:
      apps-hpc train --config configs/experiments/dscoder_apps.yaml
    """
    from apps_hpc.config import load_experiment, parse_sets

    _dispatch("train", load_experiment(config, parse_sets(sets)))


@cli.command("tiny-model", context_settings=CONTEXT)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model folder.")
def tiny_model_cmd(out: Path) -> None:
    """Build a tiny random Llama + byte-level BPE tokenizer locally (deepseek-coder chat
    format, <|EOT|>), for tests and the laptop demo.

    \b
    Example:
      apps-hpc tiny-model --out experiments/tiny-model
    """
    from apps_hpc.tiny_model import tiny_model

    click.echo(str(tiny_model(out)))


@cli.command("sample", context_settings=CONTEXT)
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
    help="Shard folder (samples/<model>/). Default: <experiment>/samples/<name>.",
)
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment YAML (its `sample` section gives the defaults).",
)
@click.option("--engine", type=click.Choice(["vllm", "transformers"]), default=None)
@click.option(
    "--n", "n", type=click.IntRange(1), default=None, help="Completions per problem (10)."
)
@click.option("--max-tokens", type=click.IntRange(1), default=None, help="Per completion (2048).")
@click.option("--temperature", type=float, default=None, help="0.6")
@click.option("--top-p", type=float, default=None, help="0.95")
@click.option("--seed", type=int, default=None, help="42; each problem's seed derives from it.")
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
    help="GPUs per replica (tensor parallel inside it).",
)
@click.option(
    "--model-name", default=None, help="The samples' model field (default: --out's name)."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def sample_cmd(
    model: str | None,
    prompts: Path | None,
    out: Path | None,
    config: Path | None,
    engine: str | None,
    n: int | None,
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    shard: str | None,
    gpus: str | None,
    gpus_per_model: int | None,
    model_name: str | None,
    quiet: bool,
) -> None:
    """Generate n completions per prompt and extract the programs (resumable shards).

    \b
    Example:
      apps-hpc sample --model experiments/x/train --prompts experiments/x/data/prompts.jsonl \\
        --out experiments/x/samples/sft --engine vllm --gpus all
    """
    from apps_hpc.config import load_experiment
    from apps_hpc.sample import SampleConfig
    from apps_hpc.sample.engines import Sampling
    from apps_hpc.shards import parse_shard

    exp = load_experiment(config)
    s = exp.sample
    name = model_name or (out.name if out else "model")
    sampling = Sampling(
        n=n or s.n,
        temperature=s.temperature if temperature is None else temperature,
        top_p=s.top_p if top_p is None else top_p,
        max_tokens=max_tokens or s.max_tokens,
        seed=s.seed if seed is None else seed,
    )
    cfg = SampleConfig(
        model=model or exp.model,
        prompts=prompts or exp.data_dir / "prompts.jsonl",
        out=out or exp.dir / "samples" / name,
        engine=engine or s.engine,
        sampling=sampling,
        shard=parse_shard(shard) if shard else None,
        gpus=gpus,
        gpus_per_model=gpus_per_model or s.gpus_per_model,
        max_model_len=s.max_model_len,
        model_name=model_name,
        manifest=exp.dir / "manifest.json" if config else None,
        progress=not quiet,
    )
    _dispatch("sample", cfg)


@cli.command("merge-samples", context_settings=CONTEXT)
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


# The cluster and housekeeping commands live in cli_ops.py; importing it registers them.
from apps_hpc import cli_ops  # noqa: E402, F401


def main() -> None:
    cli(prog_name="apps-hpc")


__all__ = ["cli", "main"]
