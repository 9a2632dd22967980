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


LAUNCH_OPTIONS = ("cluster", "wait", "dry_run", "shards")


def _launch_params() -> list[click.Parameter]:
    return [
        click.Option(
            ["--cluster"],
            default="slurm-default",
            show_default=True,
            help="Cluster profile: a name in configs/clusters/ or a .yaml path.",
        ),
        click.Option(["--wait"], is_flag=True, help="Wait until the jobs end; fail if one did."),
        click.Option(
            ["--dry-run"],
            is_flag=True,
            help="Print the sbatch scripts / parameters; submit nothing.",
        ),
        click.Option(
            ["--shards"],
            type=click.IntRange(1),
            default=None,
            help="Array tasks for sample/eval (default: one per GPU / 1).",
        ),
    ]


@cli.group("submit", context_settings=CONTEXT)
def submit_group() -> None:
    """Send a stage (or the whole pipeline) to SLURM through submitit.

    \b
    Example:
      apps-hpc submit eval --cluster slurm-default --wait --samples S --apps A --out R
    """


def _submit_command(stage_cmd: click.Command) -> click.Command:
    def callback(**kwargs: Any) -> None:
        options = {k: kwargs.pop(k) for k in LAUNCH_OPTIONS}
        click.get_current_context().meta[LAUNCH_KEY] = options
        assert stage_cmd.callback is not None
        stage_cmd.callback(**kwargs)

    return click.Command(
        stage_cmd.name,
        params=[*stage_cmd.params, *_launch_params()],
        callback=callback,
        context_settings=CONTEXT,
        help=f"`apps-hpc {stage_cmd.name}` as SLURM job(s); the same options, plus the "
        "launch options.",
    )


for _stage in ("prepare", "train", "sample", "eval", "report"):
    submit_group.add_command(_submit_command(cli.commands[_stage]))


@submit_group.command("pipeline", context_settings=CONTEXT)
@click.option(
    "--config", "config", required=True, type=click.Path(path_type=Path), help="Experiment YAML."
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option(
    "--sample-shards",
    type=click.IntRange(1),
    default=None,
    help="Sampling array tasks (default: one per GPU of the profile, else 1).",
)
@click.option(
    "--eval-shards",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Evaluation array tasks.",
)
@click.option("--cluster", default="slurm-default", show_default=True, help="Cluster profile.")
@click.option("--wait", is_flag=True, help="Wait until the jobs end; fail if one did.")
@click.option("--dry-run", is_flag=True, help="Print the sbatch scripts; submit nothing.")
def pipeline_cmd(
    config: Path,
    sets: tuple[str, ...],
    sample_shards: int | None,
    eval_shards: int,
    cluster: str,
    wait: bool,
    dry_run: bool,
) -> None:
    """prepare -> train -> sample -> eval for the fine-tuned model and sample -> eval for
    the base model (in parallel with training), then the report comparing both.

    \b
    Example:
      apps-hpc submit pipeline --config configs/experiments/dscoder_apps.yaml --cluster mysite.yaml
    """
    from apps_hpc.config import load_experiment, parse_sets
    from apps_hpc.launch.cli_support import submit_pipeline

    exp = load_experiment(config, parse_sets(sets))
    ids = submit_pipeline(exp, cluster, wait, dry_run, sample_shards, eval_shards)
    for key, job_ids in ids.items():
        click.echo(f"{key}: {' '.join(job_ids)}")


def _experiment_dir(target: str) -> Path:
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from apps_hpc.config import load_experiment

        return load_experiment(path).dir
    return path


@cli.command("status", context_settings=CONTEXT)
@click.argument("experiment", default=".")
def status_cmd(experiment: str) -> None:
    """One line per stage: job id(s), state, elapsed, progress, log.

    \b
    Example:
      apps-hpc status experiments/dscoder-apps
    """
    from apps_hpc.launch.status import format_statuses, stage_statuses

    click.echo(format_statuses(stage_statuses(_experiment_dir(experiment))), nl=False)


@cli.command("cancel", context_settings=CONTEXT)
@click.argument("experiment", default=".")
def cancel_cmd(experiment: str) -> None:
    """Cancel every job of an experiment.

    \b
    Example:
      apps-hpc cancel experiments/dscoder-apps
    """
    from apps_hpc.launch.status import cancel

    ids = cancel(_experiment_dir(experiment))
    click.echo(f"cancelled {len(ids)} job(s)")


@cli.command("experiment-path", context_settings=CONTEXT)
@click.option("--config", "config", required=True, type=click.Path(path_type=Path))
@click.option("--key", default=None, help="Print this config key instead (e.g. model, apps).")
def experiment_path_cmd(config: Path, key: str | None) -> None:
    """Print an experiment's folder (or one config value), for shell scripts.

    \b
    Example:
      apps-hpc experiment-path --config configs/experiments/dscoder_apps.yaml
    """
    from apps_hpc.config import load_experiment

    exp = load_experiment(config)
    value: Any = exp.dir.resolve() if key is None else exp
    for part in (key or "").split(".") if key else []:
        if not hasattr(value, part):
            raise click.BadParameter(f"no config key {key!r}", param_hint="--key")
        value = getattr(value, part)
    click.echo(str(value))


@cli.command("doctor", context_settings=CONTEXT)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment root that must be writable (default: $APPS_HPC_ROOT or ./experiments).",
)
@click.option(
    "--strict", is_flag=True, help="A version that differs from the container's lock is a failure."
)
def doctor_cmd(root: Path | None, strict: bool) -> None:
    """Check python, torch/CUDA/GPUs, flash-attn, vLLM/DeepSpeed/LlamaFactory against the
    lock, NCCL, /dev/shm and the experiment root; exit 1 if a check failed.

    \b
    Example:
      apps-hpc doctor --root /lustre/experiments
    """
    import os

    from apps_hpc.doctor import doctor

    root = root or Path(os.environ.get("APPS_HPC_ROOT", "experiments"))
    failures = doctor(root, strict, click.echo)
    if failures:
        click.echo(f"{failures} check(s) failed", err=True)
        sys.exit(1)


@cli.command("demo", context_settings=CONTEXT)
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment YAML (default: configs/experiments/demo.yaml).",
)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=None,
    help="Experiment root (default: the config's, ./experiments).",
)
@click.option("--apps", default=None, help="APPS rows instead of the bundled mini-APPS set.")
@click.option(
    "--cluster",
    default="auto",
    show_default=True,
    help="auto: the local SLURM when `scontrol ping` answers, else `local`.",
)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
def demo_cmd(
    config: Path | None, root: Path | None, apps: str | None, cluster: str, sets: tuple[str, ...]
) -> None:
    """The whole experiment on this machine: tiny model, prepare, train, sample, eval and
    report for the fine-tuned model and its base, through `submit pipeline`.

    \b
    Example:
      apps-hpc demo                      # or: make demo
    """
    from apps_hpc.demo import run_demo

    run_demo(config, root, apps, cluster, list(sets), click.echo)


def main() -> None:
    cli(prog_name="apps-hpc")


__all__ = ["cli", "main"]
