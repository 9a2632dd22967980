"""The report's statistics on seeded simulations whose true values are known."""

from __future__ import annotations

from math import lgamma

import numpy as np
import pytest

from apps_hpc.report.stats import (
    Bootstrap,
    bootstrap_ci,
    paired_delta,
    pass_at_k_values,
    sign_flip_p,
    solved_only,
)

N_SAMPLES = 10
A, B = 0.5, 2.0  # problem solve rates ~ Beta(A, B): many hard problems, a few easy ones


def true_pass_at_k(k: int, a: float = A, b: float = B) -> float:
    """E[1 - (1 - p)^k] for p ~ Beta(a, b) = 1 - B(a, b + k) / B(a, b)."""
    log_beta = lgamma(b + k) - lgamma(a + b + k) - (lgamma(b) - lgamma(a + b))
    return 1.0 - float(np.exp(log_beta))


def draw_counts(rng: np.random.Generator, rates: np.ndarray) -> list[tuple[int, int]]:
    return [(N_SAMPLES, int(c)) for c in rng.binomial(N_SAMPLES, rates)]


@pytest.mark.parametrize("k", [1, 5])
def test_bootstrap_ci_covers_the_true_pass_at_k_at_the_stated_rate(k: int) -> None:
    rng = np.random.default_rng(12345)
    truth, runs, covered, widths = true_pass_at_k(k), 400, 0, []
    for run in range(runs):
        values = pass_at_k_values(draw_counts(rng, rng.beta(A, B, 150)), k)
        low, high = bootstrap_ci(values, Bootstrap(resamples=400, seed=run))
        covered += low <= truth <= high
        widths.append(high - low)
    assert 0.92 <= covered / runs <= 0.98, covered / runs
    assert 0.02 < float(np.mean(widths)) < 0.3  # an interval, not a point or everything


def test_a_narrower_level_covers_less() -> None:
    """The check above can fail: a 50% interval covers about half the time."""
    rng = np.random.default_rng(7)
    truth, covered = true_pass_at_k(1), 0
    for run in range(200):
        values = pass_at_k_values(draw_counts(rng, rng.beta(A, B, 150)), 1)
        low, high = bootstrap_ci(values, Bootstrap(resamples=300, seed=run, level=0.5))
        covered += low <= truth <= high
    assert 0.38 <= covered / 200 <= 0.62


def test_paired_p_values_are_uniform_under_no_difference() -> None:
    rng = np.random.default_rng(2024)
    p_values = []
    for run in range(300):
        rates = rng.beta(A, B, 120)
        a = pass_at_k_values(draw_counts(rng, rates), 1)
        b = pass_at_k_values(draw_counts(rng, rates), 1)
        p_values.append(paired_delta(a, b, Bootstrap(resamples=300, seed=run)).p_value)
    p = np.sort(np.array(p_values))
    assert 0.02 <= float(np.mean(p < 0.05)) <= 0.09
    ks = float(np.max(np.abs(p - (np.arange(1, len(p) + 1) - 0.5) / len(p))))
    assert ks < 0.1, ks  # Kolmogorov-Smirnov distance to the uniform distribution


def test_paired_p_value_is_small_and_ci_excludes_zero_under_a_real_gain() -> None:
    rng = np.random.default_rng(99)
    for run in range(20):
        rates = rng.beta(A, B, 300)
        a = pass_at_k_values(draw_counts(rng, rates), 1)
        b = pass_at_k_values(draw_counts(rng, np.minimum(rates + 0.08, 1.0)), 1)
        d = paired_delta(a, b, Bootstrap(resamples=500, seed=run))
        assert d.p_value < 0.01 and d.low > 0 and d.delta == pytest.approx(np.mean(b - a))
        assert d.low <= d.delta <= d.high and d.problems == 300


def test_paired_delta_edge_cases() -> None:
    zeros = np.zeros(5)
    d = paired_delta(zeros, zeros, Bootstrap(resamples=50))
    assert (d.delta, d.low, d.high, d.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert paired_delta(np.array([]), np.array([]), Bootstrap()) is None
    with pytest.raises(ValueError, match="same problems"):
        paired_delta(zeros, np.zeros(4), Bootstrap())
    # every flip of a one-sided difference of 10 problems: p is 2/1024 in theory
    assert sign_flip_p(np.ones(10), Bootstrap(resamples=4000)) < 0.01


def test_bootstrap_is_seeded_and_the_seed_matters() -> None:
    values = pass_at_k_values([(10, c) for c in (0, 1, 3, 0, 10, 2, 0, 5)], 1)
    assert bootstrap_ci(values, Bootstrap(seed=3)) == bootstrap_ci(values, Bootstrap(seed=3))
    assert bootstrap_ci(values, Bootstrap(seed=3)) != bootstrap_ci(values, Bootstrap(seed=4))
    assert bootstrap_ci(np.array([]), Bootstrap()) is None


def test_solved_only_counts_problems_with_at_least_one_pass() -> None:
    assert solved_only([0, 3, 0, 1, 0], [2, 0, 0, 1, 10]) == ([1], [0, 4])
