"""Resampling schemes and the effective sample size of a weighted particle set.

Each scheme takes normalised weights ``w`` (shape ``(N,)``, float64, ``w >= 0``, sum 1) and a
``numpy.random.Generator`` and returns ancestor indices ``a`` (shape ``(N,)``, int64, sorted
ascending): particle ``i`` gets ``count_i = #{j : a_j = i}`` offspring. All four are
unbiased, ``E[count_i] = N w_i``, so an SMC estimate of the normalising constant stays
unbiased whichever is used; they differ in the variance of the counts:

- ``multinomial``: ``N`` i.i.d. draws; ``Var[count_i] = N w_i (1 - w_i)``.
- ``stratified``: one uniform in each stratum ``[k/N, (k+1)/N)``; ``count_i`` is a sum of
  independent Bernoulli variables, one per stratum that overlaps particle ``i``'s interval
  of the cumulative weights.
- ``systematic``: one uniform shifted into every stratum; ``count_i`` is ``floor(N w_i)`` or
  ``ceil(N w_i)``, so ``Var[count_i] = f (1 - f)`` with ``f = frac(N w_i)``.
- ``residual``: ``floor(N w_i)`` copies, then ``R = N - sum floor(N w)`` multinomial draws
  from the residual weights; ``Var[count_i] = R r_i (1 - r_i)`` with
  ``r_i = (N w_i - floor(N w_i)) / R``.

References: Douc, Cappé & Moulines (2005), "Comparison of Resampling Schemes for Particle
Filtering"; Chopin & Papaspiliopoulos (2020), "An Introduction to Sequential Monte Carlo",
chapter 9.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from samplescale.errors import ConfigError
from samplescale.registry import Registry

Resampler = Callable[[np.ndarray, np.random.Generator], np.ndarray]

RESAMPLERS: Registry[Resampler] = Registry("resampling scheme")

_SUM_TOL = 1e-9


def check_weights(weights: np.ndarray) -> np.ndarray:
    """``weights`` as a float64 vector, checked to be a probability vector.

    Parameters
    ----------
    weights : array_like, shape (N,)

    Returns
    -------
    ndarray, shape (N,), float64

    Raises
    ------
    ConfigError
        If ``weights`` is not 1-D with N >= 1, has a negative, NaN or infinite entry, or does
        not sum to 1 within 1e-9.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise ConfigError(f"weights must have shape (N,) with N >= 1, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ConfigError("weights must be finite and >= 0")
    total = float(w.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise ConfigError(f"weights must sum to 1 (normalised), got sum {total!r}")
    return w


def _inverse_cdf(w: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index ``i`` with ``cdf[i-1] <= u_j < cdf[i]`` for each sorted ``u_j`` in [0, 1).

    The cumulative sum is divided by its last entry, so ``cdf[-1] == 1 > u_j`` exactly and a
    zero-weight particle (``cdf[i] == cdf[i-1]``) is never selected.
    """
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, u, side="right").astype(np.int64)


@RESAMPLERS.register("multinomial")
def multinomial(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multinomial resampling: ``N`` i.i.d. ancestors drawn with probabilities ``weights``.

    Parameters
    ----------
    weights : ndarray, shape (N,), float64
        Normalised weights (>= 0, sum 1).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (N,), int64
        Sorted ancestor indices.

    Raises
    ------
    ConfigError
        If ``weights`` is not a probability vector (see :func:`check_weights`).
    """
    w = check_weights(weights)
    return _inverse_cdf(w, np.sort(rng.random(w.size)))


@RESAMPLERS.register("stratified")
def stratified(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stratified resampling: ``u_k = (k + U_k) / N`` with independent ``U_k ~ U[0, 1)``.

    Parameters and returns as :func:`multinomial` (Kitagawa, 1996; Douc et al., 2005).
    """
    w = check_weights(weights)
    n = w.size
    return _inverse_cdf(w, (np.arange(n) + rng.random(n)) / n)


@RESAMPLERS.register("systematic")
def systematic(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Systematic resampling: ``u_k = (k + U) / N`` with one ``U ~ U[0, 1)``.

    Particle ``i`` gets ``floor(N w_i)`` or ``ceil(N w_i)`` offspring (Carpenter, Clifford &
    Fearnhead, 1999). Parameters and returns as :func:`multinomial`.
    """
    w = check_weights(weights)
    n = w.size
    return _inverse_cdf(w, (np.arange(n) + rng.random()) / n)


@RESAMPLERS.register("residual")
def residual(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Residual resampling: ``floor(N w_i)`` copies of particle ``i``, the rest multinomial.

    The ``R = N - sum_i floor(N w_i)`` remaining ancestors are drawn i.i.d. with
    probabilities proportional to ``N w_i - floor(N w_i)`` (Liu & Chen, 1998).
    Parameters and returns as :func:`multinomial`.
    """
    w = check_weights(weights)
    n = w.size
    scaled = n * w
    copies = np.floor(scaled).astype(np.int64)
    rest = n - int(copies.sum())
    ancestors = np.repeat(np.arange(n, dtype=np.int64), copies)
    if rest > 0:
        frac = scaled - copies
        extra = _inverse_cdf(frac, np.sort(rng.random(rest)))
        ancestors = np.sort(np.concatenate([ancestors, extra]))
    return ancestors


def resample(scheme: str, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ancestor indices by the scheme registered as ``scheme`` (see :data:`RESAMPLERS`).

    Raises
    ------
    UnknownNameError
        If ``scheme`` is not one of multinomial, residual, stratified, systematic.
    ConfigError
        If ``weights`` is not a probability vector.
    """
    return RESAMPLERS.get(scheme)(weights, rng)


def normalise(log_weights: np.ndarray) -> np.ndarray:
    """Normalised weights ``exp(lw - logsumexp(lw))``, shape (N,), float64.

    Raises
    ------
    ConfigError
        If no log-weight is finite (every particle has weight zero) or one is NaN or +inf.
    """
    lw = _check_log_weights(log_weights)
    top = lw.max()
    if not np.isfinite(top):
        raise ConfigError("every log-weight is -inf: no particle has positive weight")
    w = np.exp(lw - top)
    return w / w.sum()


def effective_sample_size(log_weights: np.ndarray) -> float:
    """Effective sample size ``(sum w)^2 / sum w^2`` of unnormalised natural-log weights.

    Computed from ``w = exp(lw - max lw)``, so it is stable for any scale and invariant to
    adding a constant to every log-weight. It lies in ``[1, N]`` (``N`` for equal weights, 1 when one
    particle holds all the weight); 0.0 when every log-weight is ``-inf``.

    Parameters
    ----------
    log_weights : array_like, shape (N,), float
        Natural-log weights; ``-inf`` marks a particle of weight zero.

    Returns
    -------
    float

    Raises
    ------
    ConfigError
        If ``log_weights`` is not 1-D with N >= 1 or holds NaN or +inf.
    """
    lw = _check_log_weights(log_weights)
    top = lw.max()
    if not np.isfinite(top):
        return 0.0
    w = np.exp(lw - top)
    return float(w.sum() ** 2 / np.square(w).sum())


def _check_log_weights(log_weights: np.ndarray) -> np.ndarray:
    lw = np.asarray(log_weights, dtype=np.float64)
    if lw.ndim != 1 or lw.size == 0:
        raise ConfigError(f"log_weights must have shape (N,) with N >= 1, got shape {lw.shape}")
    if np.isnan(lw).any() or np.isposinf(lw).any():
        raise ConfigError("log_weights must not contain NaN or +inf")
    return lw
