"""`report(cfg)`: results files -> pass@k per difficulty and total, side by side, with
bootstrap CIs and the paired Δ of each model against the first.

Writes `summary.md` (the table layout of DESIGN.md, then the CIs and the paired Δ),
`summary.json`, `pass_at_k.png` and `index.html` (the self-contained page) into the
report folder. Modules: `stats` (pure statistics), `load` (results files and the
refusals of an unfair comparison), `summary` (the numbers), `tables` (Markdown), `plots`
(PNGs), `experiment` (the experiment folder's other files), `timing` (the manifest),
`browse` (the problem browser's data), `page` (the HTML; `page.css`, `page.js`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps_hpc.core.errors import AppsHpcError
from apps_hpc.core.files import write_atomic
from apps_hpc.provenance.stamps import file_digest
from apps_hpc.report.experiment import experiment_manifest, read_experiment
from apps_hpc.report.load import ModelResults, load_models
from apps_hpc.report.page import PageInput, render
from apps_hpc.report.plots import loss_curve_png, plot_pass_at_k
from apps_hpc.report.stats import Bootstrap
from apps_hpc.report.summary import summarize
from apps_hpc.report.tables import markdown
from apps_hpc.report.timing import planned_section


@dataclass
class ReportConfig:
    results: list[Path]
    out: Path | None = None  # default: <experiment>/report next to results/, else ./report
    ks: tuple[int, ...] = (1, 5, 10)
    plot: bool = True
    allow_partial: bool = False  # report different problem sets, duplicates, n = 0 anyway
    bootstrap: Bootstrap = field(default_factory=Bootstrap)
    page: bool = True  # index.html

    @property
    def folder(self) -> Path:
        """Where the report goes: `out`, else <experiment>/report beside results/."""
        return self.out or default_out(self.results[0])


def default_out(first: Path) -> Path:
    parent = first.resolve().parent
    return parent.parent / "report" if parent.name == "results" else Path("report")


def _models_and_data(cfg: ReportConfig) -> tuple[list[ModelResults], dict[str, Any]]:
    if not cfg.ks or any(k < 1 for k in cfg.ks):
        raise AppsHpcError(f"--k needs positive integers, got {list(cfg.ks)}")
    models, notes = load_models(cfg.results, cfg.ks, cfg.allow_partial)
    return models, summarize(models, cfg.ks, cfg.bootstrap, notes)


def build(cfg: ReportConfig) -> dict[str, Any]:
    """summary.json's content, plus its Markdown under "markdown"."""
    _, data = _models_and_data(cfg)
    return {**data, "markdown": markdown(data)}


def write_page(out: Path, data: dict[str, Any], models: list[ModelResults]) -> Path:
    """index.html from the numbers, the experiment's files and the plots."""
    files = read_experiment({m.name: m.source for m in models})
    images = {}
    if (out / "pass_at_k.png").is_file():
        images["pass@k by difficulty (bars: 95% bootstrap CI)"] = (
            out / "pass_at_k.png"
        ).read_bytes()
    title = f"apps-hpc report: {files.folder.name if files.folder else out.resolve().parent.name}"
    page = render(PageInput(title, data, models, files, images, loss_curve_png(files.trainer_log)))
    path = out / "index.html"
    write_atomic(path, page, durable=False)
    return path


def inputs(cfg: ReportConfig) -> dict[str, Any]:
    """What a report depends on: the results files' contents and the k values."""
    results = {str(p): file_digest(p) if p.is_file() else None for p in cfg.results}
    return {"results": results, "ks": list(cfg.ks)}


def is_done(cfg: ReportConfig) -> bool:
    """Is there a report made from exactly these results files and k values?"""
    try:
        summary = json.loads((cfg.folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (cfg.folder / "summary.md").is_file() and summary.get("inputs") == inputs(cfg)


def report(cfg: ReportConfig) -> Path:
    """Write summary.md, summary.json, pass_at_k.png and index.html; return the folder."""
    models, data = _models_and_data(cfg)
    data = {**data, "inputs": inputs(cfg)}  # what it was made from: a re-run may skip it
    planned = planned_section(experiment_manifest(cfg.results[0]))
    if planned:
        data["planned_vs_measured"] = planned
    out = cfg.folder
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "summary.md", markdown(data), durable=False)
    write_atomic(out / "summary.json", json.dumps(data, indent=2) + "\n", durable=False)
    if cfg.plot:
        plot_pass_at_k(data, out / "pass_at_k.png")
    if cfg.page:
        write_page(out, data, models)
    return out


__all__ = ["ReportConfig", "build", "report"]
