"""The commands that judge and count: eval (run the programs), report (pass@k) and show
(why a problem's programs failed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from apps_hpc.cli.common import (
    CONTEXT,
    dispatch,
    parse_ks,
    quiet_option,
    schema_option,
    sets_option,
)
from apps_hpc.core.schema import LimitsSchema
from apps_hpc.report import ReportConfig


def _limit_option(name: str, flag: str) -> Any:
    """A shorthand for `--set eval.limits.<name>`: type, bounds and help from the schema."""
    return schema_option(LimitsSchema, name, flag, unset=f", or --set eval.limits.{name}")


@click.command("eval", context_settings=CONTEXT)
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
    help="x.jsonl: the results file (appended; re-running resumes; shards in x/); a "
    "folder: the shard folder (merged into <folder>.jsonl).",
)
@click.option(
    "--workers",
    default=0,
    show_default="CPUs granted",
    type=click.IntRange(0),
    help="Warm sandbox workers.",
)
@click.option(
    "--all-tests", is_flag=True, help="Run every test, even after a failure (eval.all_tests)."
)
@click.option(
    "--split",
    type=click.Choice(["train", "test"]),
    default=None,
    help="Split of the APPS rows when the file name does not say it.",
)
@click.option("--skip-bad-rows", is_flag=True, help="Count and report bad APPS rows, not fail.")
@_limit_option("test_timeout_s", "--timeout")
@_limit_option("program_budget_s", "--budget")
@_limit_option("memory_mb", "--memory-mb")
@click.option(
    "--no-recheck",
    is_flag=True,
    help="Record a timeout without running it again (eval.recheck_timeouts=false).",
)
@sets_option(example="eval.limits.max_procs=128; eval.* keys only")
@click.option(
    "--isolation",
    type=click.Choice(["auto", "namespaces", "none"]),
    default="auto",
    show_default=True,
    help="Sandbox namespaces: auto uses them where the kernel allows (else warns and "
    "runs without); namespaces fails without them; none never uses them.",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/S",
    help="Evaluate samples I, I+S, ... into <out>/shard-I-of-S.jsonl (merged into "
    "--out when every shard is done).",
)
@click.option(
    "--stream",
    type=click.Path(path_type=Path),
    default=None,
    help="With --shard I/S: judge the sample shard folder's shard I/S (written by sampling "
    "task I), not the merged --samples file, so this task can start as soon as that one "
    "sampling task ended (sbatch --dependency=aftercorr). --samples is then the merged "
    "file the results are finally checked against.",
)
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    default=None,
    help="Verdict cache folder: a program already judged with the same tests, limits and "
    "evaluator is not executed again. Default: verdict-cache/ beside --out (the "
    "pipeline's: <experiment>/cache/verdicts, shared by both models).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the verdict cache.")
@click.option(
    "--recheck",
    is_flag=True,
    help="Execute the programs whose verdict is cached anyway, and say how many verdicts "
    "changed (the new ones are recorded and cached).",
)
@quiet_option()
def eval_cmd(
    test_timeout_s: float | None,
    program_budget_s: float | None,
    memory_mb: int | None,
    no_recheck: bool,
    all_tests: bool,
    sets: tuple[str, ...],
    shard: str | None,
    quiet: bool,
    **flags: object,
) -> None:
    """Run every sampled program against its APPS tests, sandboxed.

    \b
    Example:
      apps-hpc eval --samples samples/sft.jsonl --apps data/apps --out results/sft.jsonl
    """
    import dataclasses

    from apps_hpc.core.config import eval_settings, parse_sets
    from apps_hpc.core.shards import output_paths, parse_shard
    from apps_hpc.evaluate import EvalConfig

    flags["out"] = output_paths(flags["out"], "results")[0]  # type: ignore[arg-type]
    if flags.get("stream") is not None and shard is None:
        raise click.UsageError("--stream needs --shard I/S (the sample shard to judge)")
    if flags.pop("no_cache"):
        flags["cache"] = None
    elif flags["cache"] is None:
        flags["cache"] = Path(flags["out"]).parent / "verdict-cache"  # type: ignore[arg-type]
    section = eval_settings(parse_sets(sets))
    given = {"test_timeout_s": test_timeout_s, "program_budget_s": program_budget_s}
    given["memory_mb"] = memory_mb
    limits = section.as_limits()
    limits = dataclasses.replace(limits, **{k: v for k, v in given.items() if v is not None})
    cfg = EvalConfig(
        **flags,  # type: ignore[arg-type]
        all_tests=all_tests or section.all_tests,
        recheck_timeouts=section.recheck_timeouts and not no_recheck,
        limits=limits,
        progress=not quiet,
        shard=parse_shard(shard) if shard else None,
    )
    dispatch("eval", cfg)


def _show_report(fmt: str) -> object:
    def show(folder: Path) -> None:
        name = "summary.json" if fmt == "json" else "summary.md"
        click.echo((folder / name).read_text(encoding="utf-8"), nl=False)
        click.echo(f"report written to {folder}", err=True)

    return show


@click.command("report", context_settings=CONTEXT)
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
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
    default=",".join(str(k) for k in ReportConfig.ks),
    show_default=True,
    callback=lambda c, p, v: parse_ks(v),
    help="Comma-separated k values.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Report folder (default: <experiment>/report, else ./report).",
)
@click.option("--no-plot", is_flag=True, help="Skip pass_at_k.png.")
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Report different problem sets, duplicate problems or n = 0 anyway (counts shown).",
)
@click.option(
    "--experiments",
    multiple=True,
    help="Experiment folders or a glob ('ROOT/*'), repeatable: one row per (experiment, "
    "model) instead of RESULTS (default --out: ./report-aggregate).",
)
def report_cmd(
    results: tuple[Path, ...],
    fmt: str,
    ks: tuple[int, ...],
    out: Path | None,
    no_plot: bool,
    allow_partial: bool,
    experiments: tuple[str, ...],
) -> None:
    """pass@k by difficulty for one or more results files, side by side, with bootstrap
    CIs and the paired Δ of each model against the first (same problems required).

    \b
    Example:
      apps-hpc report results/base.jsonl results/sft.jsonl --k 1,5,10
      apps-hpc report --experiments '/lustre/me/experiments/*'
    """
    if bool(results) == bool(experiments):
        raise click.UsageError("give RESULTS files or --experiments, not both or neither")
    if experiments:
        from apps_hpc.report.multi import AggregateConfig, aggregate

        folder = aggregate(AggregateConfig(list(experiments), out, ks, allow_partial))
        _show_report(fmt)(folder)  # type: ignore[operator]
        return
    cfg = ReportConfig(
        results=list(results), out=out, ks=ks, plot=not no_plot, allow_partial=allow_partial
    )
    dispatch("report", cfg, _show_report(fmt))  # type: ignore[arg-type]


@click.command("show", context_settings=CONTEXT)
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--problem", "problem_id", required=True, type=int, help="The problem's id.")
@click.option(
    "--split",
    type=click.Choice(["train", "test"]),
    default="test",
    show_default=True,
    help="The problem's split.",
)
@click.option(
    "--samples",
    type=click.Path(path_type=Path),
    default=None,
    help="Samples JSONL: also print each program's code.",
)
def show_cmd(results: Path, problem_id: int, split: str, samples: Path | None) -> None:
    """One problem's programs with their verdicts and why each failed: the first failing
    test, its input, the expected and the produced output, or the error's last line.

    \b
    Example:
      apps-hpc show results/sft.jsonl --problem 17 --samples samples/sft.jsonl
    """
    from apps_hpc.report.show import show_problem

    click.echo(show_problem(results, problem_id, split, samples), nl=False)


COMMANDS = [eval_cmd, report_cmd, show_cmd]
