"""Checked models -> the numbers of the report (what summary.json holds): pass@k per
difficulty and total with bootstrap CIs, and each model paired with the first one
(Δ with CI and p-value, problems solved only by one of the two)."""

from __future__ import annotations

from typing import Any

from apps_hpc.core.apps import DIFFICULTIES
from apps_hpc.core.records import problem_key
from apps_hpc.core.schema import ResultRecord
from apps_hpc.report.load import ModelResults, key_text
from apps_hpc.report.stats import (
    Bootstrap,
    bootstrap_ci,
    paired_delta,
    pass_at_k_values,
    solved_only,
)

GROUPS = ("total", *DIFFICULTIES)


def in_group(rec: ResultRecord, group: str) -> bool:
    return group == "total" or rec.difficulty == group


def _rounded(values: tuple[float, float] | None) -> list[float] | None:
    return None if values is None else [round(v, 6) for v in values]


def group_summary(
    records: list[ResultRecord], ks: tuple[int, ...], boot: Bootstrap
) -> dict[str, Any]:
    """{"problems": N, "pass@k": mean, "pass@k_ci": [low, high], ...} of these records."""
    row: dict[str, Any] = {"problems": len(records)}
    counts = [(r.n, r.c) for r in records]
    for k in ks:
        values = pass_at_k_values(counts, k)
        row[f"pass@{k}"] = float(values.mean()) if len(values) else None
        row[f"pass@{k}_ci"] = _rounded(bootstrap_ci(values, boot))
    return row


def model_summary(
    model: ModelResults, ks: tuple[int, ...], boot: Bootstrap
) -> dict[str, dict[str, Any]]:
    """{group: group_summary} for total and each difficulty."""
    return {
        g: group_summary([r for r in model.records if in_group(r, g)], ks, boot) for g in GROUPS
    }


def common_records(
    a: ModelResults, b: ModelResults
) -> tuple[list[ResultRecord], list[ResultRecord]]:
    """The records of the problems both hold, in the same order."""
    by_key = {problem_key(r): r for r in b.records}
    pairs = [(r, by_key[problem_key(r)]) for r in a.records if problem_key(r) in by_key]
    pairs.sort(key=lambda p: problem_key(p[0]))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _delta_cell(a: list[ResultRecord], b: list[ResultRecord], k: int, boot: Bootstrap) -> Any:
    va = pass_at_k_values([(r.n, r.c) for r in a], k)
    vb = pass_at_k_values([(r.n, r.c) for r in b], k)
    d = paired_delta(va, vb, boot)
    if d is None:
        return None
    return {"delta": d.delta, "ci": _rounded((d.low, d.high)), "p": round(d.p_value, 6)}


def paired_summary(
    a: ModelResults, b: ModelResults, ks: tuple[int, ...], boot: Bootstrap
) -> dict[str, Any]:
    """b against a over their common problems, per group."""
    ra, rb = common_records(a, b)
    groups: dict[str, Any] = {}
    only: dict[str, dict[str, list[str]]] = {a.name: {}, b.name: {}}
    for g in GROUPS:
        ga = [r for r in ra if in_group(r, g)]
        gb = [r for r in rb if in_group(r, g)]
        groups[g] = {"problems": len(ga)}
        groups[g].update({f"pass@{k}": _delta_cell(ga, gb, k, boot) for k in ks})
        only_a, only_b = solved_only([r.c for r in ga], [r.c for r in gb])
        only[a.name][g] = [key_text(problem_key(ga[i])) for i in only_a]
        only[b.name][g] = [key_text(problem_key(gb[i])) for i in only_b]
    return {"a": a.name, "b": b.name, "problems": len(ra), "groups": groups, "solved_only": only}


def summarize(
    models: list[ModelResults], ks: tuple[int, ...], boot: Bootstrap, notes: list[str]
) -> dict[str, Any]:
    """Everything summary.json holds."""
    return {
        "ks": list(ks),
        "statistics": {
            "method": boot.describe(),
            "resamples": boot.resamples,
            "seed": boot.seed,
            "level": boot.level,
        },
        "models": {m.name: {"source": str(m.source), **model_summary(m, ks, boot)} for m in models},
        "paired": [paired_summary(models[0], m, ks, boot) for m in models[1:]],
        "partial": notes,
    }
