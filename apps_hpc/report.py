"""`report(cfg)`: results files -> pass@k per difficulty and total, side by side.

Writes `summary.md` (the table layout of DESIGN.md, plus problem counts and deltas
against the first model), `summary.json` and `pass_at_k.png` into the report folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps_hpc.apps import DIFFICULTIES
from apps_hpc.errors import AppsHpcError
from apps_hpc.metrics import mean_pass_at_k
from apps_hpc.records import ResultRecord, read_results

GROUPS = ("total", *DIFFICULTIES)


@dataclass
class ReportConfig:
    results: list[Path]
    out: Path | None = None  # default: <experiment>/report next to results/, else ./report
    ks: tuple[int, ...] = (1, 5, 10)
    plot: bool = True

    @property
    def folder(self) -> Path:
        """Where the report goes: `out`, else <experiment>/report beside results/."""
        return self.out or default_out(self.results[0])


@dataclass(frozen=True)
class ModelResults:
    name: str
    source: Path
    records: list[ResultRecord]


def load_models(paths: list[Path]) -> list[ModelResults]:
    """One entry per (file, model); a model name seen twice gets its file stem added."""
    models: list[ModelResults] = []
    for path in paths:
        by_model: dict[str, list[ResultRecord]] = {}
        for rec in read_results(path):
            by_model.setdefault(rec.model, []).append(rec)
        if not by_model:
            raise AppsHpcError(f"{path}: no results in this file")
        names = {m.name for m in models}
        for model, recs in by_model.items():
            name = model if model not in names else f"{model} ({path.stem})"
            models.append(ModelResults(name, path, recs))
    return models


def check_ks(model: ModelResults, ks: tuple[int, ...]) -> None:
    for rec in model.records:
        for k in ks:
            if k > rec.n:
                raise AppsHpcError(
                    f"{model.source}: k={k} is larger than the {rec.n} samples of problem "
                    f"{rec.split}/{rec.problem_id}; pass --k with values <= {rec.n}"
                )


def summarize(model: ModelResults, ks: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """{group: {"problems": N, "pass@k": value...}} for total and each difficulty."""
    check_ks(model, ks)
    out: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        recs = [r for r in model.records if group == "total" or r.difficulty == group]
        counts = [(r.n, r.c) for r in recs]
        row: dict[str, Any] = {"problems": len(recs)}
        for k in ks:
            row[f"pass@{k}"] = mean_pass_at_k(counts, k) if recs else None
        out[group] = row
    return out


def _cell(row: dict[str, Any], ks: tuple[int, ...], signed: bool = False) -> str:
    values = [row.get(f"pass@{k}") for k in ks]
    if any(v is None for v in values):
        return "–"
    return " / ".join(f"{v:+.4f}" if signed else f"{v:.4f}" for v in values)


def _counts(summary: dict[str, dict[str, Any]]) -> str:
    parts = "/".join(str(summary[d]["problems"]) for d in DIFFICULTIES)
    return f"{summary['total']['problems']} ({parts})"


def _delta(a: dict[str, Any], b: dict[str, Any], ks: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ks:
        key = f"pass@{k}"
        out[key] = None if a.get(key) is None or b.get(key) is None else b[key] - a[key]
    return out


def markdown(summaries: dict[str, dict[str, dict[str, Any]]], ks: tuple[int, ...]) -> str:
    at = "/".join(f"@{k}" for k in ks)
    head = f"| model | problems (intro/interview/comp) | total {at} | " + " | ".join(DIFFICULTIES)
    lines = [head + " |", "|---" * (3 + len(DIFFICULTIES)) + "|"]
    for name, s in summaries.items():
        cells = [_cell(s[g], ks) for g in GROUPS]
        lines.append(f"| {name} | {_counts(s)} | " + " | ".join(cells) + " |")
    names = list(summaries)
    for name in names[1:]:
        base, other = summaries[names[0]], summaries[name]
        cells = [_cell(_delta(base[g], other[g], ks), ks, signed=True) for g in GROUPS]
        lines.append(f"| Δ {name} − {names[0]} | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summaries: dict[str, dict[str, dict[str, Any]]], ks: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ks), figsize=(4.5 * len(ks), 4), squeeze=False)
    width = 0.8 / max(len(summaries), 1)
    for ax, k in zip(axes[0], ks, strict=False):
        for i, (name, s) in enumerate(summaries.items()):
            values = [s[g].get(f"pass@{k}") or 0.0 for g in GROUPS]
            xs = [x + i * width for x in range(len(GROUPS))]
            bars = ax.bar(xs, values, width, label=name)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks([x + width * (len(summaries) - 1) / 2 for x in range(len(GROUPS))])
        ax.set_xticklabels(["total", "intro", "interview", "comp"])
        ax.set_title(f"pass@{k}")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("pass@k")
    axes[0][-1].legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def default_out(first: Path) -> Path:
    parent = first.resolve().parent
    return parent.parent / "report" if parent.name == "results" else Path("report")


def build(cfg: ReportConfig) -> dict[str, Any]:
    if not cfg.ks or any(k < 1 for k in cfg.ks):
        raise AppsHpcError(f"--k needs positive integers, got {list(cfg.ks)}")
    models = load_models(cfg.results)
    summaries = {m.name: summarize(m, cfg.ks) for m in models}
    return {
        "ks": list(cfg.ks),
        "models": {m.name: {"source": str(m.source), **summaries[m.name]} for m in models},
        "markdown": markdown(summaries, cfg.ks),
        "_summaries": summaries,
    }


def report(cfg: ReportConfig) -> Path:
    """Write summary.md, summary.json and pass_at_k.png; return the report folder."""
    result = build(cfg)
    out = cfg.folder
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(result["markdown"], encoding="utf-8")
    public = {k: v for k, v in result.items() if not k.startswith("_") and k != "markdown"}
    (out / "summary.json").write_text(json.dumps(public, indent=2) + "\n", encoding="utf-8")
    if cfg.plot:
        plot(result["_summaries"], cfg.ks, out / "pass_at_k.png")
    return out
