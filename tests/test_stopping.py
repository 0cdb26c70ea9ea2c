"""Stopping rules (samplescale.stopping) and their prices on a pool
(samplescale.analysis.stopping_price): hand computations, scipy, and brute force over all
orderings of small pools."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from samplescale.analysis.stopping_price import price_rule, simulate
from samplescale.analysis.stopping_records import price_records
from samplescale.errors import ConfigError
from samplescale.stopping import (
    answer_entropy,
    confidence_threshold,
    consensus_share,
    leader_probability,
    lowest_group_confidence,
    window_unanimous,
)
from samplescale.strategies import ESC, AdaptiveConsistency, ConfidenceStop, SemanticEntropy


def test_leader_probability_beta_closed_form_by_hand():
    # one unanimous class of v votes, uniform prior: P(Beta(v+1, 1) > 1/2) = 1 - 2^-(v+1)
    for v in range(6):
        assert leader_probability([v]) == pytest.approx(1 - 0.5 ** (v + 1), abs=1e-12)
    # 3 vs 1: P(Beta(4, 2) > 1/2) = 1 - I_{1/2}(4, 2) = 1 - 6/32 = 13/16
    assert leader_probability([3, 1]) == pytest.approx(13 / 16, abs=1e-12)
    assert leader_probability([1, 3]) == pytest.approx(13 / 16, abs=1e-12)  # leader is any order
    assert leader_probability([2, 2]) == pytest.approx(0.5, abs=1e-12)
    assert leader_probability([3, 1], prior=0.5) == pytest.approx(
        stats.beta.sf(0.5, 3.5, 1.5), abs=1e-12)


def test_leader_probability_dirichlet_by_hand_and_by_monte_carlo():
    # Dirichlet(1,1,1): by symmetry 1/3. Counts (1, 0, 0) give Dirichlet(2, 1, 1):
    # P(G1 > max(G2, G3)) with G1 ~ Gamma(2), G2, G3 ~ Exp(1)
    # = int x e^-x (1 - e^-x)^2 dx = 1 - 2/4 + 1/9 = 11/18.
    assert leader_probability([0, 0, 0]) == pytest.approx(1 / 3, abs=1e-9)
    assert leader_probability([1, 0, 0]) == pytest.approx(11 / 18, abs=1e-9)
    counts = [5, 3, 1, 1]
    rng = np.random.default_rng(0)
    draws = rng.dirichlet(np.array(counts) + 1.0, size=200_000)
    mc = float(np.mean(draws.argmax(axis=1) == 0))
    se = math.sqrt(mc * (1 - mc) / len(draws))
    assert abs(leader_probability(counts) - mc) < 4 * se


def test_leader_probability_refuses_bad_input():
    with pytest.raises(ConfigError, match="prior must be a finite number in"):
        leader_probability([1, 2], prior=0)
    with pytest.raises(ConfigError, match="counts must be >= 0"):
        leader_probability([1, -2])


def test_entropy_window_and_confidence_by_hand():
    assert answer_entropy([4]) == 0.0
    assert answer_entropy([2, 2]) == pytest.approx(math.log(2))
    assert answer_entropy([3], unanswered=1) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert answer_entropy([7, 1]) == pytest.approx(0.3767702, abs=1e-6)
    assert window_unanimous([1, 1, 1]) and not window_unanimous([1, 1, 2])
    assert not window_unanimous([None, None]) and not window_unanimous([])
    lp = [-0.1, -0.1, -2.0, -0.3, -0.1]
    # windows of 2: means -0.1, -1.05, -1.15, -0.2 -> lowest -1.15
    assert lowest_group_confidence(lp, 2) == pytest.approx(-1.15)
    assert lowest_group_confidence(lp, 10) == pytest.approx(-2.6 / 5)  # shorter: one group
    assert lowest_group_confidence([], 3) == -math.inf
    # warm-up [-1, -0.5, -0.2, -0.1]: keep 0.9 -> quantile 0.1 "lower" = -1; keep 0.1 -> -0.2
    warm = [-1.0, -0.5, -0.2, -0.1]
    assert confidence_threshold(warm, 0.9) == -1.0
    assert confidence_threshold(warm, 0.1) == -0.2
    assert consensus_share(["a", "b", None, "a"], [0.5, 1.0, 9.0, 0.5]) == ("a", 0.5)
    assert consensus_share(["a"], [0.0]) == (None, 0.0)
    with pytest.raises(ConfigError, match=r"keep must be in \(0, 1\]"):
        confidence_threshold(warm, 0.0)


POOLS = [
    ([0, 0, 1, 1, 2, None], 0),  # ties between the correct class and a wrong one
    ([0, 1, 1, 0, 0, 2], 0),
    ([0, 1, 2, 3, None, 1], 2),
    ([1, 1, 1, 0, 2], 0),
    ([0, 0, 0, 0], 0),
    ([0, 0, 1, 1, 2, 2], 0),  # exchangeable wrong classes of the correct class's size
    ([3, 1, 2, None, 0, 4], 2),
]
RULES = [
    ESC(window=2), ESC(window=3), AdaptiveConsistency(threshold=0.7),
    AdaptiveConsistency(threshold=0.8, round=2), SemanticEntropy(threshold=0.5, round=2),
    SemanticEntropy(threshold=0.0, round=3),
]


def _brute(rule, labels, correct, tokens, conf, budget):
    res = np.array([
        simulate(rule, [labels[i] for i in p], correct, [tokens[i] for i in p],
                 None if conf is None else [conf[i] for i in p], budget)
        for p in itertools.permutations(range(len(labels)))
    ])
    return res.mean(axis=0)


@pytest.mark.parametrize("labels,correct", POOLS)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.name}-{r.__dict__}")
def test_exact_price_equals_brute_force_over_all_orderings(labels, correct, rule):
    tokens = [10 * (i + 1) + i * i for i in range(len(labels))]
    for budget in sorted({len(labels), len(labels) - 1}):
        try:
            rule.check_budget(budget)
        except ConfigError:
            continue
        price = price_rule(rule, labels, correct, tokens, budget=budget)
        acc, used, toks = _brute(rule, labels, correct, tokens, None, budget)
        assert price.method == "exact"
        assert price.accuracy == pytest.approx(acc, abs=1e-12)
        assert price.samples == pytest.approx(used, abs=1e-12)
        assert price.tokens == pytest.approx(toks, abs=1e-9)


def test_monte_carlo_price_of_confidence_stop_is_within_four_standard_errors():
    labels, correct = [0, 0, 1, None, 0, 2], 0
    tokens = [10, 20, 30, 40, 50, 60]
    conf = [-0.1, -0.5, -0.2, -3.0, -0.05, -1.0]
    rule = ConfidenceStop(warmup=2, keep=0.5, consensus=0.8)
    acc, used, toks = _brute(rule, labels, correct, tokens, conf, 6)
    price = price_rule(rule, labels, correct, tokens, conf, rng=np.random.default_rng(3),
                       draws=3000)
    assert price.method == "monte-carlo" and price.accuracy_se > 0
    assert abs(price.accuracy - acc) < 4 * price.accuracy_se
    assert abs(price.samples - used) < 4 * price.samples_se
    assert abs(price.tokens - toks) < 4 * price.tokens_se


def test_a_pool_of_distinct_answers_is_priced_exactly_and_fast():
    labels = list(range(40))  # 40 singleton classes: 41 count states, not 2^40
    price = price_rule(AdaptiveConsistency(threshold=0.9), labels, 7, [1] * 40)
    # never settles (a leader with one vote among K >= 2 classes is unsure): all 40 drawn,
    # and the correct one wins a 40-way tie with probability 1/40
    assert price.samples == pytest.approx(40) and price.accuracy == pytest.approx(1 / 40)
    assert price.tokens == pytest.approx(40)


def test_unanimous_pool_stops_at_the_first_check():
    price = price_rule(AdaptiveConsistency(threshold=0.95), [0] * 8, 0, [5] * 8)
    assert (price.accuracy, price.samples, price.tokens) == (1.0, 4.0, 20.0)  # 1 - 2^-5 > .95
    price = price_rule(ESC(window=4), [0] * 8, 0)
    assert (price.accuracy, price.samples) == (1.0, 4.0)


def test_price_rule_refuses_bad_input():
    with pytest.raises(ConfigError, match=r"budget must be in \[1, N\] = \[1, 3\]"):
        price_rule(ESC(window=2), [0, 1, 0], 0, budget=4)
    with pytest.raises(ConfigError, match=r"window must be in \[1, N\] = \[1, 3\]"):
        price_rule(ESC(window=4), [0, 1, 0], 0)
    with pytest.raises(ConfigError, match="rng"):
        price_rule(ConfidenceStop(warmup=1), [0, 1], 0, confidences=[-1.0, -0.5])
    with pytest.raises(ConfigError, match="tokens has 1 values for 2 samples"):
        price_rule(ESC(window=1), [0, 1], 0, [3])


def _record(labels, correct, conf=True):
    return {"status": "ok", "n": len(labels), "labels": labels, "correct_label": correct,
            "samples": [{"tokens": 7, "status": "ok",
                         "lowest_group_confidence": -0.5 if conf else None} for _ in labels]}


def test_price_records_means_over_problems_and_skips_what_it_cannot_price():
    records = [_record([0, 0, 0, 0], 0), _record([0, 1, 2, 3], None, conf=False),
               {"status": "error", "id": "x"}]
    out = price_records(records, [ESC(window=2), ConfidenceStop(warmup=2)], draws=10)
    assert out["budget"] == 4 and out["problems"] == 3
    (esc,) = out["rules"]
    # problem 1: unanimous, 2 samples, correct; problem 2: never stops, 4 samples, wrong;
    # the error record counts as wrong
    assert esc["accuracy"]["mean"] == pytest.approx(1 / 3) and esc["samples"] == 3.0
    assert esc["tokens"] == 21.0 and esc["method"] == "exact" and esc["window"] == 2
    assert out["skipped"][0]["rule"] == "confidence-stop"
    assert "lowest_group_confidence" in out["skipped"][0]["reason"]
