"""Binomial and bootstrap intervals for rates over problems (moved from ``metrics``).

No function returns NaN: the Wilson interval is computed from exact ratios (any ``n``, any
confidence in ``(0, 1)``), and the bootstrap works on values scaled by a power of two (any
finite values). Bad arguments raise :class:`samplescale.errors.ConfigError` naming the
argument and its valid range. No I/O. The small-sample Bayesian and clustered intervals
are in :mod:`samplescale.analysis.small_sample`.
"""

from __future__ import annotations

import inspect
import math
import numbers
import warnings
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from samplescale.errors import ConfigError, check_confidence, check_int, check_rng

__all__ = [
    "as_values",
    "bootstrap_interval",
    "clopper_pearson_interval",
    "mean_with_interval",
    "wilson_interval",
]

_INT64_MAX = 2**63 - 1

# scipy >= 1.15 spells the generator argument of ``bootstrap`` ``rng``; older versions
# only know ``random_state``.
_BOOTSTRAP_RNG_KW = (
    "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
)


def _ratio(x: float, m: int) -> float:
    """``x / m`` correctly rounded, for any positive int ``m`` (``x / m`` itself converts
    ``m`` to float and overflows beyond about 1.8e308)."""
    if m <= 2**53:  # m is exact as a float: x / m is already correctly rounded
        return x / m
    return float(Fraction(x) / m)


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
    n = check_int(n, "n")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got n={n}")
    s = _exact_successes(successes, n)
    conf = check_confidence(confidence)
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
    n = check_int(n, "n")
    x = check_int(successes, "successes")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got n={n}")
    if n > _INT64_MAX:
        raise ConfigError(f"n must be in [1, 2**63 - 1] (scipy's int64 range), got n={n}")
    if not 0 <= x <= n:
        raise ConfigError(f"successes must be in [0, n] = [0, {n}], got {x}")
    conf = check_confidence(confidence)
    ci = stats.binomtest(x, n).proportion_ci(confidence_level=conf, method="exact")
    return float(ci.low), float(ci.high)


def as_values(values: ArrayLike, name: str = "values") -> np.ndarray:
    """``values`` as a non-empty, finite, one-dimensional float64 array of shape ``(P,)``,
    else :class:`ConfigError` naming ``name``."""
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
    arr = as_values(values)
    conf = check_confidence(confidence)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=1)
    check_rng(rng)
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
    arr = as_values(values)
    if np.any((arr < 0.0) | (arr > 1.0)):
        raise ConfigError("values must lie in [0, 1] (per-problem success fractions)")
    n = int(arr.size)
    total = min(math.fsum(arr.tolist()), float(n))
    lo, hi = wilson_interval(total, n, confidence)
    mean = total / n
    # The Wilson interval contains p = mean; guard the ordering against rounding.
    return {"mean": mean, "lo": min(lo, mean), "hi": max(hi, mean)}
