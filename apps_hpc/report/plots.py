"""The report's PNGs (matplotlib, Agg): pass@k bars with their bootstrap CIs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from apps_hpc.core.files import write_atomic
from apps_hpc.report.summary import GROUPS


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax: Any, data: dict[str, Any], k: int) -> None:
    models = data["models"]
    width = 0.8 / max(len(models), 1)
    for i, (name, s) in enumerate(models.items()):
        values = [s[g].get(f"pass@{k}") or 0.0 for g in GROUPS]
        cis = [s[g].get(f"pass@{k}_ci") or [v, v] for g, v in zip(GROUPS, values, strict=True)]
        errors = [
            [max(v - ci[0], 0.0) for v, ci in zip(values, cis, strict=True)],
            [max(ci[1] - v, 0.0) for v, ci in zip(values, cis, strict=True)],
        ]
        xs = [x + i * width for x in range(len(GROUPS))]
        bars = ax.bar(xs, values, width, label=name, yerr=errors, capsize=3, ecolor="0.3")
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks([x + width * (len(models) - 1) / 2 for x in range(len(GROUPS))])
    ax.set_xticklabels(["total", "intro", "interview", "comp"])
    ax.set_title(f"pass@{k}")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)


def plot_pass_at_k(data: dict[str, Any], path: Path) -> None:
    """One panel per k: a bar per (group, model), the 95% CI as an error bar."""
    plt = _pyplot()
    ks = data["ks"]
    fig, axes = plt.subplots(1, len(ks), figsize=(4.5 * len(ks), 4), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        _bars(ax, data, k)
    axes[0][0].set_ylabel("pass@k (bars: 95% bootstrap CI)")
    axes[0][0].legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buffer.getvalue(), durable=False)  # whole, even with two reports at once


def loss_curve_png(trainer_log: list[dict[str, Any]]) -> bytes | None:
    """The training loss per logged step (LlamaFactory's trainer_log.jsonl) as PNG bytes."""
    points = [
        (r["current_steps"], r["loss"])
        for r in trainer_log
        if isinstance(r.get("current_steps"), (int, float))
        and isinstance(r.get("loss"), (int, float))
    ]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(
        [p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 50 else None
    )
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("training loss (trainer_log.jsonl)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
