"""`apps-hpc report --experiments 'ROOT/*'`: every experiment folder found, side by side.

One row per (experiment, model) with pass@k, its bootstrap CI and the problem counts,
written as `summary.md`, `summary.json` and `index.html` (linking each experiment's own
`report/index.html`) into the output folder. An experiment is a folder with
`results/*.jsonl`. The checks of a single report hold within each experiment, and the
experiments must cover the same problems (else a one-line refusal naming the files and
the counts, unless `allow_partial`).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.report.load import PARTIAL_HINT, ModelResults, load_models, problem_set_difference
from apps_hpc.report.stats import Bootstrap
from apps_hpc.report.summary import GROUPS, model_summary
from apps_hpc.report.tables import ci_cell

ROW_GROUPS = GROUPS


@dataclass
class AggregateConfig:
    patterns: list[str]  # globs or folders
    out: Path | None = None  # default: ./report-aggregate
    ks: tuple[int, ...] = (1, 5, 10)
    allow_partial: bool = False
    bootstrap: Bootstrap = field(default_factory=Bootstrap)


def find_experiments(patterns: list[str]) -> list[Path]:
    """Folders matching the patterns that hold results/*.jsonl, sorted, each once."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        for match in sorted(glob.glob(os.path.expanduser(pattern))) or [pattern]:
            path = Path(match)
            if path.is_dir() and any((path / "results").glob("*.jsonl")):
                found[path.resolve()] = None
    if not found:
        raise AppsHpcError(f"--experiments {' '.join(patterns)}: no folder with results/*.jsonl")
    return list(found)


def _cross_check(models: list[ModelResults], allow_partial: bool) -> list[str]:
    """The first model of the first experiment against the first of each other one."""
    notes = []
    for other in models[1:]:
        diff = problem_set_difference(models[0], other)
        if diff and not allow_partial:
            raise AppsHpcError(f"different problem sets across experiments: {diff}; {PARTIAL_HINT}")
        if diff:
            notes.append(f"different problem sets across experiments: {diff}")
    return notes


def experiment_rows(cfg: AggregateConfig) -> dict[str, Any]:
    rows, notes, firsts = [], [], []
    for exp in find_experiments(cfg.patterns):
        results = sorted((exp / "results").glob("*.jsonl"))
        models, exp_notes = load_models(results, cfg.ks, cfg.allow_partial)
        notes += exp_notes
        firsts.append(models[0])
        page = exp / "report" / "index.html"
        for m in models:
            rows.append(
                {
                    "experiment": exp.name,
                    "folder": str(exp),
                    "model": m.name,
                    "source": str(m.source),
                    "page": str(page) if page.is_file() else None,
                    **model_summary(m, cfg.ks, cfg.bootstrap),
                }
            )
    notes += _cross_check(firsts, cfg.allow_partial)
    return {
        "ks": list(cfg.ks),
        "statistics": {"method": cfg.bootstrap.describe()},
        "rows": rows,
        "partial": notes,
    }


def markdown(data: dict[str, Any]) -> str:
    ks = data["ks"]
    head = "| experiment | model | problems (intro/interview/comp) | k | " + " | ".join(ROW_GROUPS)
    lines = [head + " |", "|---" * (4 + len(ROW_GROUPS)) + "|"]
    for row in data["rows"]:
        counts = "/".join(str(row[g]["problems"]) for g in ROW_GROUPS[1:])
        for k in ks:
            cells = " | ".join(ci_cell(row[g], k) for g in ROW_GROUPS)
            lines.append(
                f"| {row['experiment']} | {row['model']} | {row['total']['problems']} ({counts}) "
                f"| pass@{k} | {cells} |"
            )
    lines += ["", f"Statistics: {data['statistics']['method']}."]
    lines += [f"Partial: {note}." for note in data["partial"]]
    return "\n".join(lines) + "\n"


def _link(row: dict[str, Any], out: Path) -> str:
    if row["page"] is None:
        return f"{escape(row['experiment'])} <small>(no report page yet)</small>"
    href = os.path.relpath(row["page"], out.resolve())
    return f'<a href="{escape(href)}">{escape(row["experiment"])}</a>'


def html_page(data: dict[str, Any], out: Path) -> str:
    head = "".join(f"<th>{h}</th>" for h in ["experiment", "model", "problems", "k", *ROW_GROUPS])
    body = []
    for row in data["rows"]:
        for k in data["ks"]:
            cells = [_link(row, out), escape(row["model"]), str(row["total"]["problems"])]
            cells += [f"pass@{k}"] + [escape(ci_cell(row[g], k)) for g in ROW_GROUPS]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    notes = "".join(f"<li>{escape(n)}</li>" for n in data["partial"])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>apps-hpc: '
        "experiments</title><style>body{font:14px system-ui,sans-serif;margin:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .5em}"
        "</style></head><body><h1>Experiments side by side</h1>"
        f"<p>{escape(data['statistics']['method'])}; each cell: pass@k [95% CI].</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        + (f"<p>Partial:</p><ul>{notes}</ul>" if notes else "")
        + "</body></html>\n"
    )


def aggregate(cfg: AggregateConfig) -> Path:
    """Write summary.md, summary.json and index.html for the experiments; return the folder."""
    if not cfg.ks or any(k < 1 for k in cfg.ks):
        raise AppsHpcError(f"--k needs positive integers, got {list(cfg.ks)}")
    data = experiment_rows(cfg)
    out = cfg.out or Path("report-aggregate")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "summary.md", markdown(data), durable=False)
    write_atomic(out / "summary.json", json.dumps(data, indent=2) + "\n", durable=False)
    write_atomic(out / "index.html", html_page(data, out), durable=False)
    return out
