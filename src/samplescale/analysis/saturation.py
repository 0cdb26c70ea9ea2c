"""The saturation budget: the number of samples past which one more stops paying.

Wang et al. (2025), "Scaling over Scaling: Exploring Test-Time Scaling Plateau in Large
Reasoning Models" (arXiv:2505.20522), model parallel scaling by the Test-Time Scaling
Performance Model (TTSPM)::

    F(N) = F_max * (1 - (1 - p)**N)

(``F_max`` the plateau, ``p`` the per-sample success probability after selection), so
the marginal gain of the ``(N+1)``-th sample is ``F(N+1) - F(N) = F_max p (1 - p)**N``
and it falls below ``epsilon`` for every ``N > log(epsilon / (F_max p)) / log(1 - p)``.
:func:`fit_ttspm` fits the model to a pass@k or maj@k curve (least squares,
:func:`scipy.optimize.curve_fit`), :func:`saturation_budget` gives the first such N, and
:func:`empirical_saturation` reads it off the measured curve without a model. No I/O.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize

from samplescale.analysis.scaling import check_curve
from samplescale.errors import ConfigError

__all__ = ["TTSPMFit", "empirical_saturation", "fit_ttspm", "saturation_budget", "ttspm"]


def ttspm(n: ArrayLike, f_max: float, p: float) -> np.ndarray:
    """``F_max * (1 - (1 - p)**n)``, the TTSPM curve of Wang et al. (2025).

    Parameters
    ----------
    n : array_like of float, any shape
        Numbers of samples, ``>= 0``.
    f_max : float
        Plateau, in ``[0, 1]``.
    p : float
        Per-sample success probability, in ``(0, 1]``.

    Returns
    -------
    numpy.ndarray, same shape as ``n``, float64
    """
    return f_max * (1.0 - np.power(1.0 - p, np.asarray(n, dtype=np.float64)))


@dataclass(frozen=True)
class TTSPMFit:
    """A TTSPM fit: plateau ``f_max``, per-sample rate ``p`` and the fit's RMSE (rate
    units) on the points it was fitted to."""

    f_max: float
    p: float
    rmse: float


def fit_ttspm(ks: ArrayLike, values: ArrayLike) -> TTSPMFit:
    """Least-squares fit of :func:`ttspm` to a measured curve.

    Parameters
    ----------
    ks : array_like, shape (K,)
        Numbers of samples, ``>= 1``, at least 2 distinct.
    values : array_like, shape (K,)
        The rate at each k (mean pass@k or maj@k over problems), in ``[0, 1]``.

    Returns
    -------
    TTSPMFit
        With ``0 <= f_max <= 1`` and ``0 < p <= 1``.

    Raises
    ------
    ConfigError
        If the shapes differ, a value is not finite or out of range, fewer than 2
        distinct k are given, or the least-squares fit does not converge.
    """
    xs, ys = check_curve(ks, values)
    if np.any(xs < 1):
        raise ConfigError("ks must be >= 1")
    if np.unique(xs).size < 2:
        raise ConfigError("fit_ttspm needs 2 or more distinct k")
    top = float(ys.max())
    if top == 0.0:
        return TTSPMFit(0.0, 1.0, 0.0)
    p0 = min(max(float(ys[np.argmin(xs)]) / top, 1e-3), 1.0 - 1e-9)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            (f_max, p), _ = optimize.curve_fit(
                ttspm, xs, ys, p0=(top, p0), bounds=([0.0, 1e-12], [1.0, 1.0])
            )
    except RuntimeError as exc:
        raise ConfigError(f"the TTSPM fit did not converge: {exc}") from exc
    rmse = float(np.sqrt(np.mean((ttspm(xs, f_max, p) - ys) ** 2)))
    return TTSPMFit(float(f_max), float(p), rmse)


def saturation_budget(fit: TTSPMFit, epsilon: float) -> int:
    """The smallest ``N >= 1`` with ``F(N+1) - F(N) < epsilon`` under a TTSPM fit.

    With ``g = F_max p`` the gain of the first sample, ``F(N+1) - F(N) = g (1 - p)**N``
    is below ``epsilon`` exactly when ``N > log(epsilon / g) / log(1 - p)`` (Wang et al.
    2025, the saturation point ``N*``); so ``N* = max(1, floor(L) + 1)`` with
    ``L = log(epsilon / g) / log(1 - p)``, and ``N* = 1`` when ``p = 1`` or
    ``g (1 - p) < epsilon``.

    Parameters
    ----------
    fit : TTSPMFit
        From :func:`fit_ttspm`.
    epsilon : float
        Marginal gain per extra sample that is no longer worth paying for, in rate units
        (0.01 = one point of accuracy), in ``(0, 1)``.

    Returns
    -------
    int
        ``N* >= 1``.

    Raises
    ------
    ConfigError
        If ``epsilon`` is not in ``(0, 1)``.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not (
        0.0 < float(epsilon) < 1.0
    ):
        raise ConfigError(f"epsilon must be a marginal gain in (0, 1), got {epsilon!r}")
    gain = fit.f_max * fit.p
    if fit.p >= 1.0 or gain * (1.0 - fit.p) < epsilon:
        return 1
    bound = math.log(float(epsilon) / gain) / math.log(1.0 - fit.p)
    return max(1, math.floor(bound) + 1)


def empirical_saturation(ks: ArrayLike, values: ArrayLike, epsilon: float) -> int | None:
    """The first measured k past which the curve gains less than ``epsilon`` per sample.

    For consecutive measured budgets ``k_j < k_{j+1}`` the gain per extra sample is
    ``(v_{j+1} - v_j) / (k_{j+1} - k_j)``; the result is the first ``k_j`` where that is
    below ``epsilon``, or None when the curve still pays at its last measured step (the
    budget lies beyond the measurements).

    Parameters
    ----------
    ks : array_like, shape (K,)
        Increasing numbers of samples.
    values : array_like, shape (K,)
        The rate at each k.
    epsilon : float
        Marginal gain per sample, in ``(0, 1)``.

    Returns
    -------
    int or None

    Raises
    ------
    ConfigError
        If the shapes differ, ``ks`` is not strictly increasing, or ``epsilon`` is not in
        ``(0, 1)``.
    """
    xs = np.asarray(ks, dtype=np.float64)
    ys = np.asarray(values, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or np.any(np.diff(xs) <= 0):
        raise ConfigError("ks must be strictly increasing and values of the same length")
    if not 0.0 < float(epsilon) < 1.0:
        raise ConfigError(f"epsilon must be a marginal gain in (0, 1), got {epsilon!r}")
    gains = np.diff(ys) / np.diff(xs)
    below = np.flatnonzero(gains < epsilon)
    return int(xs[below[0]]) if below.size else None
