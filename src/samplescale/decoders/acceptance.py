"""The verification step of speculative sampling and the exact law of multi-draft
selection: pure functions on probability vectors (see :mod:`samplescale.decoders.
speculative` for the decoder and the papers).

``accept_or_resample`` is the rule of Leviathan, Kalman & Matias (2023) and Chen et al.
(2023): keep a token ``x ~ q`` with probability ``min(1, p(x) / q(x))``, else draw from
``norm(max(p - q, 0))``, so the output is distributed exactly as ``p``.
``selection_distribution`` is the law ``q~`` of the token that importance resampling picks
among ``m`` i.i.d. drafts (Khisti et al., 2024), against which the picked token is verified.
"""

from __future__ import annotations

import math
from itertools import combinations_with_replacement

import numpy as np

from samplescale.config import SamplingParams
from samplescale.sampling import pipeline

_PLAIN = SamplingParams(temperature=1.0)


def draw(weights: np.ndarray, rng: np.random.Generator) -> int:
    """One index drawn with probability proportional to ``weights`` (>= 0, not all 0)."""
    with np.errstate(divide="ignore"):
        logits = np.log(np.asarray(weights, dtype=np.float64))[None, :]
    return int(pipeline.sample(logits, _PLAIN, rng).token_ids[0])


def accept_or_resample(
    p: np.ndarray, q: np.ndarray, token: int, rng: np.random.Generator
) -> tuple[int, bool]:
    """One verification step: keep ``token ~ q`` with probability ``min(1, p/q)``, else draw
    from ``norm(max(p - q, 0))``; the returned token is distributed as ``p``.

    Parameters
    ----------
    p, q : ndarray, shape (V,), float64
        Target and proposal probabilities (each sums to 1); ``q[token] > 0``.
    token : int
        The proposed token.
    rng : numpy.random.Generator

    Returns
    -------
    (int, bool)
        The output token and whether the proposal was accepted. When the residual is all
        zero (``p == q`` up to rounding, so rejection had probability ~0) the token is
        drawn from ``p``: never 0/0.
    """
    if rng.random() * q[token] < p[token]:
        return token, True
    residual = np.maximum(p - q, 0.0)
    return draw(residual if residual.sum() > 0 else p, rng), False


def _sum_law(w: np.ndarray, q: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Atoms and probabilities of ``S = w(Y_1) + ... + w(Y_r)``, ``Y_l`` i.i.d. ``q``, by
    enumerating multisets (multinomial coefficient ``r! / prod(counts!)``)."""
    idx = np.array(list(combinations_with_replacement(range(len(q)), r)), dtype=np.intp)
    idx = idx.reshape(-1, r)
    factorials = np.ones(len(idx))
    run = np.ones(len(idx))
    for j in range(1, r):
        run = np.where(idx[:, j] == idx[:, j - 1], run + 1, 1.0)
        factorials *= run
    prob = math.factorial(r) / factorials * q[idx].prod(axis=1)
    return w[idx].sum(axis=1), prob


def selection_distribution(p: np.ndarray, q: np.ndarray, m: int) -> np.ndarray:
    """Exact law of the token picked by importance resampling among ``m`` i.i.d. draws.

    Draw ``Y_1..Y_m ~ q`` i.i.d. and pick ``Y_j`` with probability ``w(Y_j) / sum_l w(Y_l)``,
    ``w = p / q`` (uniformly when all weights are 0). With ``S`` the sum of ``m - 1``
    i.i.d. weights ``w(Y)``, ``Z = {y : p(y) = 0}``::

        q~(y) = m * p(y) * E[1 / (w(y) + S)]    for p(y) > 0
        q~(y) = q(y) * q(Z)^(m-1)               for y in Z

    and ``q~ = q`` for ``m = 1``. Cost: ``s * C(s + m - 2, m - 1)`` for a support of ``s``
    tokens.

    Parameters
    ----------
    p, q : ndarray, shape (V,), float64
        Target and draft probabilities.
    m : int
        Number of draws, >= 1.

    Returns
    -------
    ndarray, shape (V,), float64
        Probabilities summing to 1, zero outside the support of ``q``.
    """
    if m == 1:
        return q.copy()
    sup = np.flatnonzero(q > 0)
    qs, ps = q[sup], p[sup]
    w = ps / qs
    atoms, prob = _sum_law(w, qs, m - 1)
    out = np.zeros_like(q)
    pos = w > 0
    out[sup[pos]] = m * ps[pos] * (prob[None, :] / (w[pos, None] + atoms[None, :])).sum(axis=1)
    out[sup[~pos]] = qs[~pos] * qs[~pos].sum() ** (m - 1)
    return out


def selection_cost(support: int, drafts: int) -> int:
    """Operations of :func:`selection_distribution`: ``s * C(s + m - 2, m - 1)``."""
    return support * math.comb(support + drafts - 2, drafts - 1)
