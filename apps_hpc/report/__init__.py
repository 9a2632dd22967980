"""`report(cfg)`: results files -> pass@k per difficulty and total, side by side, with
bootstrap CIs and the paired Δ of each model against the first.

Writes `summary.md` (the table layout of DESIGN.md, then the CIs and the paired Δ),
`summary.json` and `pass_at_k.png` into the report folder. Modules: `stats` (pure
statistics), `load` (results files and the refusals of an unfair comparison), `summary`
(the numbers), `tables` (Markdown), `plots` (PNGs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps_hpc.errors import AppsHpcError
from apps_hpc.report.load import load_models
from apps_hpc.report.plots import plot_pass_at_k
from apps_hpc.report.stats import Bootstrap
from apps_hpc.report.summary import summarize
from apps_hpc.report.tables import markdown


@dataclass
class ReportConfig:
    results: list[Path]
    out: Path | None = None  # default: <experiment>/report next to results/, else ./report
    ks: tuple[int, ...] = (1, 5, 10)
    plot: bool = True
    allow_partial: bool = False  # report different problem sets, duplicates, n = 0 anyway
    bootstrap: Bootstrap = field(default_factory=Bootstrap)

    @property
    def folder(self) -> Path:
        """Where the report goes: `out`, else <experiment>/report beside results/."""
        return self.out or default_out(self.results[0])


def default_out(first: Path) -> Path:
    parent = first.resolve().parent
    return parent.parent / "report" if parent.name == "results" else Path("report")


def build(cfg: ReportConfig) -> dict[str, Any]:
    """summary.json's content, plus its Markdown under "markdown"."""
    if not cfg.ks or any(k < 1 for k in cfg.ks):
        raise AppsHpcError(f"--k needs positive integers, got {list(cfg.ks)}")
    models, notes = load_models(cfg.results, cfg.ks, cfg.allow_partial)
    data = summarize(models, cfg.ks, cfg.bootstrap, notes)
    return {**data, "markdown": markdown(data)}


def report(cfg: ReportConfig) -> Path:
    """Write summary.md, summary.json and pass_at_k.png; return the report folder."""
    result = build(cfg)
    out = cfg.folder
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(result.pop("markdown"), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if cfg.plot:
        plot_pass_at_k(result, out / "pass_at_k.png")
    return out


__all__ = ["ReportConfig", "build", "report"]
