"""Token-level transforms as pure functions on ``(batch, vocab)`` logits.

Every function takes a 2-D float array of logits (natural-log scale, any additive offset),
returns a NEW float array of the same shape (the input is never mutated) in which removed
tokens are ``-inf``, and validates its parameter (``ConfigError`` names the valid range).
Inputs of float16 are computed in float32; float32 and float64 keep their dtype.

Truncations compare probability masses with a tolerance of 16 machine epsilons of the
working dtype, so that a mass that equals the threshold in exact arithmetic (e.g.
0.5 + 0.3 against top_p = 0.8) counts as reaching it despite rounding.
"""

from __future__ import annotations

import numpy as np

from samplescale.errors import ConfigError

__all__ = [
    "as_logits",
    "log_softmax",
    "softmax",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
]


def as_logits(logits: np.ndarray) -> np.ndarray:
    """Return ``logits`` as a 2-D float array of at least float32 precision (no copy if possible).

    Raises
    ------
    ConfigError
        If the array is not 1-D or 2-D, has an empty vocabulary, contains NaN or +inf, or
        a row has no finite logit (nothing could be sampled from it).
    """
    x = np.asarray(logits)
    if x.dtype.kind != "f" or x.dtype.itemsize < 4:
        x = x.astype(np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ConfigError(f"logits must have shape (batch, vocab) with vocab >= 1, got {x.shape}")
    top = x.max(axis=-1)  # NaN and +inf propagate into the row maximum: one pass checks all
    if not np.isfinite(top).all():
        if np.isnan(top).any() or np.isposinf(top).any():
            raise ConfigError("logits must not contain NaN or +inf")
        raise ConfigError("every row of logits needs at least one finite value (all -inf row)")
    return x


_NUCLEUS_CANDIDATES = 1024


def _tol(x: np.ndarray) -> float:
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
    temperatures never overflow to NaN, because the row maximum is subtracted first.

    Parameters
    ----------
    logits : ndarray, shape (batch, vocab), float
    t : float
        Temperature, valid range [0, inf).

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
    tt = x.dtype.type(t)
    if tt == 0 or not np.isfinite(1 / tt):  # t underflows in this dtype: divide in float64
        x, tt = x.astype(np.float64), np.float64(t)
    return (x - x.max(axis=-1, keepdims=True)) / tt


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
    pos = x.shape[1] - k
    kth = np.partition(x, pos, axis=-1)[:, pos : pos + 1]
    above = x > kth
    tied = x == kth
    room = k - above.sum(axis=-1, keepdims=True)
    keep = above | (tied & (np.cumsum(tied, axis=-1) <= room))
    return np.where(keep, x, -np.inf).astype(x.dtype, copy=False)


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
    probs = softmax(x)
    keep = smallest_prefix_with_mass(-probs, probs, p - _tol(x))
    return np.where(keep, x, -np.inf).astype(x.dtype, copy=False)


def smallest_prefix_with_mass(key: np.ndarray, probs: np.ndarray, p: float) -> np.ndarray:
    """Mask of the shortest prefix of each row, in ascending ``key`` order (ties: lower id),
    whose probability mass reaches ``p``; at least one token per row.

    Exact and fast on large vocabularies: the :data:`_NUCLEUS_CANDIDATES` smallest keys are
    found by partition; if the tokens among them with a key strictly below the largest
    candidate key already hold mass ``>= p``, the prefix lies among them (every token with a
    smaller key is a candidate), so only they are sorted; otherwise the row is fully sorted.

    Parameters
    ----------
    key : ndarray, shape (batch, vocab), float
        Sort key (``-probs`` for top-p; ``inf`` for tokens that must come last).
    probs : ndarray, shape (batch, vocab), float
    p : float
        Mass to reach (callers subtract their rounding tolerance).

    Returns
    -------
    ndarray, shape (batch, vocab), bool
    """
    b, v = key.shape
    m = min(v, _NUCLEUS_CANDIDATES)
    keep = np.zeros((b, v), dtype=bool)
    full = np.ones(b, dtype=bool)
    orders: list[np.ndarray | None] = [None] * b
    if m < v:
        cand = np.argpartition(key, m - 1, axis=-1)[:, :m]
        ck = np.take_along_axis(key, cand, axis=-1)
        below = ck < ck.max(axis=-1, keepdims=True)
        mass = np.where(below, np.take_along_axis(probs, cand, axis=-1), 0.0).sum(axis=-1)
        full = ~(mass >= p)
        for r in np.flatnonzero(~full):
            ids = np.sort(cand[r])
            orders[r] = ids[np.argsort(key[r, ids], kind="stable")]
    for r in range(b):
        order = orders[r]
        if order is None:  # full sort: the fast unstable sort, unless a tie meets the boundary
            order = np.argsort(key[r])
            kept = _prefix(probs[r, order], p)
            j = int(np.count_nonzero(kept)) - 1
            sk = key[r, order[max(j - 1, 0) : j + 2]]
            if np.unique(sk).size < sk.size:
                order = np.argsort(key[r], kind="stable")
                kept = _prefix(probs[r, order], p)
        else:
            kept = _prefix(probs[r, order], p)
        keep[r, order[kept]] = True
    return keep


def _prefix(sorted_p: np.ndarray, p: float) -> np.ndarray:
    """Mask of the shortest prefix whose mass reaches ``p`` (mass before each entry < p)."""
    sorted_p = sorted_p.astype(np.float64)
    kept = np.cumsum(sorted_p) - sorted_p < p
    kept[0] = True
    return kept


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
    m = x.max(axis=-1, keepdims=True)
    keep = (x - m) >= np.log(p) - _tol(x)
    return np.where(keep, x, -np.inf).astype(x.dtype, copy=False)
