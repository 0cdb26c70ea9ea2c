"""Truncation samplers beyond top-k / top-p / min-p: typical, epsilon, eta, top-n-sigma.

Same contract as :mod:`samplescale.sampling.functional`: each function takes logits of
shape ``(batch, vocab)`` (natural-log scale, any additive offset; ``-inf`` marks tokens an
earlier transform removed), returns a NEW array of the same shape and dtype with ``-inf``
for removed tokens, never empties a row (the most likely token is always kept), and
raises ``ConfigError`` naming the valid range of its parameter. Probabilities are those
of the row's current (renormalised) distribution.
"""

from __future__ import annotations

import numpy as np

from samplescale.errors import ConfigError
from samplescale.sampling.functional import (
    _tol,
    as_logits,
    log_softmax,
    smallest_prefix_with_mass,
)

__all__ = ["entropy", "epsilon_cutoff", "eta_cutoff", "eta_threshold", "top_n_sigma", "typical_p"]


def _keep_argmax(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    keep = keep.copy()
    keep[np.arange(x.shape[0]), x.argmax(axis=-1)] = True
    return np.where(keep, x, -np.inf).astype(x.dtype, copy=False)


def entropy(logits: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row's distribution, in nats; shape ``(batch,)``, float64."""
    lp = log_softmax(logits).astype(np.float64)
    with np.errstate(invalid="ignore"):
        terms = np.where(np.isfinite(lp), np.exp(lp) * lp, 0.0)
    return -terms.sum(axis=-1)


def typical_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Locally typical sampling (Meister et al., 2023, "Locally Typical Sampling", TACL).

    Sorts tokens by ``|-log p(x) - H|`` (distance of their surprisal from the entropy ``H``
    of the row, in nats; ties to the lower token id) and keeps the smallest prefix of that
    order whose probability mass is >= ``p``. ``p = 1`` disables it; ``p = 0`` keeps the one
    most typical token.

    Parameters
    ----------
    logits : ndarray, shape (batch, vocab), float
    p : float
        Mass threshold, valid range [0, 1].

    Raises
    ------
    ConfigError
        If ``p`` is outside [0, 1].
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"typical_p must be in [0, 1], got {p}")
    x = as_logits(logits)
    if p >= 1.0:
        return x.copy()
    lp = log_softmax(x)
    h = entropy(x)[:, None]
    with np.errstate(invalid="ignore"):
        dist = np.where(np.isfinite(lp), np.abs(-lp - h), np.inf)
    keep = smallest_prefix_with_mass(dist, np.exp(lp), p - _tol(x))
    return np.where(keep, x, -np.inf).astype(x.dtype, copy=False)


def epsilon_cutoff(logits: np.ndarray, epsilon: float) -> np.ndarray:
    """Epsilon sampling (Hewitt et al., 2022, "Truncation Sampling as Language Model
    Desmoothing"): keep tokens with probability >= ``epsilon``.

    ``epsilon = 0`` disables it. If no token reaches ``epsilon`` the most likely token is
    kept (the support is never empty).

    Parameters
    ----------
    epsilon : float
        Absolute probability threshold, valid range [0, 1).

    Raises
    ------
    ConfigError
        If ``epsilon`` is outside [0, 1).
    """
    if not 0.0 <= epsilon < 1.0:
        raise ConfigError(f"epsilon must be in [0, 1), got {epsilon}")
    x = as_logits(logits)
    if epsilon == 0.0:
        return x.copy()
    lp = log_softmax(x)
    return _keep_argmax(x, lp >= np.log(epsilon) - _tol(x))


def eta_threshold(logits: np.ndarray, eta: float) -> np.ndarray:
    """Eta sampling's threshold per row: ``min(eta, sqrt(eta) * exp(-H))``, H in nats.

    Returns
    -------
    ndarray, shape (batch,), float64
        Probability thresholds.
    """
    return np.minimum(eta, np.sqrt(eta) * np.exp(-entropy(logits)))


def eta_cutoff(logits: np.ndarray, eta: float) -> np.ndarray:
    """Eta sampling (Hewitt et al., 2022, "Truncation Sampling as Language Model
    Desmoothing"): keep tokens with probability >= ``min(eta, sqrt(eta) * exp(-H))``.

    ``H`` is the entropy of the row in nats, so flat (uncertain) distributions get a lower
    threshold than peaked ones. ``eta = 0`` disables it; the most likely token is always
    kept.

    Parameters
    ----------
    eta : float
        Valid range [0, 1).

    Raises
    ------
    ConfigError
        If ``eta`` is outside [0, 1).
    """
    if not 0.0 <= eta < 1.0:
        raise ConfigError(f"eta must be in [0, 1), got {eta}")
    x = as_logits(logits)
    if eta == 0.0:
        return x.copy()
    lp = log_softmax(x)
    thr = np.log(eta_threshold(x, eta))[:, None]
    return _keep_argmax(x, lp >= thr - _tol(x))


def top_n_sigma(logits: np.ndarray, n: float) -> np.ndarray:
    """Top-nσ (Tang et al., 2024/2025, "Top-nσ: Not All Logits Are You Need").

    Keeps tokens whose logit is >= ``max - n * std``, where ``max`` and ``std`` (population
    standard deviation) are taken over the row's finite logits. Because dividing logits by
    a temperature scales ``max`` and ``std`` alike, the kept set does not depend on the
    temperature. ``n = 0`` keeps the tokens tied with the maximum.

    Parameters
    ----------
    n : float
        Number of standard deviations, valid range [0, inf).

    Raises
    ------
    ConfigError
        If ``n`` is negative or not finite.
    """
    if not np.isfinite(n) or n < 0:
        raise ConfigError(f"top_n_sigma must be a finite number >= 0, got {n}")
    x = as_logits(logits)
    finite = np.isfinite(x)
    x64 = np.where(finite, x, 0.0).astype(np.float64)
    count = finite.sum(axis=-1, keepdims=True)
    mean = x64.sum(axis=-1, keepdims=True) / count
    var = (np.where(finite, x64 - mean, 0.0) ** 2).sum(axis=-1, keepdims=True) / count
    top = x.max(axis=-1, keepdims=True).astype(np.float64)
    tol = _tol(x) * np.maximum(1.0, np.abs(top))
    return _keep_argmax(x, x >= top - n * np.sqrt(var) - tol)
