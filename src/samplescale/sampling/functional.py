"""Token-level transforms as pure functions on ``(batch, vocab)`` logits.

Every function takes a 2-D float array of logits (natural-log scale, any additive offset),
returns a NEW float array of the same shape (the input is never mutated) in which removed
tokens are ``-inf``, and validates its parameter (``ConfigError`` names the valid range).
Inputs of float16 are computed in float32; float32 and float64 keep their dtype.

Each truncation is one *mask function* on :class:`samplescale.sampling.rows.Rows` (``*_mask``,
the one implementation, which the pipeline chains) wrapped by a public function that
validates and applies it. Truncations compare probability masses with a tolerance of 16
machine epsilons of the working dtype, so that a mass that equals the threshold in exact
arithmetic (e.g. 0.5 + 0.3 against top_p = 0.8) counts as reaching it despite rounding.
"""

from __future__ import annotations

import math

import numpy as np

from samplescale.errors import ConfigError
from samplescale.sampling.prefix import prefix_mask, smallest_prefix_with_mass
from samplescale.sampling.rows import Rows, divide, masked

__all__ = [
    "as_logits",
    "log_softmax",
    "softmax",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "smallest_prefix_with_mass",
]


def checked_logits(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`as_logits` and the row maxima it computed, shape (batch, 1)."""
    x = np.asarray(logits)
    if x.dtype.kind != "f" or x.dtype.itemsize < 4:
        x = x.astype(np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ConfigError(f"logits must have shape (batch, vocab) with vocab >= 1, got {x.shape}")
    top = x.max(axis=-1, keepdims=True)  # NaN and +inf propagate into the row maximum
    if not np.isfinite(top).all():
        if np.isnan(top).any() or np.isposinf(top).any():
            raise ConfigError("logits must not contain NaN or +inf")
        raise ConfigError("every row of logits needs at least one finite value (all -inf row)")
    return x, top


def as_logits(logits: np.ndarray) -> np.ndarray:
    """Return ``logits`` as a 2-D float array of at least float32 precision (no copy if possible).

    Raises
    ------
    ConfigError
        If the array is not 1-D or 2-D, has an empty vocabulary, contains NaN or +inf, or
        a row has no finite logit (nothing could be sampled from it).
    """
    return checked_logits(logits)[0]


def mass_tol(x: np.ndarray) -> float:
    """Rounding tolerance on probability masses: 16 machine epsilons of ``x``'s dtype."""
    return float(16 * np.finfo(x.dtype).eps)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Natural-log probabilities, shape ``(batch, vocab)``; ``-inf`` stays ``-inf``."""
    x = as_logits(logits)
    m = x.max(axis=-1, keepdims=True)
    z = x - m
    with np.errstate(under="ignore"):
        lse = np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z - lse


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities, shape ``(batch, vocab)``, each row summing to 1 (up to rounding)."""
    x = as_logits(logits)
    with np.errstate(under="ignore"):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def temperature(logits: np.ndarray, t: float) -> np.ndarray:
    """Divide logits by the temperature ``t``.

    ``t = 0`` is greedy decoding: the result keeps only the argmax of each row (ties go to
    the lowest token id) at logit 0 and sets every other token to ``-inf``. Tiny positive
    temperatures never overflow to NaN: the row maximum is subtracted first (in the
    logits' dtype), and the division is done in float64 when ``t`` underflows the dtype.

    Parameters
    ----------
    logits : ndarray, shape (batch, vocab), float
    t : float
        Temperature, valid range [0, inf).

    Returns
    -------
    ndarray, shape (batch, vocab)
        ``(logits - row max) / t``: row maximum 0.

    Raises
    ------
    ConfigError
        If ``t`` is negative or not finite.
    """
    if not np.isfinite(t) or t < 0:
        raise ConfigError(f"temperature must be a finite number >= 0, got {t}")
    x = as_logits(logits)
    if t == 0:
        out = np.full_like(x, -np.inf)
        out[np.arange(x.shape[0]), x.argmax(axis=-1)] = 0.0
        return out
    z = x - x.max(axis=-1, keepdims=True)
    return divide(z, t, out=z)


def top_k_mask(rows: Rows, k: int) -> np.ndarray:
    """Keep mask of :func:`top_k` (``k >= 1``), shape (batch, n), bool."""
    x = rows.x
    if k >= x.shape[1]:
        return np.ones(x.shape, dtype=bool)
    pos = x.shape[1] - k
    kth = np.partition(x, pos, axis=-1)[:, pos : pos + 1]
    keep = x >= kth
    extra = keep.sum(axis=-1) - k  # tokens tied at the k-th value beyond the k
    for r in np.flatnonzero(extra):
        tied = np.flatnonzero(x[r] == kth[r])
        keep[r, tied[tied.size - extra[r] :]] = False  # the lowest ids stay
    return keep


def top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the ``k`` highest logits of each row (Fan et al., 2018).

    ``k = 0`` or ``k = -1`` disables the filter (a copy is returned); ``k >= vocab`` keeps
    everything. Tie rule: exactly ``k`` tokens are kept; among tokens tied at the k-th
    value, the lowest token ids are kept.

    Raises
    ------
    ConfigError
        If ``k < -1``.
    """
    if k < -1:
        raise ConfigError(f"top_k must be >= -1 (0 or -1 disables it), got {k}")
    x = as_logits(logits)
    if k in (0, -1) or k >= x.shape[1]:
        return x.copy()
    return masked(x, top_k_mask(Rows(x), k))


_TOP_P_LEVELS = (math.exp(-8.0), math.exp(-12.0), math.exp(-16.0))  # candidate weights


def top_p_mask(rows: Rows, p: float) -> np.ndarray:
    """Keep mask of :func:`top_p` (``p < 1``) on the rows' renormalised distribution.

    Sort key ``-e`` (decreasing weight, top weight 1); candidates: weight >= each of
    :data:`_TOP_P_LEVELS` in turn (:func:`samplescale.sampling.prefix.prefix_mask`).
    """
    e = rows.e
    levels = [e.dtype.type(t) for t in _TOP_P_LEVELS]

    def row(r: int):  # other tokens have weight < t: key -w > -t
        er = e[r]
        tries = ((np.flatnonzero(er >= t), np.nextafter(-t, np.inf, dtype=e.dtype)) for t in levels)
        return (lambda ids: -(er if ids is None else er[ids])), tries

    return prefix_mask(e, (p - mass_tol(rows.x)) * rows.total[:, 0], row)


def top_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Nucleus sampling (Holtzman et al., 2020, "The Curious Case of Neural Text Degeneration").

    Keeps the smallest set of most likely tokens whose probability mass is >= ``p``. Ties in
    probability are ordered by lower token id. ``p = 1`` disables the filter; ``p = 0`` keeps
    only the argmax (the set is never empty).

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
        raise ConfigError(f"top_p must be in [0, 1], got {p}")
    x = as_logits(logits)
    if p >= 1.0:
        return x.copy()
    return masked(x, top_p_mask(Rows(x), p))


def min_p_mask(rows: Rows, p: float) -> np.ndarray:
    """Keep mask of :func:`min_p` (``p > 0``): weight >= ``p`` times the top weight."""
    return rows.z >= math.log(p) - mass_tol(rows.x)


def min_p(logits: np.ndarray, p: float) -> np.ndarray:
    """Min-p sampling (Nguyen et al., 2024, "Turning Up the Heat: Min-p Sampling").

    Keeps tokens whose probability is >= ``p`` times the probability of the most likely
    token of the same row. ``p = 0`` disables it; ``p = 1`` keeps the tokens tied with the
    maximum.

    Raises
    ------
    ConfigError
        If ``p`` is outside [0, 1].
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"min_p must be in [0, 1], got {p}")
    x = as_logits(logits)
    if p == 0.0:
        return x.copy()
    return masked(x, min_p_mask(Rows(x), p))
