"""Small-sample intervals: hand-computed values and seeded coverage simulations.

The coverage figures (2000 synthetic benchmarks per cell) are in benchmarks/RESULTS.md (k),
from benchmarks/bench_interval_coverage.py; these tests rerun cells with 600 benchmarks
each (Monte Carlo sd about 0.009 at 95%) and assert margins of about 2.5 sd.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from samplescale.analysis.intervals import clopper_pearson_interval
from samplescale.analysis.small_sample import (
    beta_posterior_interval,
    clustered_interval,
    effective_trials,
    jeffreys_interval,
    normal_interval,
)
from samplescale.errors import ConfigError
from samplescale.metrics import pass_at_k

REPS = 600


def test_beta_posterior_is_the_beta_quantiles() -> None:
    # uniform prior, 7 of 10: posterior Beta(8, 4)
    lo, hi = beta_posterior_interval(7, 10)
    assert lo == pytest.approx(stats.beta.ppf(0.025, 8, 4), abs=1e-12)
    assert hi == pytest.approx(stats.beta.ppf(0.975, 8, 4), abs=1e-12)
    # 0 of 1 under Beta(1, 1): posterior Beta(1, 2), cdf 1 - (1 - x)**2, so the 2.5%
    # quantile is 1 - sqrt(0.975) = 0.012579 and the 97.5% one 1 - sqrt(0.025) = 0.841886
    lo, hi = beta_posterior_interval(0, 1)
    assert (lo, hi) == pytest.approx((0.012579, 0.841886), abs=1e-6)
    with pytest.raises(ConfigError, match="prior"):
        beta_posterior_interval(1, 2, prior=(0.0, 1.0))
    with pytest.raises(ConfigError, match=r"successes must be in \[0, n\]"):
        beta_posterior_interval(3, 2)


def test_jeffreys_boundary_rule() -> None:
    lo, hi = jeffreys_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(stats.beta.ppf(0.975, 0.5, 20.5), abs=1e-12)
    lo, hi = jeffreys_interval(20, 20)
    assert hi == 1.0 and lo == pytest.approx(stats.beta.ppf(0.025, 20.5, 0.5), abs=1e-12)


def test_clt_interval_collapses_where_the_others_do_not() -> None:
    ones = np.ones(20)
    assert normal_interval(ones) == (1.0, 1.0)
    lo, hi = clustered_interval(ones)
    assert hi == 1.0 and lo < 0.9
    assert effective_trials(ones) == 20.0


def test_effective_trials_of_binary_values_is_p_minus_one() -> None:
    # m (1 - m) / (s^2 / P) with s^2 = P m (1 - m) / (P - 1)  ->  P - 1
    v = np.array([1.0] * 6 + [0.0] * 14)
    assert effective_trials(v) == pytest.approx(19.0, rel=1e-12)


def test_clustered_interval_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match="P >= 2"):
        clustered_interval([0.5])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        clustered_interval([0.5, 1.5])
    with pytest.raises(ConfigError, match="method"):
        clustered_interval([0.5, 0.2], method="wald")  # type: ignore[arg-type]


def _coverage(draw, truth, interval, rng) -> float:
    hits = 0
    for _ in range(REPS):
        lo, hi = interval(draw(rng))
        hits += lo <= truth <= hi
    return hits / REPS


@pytest.mark.slow
@pytest.mark.parametrize("size", [20, 50, 100])
def test_accuracy_coverage_exact_and_bayesian_vs_clt(size: int) -> None:
    """True accuracy 0.95: Clopper-Pearson covers at least nominally at every P, the
    Jeffreys interval's coverage averaged over accuracies ~ U(0.85, 0.99) is within
    0.025 of 0.95, and the CLT interval under-covers (below 0.92) at each P."""
    rng = np.random.default_rng(size)
    p = 0.95

    def draw(r):
        return (r.random(size) < p).astype(float)

    table = [clopper_pearson_interval(x, size) for x in range(size + 1)]  # x takes P+1 values
    cp = _coverage(draw, p, lambda v: table[int(v.sum())], rng)
    clt = _coverage(draw, p, normal_interval, rng)
    assert cp >= 0.95 - 0.02
    assert clt < 0.92
    hits = 0
    for _ in range(REPS):
        q = rng.uniform(0.85, 0.99)
        lo, hi = jeffreys_interval(float(rng.binomial(size, q)), size)
        hits += lo <= q <= hi
    assert abs(hits / REPS - 0.95) < 0.025


SCENARIOS = {  # (a, b) of the Beta distribution of per-problem rates; 16 samples each
    "rare hard problems": (1.0, 0.1, 4, 0.9756),
    "spread difficulty": (0.3, 0.3, 4, 0.6706),
}


def _pass_draw(a: float, b: float, k: int, size: int):
    table = np.array([pass_at_k(16, c, k) for c in range(17)])
    return lambda r: table[r.binomial(16, r.beta(a, b, size))]


@pytest.mark.slow
@pytest.mark.parametrize("size", [20, 50, 100])
def test_pass_at_k_clustered_coverage_vs_clt(size: int) -> None:
    """pass@4 from 16-sample pools, per-problem rates ~ Beta(a, b); the true pass@4 is
    1 - B(a, b + 4) / B(a, b). The capped clustered interval covers at least nominally
    (>= 0.95 - 0.02) and not trivially (<= 0.999) in both scenarios at every P; the CLT
    interval under-covers (< 0.92) in the scenario with rare hard problems; the uncapped
    clustered interval is within 0.025 of 0.95 with spread difficulty and under-covers
    (< 0.92) with rare hard problems."""
    for name, (a, b, k, truth) in SCENARIOS.items():
        assert float(1 - np.exp(special.betaln(a, b + k) - special.betaln(a, b))) == (
            pytest.approx(truth, abs=1e-4)
        ), name
        draw = _pass_draw(a, b, k, size)
        rng = np.random.default_rng(size)
        capped = _coverage(draw, truth, clustered_interval, rng)
        assert 0.95 - 0.02 <= capped <= 0.999, (name, capped)
        uncapped = _coverage(draw, truth, lambda v: clustered_interval(v, cap=False), rng)
        if name == "spread difficulty":
            assert abs(uncapped - 0.95) < 0.025, (name, uncapped)
        else:
            assert uncapped < 0.92, (name, uncapped)
            assert _coverage(draw, truth, normal_interval, rng) < 0.92
