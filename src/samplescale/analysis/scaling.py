"""Inference scaling laws: how coverage grows with samples, fitted and extrapolated.

Brown et al. (2024), "Large Language Monkeys: Scaling Inference Compute with Repeated
Sampling" (arXiv:2407.21787), find that coverage (pass@k) is often log-linear in the
number of samples and is modelled by an exponentiated power law::

    coverage(k) = exp(a * k**b),   a < 0, b < 0

(coverage rises towards 1 as ``k`` grows). :func:`fit_coverage` fits it by least
squares on the coverage scale, started from the ordinary least squares fit of the
linearised form ``log(-log coverage) = log(-a) + b log k``;
:func:`fit_log_linear` fits ``rate = intercept + slope * log10(tokens)``. Both come with
:func:`bootstrap_fit`, which resamples problems (rows of a per-problem matrix such as
:func:`samplescale.analysis.pools.pass_matrix`) to give percentile intervals for the
parameters and for extrapolated values. The intervals reflect the sampling of problems
and samples only, not the error of the functional form: check extrapolations against a
measured point (``benchmarks/RESULTS.md`` (k)). No I/O.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize

from samplescale.errors import ConfigError, check_confidence, check_int, check_rng

__all__ = [
    "BootstrapFit",
    "Fit",
    "bootstrap_fit",
    "check_curve",
    "coverage_power_law",
    "fit_coverage",
    "fit_log_linear",
]


@dataclass(frozen=True)
class Fit:
    """A fitted curve: its name, parameters and the points it was fitted on.

    ``params`` maps parameter names to values (``{"a", "b"}`` for the power law,
    ``{"intercept", "slope"}`` for the log-linear fit); ``x`` and ``y`` are the points
    used (after dropping those the form cannot use); ``rmse`` is the root mean square
    error of the fitted curve against ``y`` on the original (rate) scale.
    """

    model: str
    params: dict[str, float]
    x: list[float]
    y: list[float]
    rmse: float

    def predict(self, x: ArrayLike) -> np.ndarray:
        """The fitted curve at ``x`` (k for the power law, tokens for the log-linear)."""
        xs = np.asarray(x, dtype=np.float64)
        if self.model == "power_law":
            return coverage_power_law(xs, self.params["a"], self.params["b"])
        return self.params["intercept"] + self.params["slope"] * np.log10(xs)


def coverage_power_law(k: ArrayLike, a: float, b: float) -> np.ndarray:
    """``exp(a * k**b)``, the exponentiated power law of Brown et al. (2024).

    Parameters
    ----------
    k : array_like of float, any shape
        Numbers of samples, ``> 0``.
    a, b : float
        Parameters (``a < 0`` and ``b < 0`` for a coverage rising to 1).

    Returns
    -------
    numpy.ndarray, same shape as ``k``, float64
        Coverage in ``[0, 1]`` when ``a <= 0``.
    """
    return np.exp(a * np.power(np.asarray(k, dtype=np.float64), b))


def check_curve(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """A measured curve as float64 arrays: 1-D of one length, finite, ``x > 0`` (k or
    tokens) and ``y`` rates in ``[0, 1]``; else :class:`ConfigError`."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape:
        raise ConfigError(f"x and y must be 1-D of one length, got shapes {xs.shape} and "
                          f"{ys.shape}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ConfigError("x and y must be finite")
    if np.any(xs <= 0):
        raise ConfigError("x (k or tokens) must be > 0")
    if np.any((ys < 0) | (ys > 1)):
        raise ConfigError("y must be rates in [0, 1]")
    return xs, ys


def fit_coverage(ks: ArrayLike, coverage: ArrayLike) -> Fit:
    """Fit ``coverage(k) = exp(a * k**b)`` (Brown et al. 2024) to a measured curve.

    Least squares on the coverage scale (:func:`scipy.optimize.curve_fit`, ``a <= 0``,
    ``b <= 0``), started from the ordinary least squares of ``log(-log y)`` on ``log k``
    (slope ``b``, intercept ``log(-a)``). The linearised fit alone weights points near
    coverage 1 far too much (``log(-log y)`` diverges there); the start uses only points
    with coverage strictly inside (0, 1) (2 or more are needed), the final fit all.

    Parameters
    ----------
    ks : array_like, shape (K,)
        Numbers of samples, ``> 0``.
    coverage : array_like, shape (K,)
        Mean pass@k over problems at each k, in ``[0, 1]``.

    Returns
    -------
    Fit
        ``model="power_law"``, ``params={"a": a, "b": b}``.

    Raises
    ------
    ConfigError
        If the shapes differ, values are not finite, ``k <= 0``, a coverage is outside
        ``[0, 1]``, or fewer than 2 distinct k have a coverage strictly inside (0, 1).
    """
    xs, ys = check_curve(ks, coverage)
    keep = (ys > 0) & (ys < 1)
    if np.unique(xs[keep]).size < 2:
        raise ConfigError("fit_coverage needs coverage strictly inside (0, 1) at 2 or more "
                          "distinct k (all solved or none solved cannot be fitted)")
    slope, intercept = np.polyfit(np.log(xs[keep]), np.log(-np.log(ys[keep])), 1)
    start = (-math.exp(float(intercept)), min(float(slope), 0.0))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            (a, b), _ = optimize.curve_fit(
                coverage_power_law, xs, ys, p0=start, bounds=([-np.inf, -np.inf], [0.0, 0.0])
            )
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"the power-law fit did not converge: {exc}") from exc
    a, b = float(a), float(b)
    rmse = float(np.sqrt(np.mean((coverage_power_law(xs, a, b) - ys) ** 2)))
    return Fit("power_law", {"a": a, "b": b}, xs.tolist(), ys.tolist(), rmse)


def fit_log_linear(tokens: ArrayLike, rate: ArrayLike) -> Fit:
    """Fit ``rate = intercept + slope * log10(tokens)`` by ordinary least squares.

    Brown et al. (2024) observe coverage roughly log-linear in the number of samples, so
    in generated tokens; ``slope`` is the gain per tenfold tokens (rate units, e.g. 0.1
    is 10 points of accuracy per decade).

    Parameters
    ----------
    tokens : array_like, shape (K,)
        Mean generated tokens per problem at each point, ``> 0``.
    rate : array_like, shape (K,)
        The rate at each point, in ``[0, 1]``.

    Returns
    -------
    Fit
        ``model="log_linear"``, ``params={"intercept", "slope"}``.

    Raises
    ------
    ConfigError
        If the shapes differ, values are not finite, tokens ``<= 0``, a rate is outside
        ``[0, 1]``, or fewer than 2 distinct token counts are given.
    """
    xs, ys = check_curve(tokens, rate)
    if np.unique(xs).size < 2:
        raise ConfigError("fit_log_linear needs 2 or more distinct token counts")
    slope, intercept = np.polyfit(np.log10(xs), ys, 1)
    fit = Fit("log_linear", {"intercept": float(intercept), "slope": float(slope)},
              xs.tolist(), ys.tolist(), 0.0)
    rmse = float(np.sqrt(np.mean((fit.predict(xs) - ys) ** 2)))
    return Fit(fit.model, fit.params, fit.x, fit.y, rmse)


@dataclass(frozen=True)
class BootstrapFit:
    """A fit with percentile intervals from resampling problems.

    ``params_interval[name] = (lo, hi)``; ``predictions`` maps each extrapolation point
    ``x`` to ``{"value", "lo", "hi"}``; ``failed`` counts resamples that could not be
    fitted (e.g. every resampled problem solved at every k), left out of the intervals.
    """

    fit: Fit
    confidence: float
    n_resamples: int
    params_interval: dict[str, tuple[float, float]]
    predictions: dict[float, dict[str, float]] = field(default_factory=dict)
    failed: int = 0


def bootstrap_fit(
    per_problem: ArrayLike,
    x: ArrayLike,
    fitter: Callable[[ArrayLike, ArrayLike], Fit],
    *,
    rng: np.random.Generator,
    predict_at: Sequence[float] = (),
    confidence: float = 0.95,
    n_resamples: int = 1000,
) -> BootstrapFit:
    """Fit the mean curve of per-problem values, with a bootstrap over problems.

    The point fit is ``fitter(x, per_problem.mean(axis=0))``. Each of ``n_resamples``
    resamples draws ``P`` rows with replacement, refits, and evaluates the curve at
    ``predict_at``; the intervals are the percentiles of those (Efron & Tibshirani 1993,
    ch. 13). Resampling problems keeps each problem's samples together (a clustered
    bootstrap), the unit that varies between benchmarks.

    Parameters
    ----------
    per_problem : array_like, shape (P, K), float64
        Row per problem, column per point (e.g. pass@k at each k), values in ``[0, 1]``.
    x : array_like, shape (K,)
        The points' x values (k, or tokens), ``> 0``.
    fitter : callable
        :func:`fit_coverage` or :func:`fit_log_linear` (any ``(x, y) -> Fit``).
    rng : numpy.random.Generator
        Source of the resampling (keyword-only).
    predict_at : sequence of float
        x values to extrapolate to, each ``> 0``.
    confidence : float, default 0.95
        Interval level, in ``(0, 1)``.
    n_resamples : int, default 1000
        Bootstrap resamples, ``>= 1``.

    Returns
    -------
    BootstrapFit

    Raises
    ------
    ConfigError
        If ``per_problem`` is not 2-D with ``K == len(x)`` and ``P >= 1``, the point fit
        fails (see the fitter), an argument is out of range, or every resample fails.
    """
    mat = np.asarray(per_problem, dtype=np.float64)
    xs = np.asarray(x, dtype=np.float64)
    if mat.ndim != 2 or mat.shape[0] < 1 or mat.shape[1] != xs.size:
        raise ConfigError(f"per_problem must have shape (P, K) with P >= 1 and K = len(x) = "
                          f"{xs.size}, got {mat.shape}")
    conf = check_confidence(confidence)
    reps = check_int(n_resamples, "n_resamples", minimum=1)
    check_rng(rng)
    targets = np.asarray(list(predict_at), dtype=np.float64)
    if targets.size and (not np.all(np.isfinite(targets)) or np.any(targets <= 0)):
        raise ConfigError(f"predict_at must be finite values > 0, got {list(predict_at)}")
    point = fitter(xs, mat.mean(axis=0))
    names = list(point.params)
    draws: list[list[float]] = []
    failed = 0
    p = mat.shape[0]
    for _ in range(reps):
        rows = rng.integers(0, p, size=p)
        try:
            f = fitter(xs, mat[rows].mean(axis=0))
        except ConfigError:
            failed += 1
            continue
        draws.append([f.params[n] for n in names] + f.predict(targets).tolist())
    if not draws:
        raise ConfigError("no bootstrap resample could be fitted")
    arr = np.asarray(draws)
    tail = (1.0 - conf) / 2.0
    lo, hi = np.quantile(arr, [tail, 1.0 - tail], axis=0)
    intervals = {n: (float(lo[i]), float(hi[i])) for i, n in enumerate(names)}
    values = point.predict(targets)
    preds = {
        float(t): {"value": float(values[j]), "lo": float(lo[len(names) + j]),
                   "hi": float(hi[len(names) + j])}
        for j, t in enumerate(targets)
    }
    return BootstrapFit(point, conf, reps, intervals, preds, failed)
