"""Truncation samplers beyond top-k / top-p / min-p: typical, epsilon, eta, top-n-sigma.

Same contract as :mod:`samplescale.sampling.functional`: each function takes logits of
shape ``(batch, vocab)`` (natural-log scale, any additive offset; ``-inf`` marks tokens an
earlier transform removed), returns a NEW array of the same shape and dtype with ``-inf``
for removed tokens, never empties a row (the most likely token is always kept), and
raises ``ConfigError`` naming the valid range of its parameter. Probabilities are those
of the row's current (renormalised) distribution. Each public function wraps one mask
function on :class:`samplescale.sampling.rows.Rows` (``*_mask``), which the pipeline chains.
"""

from __future__ import annotations

import numpy as np

from samplescale.errors import ConfigError
from samplescale.sampling.functional import as_logits, mass_tol
from samplescale.sampling.prefix import prefix_mask
from samplescale.sampling.rows import Rows, masked

__all__ = ["entropy", "epsilon_cutoff", "eta_cutoff", "eta_threshold", "top_n_sigma", "typical_p"]

_TYPICAL_RADII = (3.0, 10.0)  # candidate radii beyond -E[z] (they decide speed, not results)


def _with_argmax(rows: Rows, keep: np.ndarray) -> np.ndarray:
    keep[np.arange(keep.shape[0]), rows.x.argmax(axis=-1)] = True
    return keep


def _entropy(rows: Rows) -> np.ndarray:
    return np.log(rows.total) - rows.mean_z


def entropy(logits: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row's distribution, in nats; shape ``(batch,)``, float64."""
    return _entropy(Rows(as_logits(logits)))[:, 0]


def typical_mask(rows: Rows, p: float) -> np.ndarray:
    """Keep mask of :func:`typical_p` (``p < 1``).

    The distance of a token's surprisal from the entropy is ``|z - E[z]|`` (both in nats:
    ``-log p(x) - H = E[z] - z`` for the log-weights ``z <= 0`` of :class:`Rows`), computed
    in the logits' dtype. Candidates: distance <= ``rho - E[z]``, i.e. ``z >= 2 E[z] - rho``,
    for each ``rho`` of :data:`_TYPICAL_RADII` in turn
    (:func:`samplescale.sampling.prefix.prefix_mask`).
    """
    zs = rows.z  # the whole of z first: mean_z, the keys and the candidates all read it
    c = rows.mean_z[:, 0].astype(zs.dtype)

    def row(r: int):
        z, cr = zs[r], c[r]

        def tries():  # every other token has z < low: distance c - z >= c - low (rounded)
            for rho in _TYPICAL_RADII:
                low = 2 * cr - z.dtype.type(rho)
                yield np.flatnonzero(z >= low), cr - low

        return (lambda ids: np.abs((z if ids is None else z[ids]) - cr)), tries()

    return prefix_mask(rows.e, (p - mass_tol(rows.x)) * rows.total[:, 0], row)


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
    return masked(x, typical_mask(Rows(x), p))


def _at_least(rows: Rows, threshold: np.ndarray) -> np.ndarray:
    """Tokens with probability >= ``threshold`` (shape (batch, 1)), plus each argmax."""
    log_min = np.log(threshold) + np.log(rows.total) - mass_tol(rows.x)
    return _with_argmax(rows, rows.z >= log_min.astype(rows.z.dtype))


def epsilon_mask(rows: Rows, epsilon: float) -> np.ndarray:
    """Keep mask of :func:`epsilon_cutoff` (``epsilon > 0``)."""
    return _at_least(rows, np.full((rows.x.shape[0], 1), epsilon))


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
    return masked(x, epsilon_mask(Rows(x), epsilon))


def _eta_threshold(rows: Rows, eta: float) -> np.ndarray:
    return np.minimum(eta, np.sqrt(eta) * np.exp(-_entropy(rows)))


def eta_threshold(logits: np.ndarray, eta: float) -> np.ndarray:
    """Eta sampling's threshold per row: ``min(eta, sqrt(eta) * exp(-H))``, H in nats.

    Returns
    -------
    ndarray, shape (batch,), float64
        Probability thresholds.
    """
    return _eta_threshold(Rows(as_logits(logits)), eta)[:, 0]


def eta_mask(rows: Rows, eta: float) -> np.ndarray:
    """Keep mask of :func:`eta_cutoff` (``eta > 0``)."""
    return _at_least(rows, _eta_threshold(rows, eta))


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
    return masked(x, eta_mask(Rows(x), eta))


def top_n_sigma_mask(rows: Rows, n: float) -> np.ndarray:
    """Keep mask of :func:`top_n_sigma`; statistics in float64 over the finite logits."""
    x = rows.x
    finite = np.isfinite(x)
    x64 = np.where(finite, x, 0.0).astype(np.float64)
    count = finite.sum(axis=-1, keepdims=True)
    mean = x64.sum(axis=-1, keepdims=True) / count
    var = (np.where(finite, x64 - mean, 0.0) ** 2).sum(axis=-1, keepdims=True) / count
    top = rows.m.astype(np.float64)
    tol = mass_tol(x) * np.maximum(1.0, np.abs(top))
    return _with_argmax(rows, x >= top - n * np.sqrt(var) - tol)


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
    return masked(x, top_n_sigma_mask(Rows(x), n))
