"""`report/index.html`: one self-contained page (CSS, script, data and plots inline, no
network) rendered from the report's numbers and the experiment's files. The tables are
plain HTML (readable without JavaScript); the problem browser is built by `page.js`
from compressed data, on demand."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Any

import yaml

from apps_hpc.core.apps import DIFFICULTIES
from apps_hpc.core.apps import PUBLISHED_COUNTS as PUBLISHED_TEST
from apps_hpc.report.browse import detail_chunks, index, pack, problem_keys
from apps_hpc.report.experiment import ExperimentFiles
from apps_hpc.report.load import ModelResults
from apps_hpc.report.summary import GROUPS
from apps_hpc.report.timing import planned_section, run_facts, stage_rows, throughput_rows

PUBLISHED_MODEL = "deepseek-ai/deepseek-coder-6.7b-instruct"
PUBLISHED_COUNTS = {"total": sum(PUBLISHED_TEST.values()), **PUBLISHED_TEST}
PUBLISHED = {  # DESIGN.md: pass@1/5/10, 8xA100, the published run
    "base": {
        "total": (0.1172, 0.2071, 0.2483),
        "introductory": (0.3245, 0.4672, 0.5261),
        "interview": (0.0742, 0.1581, 0.1980),
        "competition": (0.0094, 0.0264, 0.0387),
    },
    "sft": {
        "total": (0.1318, 0.2379, 0.2837),
        "introductory": (0.3541, 0.5332, 0.5948),
        "interview": (0.0858, 0.1811, 0.2259),
        "competition": (0.0139, 0.0433, 0.0613),
    },
}
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


@dataclass
class PageInput:
    title: str
    data: dict[str, Any]  # summary.json
    models: list[ModelResults]
    files: ExperimentFiles
    images: dict[str, bytes]  # caption -> PNG
    loss_png: bytes | None = None


def _asset(name: str) -> str:
    return resources.files("apps_hpc.report").joinpath(name).read_text(encoding="utf-8")


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table of already-escaped cells."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def is_published(data: dict[str, Any], files: ExperimentFiles) -> bool:
    """The published experiment: its model, and its 3,765 problems in every model."""
    try:
        config = yaml.safe_load(files.experiment_yaml or "") or {}
    except yaml.YAMLError:
        return False
    if not isinstance(config, dict) or config.get("model") != PUBLISHED_MODEL:
        return False
    return all(
        m[g]["problems"] == PUBLISHED_COUNTS[g] for m in data["models"].values() for g in GROUPS
    )


def _value_cell(name: str, row: dict[str, Any], group: str, k: int) -> str:
    value, ci = row.get(f"pass@{k}"), row.get(f"pass@{k}_ci")
    span = f' <span class="ci">[{_num(ci[0])}, {_num(ci[1])}]</span>' if ci else ""
    attrs = f'data-model="{escape(name)}" data-group="{group}" data-k="{k}"'
    return f'<span class="v" {attrs}>{_num(value)}</span>{span}'


def _model_rows(name: str, s: dict[str, Any], ks: list[int], published: bool) -> list[list[str]]:
    rows = []
    ref = PUBLISHED.get(name) if published else None
    for k in ks:
        cells = [_value_cell(name, s[g], g, k) for g in GROUPS]
        if ref is not None:
            at = (1, 5, 10).index(k)
            cells = [
                f'{c}<br><span class="pub">published {ref[g][at]:.4f}</span>'
                for c, g in zip(cells, GROUPS, strict=True)
            ]
        rows.append([escape(name), f"pass@{k}", *cells])
    return rows


def results_section(data: dict[str, Any], published: bool) -> str:
    ks = data["ks"]
    show_published = published and all(k in (1, 5, 10) for k in ks)
    head = ["model", "k"] + [
        f"{g}<br><small>{'/'.join(str(m[g]['problems']) for m in data['models'].values())} "
        "problems</small>"
        for g in GROUPS
    ]
    rows = [r for n, s in data["models"].items() for r in _model_rows(n, s, ks, show_published)]
    note = (
        "<p>Beside each figure: the published run's (8×A100, DESIGN.md).</p>"
        if show_published
        else ""
    )
    return (
        '<section id="results"><h2>pass@k</h2>'
        f"<p>Mean of the unbiased pass@k estimator over problems; in brackets the "
        f"{escape(data['statistics']['method'])}.</p>{note}"
        + _table(head, rows, "results")
        + _partial(data)
        + "</section>"
    )


def _partial(data: dict[str, Any]) -> str:
    notes = data.get("partial") or []
    if not notes:
        return ""
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return f'<div class="warn"><b>Partial report</b> (--allow-partial):<ul>{items}</ul></div>'


def _delta_cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "–"
    low, high = cell["ci"]
    strong = ' class="sig"' if low > 0 or high < 0 else ""
    return (
        f"<span{strong}>{_num(cell['delta'], True)}</span> "
        f'<span class="ci">[{_num(low, True)}, {_num(high, True)}]</span> '
        f'<span class="p">p={cell["p"]:.3g}</span>'
    )


def _solved_lists(pair: dict[str, Any]) -> str:
    parts = []
    for name in (pair["b"], pair["a"]):
        only = pair["solved_only"][name]
        links = " ".join(f'<a href="#problem={escape(k)}">{escape(k)}</a>' for k in only["total"])
        split = ", ".join(f"{d} {len(only[d])}" for d in DIFFICULTIES)
        parts.append(
            f"<details><summary>Solved only by <b>{escape(name)}</b>: {len(only['total'])} "
            f'({split})</summary><p class="ids">{links or "–"}</p></details>'
        )
    return "".join(parts)


def paired_section(data: dict[str, Any]) -> str:
    if not data["paired"]:
        return ""
    out = ['<section id="paired"><h2>Paired comparison</h2>']
    for pair in data["paired"]:
        head = ["k"] + [f"{g}<br><small>{pair['groups'][g]['problems']}</small>" for g in GROUPS]
        rows = [
            [f"pass@{k}"] + [_delta_cell(pair["groups"][g][f"pass@{k}"]) for g in GROUPS]
            for k in data["ks"]
        ]
        out.append(
            f"<h3>Δ {escape(pair['b'])} − {escape(pair['a'])} over {pair['problems']} common "
            "problems</h3><p>Δ, its 95% paired-bootstrap CI, and the sign-flip test's p-value; "
            "bold when the CI excludes 0. Solved = at least one passing program.</p>"
            + _table(head, rows, "paired")
            + _solved_lists(pair)
        )
    return "".join(out) + "</section>"


def _blob(name: str, text: str) -> str:
    """Base64 text in a script element the browser does not run."""
    return f'<script type="application/gzip+base64" id="{name}">{text}</script>'


def browser_section(inp: PageInput) -> str:
    keys = problem_keys(inp.models)
    blobs = [_blob("data-index", pack(index(inp.models, keys)))]
    for i, blob in enumerate(detail_chunks(inp.models, keys, inp.files)):
        blobs.append(_blob(f"data-chunk-{i}", blob))
    return (
        '<section id="problems"><h2>Problems</h2>'
        "<noscript><p>The problem browser needs JavaScript; the tables above do not.</p>"
        '</noscript><div id="browser"></div>' + "".join(blobs) + "</section>"
    )


def _images(images: dict[str, bytes]) -> str:
    return "".join(
        f'<figure><img alt="{escape(c)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"><figcaption>{escape(c)}</figcaption></figure>'
        for c, png in images.items()
    )


def training_section(inp: PageInput) -> str:
    logs = [r for r in inp.files.trainer_log if r.get("loss") is not None]
    if not logs:
        return '<section id="training"><h2>Training</h2><p>No training log.</p></section>'
    last = logs[-1]
    epoch = last.get("epoch")
    epoch = f"{epoch:.2f}" if isinstance(epoch, float) else epoch  # not 33.333333333333336
    facts = (
        f"{len(logs)} logged steps; last: step {last.get('current_steps')} of "
        f"{last.get('total_steps')}, loss {last.get('loss')}, epoch {epoch}, "
        f"elapsed {last.get('elapsed_time')}"
    )
    image = _images({"training loss per logged step": inp.loss_png}) if inp.loss_png else ""
    return f'<section id="training"><h2>Training</h2><p>{escape(facts)}</p>{image}</section>'


def timing_section(inp: PageInput) -> str:
    stages = stage_rows(inp.files.manifest, inp.models)
    shards = throughput_rows(inp.files.manifest)
    out = ['<section id="timing"><h2>Stages and throughput</h2>']
    if stages:
        head = ["stage", "state", "executor", "jobs", "submitted", "wall time", "rate"]
        out.append(_table(head, [[escape(str(c)) for c in r] for r in stages], "stages"))
    else:
        out.append("<p>No jobs in the manifest.</p>")
    planned = planned_section(inp.files.manifest)
    if planned:
        out.append(f"<h3>{escape(planned['title'])}</h3>")
        rows = [[escape(c) for c in r] for r in planned["rows"]]
        out.append(_table([escape(h) for h in planned["head"]], rows, "planned"))
    if shards:
        head = ["model", "shard", "problems", "completions", "tokens", "seconds", "tokens/s"]
        out.append("<h3>Sampling throughput per shard</h3>")
        out.append(_table(head, [[escape(str(c)) for c in r] for r in shards], "shards"))
    return "".join(out) + "</section>"


def run_section(inp: PageInput) -> str:
    facts = run_facts(inp.files)
    rows = [[escape(k), f"<code>{escape(str(v))}</code>"] for k, v in facts]
    out = ['<section id="run"><h2>What ran</h2>', _table(["", ""], rows, "facts")]
    if inp.files.experiment_yaml:
        out.append(
            "<details><summary>experiment.yaml</summary>"
            f"<pre>{escape(inp.files.experiment_yaml)}</pre></details>"
        )
    if inp.files.missing:
        items = "".join(f"<li>{escape(m)}</li>" for m in inp.files.missing)
        out.append(f"<p>Not found, left out of this page:</p><ul>{items}</ul>")
    return "".join(out) + "</section>"


def render(inp: PageInput) -> str:
    published = is_published(inp.data, inp.files)
    nav = " · ".join(
        f'<a href="#{s}">{t}</a>'
        for s, t in [
            ("results", "pass@k"),
            ("paired", "paired Δ"),
            ("plots", "plots"),
            ("training", "training"),
            ("problems", "problems"),
            ("timing", "stages"),
            ("run", "what ran"),
        ]
    )
    body = [
        f"<header><h1>{escape(inp.title)}</h1><nav>{nav}</nav></header>",
        results_section(inp.data, published),
        paired_section(inp.data),
        f'<section id="plots"><h2>Plots</h2>{_images(inp.images)}</section>',
        training_section(inp),
        browser_section(inp),
        timing_section(inp),
        run_section(inp),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(inp.title)}</title><style>{_asset('page.css')}</style></head>"
        f"<body>{''.join(body)}<script>{_asset('page.js')}</script></body></html>\n"
    )
