"""Judge ranking: posterior ranks against exact Beta computations, and the identifiability
warning for three or more levels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from samplescale.analysis.judge import rank_by_judge
from samplescale.errors import ConfigError


def test_binary_prob_best_matches_the_exact_beta_integral() -> None:
    """A: 7 of 10 pass, B: 4 of 10. Posteriors Beta(8, 4) and Beta(5, 7);
    P(theta_A > theta_B) = integral of pdf_A(x) * cdf_B(x) dx."""
    scores = {"A": [1] * 7 + [0] * 3, "B": [1] * 4 + [0] * 6}
    exact, _ = integrate.quad(lambda x: stats.beta.pdf(x, 8, 4) * stats.beta.cdf(x, 5, 7), 0, 1)
    res = rank_by_judge(scores, 2, rng=np.random.default_rng(0), draws=40000)
    a, b = res.items
    assert (a.item, b.item) == ("A", "B")
    assert a.prob_best == pytest.approx(exact, abs=0.01)
    assert a.mean_rank == pytest.approx(1 + (1 - exact), abs=0.01)
    assert a.value == pytest.approx(8 / 12, abs=0.005)  # posterior mean of Beta(8, 4)
    lo, hi = a.value_interval
    assert lo == pytest.approx(stats.beta.ppf(0.025, 8, 4), abs=0.01)
    assert hi == pytest.approx(stats.beta.ppf(0.975, 8, 4), abs=0.01)
    assert a.rank_interval == (1, 2) and res.warnings == []


def test_clear_winner_has_a_tight_rank_interval() -> None:
    scores = {"good": [1] * 95 + [0] * 5, "mid": [1] * 50 + [0] * 50, "bad": [0] * 100}
    res = rank_by_judge(scores, 2, rng=np.random.default_rng(1))
    assert [r.item for r in res.items] == ["good", "mid", "bad"]
    assert [r.rank_interval for r in res.items] == [(1, 1), (2, 2), (3, 3)]


def test_three_levels_warn_and_name_the_pair_that_swaps_between_cuts() -> None:
    """X: always level 1 (never 0, never 2). Y: half 0, half 2. Same mean level, but
    P(score >= 1) ranks X first and P(score >= 2) ranks Y first."""
    scores = {"X": [1] * 40, "Y": [0] * 20 + [2] * 20}
    res = rank_by_judge(scores, 3, rng=np.random.default_rng(2))
    assert len(res.warnings) == 2
    assert "equally spaced" in res.warnings[0]
    assert "X / Y swap" in res.warnings[1]
    consistent = rank_by_judge({"X": [2] * 30 + [1] * 10, "Y": [0] * 20 + [1] * 20}, 3,
                               rng=np.random.default_rng(2))
    assert len(consistent.warnings) == 1  # the spacing caveat only


def test_bad_scores_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        rank_by_judge({"A": [0, 2], "B": [1]}, 2, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="at least 2"):
        rank_by_judge({"A": [0, 1]}, 2, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="levels must be >= 2"):
        rank_by_judge({"A": [0], "B": [0]}, 1, rng=np.random.default_rng(0))
