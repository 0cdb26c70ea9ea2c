"""Tests for samplescale.metrics: exact values, brute-force comparisons, properties."""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from samplescale.errors import ConfigError
from samplescale.metrics import (
    bootstrap_interval,
    clopper_pearson_interval,
    maj_at_k,
    mean_with_interval,
    pass_at_k,
    wilson_interval,
)

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


# ----------------------------------------------------------------------------- brute force


def brute_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Fraction of k-subsets of n samples (the first c correct) with a correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    hits = sum(any(i < c for i in subset) for subset in subsets)
    return Fraction(hits, len(subsets))


def _winner_in_order(order: tuple) -> object:
    """Majority vote with ties broken by the earliest first occurrence in ``order``."""
    votes = Counter(label for label in order if label is not None)
    if not votes:
        return None
    top = max(votes.values())
    tied = {label for label, count in votes.items() if count == top}
    return next(label for label in order if label in tied)


def brute_maj_orders(labels: list, correct: object, k: int) -> Fraction:
    """maj@k by enumerating every k-subset and every order of it (first-seen tie rule)."""
    total = Fraction(0)
    subsets = list(itertools.combinations(range(len(labels)), k))
    for subset in subsets:
        orders = list(itertools.permutations([labels[i] for i in subset]))
        wins = sum(_winner_in_order(order) == correct for order in orders)
        total += Fraction(wins, len(orders))
    return total / len(subsets) if correct is not None else Fraction(0)


def brute_maj_one_over_t(labels: list, correct: object, k: int) -> Fraction:
    """maj@k by enumerating every k-subset, giving the correct class 1/t in a t-way tie."""
    if correct is None:
        return Fraction(0)
    total = Fraction(0)
    subsets = list(itertools.combinations(range(len(labels)), k))
    for subset in subsets:
        votes = Counter(labels[i] for i in subset if labels[i] is not None)
        if not votes:
            continue
        top = max(votes.values())
        tied = [label for label, count in votes.items() if count == top]
        if correct in tied:
            total += Fraction(1, len(tied))
    return total / len(subsets)


# ----------------------------------------------------------------------------- pass@k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 4, 1.0),
        (4, 1, 2, 0.5),
        (4, 1, 1, 0.25),
        (4, 2, 2, 5 / 6),  # 1 - C(2,2)/C(4,2) = 1 - 1/6
        (10, 3, 1, 0.3),
        (5, 5, 3, 1.0),
        (2000, 2, 1000, 2999 / 3998),
    ],
)
def test_pass_at_k_hand_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == expected


def test_pass_at_k_large_pool_value() -> None:
    assert pass_at_k(2000, 2, 1000) == pytest.approx(0.7501250625, abs=1e-10)
    assert pass_at_k(2000, 2, 1000) == float(Fraction(2999, 3998))


def test_pass_at_k_zero_correct_is_exactly_zero() -> None:
    for n, k in [(1, 1), (10, 5), (10_000, 10_000), (10**6, 3)]:
        assert pass_at_k(n, 0, k) == 0.0


def test_pass_at_k_huge_pool_is_finite_and_exact() -> None:
    # Floating binomials would overflow here (C(10**5, 5*10**4) ~ 10**30100).
    value = pass_at_k(100_000, 7, 50_000)
    assert math.isfinite(value)
    expected = 1 - Fraction(math.comb(100_000 - 7, 50_000), math.comb(100_000, 50_000))
    assert value == float(expected)
    assert pass_at_k(10**6, 1, 1) == 1e-6


@pytest.mark.parametrize(
    ("n", "c", "k"),
    [(2, 0, 5), (99, 0, 100), (5, 1, 0), (5, 1, -1), (5, -1, 2), (5, 6, 2), (0, 0, 1)],
)
def test_pass_at_k_invalid_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ConfigError):
        pass_at_k(n, c, k)


def test_pass_at_k_error_messages_name_the_argument() -> None:
    with pytest.raises(ConfigError, match="n must be >= k"):
        pass_at_k(2, 0, 5)
    with pytest.raises(ConfigError, match=r"k must be >= 1"):
        pass_at_k(3, 1, 0)
    with pytest.raises(ConfigError, match=r"c must be in \[0, n\]"):
        pass_at_k(3, 4, 1)
    with pytest.raises(ConfigError, match="k must be an integer"):
        pass_at_k(3, 1, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        pass_at_k(3, -1, 1)


def test_pass_at_k_accepts_numpy_integers() -> None:
    assert pass_at_k(np.int64(4), np.int32(1), np.int64(2)) == 0.5


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_pass_at_k_matches_brute_force(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 9))
    k = data.draw(st.integers(1, n))
    c = data.draw(st.integers(0, n))
    assert pass_at_k(n, c, k) == float(brute_pass_at_k(n, c, k))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_pass_at_k_monotone_and_bounded(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 400))
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    value = pass_at_k(n, c, k)
    assert 0.0 <= value <= 1.0
    if k < n:
        assert pass_at_k(n, c, k + 1) >= value
    if c < n:
        assert pass_at_k(n, c + 1, k) >= value
    assert pass_at_k(n, c, 1) == pytest.approx(c / n, rel=1e-15, abs=0)


# ----------------------------------------------------------------------------- maj@k


@pytest.mark.parametrize(
    ("labels", "correct", "k", "expected"),
    [
        (["a", "a", "b"], "a", 1, Fraction(2, 3)),
        (["a", "a", "b"], "a", 2, Fraction(2, 3)),  # 1/3 * 1 + 2/3 * 1/2
        (["a", "a", "b"], "a", 3, Fraction(1)),
        (["a", "a", "b"], "b", 2, Fraction(1, 3)),  # two {a,b} ties at 1/2 each
        (["a", "b", None], "a", 2, Fraction(1, 2)),  # {a,b}: 1/2, {a,None}: 1, {b,None}: 0
        (["a", "b", None], "a", 3, Fraction(1, 2)),
        (["a", "b", "c"], "a", 3, Fraction(1, 3)),  # three-way tie
        (["a", "a", "b", "b", "c"], "a", 4, Fraction(1, 2)),  # (2 * 1 + 1/2) / 5
        ([None, None, "a"], "a", 1, Fraction(1, 3)),
        ([None, None, "a"], "a", 2, Fraction(2, 3)),  # all-None subset selects nothing
        ([None, None], "a", 2, Fraction(0)),
        (["a", "a", "b"], "z", 2, Fraction(0)),  # correct class absent
        (["a", "a", "b"], None, 2, Fraction(0)),  # no reference answer
        ([1, 1, (2, 3), (2, 3), (2, 3)], (2, 3), 5, Fraction(1)),  # any hashable
    ],
)
def test_maj_at_k_hand_values(labels: list, correct: object, k: int, expected: Fraction) -> None:
    assert maj_at_k(labels, correct, k) == float(expected)


@pytest.mark.parametrize(("labels", "k"), [(["a", "b"], 0), (["a", "b"], 3), ([], 1), (["a"], -1)])
def test_maj_at_k_invalid_k(labels: list, k: int) -> None:
    with pytest.raises(ConfigError, match=r"k must be in \[1, N\]"):
        maj_at_k(labels, "a", k)


def test_maj_at_k_rejects_non_integer_k() -> None:
    with pytest.raises(ConfigError, match="k must be an integer"):
        maj_at_k(["a", "b"], "a", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        maj_at_k(["a", "b"], None, 5)  # k is checked even without a reference answer
    with pytest.raises(ConfigError, match="hashable"):
        maj_at_k([["a"], ["b"]], "a", 1)


label_pools = st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=7)


@settings(max_examples=150, deadline=None)
@given(labels=label_pools, correct=st.sampled_from(["a", "b", "c", "d", None]), data=st.data())
def test_maj_at_k_matches_brute_force_over_orders(
    labels: list, correct: object, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, len(labels)))
    expected = brute_maj_orders(labels, correct, k)
    assert expected == brute_maj_one_over_t(labels, correct, k)  # the 1/t rule holds
    assert maj_at_k(labels, correct, k) == float(expected)


@settings(max_examples=150, deadline=None)
@given(
    labels=st.lists(st.sampled_from([0, 1, 2, 3, 4, None]), min_size=1, max_size=11),
    correct=st.sampled_from([0, 1, 2]),
    data=st.data(),
)
def test_maj_at_k_matches_brute_force_larger_pools(
    labels: list, correct: int, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, len(labels)))
    assert maj_at_k(labels, correct, k) == float(brute_maj_one_over_t(labels, correct, k))


@settings(max_examples=100, deadline=None)
@given(n_correct=st.integers(0, 40), n_none=st.integers(0, 40), data=st.data())
def test_maj_at_k_without_rivals_equals_pass_at_k(
    n_correct: int, n_none: int, data: st.DataObject
) -> None:
    # With only correct and unlabelled samples the vote is right iff a correct one is drawn.
    size = n_correct + n_none
    if size == 0:
        return
    k = data.draw(st.integers(1, size))
    labels = ["x"] * n_correct + [None] * n_none
    shuffled = data.draw(st.permutations(labels))
    assert maj_at_k(shuffled, "x", k) == pass_at_k(size, n_correct, k)


@settings(max_examples=100, deadline=None)
@given(labels=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=60))
def test_maj_at_1_is_the_correct_fraction(labels: list) -> None:
    assert maj_at_k(labels, "a", 1) == labels.count("a") / len(labels)


def test_maj_at_k_is_order_invariant_and_classes_sum_to_at_most_one() -> None:
    rng = np.random.default_rng(7)
    labels = [None if x == 5 else f"ans{x}" for x in rng.integers(0, 6, size=40)]
    for k in (1, 4, 13, 40):
        values = [maj_at_k(labels, f"ans{j}", k) for j in range(5)]
        none_drawn = 0.0 if labels.count(None) < k else math.comb(labels.count(None), k)
        p_nothing = none_drawn / math.comb(len(labels), k)
        # Every subset with a vote selects exactly one class.
        assert math.fsum(values) == pytest.approx(1.0 - p_nothing, rel=1e-12)
        assert maj_at_k(labels[::-1], "ans0", k) == values[0]


def test_maj_at_k_large_pool_is_fast_and_sane() -> None:
    labels = ["a"] * 300 + ["b"] * 300 + [None] * 100
    assert maj_at_k(labels, "a", 350) == 0.5  # symmetric classes
    assert maj_at_k(["a"] * 60 + ["b"] * 40, "a", 100) == 1.0
    strong = maj_at_k(["a"] * 60 + ["b"] * 40, "a", 51)
    assert maj_at_k(["a"] * 60 + ["b"] * 40, "a", 1) == 0.6 < strong < 1.0


# ----------------------------------------------------------------------------- Wilson


def test_wilson_zero_of_25() -> None:
    lo, hi = wilson_interval(0, 25)
    assert lo == 0.0
    assert round(hi, 5) == 0.13319
    assert hi == pytest.approx(Z95**2 / (25 + Z95**2), rel=1e-12)


def test_wilson_all_successes_and_symmetry() -> None:
    lo, hi = wilson_interval(25, 25)
    assert hi == 1.0
    assert lo == pytest.approx(1 - 0.13319225, abs=1e-8)
    lo3, hi3 = wilson_interval(3, 10, 0.9)
    lo7, hi7 = wilson_interval(7, 10, 0.9)
    assert lo3 == pytest.approx(1 - hi7, abs=1e-12)
    assert hi3 == pytest.approx(1 - lo7, abs=1e-12)


def test_wilson_non_integer_successes() -> None:
    s, n = 2.5, 10
    p = s / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2))
    lo, hi = wilson_interval(s, n)
    assert lo == pytest.approx(centre - half, rel=1e-12)
    assert hi == pytest.approx(centre + half, rel=1e-12)
    # by hand: centre = 0.442073 / 1.384146 = 0.319383, half = 1.416011 * 0.168386 = 0.238436
    assert lo == pytest.approx(0.08095, abs=1e-5)
    assert hi == pytest.approx(0.55782, abs=1e-5)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_wilson_matches_scipy_for_integer_successes(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 2000))
    x = data.draw(st.integers(0, n))
    conf = data.draw(st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99, 0.999]))
    ci = stats.binomtest(x, n).proportion_ci(confidence_level=conf, method="wilson")
    lo, hi = wilson_interval(x, n, conf)
    assert lo == pytest.approx(ci.low, rel=1e-9, abs=1e-12)
    assert hi == pytest.approx(ci.high, rel=1e-9, abs=1e-12)
    assert 0.0 <= lo <= x / n <= hi <= 1.0


@pytest.mark.parametrize(
    ("successes", "n", "confidence", "match"),
    [
        (0, 0, 0.95, "n must be >= 1"),
        (-0.1, 10, 0.95, r"successes must be in \[0, n\]"),
        (10.5, 10, 0.95, r"successes must be in \[0, n\]"),
        (float("nan"), 10, 0.95, r"successes must be in \[0, n\]"),
        (3, 10, 0.0, r"confidence must be in \(0, 1\)"),
        (3, 10, 1.0, r"confidence must be in \(0, 1\)"),
        (3, 10, float("nan"), r"confidence must be in \(0, 1\)"),
        (3, 2.5, 0.95, "n must be an integer"),
    ],
)
def test_wilson_invalid_arguments(successes: float, n: int, confidence: float, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        wilson_interval(successes, n, confidence)


def _wilson_by_formula(s: float, n: int, z: float) -> tuple[float, float]:
    p = s / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


@pytest.mark.parametrize("confidence", [1 - 1e-16, 1 - 1e-15, 1 - 1e-12])
def test_wilson_confidence_next_to_one_is_finite(confidence: float) -> None:
    # 1 - (1 - c) / 2 rounds to 1.0 for c = 1 - 1e-16: z was inf, the interval (nan, nan).
    z = stats.norm.isf((1 - confidence) / 2)
    assert 7.0 < z < 8.5
    lo, hi = wilson_interval(1, 10, confidence=confidence)
    expected = _wilson_by_formula(1, 10, z)
    assert lo == pytest.approx(expected[0], rel=1e-12)
    assert hi == pytest.approx(expected[1], rel=1e-12)
    wlo, whi = wilson_interval(1, 10, confidence=0.999999)
    assert 0.0 < lo < wlo < 0.1 < whi < hi < 1.0
    out = mean_with_interval([0.5, 0.5, 0.5], confidence=confidence)
    assert 0.0 < out["lo"] < out["mean"] == 0.5 < out["hi"] < 1.0


@pytest.mark.parametrize("confidence", [1e-300, 5e-324, 1e-17, np.nextafter(1.0, 0.0)])
@pytest.mark.parametrize(("successes", "n"), [(0, 7), (3, 7), (7, 7), (2.5, 7), (1, 1)])
def test_wilson_never_nan(confidence: float, successes: float, n: int) -> None:
    lo, hi = wilson_interval(successes, n, confidence=confidence)
    assert 0.0 <= lo <= successes / n <= hi <= 1.0


def test_wilson_huge_n() -> None:
    # float(10**400) overflowed; p, z^2/n, ... now come from exact ratios.
    assert wilson_interval(10**400, 10**401) == (0.1, 0.1)  # half-width ~ 1e-201
    assert wilson_interval(0, 10**500) == (0.0, 0.0)
    assert wilson_interval(10**500, 10**500) == (1.0, 1.0)
    lo, hi = wilson_interval(Fraction(10**400, 3), 10**401)
    assert lo == hi == pytest.approx(1 / 30, rel=1e-15)
    # n = 10**21 still fits a float: compare with the plain-float formula
    lo, hi = wilson_interval(10**20, 10**21)
    exp_lo, exp_hi = _wilson_by_formula(1e20, 10**21, Z95)
    assert (hi - lo) / 2 == pytest.approx(Z95 * math.sqrt(0.09 / 1e21), rel=1e-6)
    assert lo == pytest.approx(exp_lo, rel=1e-15) and hi == pytest.approx(exp_hi, rel=1e-15)
    with pytest.raises(ConfigError, match=r"successes must be in \[0, n\]"):
        wilson_interval(10**401 + 1, 10**401)


def test_wilson_successes_types() -> None:
    assert wilson_interval(Fraction(5, 2), 10) == wilson_interval(2.5, 10)
    assert wilson_interval(np.int64(3), np.int64(10)) == wilson_interval(3, 10)
    assert wilson_interval(np.float32(2.5), 10) == wilson_interval(2.5, 10)
    for bad in (float("inf"), -float("inf"), "3", None, True):
        with pytest.raises(ConfigError, match="successes must be"):
            wilson_interval(bad, 10)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- Clopper-Pearson


def test_clopper_pearson_zero_of_25() -> None:
    lo, hi = clopper_pearson_interval(0, 25)
    assert lo == 0.0
    assert round(hi, 5) == 0.13719
    assert hi == pytest.approx(1 - 0.025 ** (1 / 25), rel=1e-10)  # closed form at x = 0


@pytest.mark.parametrize(("x", "n", "conf"), [(1, 10, 0.95), (7, 30, 0.9), (50, 100, 0.99)])
def test_clopper_pearson_beta_quantiles(x: int, n: int, conf: float) -> None:
    alpha = 1 - conf
    lo, hi = clopper_pearson_interval(x, n, conf)
    assert lo == pytest.approx(stats.beta.ppf(alpha / 2, x, n - x + 1), rel=1e-9)
    assert hi == pytest.approx(stats.beta.ppf(1 - alpha / 2, x + 1, n - x), rel=1e-9)
    wlo, whi = wilson_interval(x, n, conf)
    assert lo <= wlo and whi <= hi  # the exact interval is the wider one here


def test_clopper_pearson_invalid_arguments() -> None:
    with pytest.raises(ConfigError, match="n must be >= 1"):
        clopper_pearson_interval(0, 0)
    with pytest.raises(ConfigError, match=r"successes must be in \[0, n\]"):
        clopper_pearson_interval(11, 10)
    with pytest.raises(ConfigError, match="successes must be an integer"):
        clopper_pearson_interval(2.5, 10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="confidence"):
        clopper_pearson_interval(2, 10, 1.5)
    with pytest.raises(ConfigError, match=r"n must be in \[1, 2\*\*63 - 1\]"):
        clopper_pearson_interval(10**20, 10**21)  # scipy raised a raw TypeError


def test_clopper_pearson_extreme_confidence_is_finite() -> None:
    lo, hi = clopper_pearson_interval(1, 10, 1 - 1e-16)
    assert lo == 0.0 or 0.0 < lo < 0.1
    assert 0.1 < hi < 1.0
    lo, hi = clopper_pearson_interval(2**61, 2**62)
    assert lo < 0.5 < hi and hi - lo < 1e-8


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_constant_values_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bootstrap_interval([0.4] * 30, rng=np.random.default_rng(0)) == (0.4, 0.4)
        assert bootstrap_interval([1.0], rng=np.random.default_rng(0)) == (1.0, 1.0)


def test_bootstrap_nearly_constant_values_are_finite() -> None:
    values = np.zeros(40)
    values[0] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi = bootstrap_interval(values, rng=np.random.default_rng(3))
    assert lo == 0.0
    assert 0.025 <= hi <= 0.1  # percentiles of (number of draws of the 1) / 40


def test_bootstrap_is_reproducible_and_reasonable() -> None:
    values = np.random.default_rng(1).random(200)
    a = bootstrap_interval(values, n_resamples=3000, rng=np.random.default_rng(42))
    b = bootstrap_interval(values, n_resamples=3000, rng=np.random.default_rng(42))
    assert a == b
    mean = values.mean()
    se = values.std(ddof=1) / math.sqrt(values.size)
    lo, hi = a
    assert lo < mean < hi
    assert lo == pytest.approx(mean - Z95 * se, abs=0.25 * se)
    assert hi == pytest.approx(mean + Z95 * se, abs=0.25 * se)
    narrow = bootstrap_interval(
        values, confidence=0.5, n_resamples=3000, rng=np.random.default_rng(42)
    )
    assert lo < narrow[0] < narrow[1] < hi


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ([], {}, "non-empty"),
        ([[0.1, 0.2]], {}, "1-D"),
        ([0.1, float("nan")], {}, "finite"),
        ([0.1, 0.2], {"confidence": 1.0}, "confidence"),
        ([0.1, 0.2], {"n_resamples": 0}, "n_resamples must be >= 1"),
    ],
)
def test_bootstrap_invalid_arguments(values: list, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        bootstrap_interval(values, rng=np.random.default_rng(0), **kwargs)


def test_bootstrap_values_near_the_float_limit() -> None:
    # The resampled means overflowed to inf - inf: the interval was (nan, nan).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lo, hi = bootstrap_interval([1e308, -1e308, 1e308], rng=np.random.default_rng(0))
        assert -1e308 <= lo <= hi <= 1e308
        big = np.finfo(np.float64).max
        lo, hi = bootstrap_interval([big] * 5 + [0.0], rng=np.random.default_rng(0))
        assert 0.0 < lo <= hi <= big


def test_bootstrap_scaling_is_exact() -> None:
    # Scaling by a power of two changes no digit: the interval of 2**k * v is 2**k times
    # the interval of v, for the same generator state.
    values = np.random.default_rng(7).normal(size=50)
    lo, hi = bootstrap_interval(values, n_resamples=500, rng=np.random.default_rng(1))
    big_lo, big_hi = bootstrap_interval(
        values * 2.0**1000, n_resamples=500, rng=np.random.default_rng(1)
    )
    assert (big_lo, big_hi) == (lo * 2.0**1000, hi * 2.0**1000)
    mean = values.mean()
    assert lo < mean < hi


def test_bootstrap_requires_a_generator() -> None:
    with pytest.raises(ConfigError, match="rng must be a numpy.random.Generator"):
        bootstrap_interval([0.1, 0.2], rng=0)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- mean + interval


def test_mean_with_interval_uses_wilson_on_the_sum() -> None:
    values = [0.5, 1.0, 0.0, 0.25]
    out = mean_with_interval(values)
    assert set(out) == {"mean", "lo", "hi"}
    assert out["mean"] == 0.4375
    lo, hi = wilson_interval(1.75, 4)
    assert (out["lo"], out["hi"]) == (lo, hi)
    assert all(isinstance(v, float) for v in out.values())


def test_mean_with_interval_binary_values() -> None:
    out = mean_with_interval(np.zeros(25), confidence=0.95)
    assert out == {"mean": 0.0, "lo": 0.0, "hi": pytest.approx(0.13319225, abs=1e-8)}
    out = mean_with_interval(np.ones(25), confidence=0.95)
    assert out["mean"] == 1.0 and out["hi"] == 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=100))
def test_mean_with_interval_brackets_the_mean(values: list) -> None:
    out = mean_with_interval(values)
    assert 0.0 <= out["lo"] <= out["mean"] <= out["hi"] <= 1.0


@pytest.mark.parametrize(
    ("values", "match"),
    [([], "non-empty"), ([1.5], r"\[0, 1\]"), ([-0.1, 0.5], r"\[0, 1\]"), ([np.inf], "finite")],
)
def test_mean_with_interval_invalid_values(values: list, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        mean_with_interval(values)
