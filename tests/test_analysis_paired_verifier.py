"""Paired comparison, verifier ceiling and compute accounting: hand-computed values and
synthetic pools with known rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from samplescale.analysis.compute import cost_per_problem
from samplescale.analysis.paired import compare_paired, mcnemar_exact
from samplescale.analysis.verifier import (
    best_of_n_model,
    best_of_n_pool,
    optimal_n,
    verifier_rates,
)
from samplescale.errors import ConfigError


def test_mcnemar_exact_by_hand() -> None:
    # 7 discordant problems, B wins 6: p = 2 * P(X <= 1), X ~ Bin(7, 1/2) = 2 * 8/128
    a = [1] + [0] * 6 + [1] * 5 + [0] * 3
    b = [0] + [1] * 6 + [1] * 5 + [0] * 3
    assert mcnemar_exact(a, b) == pytest.approx(16 / 128, abs=1e-12)
    assert mcnemar_exact([1, 0], [1, 0]) == 1.0
    with pytest.raises(ConfigError, match="0/1"):
        mcnemar_exact([0.5, 1], [1, 1])


def test_bayesian_paired_posterior_matches_the_dirichlet() -> None:
    """Counts (both, only A, only B, neither) = (5, 1, 6, 3): the posterior of
    p_onlyB - p_onlyA under Dirichlet(6, 2, 7, 4) has mean (7 - 2) / 19 = 0.263."""
    a = [1] * 5 + [1] + [0] * 6 + [0] * 3
    b = [1] * 5 + [0] + [1] * 6 + [0] * 3
    res = compare_paired(a, b, rng=np.random.default_rng(0), draws=50000)
    assert res.test == "exact McNemar"
    assert (res.only_a, res.only_b) == (1, 6)
    assert res.difference == pytest.approx(5 / 15)
    assert res.p_value == pytest.approx(16 / 128)
    rng = np.random.default_rng(1)
    d = rng.dirichlet([6, 2, 7, 4], 200000)
    delta = d[:, 2] - d[:, 1]
    assert res.prob_b_better == pytest.approx(float(np.mean(delta > 0)), abs=0.01)
    lo, hi = res.interval
    assert lo == pytest.approx(float(np.quantile(delta, 0.025)), abs=0.01)
    assert hi == pytest.approx(float(np.quantile(delta, 0.975)), abs=0.01)
    assert float(np.mean(delta)) == pytest.approx(5 / 19, abs=0.005)


def test_paired_rates_use_the_exact_permutation_test() -> None:
    # 4 problems, B higher on all by 0.25: the sign-flip test's exact two-sided p is
    # 2 / 2**4 = 0.125 (only all-positive and all-negative flips reach |mean| = 0.25)
    a = np.array([0.25, 0.5, 0.0, 0.5])
    res = compare_paired(a, a + 0.25, rng=np.random.default_rng(0))
    assert res.test == "paired permutation"
    assert res.p_value == pytest.approx(0.125)
    assert res.difference == pytest.approx(0.25)
    assert res.interval == pytest.approx((0.25, 0.25))


def test_verifier_rates_and_pool_best_of_n_by_hand() -> None:
    correct = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    accepted = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    r = verifier_rates(correct, accepted)
    assert (r.tpr, r.fpr) == (0.75, 1 / 6)
    assert r.tpr_interval == pytest.approx(
        (stats.beta.ppf(0.025, 3.5, 1.5), stats.beta.ppf(0.975, 3.5, 1.5)), abs=1e-9)
    # pool of 10 with 3 correct and 1 wrong accepted: at N = 2,
    # 3/4 * (1 - C(6, 2) / C(10, 2)) = 3/4 * (1 - 15/45) = 0.5
    assert best_of_n_pool([10], [3], [1], [2, 10]).tolist() == pytest.approx([0.5, 0.75])
    with pytest.raises(ConfigError, match=r"\[1, 10\]"):
        best_of_n_pool([10], [3], [1], [11])


def test_best_of_n_model_limit_and_synthetic_resampling() -> None:
    """Known TPR 0.9 and FPR 0.1 on problems with p in {0.6, 0.05}: the model's curve
    matches a simulated resample-until-accepted experiment within 0.01 (20000 problems),
    and the limit is the mean of p TPR / q: (0.54/0.58 + 0.045/0.14) / 2 = 0.626."""
    p = np.array([0.6, 0.05])
    acc, limit = best_of_n_model(p, 0.9, 0.1, [1, 4, 64])
    assert limit == pytest.approx((0.54 / 0.58 + 0.045 / 0.14) / 2, abs=1e-12)
    assert acc[0] == pytest.approx((0.54 + 0.045) / 2, abs=1e-12)  # N = 1: p TPR
    rng = np.random.default_rng(0)
    problems = rng.choice(p, 20000)
    for j, n in enumerate([1, 4, 64]):
        is_correct = rng.random((problems.size, n)) < problems[:, None]
        accept = np.where(is_correct, rng.random(is_correct.shape) < 0.9,
                          rng.random(is_correct.shape) < 0.1)
        first = np.argmax(accept, axis=1)
        got = accept.any(axis=1) & is_correct[np.arange(problems.size), first]
        assert float(got.mean()) == pytest.approx(acc[j], abs=0.01)


def test_optimal_n_is_interior_with_a_false_positive_cost() -> None:
    """Easy (p = 0.5) and hard (p = 0.01) problems, TPR 0.9, FPR 0.05, cost 1: the easy
    one's gain saturates while the hard one's loss keeps growing, so the optimum is
    interior; without a cost more samples always help (optimum at n_max)."""
    p = [0.5, 0.01]
    n_star, u = optimal_n(p, 0.9, 0.05, cost=1.0, n_max=200)
    assert 1 < n_star < 200
    assert u[n_star - 1] > u[0] and u[n_star - 1] > u[-1]
    # closed form at N = 1: mean(p TPR - cost (1 - p) FPR)
    assert u[0] == pytest.approx(np.mean([0.45 - 0.025, 0.009 - 0.0495]), abs=1e-12)
    assert optimal_n(p, 0.9, 0.05, cost=0.0, n_max=200)[0] == 200


def test_cost_per_problem_flops_and_dollars() -> None:
    recs = [
        {"status": "ok", "usage": {"prompt_tokens": 100, "completion_tokens": 300,
                                    "model_calls": 1, "scorer_calls": 4, "wall_time_s": 2.0}},
        {"status": "ok", "usage": {"prompt_tokens": 50, "completion_tokens": 100,
                                    "model_calls": 1, "scorer_calls": 0, "wall_time_s": 1.0}},
        {"status": "error", "id": "x"},
    ]
    c = cost_per_problem(recs, params=135e6, price_prompt=0.1, price_completion=0.4)
    assert (c.problems, c.prompt_tokens, c.completion_tokens) == (2, 75.0, 200.0)
    assert c.flops == pytest.approx(2 * 135e6 * 275)
    assert c.dollars == pytest.approx((75 * 0.1 + 200 * 0.4) / 1e6)
    half = c.scaled(0.5)
    assert half.completion_tokens == 100.0 and half.prompt_tokens == 75.0
    assert half.model_calls == 1.0  # one batched call draws any part of the pool
    assert c.scaled(1 / 16).scorer_calls == pytest.approx(2 / 16)
    assert half.flops == pytest.approx(2 * 135e6 * 175)
    assert half.dollars == pytest.approx((75 * 0.1 + 100 * 0.4) / 1e6)
    assert cost_per_problem(recs).flops is None
    with pytest.raises(ConfigError, match="both"):
        cost_per_problem(recs, price_prompt=1.0)
    assert math.isnan(verifier_rates([1, 1], [1, 0]).fpr)
