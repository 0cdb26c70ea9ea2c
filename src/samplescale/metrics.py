"""Evaluation metrics for sampling strategies: pass@k, maj@k and confidence intervals.

:func:`pass_at_k` and :func:`maj_at_k` are exact (integer combinatorics and
:class:`fractions.Fraction`, converted to ``float`` at the end), so no pool size can
overflow into ``inf / inf = nan``; intervals use :mod:`scipy.stats` where it has the
method. No function returns NaN: the Wilson interval is computed from exact ratios (any
``n``, any confidence in ``(0, 1)``), and the bootstrap works on values scaled by a power
of two (any finite values). Bad arguments raise
:class:`samplescale.errors.ConfigError` naming the argument and its valid range. No I/O.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from collections import Counter
from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from samplescale.errors import ConfigError, check_sequence

__all__ = [
    "bootstrap_interval",
    "clopper_pearson_interval",
    "maj_at_k",
    "mean_with_interval",
    "pass_at_k",
    "wilson_interval",
]

# scipy >= 1.15 spells the generator argument of ``bootstrap`` ``rng``; older versions
# only know ``random_state``.
_INT64_MAX = 2**63 - 1

_BOOTSTRAP_RNG_KW = (
    "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
)


def _as_int(value: Any, name: str) -> int:
    """Return ``value`` as a Python int, or raise ConfigError if it is not an integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _ratio(x: float, m: int) -> float:
    """``x / m`` correctly rounded, for any positive int ``m`` (``x / m`` itself converts
    ``m`` to float and overflows beyond about 1.8e308)."""
    if m <= 2**53:  # m is exact as a float: x / m is already correctly rounded
        return x / m
    return float(Fraction(x) / m)


def _check_confidence(confidence: Any) -> float:
    """Validate a confidence level: a finite real number strictly inside (0, 1)."""
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise ConfigError(f"confidence must be a number in (0, 1), got {confidence!r}")
    conf = float(confidence)
    if not 0.0 < conf < 1.0:  # also rejects nan
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    return conf


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct.

    pass@k is the probability that at least one of ``k`` samples solves the problem.
    Given ``n >= k`` samples with ``c`` correct, the unbiased estimator of
    Chen et al. (2021), "Evaluating Large Language Models Trained on Code"
    (arXiv:2107.03374), is::

        pass@k = 1 - C(n - c, k) / C(n, k)

    i.e. one minus the probability that a uniformly random ``k``-subset (without
    replacement) of the ``n`` samples contains no correct sample. The ratio is computed
    exactly as a product of ``min(c, k)`` integer factors in a :class:`fractions.Fraction`
    and rounded to ``float`` once at the end, so it never overflows for any ``n``.

    Parameters
    ----------
    n : int
        Number of samples drawn for the problem (``n >= k``).
    c : int
        Number of correct samples (``0 <= c <= n``).
    k : int
        Budget of the metric (``k >= 1``).

    Returns
    -------
    float
        The estimate, in ``[0, 1]``. Exactly ``0.0`` when ``c == 0`` and exactly ``1.0``
        when ``n - c < k`` (every ``k``-subset contains a correct sample).

    Raises
    ------
    ConfigError
        If an argument is not an integer, or ``k < 1``, ``n < k``, ``c < 0`` or ``c > n``.
    """
    n = _as_int(n, "n")
    c = _as_int(c, "c")
    k = _as_int(k, "k")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got k={k}")
    if n < k:
        raise ConfigError(f"n must be >= k (need at least k samples), got n={n}, k={k}")
    if not 0 <= c <= n:
        raise ConfigError(f"c must be in [0, n] = [0, {n}], got c={c}")
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i<k} (n-c-i)/(n-i) = prod_{i<c} (n-k-i)/(n-i).
    lo, hi = min(c, k), max(c, k)
    num = math.prod(n - hi - i for i in range(lo))
    den = math.prod(n - i for i in range(lo))
    return float(1 - Fraction(num, den))


def _ways_by_ties(sizes: Sequence[int], n_free: int, v: int, total: int) -> list[int]:
    """``w[s]``: ways to pick ``total`` samples from classes of ``sizes`` (each capped at
    ``v`` picks) and ``n_free`` uncapped samples, with exactly ``s`` classes picked ``v`` times.
    """
    rows = min(len(sizes), total // v) + 1
    # poly[s, u]: ways to select u samples from the classes seen so far with s ties at v.
    poly = np.zeros((rows, total + 1), dtype=object)
    poly[0, 0] = 1
    for size in sizes:
        below = np.array([math.comb(size, x) for x in range(min(v - 1, total) + 1)], dtype=object)
        new = np.zeros_like(poly)
        for s in range(rows):
            new[s] = np.convolve(poly[s], below)[: total + 1]
        if v <= total:  # the class gets exactly v votes: one more tie
            new[1:, v:] += poly[:-1, : total + 1 - v] * math.comb(size, v)
        poly = new
    lo = max(0, total - n_free)
    free = np.array([math.comb(n_free, total - u) for u in range(lo, total + 1)], dtype=object)
    return [int(np.dot(poly[s, lo:], free)) for s in range(rows)]


def maj_at_k(labels: Sequence[Hashable | None], correct_label: Hashable | None, k: int) -> float:
    """Exact maj@k: probability that a majority vote over ``k`` samples is correct.

    The pool holds ``N = len(labels)`` samples of one problem; ``labels[i]`` is the
    answer class of sample ``i`` (any hashable, e.g. a normalised answer string), or
    ``None`` when no answer was extracted or the sample failed -- such a sample casts no
    vote. The value returned is the exact expectation, over a uniformly random
    ``k``-subset of the pool drawn without replacement, of the indicator "the majority
    vote of the subset selects ``correct_label``":

    * the vote selects the class with the most votes among the non-``None`` labels;
    * a tie between ``t`` classes is broken by taking the class seen first in a uniformly
      random order of the subset, which selects each tied class, in particular the
      correct one, with probability ``1 / t``;
    * a subset whose labels are all ``None`` selects nothing (counts 0).

    This is majority voting / self-consistency (Wang et al. 2023, "Self-Consistency
    Improves Chain of Thought Reasoning in Language Models"), reported as maj@k by
    Lewkowycz et al. (2022, Minerva); averaging over subsets makes it an unbiased
    estimate of maj@k from ``N >= k`` samples, as :func:`pass_at_k` is for pass@k.

    Computation: with ``n_c`` correct samples, for each count ``v >= 1`` of correct
    votes a dynamic programme over the other classes counts (by products of binomial
    coefficients) the ways ``ways(v, s)`` to draw the other ``k - v`` samples so that no
    class exceeds ``v`` votes and exactly ``s`` classes tie at ``v``. Then, exactly::

        maj@k = sum_{v, s} C(n_c, v) * ways(v, s) / (s + 1) / C(N, k)

    The cost is polynomial in ``N`` and ``k``; subsets are never enumerated.

    Parameters
    ----------
    labels : sequence of hashable or None, length N
        Answer class of each sample in the pool; ``None`` marks a sample without a vote.
    correct_label : hashable or None
        The correct answer class. ``None`` (no reference answer) gives ``0.0``.
    k : int
        Number of votes per subset, ``1 <= k <= N``.

    Returns
    -------
    float
        maj@k in ``[0, 1]``; ``0.0`` when ``correct_label`` is ``None`` or absent from
        ``labels``.

    Raises
    ------
    ConfigError
        If ``labels`` is not a sequence (a ``str`` is refused, not read as characters),
        ``k`` is not an integer or not in ``[1, N]``, or a label is not hashable.
    """
    k = _as_int(k, "k")
    pool = check_sequence("labels", labels)
    size = len(pool)
    if not 1 <= k <= size:
        raise ConfigError(f"k must be in [1, N] = [1, {size}] (N = len(labels)), got k={k}")
    if correct_label is None:
        return 0.0
    try:
        counts = Counter(label for label in pool if label is not None)
        n_correct = counts.pop(correct_label, 0)
    except TypeError as exc:
        raise ConfigError("labels and correct_label must be hashable (or None)") from exc
    n_none = size - n_correct - sum(counts.values())
    if n_correct == 0:
        return 0.0
    others = sorted(counts.values(), reverse=True)
    favourable = Fraction(0)
    for v in range(1, min(n_correct, k) + 1):
        total = k - v
        # Classes with fewer than v samples can never reach v votes: they join the
        # unlabelled samples in one uncapped pool counted by a single binomial.
        capped = [m for m in others if m >= v]
        n_free = n_none + sum(m for m in others if m < v)
        if v * len(capped) + n_free < total:
            continue  # some other class would have to exceed v votes
        base = math.comb(n_correct, v)
        for ties, ways in enumerate(_ways_by_ties(capped, n_free, v, total)):
            if ways:
                favourable += Fraction(base * ways, ties + 1)
    return float(favourable / math.comb(size, k))


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    From Wilson (1927), "Probable Inference, the Law of Succession, and Statistical
    Inference", JASA 22(158). With ``p = successes / n`` and ``z`` the
    ``1 - (1 - confidence) / 2`` quantile of the standard normal (computed as the upper
    ``(1 - confidence) / 2`` tail quantile, so it stays finite for a confidence as close
    to 1 as ``1 - 1e-16``)::

        centre = (p + z**2 / (2 n)) / (1 + z**2 / n)
        half   = z / (1 + z**2 / n) * sqrt(p (1 - p) / n + z**2 / (4 n**2))

    and the interval is ``[centre - half, centre + half]`` clamped to ``[0, 1]`` (exactly
    ``0.0`` at ``successes == 0`` and ``1.0`` at ``successes == n``). For integer
    ``successes`` this equals ``scipy.stats.binomtest(successes, n).proportion_ci(
    method="wilson")``.

    ``successes`` may be non-integer: the evaluator passes the sum of per-problem pass@k
    (or maj@k) estimates in ``[0, 1]`` over ``n`` problems. A ``[0, 1]``-valued variable
    with mean ``p`` has variance at most ``p (1 - p)``, so the binomial variance used here
    bounds that of such an average from above (a conservative width).

    ``p``, ``z**2 / n`` and the other ratios are computed from the exact values of
    ``successes`` and ``n``, so any ``n`` works (``wilson_interval(10**400, 10**401)``
    is ``(0.1, 0.1)`` to float precision), and the result is never NaN.

    Parameters
    ----------
    successes : float
        Number (or summed fraction) of successes, in ``[0, n]`` (an int, a
        :class:`~fractions.Fraction` or a finite float).
    n : int
        Number of trials (problems), ``n >= 1`` (any size).
    confidence : float, default 0.95
        Confidence level, in ``(0, 1)``.

    Returns
    -------
    tuple of float
        ``(lo, hi)`` with ``0 <= lo <= hi <= 1``, never NaN.

    Raises
    ------
    ConfigError
        If ``n`` is not an integer >= 1, ``successes`` is not a finite number in
        ``[0, n]``, or ``confidence`` is not in ``(0, 1)``.
    """
    n = _as_int(n, "n")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got n={n}")
    s = _exact_successes(successes, n)
    conf = _check_confidence(confidence)
    # isf of the tail, not ppf(1 - tail): 1 - tail rounds to 1.0 (z = inf) near conf = 1.
    z = float(stats.norm.isf((1.0 - conf) / 2.0))
    p = float(s / n)  # exact ratio, rounded once: no overflow for any n
    z2n = _ratio(z * z, n)
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(_ratio(p * (1.0 - p), n) + _ratio(z2n, 4 * n))
    lo = 0.0 if s == 0 else min(max(centre - half, 0.0), 1.0)
    hi = 1.0 if s == n else min(max(centre + half, 0.0), 1.0)
    return lo, hi


def _exact_successes(successes: Any, n: int) -> Fraction:
    """``successes`` as an exact Fraction in ``[0, n]``, else ConfigError."""
    if isinstance(successes, bool) or not isinstance(successes, numbers.Real):
        raise ConfigError(f"successes must be a number in [0, n] = [0, {n}], got {successes!r}")
    if isinstance(successes, numbers.Integral):
        s = Fraction(int(successes))
    elif isinstance(successes, numbers.Rational):
        s = Fraction(int(successes.numerator), int(successes.denominator))
    else:
        with np.errstate(over="ignore"):
            f = float(successes)
        if not math.isfinite(f):
            raise ConfigError(f"successes must be in [0, n] = [0, {n}], got {successes!r}")
        s = Fraction(f)
    if not 0 <= s <= n:
        raise ConfigError(f"successes must be in [0, n] = [0, {n}], got {successes!r}")
    return s


def clopper_pearson_interval(
    successes: int, n: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Clopper-Pearson ("exact") interval for a binomial proportion.

    From Clopper & Pearson (1934), "The Use of Confidence or Fiducial Limits Illustrated
    in the Case of the Binomial", Biometrika 26(4). The bounds are beta quantiles,
    ``lo = Beta(alpha/2; x, n - x + 1)`` and ``hi = Beta(1 - alpha/2; x + 1, n - x)``
    with ``alpha = 1 - confidence`` (``lo = 0`` at ``x = 0``, ``hi = 1`` at ``x = n``),
    computed by ``scipy.stats.binomtest(x, n).proportion_ci(method="exact")``. Coverage
    is at least ``confidence`` for every true proportion.

    Parameters
    ----------
    successes : int
        Number of successes ``x``, in ``[0, n]``.
    n : int
        Number of trials, ``n >= 1``.
    confidence : float, default 0.95
        Confidence level, in ``(0, 1)``.

    Returns
    -------
    tuple of float
        ``(lo, hi)`` with ``0 <= lo <= hi <= 1``.

    Raises
    ------
    ConfigError
        If ``successes`` or ``n`` is not an integer, ``n`` is outside
        ``[1, 2**63 - 1]`` (what scipy accepts), ``successes`` is outside ``[0, n]``,
        or ``confidence`` is not in ``(0, 1)``.
    """
    n = _as_int(n, "n")
    x = _as_int(successes, "successes")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got n={n}")
    if n > _INT64_MAX:
        raise ConfigError(f"n must be in [1, 2**63 - 1] (scipy's int64 range), got n={n}")
    if not 0 <= x <= n:
        raise ConfigError(f"successes must be in [0, n] = [0, {n}], got {x}")
    conf = _check_confidence(confidence)
    ci = stats.binomtest(x, n).proportion_ci(confidence_level=conf, method="exact")
    return float(ci.low), float(ci.high)


def _as_values(values: ArrayLike, name: str = "values") -> np.ndarray:
    """Return ``values`` as a non-empty, finite, one-dimensional float64 array."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a 1-D array of numbers, got {values!r}") from exc
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D with shape (P,), got shape {arr.shape}")
    if arr.size == 0:
        raise ConfigError(f"{name} must be non-empty (P >= 1), got an empty array")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be finite (no nan or inf)")
    return arr


def bootstrap_interval(
    values: ArrayLike,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    *,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of per-problem values.

    Resamples the ``P`` problems with replacement ``n_resamples`` times and takes the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of the resampled
    means (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13), via
    ``scipy.stats.bootstrap(..., method="percentile")`` driven by ``rng``. If all values
    equal ``v`` the interval is ``(v, v)``, returned directly (no scipy warning or nan).

    The values are first scaled by a power of two so that all lie in ``(-1, 1)`` (exact,
    apart from values below about 1e-308 relative to the largest), and the bounds scaled
    back: resampled means of values near the float limit (``[1e308, -1e308, 1e308]``)
    cannot overflow into ``inf - inf = nan``. The bounds are kept in
    ``[min(values), max(values)]``, where every resampled mean lies (this only undoes
    rounding).

    Parameters
    ----------
    values : array_like, shape (P,), float64
        One value per problem (e.g. per-problem pass@k), finite, ``P >= 1``.
    confidence : float, default 0.95
        Confidence level, in ``(0, 1)``.
    n_resamples : int, default 2000
        Number of bootstrap resamples, ``>= 1``.
    rng : numpy.random.Generator
        Source of randomness (keyword-only); the same seed gives the same interval.

    Returns
    -------
    tuple of float
        ``(lo, hi)`` with ``min(values) <= lo <= hi <= max(values)``, never NaN.

    Raises
    ------
    ConfigError
        If ``values`` is empty, not 1-D or not finite, ``confidence`` is not in
        ``(0, 1)``, ``n_resamples < 1``, or ``rng`` is not a ``numpy.random.Generator``.
    """
    arr = _as_values(values)
    conf = _check_confidence(confidence)
    n_resamples = _as_int(n_resamples, "n_resamples")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if np.all(arr == arr[0]):
        v = float(arr[0])
        return v, v
    _, exponent = math.frexp(float(np.max(np.abs(arr))))
    scaled = np.ldexp(arr, -exponent)  # |scaled| < 1: sums of P values cannot overflow
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            (scaled,),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=conf,
            method="percentile",
            vectorized=True,
            **{_BOOTSTRAP_RNG_KW: rng},
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # degenerate: use the raw percentiles
        tail = (1.0 - conf) / 2.0
        lo, hi = (float(q) for q in np.quantile(res.bootstrap_distribution, [tail, 1 - tail]))
    low, high = float(scaled.min()), float(scaled.max())
    lo, hi = min(max(lo, low), high), min(max(hi, low), high)
    return float(np.ldexp(lo, exponent)), float(np.ldexp(hi, exponent))


def mean_with_interval(values: ArrayLike, confidence: float = 0.95) -> dict[str, float]:
    """Mean of per-problem values with a Wilson interval, as the evaluator reports per k.

    The interval is :func:`wilson_interval` with ``successes = sum(values)`` (a possibly
    non-integer total) out of ``n = P`` trials; see that function for the formula and
    why it is conservative for averages of ``[0, 1]``-valued estimates.

    Parameters
    ----------
    values : array_like, shape (P,), float64
        One value per problem in ``[0, 1]`` (e.g. pass@k or maj@k), ``P >= 1``.
    confidence : float, default 0.95
        Confidence level, in ``(0, 1)``.

    Returns
    -------
    dict
        ``{"mean": float, "lo": float, "hi": float}`` with ``lo <= mean <= hi``.

    Raises
    ------
    ConfigError
        If ``values`` is empty, not 1-D, not finite or outside ``[0, 1]``, or
        ``confidence`` is not in ``(0, 1)``.
    """
    arr = _as_values(values)
    if np.any((arr < 0.0) | (arr > 1.0)):
        raise ConfigError("values must lie in [0, 1] (per-problem success fractions)")
    n = int(arr.size)
    total = min(math.fsum(arr.tolist()), float(n))
    lo, hi = wilson_interval(total, n, confidence)
    mean = total / n
    # The Wilson interval contains p = mean; guard the ordering against rounding.
    return {"mean": mean, "lo": min(lo, mean), "hi": max(hi, mean)}
