"""summary.json's numbers -> the Markdown of summary.md (what `apps-hpc report` prints)."""

from __future__ import annotations

from typing import Any

from apps_hpc.core.apps import DIFFICULTIES
from apps_hpc.report.summary import GROUPS

SHORT = {"introductory": "intro", "interview": "interview", "competition": "comp"}


def fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def ks_cell(row: dict[str, Any], ks: list[int]) -> str:
    values = [row.get(f"pass@{k}") for k in ks]
    return "–" if any(v is None for v in values) else " / ".join(fmt(v) for v in values)


def delta_ks_cell(row: dict[str, Any], ks: list[int]) -> str:
    cells = [row.get(f"pass@{k}") for k in ks]
    if any(c is None for c in cells):
        return "–"
    return " / ".join(fmt(c["delta"], signed=True) for c in cells)


def counts_cell(summary: dict[str, Any]) -> str:
    parts = "/".join(str(summary[d]["problems"]) for d in DIFFICULTIES)
    return f"{summary['total']['problems']} ({parts})"


def ci_cell(row: dict[str, Any], k: int) -> str:
    value, ci = row.get(f"pass@{k}"), row.get(f"pass@{k}_ci")
    if value is None or ci is None:
        return "–"
    return f"{fmt(value)} [{fmt(ci[0])}, {fmt(ci[1])}]"


def delta_cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "–"
    low, high = cell["ci"]
    return f"{fmt(cell['delta'], True)} [{fmt(low, True)}, {fmt(high, True)}] p={cell['p']:.3g}"


def main_table(data: dict[str, Any]) -> list[str]:
    """The DESIGN.md layout: one row per model, one Δ row per model after the first."""
    ks = data["ks"]
    at = "/".join(f"@{k}" for k in ks)
    head = f"| model | problems (intro/interview/comp) | total {at} | " + " | ".join(DIFFICULTIES)
    lines = [head + " |", "|---" * (3 + len(DIFFICULTIES)) + "|"]
    for name, s in data["models"].items():
        cells = [ks_cell(s[g], ks) for g in GROUPS]
        lines.append(f"| {name} | {counts_cell(s)} | " + " | ".join(cells) + " |")
    partial = bool(data.get("partial"))
    for pair in data["paired"]:
        cells = [delta_ks_cell(pair["groups"][g], ks) for g in GROUPS]
        common = f" {pair['problems']} common " if partial else " "
        lines.append(f"| Δ {pair['b']} − {pair['a']} |{common}| " + " | ".join(cells) + " |")
    return lines


def ci_table(data: dict[str, Any]) -> list[str]:
    level = data["statistics"]["level"]
    lines = [
        f"{level:.0%} confidence intervals (bootstrap over problems):",
        "",
        "| model | k | " + " | ".join(GROUPS) + " |",
        "|---" * (2 + len(GROUPS)) + "|",
    ]
    for name, s in data["models"].items():
        for k in data["ks"]:
            cells = [ci_cell(s[g], k) for g in GROUPS]
            lines.append(f"| {name} | pass@{k} | " + " | ".join(cells) + " |")
    return lines


def solved_line(pair: dict[str, Any]) -> str:
    parts = []
    for name in (pair["b"], pair["a"]):
        only = pair["solved_only"][name]
        split = " / ".join(f"{SHORT[d]} {len(only[d])}" for d in DIFFICULTIES)
        parts.append(f"only by {name}: {len(only['total'])} ({split})")
    return "Problems solved (c > 0) " + "; ".join(parts) + "."


def paired_table(data: dict[str, Any], pair: dict[str, Any]) -> list[str]:
    lines = [
        f"Paired Δ {pair['b']} − {pair['a']} over {pair['problems']} common problems "
        "(Δ [95% CI] p):",
        "",
        "| k | " + " | ".join(f"{g} ({pair['groups'][g]['problems']})" for g in GROUPS) + " |",
        "|---" * (1 + len(GROUPS)) + "|",
    ]
    for k in data["ks"]:
        cells = [delta_cell(pair["groups"][g][f"pass@{k}"]) for g in GROUPS]
        lines.append(f"| pass@{k} | " + " | ".join(cells) + " |")
    return [*lines, "", solved_line(pair)]


def markdown(data: dict[str, Any]) -> str:
    """summary.md: the main table, the CIs, the paired Δ, the method, what was partial."""
    lines = [*main_table(data), "", *ci_table(data)]
    for pair in data["paired"]:
        lines += ["", *paired_table(data, pair)]
    lines += ["", f"Statistics: {data['statistics']['method']}."]
    planned = data.get("planned_vs_measured")
    if planned:
        lines += ["", f"{planned['title']}:", "", "| " + " | ".join(planned["head"]) + " |"]
        lines += ["|---" * len(planned["head"]) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in planned["rows"]]
    for note in data.get("partial", []):
        lines.append(f"Partial: {note}.")
    return "\n".join(lines) + "\n"
