"""A plan (`planner.make_plan`'s data) as the text `apps-hpc plan` prints: one table per
stage, then the sources of its figures."""

from __future__ import annotations

from typing import Any

from apps_hpc.report.timing import duration


def table(title: str, rows: list[tuple[str, Any]]) -> list[str]:
    width = max(len(label) for label, _ in rows)
    return [title, *(f"  {label:<{width}}  {value}" for label, value in rows), ""]


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"


def training_rows(t: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("parameters", f"{t['params']:,} ({t['params'] / 1e9:.2f} B)"),
        ("SFT examples", f"{t['examples']:,}"),
        ("tokens per epoch", f"{t['tokens']:,}"),
        ("epochs, optimizer steps", f"{t['epochs']:g}, {t['steps']:,}"),
        ("GPUs", t["gpus"]),
        ("compute (6 N D epochs)", f"{t['flops']:.3e} FLOP"),
        ("rate per GPU", f"{t['rate_tflops_per_gpu']} TFLOP/s"),
        ("wall time", duration(t["seconds"])),
        ("GPU-hours", t["gpu_hours"]),
    ]


def memory_lines(m: dict[str, Any]) -> list[str]:
    head = f"Memory per GPU (GiB; GPU {m['gpu_mem_gib']} GiB; recipe ZeRO-{m['zero']})"
    lines = [head, "  ZeRO  offload            states  activ.  overhead  total  CPU/node  fits"]
    for r in m["rows"]:
        lines.append(
            f"  {r['zero']:<4}  {r['offload']:<17} {r['states_gib']:>7} {r['activations_gib']:>7}"
            f" {r['overhead_gib']:>9} {r['total_gib']:>6} {r['cpu_per_node_gib']:>9}  "
            f"{'yes' if r['fits'] else 'no'}"
        )
    largest = ", ".join(f"ZeRO-{k[-1]} {v}" for k, v in m["largest_micro_batch"].items())
    verdicts = ", ".join(f"ZeRO-{k[-1]} {v}" for k, v in m["verdicts"].items())
    lines += [f"  verdict: {m['verdict']} ({verdicts})"]
    lines += [f"  largest micro-batch without offload: {largest}", ""]
    return lines


def sampling_rows(s: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("models", f"{s['models']} (base, sft)"),
        ("prompts x n", f"{s['prompts']:,} x {s['n']} = {s['completions_per_model']:,} per model"),
        ("tokens per model", f"{s['tokens_per_model']:,}"),
        ("rate", f"{s['rate_completions_per_gpu_s']} completions/s per GPU"),
        ("shards x GPUs", f"{s['shards']} x {s['gpus_per_model']}"),
        ("wall time per model", duration(s["seconds_per_model"])),
        ("GPU-hours (both)", s["gpu_hours"]),
    ]


def eval_rows(e: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("programs per model", f"{e['programs_per_model']:,}"),
        ("CPU-seconds per program", e["cpu_s_per_program"]),
        ("CPU-hours (both)", e["cpu_hours"]),
        ("CPU node", f"{e['cpus']} CPUs x {e['shards']} shard(s)"),
        ("wall time per model", duration(e["seconds_per_model"])),
        ("CPU-node-hours (both)", e["node_hours"]),
    ]


def queue_rows(queue: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(q["job"], q["estimate"]) for q in queue]


def sources(plan: dict[str, Any]) -> list[str]:
    t, s, e = plan["training"], plan["sampling"], plan["eval"]
    return [
        "Sources",
        f"  parameters: {t['params_source']}",
        f"  tokens: {t['tokens_source']}",
        f"  training rate: {t['rate_source']}",
        f"  model states: {t['memory']['states_source']}",
        f"  prompts: {s['prompts_source']}; completion tokens: {s['tokens_source']}",
        f"  sampling rate: {s['rate_source']}",
        f"  eval rate: {e['rate_source']}",
    ]


def plan_text(plan: dict[str, Any]) -> str:
    lines = [f"Plan: {plan['experiment']} on {plan['profile']}", ""]
    lines += table("Training", training_rows(plan["training"]))
    lines += memory_lines(plan["training"]["memory"])
    lines += table("Sampling", sampling_rows(plan["sampling"]))
    lines += table("Eval", eval_rows(plan["eval"]))
    if plan.get("queue"):
        lines += table("Queue (sbatch --test-only)", queue_rows(plan["queue"]))
    return "\n".join(lines + sources(plan)) + "\n"
