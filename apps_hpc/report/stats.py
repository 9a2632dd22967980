"""The report's statistics: pure functions of per-problem (n, c) counts.

- pass@k of a problem: the unbiased estimator (`apps_hpc.core.metrics.pass_at_k`); a group's
  pass@k is the mean over its problems.
- 95% confidence interval of a group's pass@k: percentile bootstrap over problems
  (problems resampled with replacement, `Bootstrap.resamples` times, a seeded generator).
  It describes how the figure would move on another draw of problems of the same kind,
  sampling noise of the n programs included (each problem's estimate moves with it).
- Paired Δ of model B over model A on the same problems: the mean of the per-problem
  differences; its CI is the percentile bootstrap of that mean (both models' values of a
  problem resampled together); its p-value is a two-sided paired sign-flip randomization
  test (H0: the two models are exchangeable on every problem, so each difference is as
  likely to have either sign).
- "Solved" means at least one of a problem's n programs passes (c > 0).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from apps_hpc.core.metrics import pass_at_k

_CHUNK = 256  # resamples per block: bounds memory at 256 x problems floats


@dataclass(frozen=True)
class Bootstrap:
    """How intervals and p-values are computed; stated in every report."""

    resamples: int = 2000
    seed: int = 0
    level: float = 0.95

    def describe(self) -> str:
        return (
            f"{self.level:.0%} CI: percentile bootstrap over problems, {self.resamples} "
            f"resamples, seed {self.seed}; paired Δ: the same bootstrap on per-problem "
            f"differences, p-value from a two-sided paired sign-flip test ({self.resamples} "
            f"flips)"
        )


@dataclass(frozen=True)
class Delta:
    """Model B minus model A over `problems` common problems."""

    delta: float
    low: float
    high: float
    p_value: float
    problems: int


def pass_at_k_values(counts: Sequence[tuple[int, int]], k: int) -> np.ndarray:
    """pass@k of each problem, in order."""
    return np.array([pass_at_k(n, c, k) for n, c in counts], dtype=float)


def _blocks(total: int) -> Iterator[int]:
    done = 0
    while done < total:
        size = min(_CHUNK, total - done)
        yield size
        done += size


def resampled_means(values: np.ndarray, boot: Bootstrap) -> np.ndarray:
    """The mean of `values` over `boot.resamples` bootstrap resamples (seeded)."""
    rng = np.random.default_rng(boot.seed)
    size = len(values)
    means = [
        values[rng.integers(0, size, (block, size))].mean(axis=1)
        for block in _blocks(boot.resamples)
    ]
    return np.concatenate(means)


def _interval(means: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(values: np.ndarray, boot: Bootstrap) -> tuple[float, float] | None:
    """Percentile interval of the mean over problems; None without problems."""
    if len(values) == 0:
        return None
    return _interval(resampled_means(values, boot), boot.level)


def sign_flip_p(diffs: np.ndarray, boot: Bootstrap) -> float:
    """Two-sided p-value of mean(diffs) = 0 by random sign flips (seeded), with the
    observed statistic counted among the flips, so it is never 0."""
    observed = abs(float(diffs.mean()))
    rng = np.random.default_rng(boot.seed + 1)
    size, extreme = len(diffs), 0
    for block in _blocks(boot.resamples):
        signs = rng.integers(0, 2, (block, size)) * 2.0 - 1.0
        flipped = np.abs(signs @ diffs) / size
        extreme += int(np.count_nonzero(flipped >= observed - 1e-12))
    return (1 + extreme) / (1 + boot.resamples)


def paired_delta(a: np.ndarray, b: np.ndarray, boot: Bootstrap) -> Delta | None:
    """Δ = mean(b - a) over problems given in the same order in both; None when empty."""
    if len(a) != len(b):
        raise ValueError(f"paired values need the same problems, got {len(a)} and {len(b)}")
    if len(a) == 0:
        return None
    diffs = b - a
    low, high = _interval(resampled_means(diffs, boot), boot.level)
    return Delta(float(diffs.mean()), low, high, sign_flip_p(diffs, boot), len(diffs))


def solved_only(a: Sequence[int], b: Sequence[int]) -> tuple[list[int], list[int]]:
    """Indexes of the problems solved (c > 0) only by A, and only by B; same order in both."""
    only_a = [i for i, (ca, cb) in enumerate(zip(a, b, strict=True)) if ca > 0 and cb == 0]
    only_b = [i for i, (ca, cb) in enumerate(zip(a, b, strict=True)) if cb > 0 and ca == 0]
    return only_a, only_b
