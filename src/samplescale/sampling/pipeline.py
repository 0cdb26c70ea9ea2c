"""The ONE order in which token-level transforms are applied, and the draw itself.

Order (the same on every backend that exposes logits)::

    raw logits
      -> top_k        (on the temperature-1 logits)
      -> top_p        (on the renormalised result of the step before)
      -> min_p        (relative to the top probability)
      -> temperature  (last: it reshapes the kept set, never changes which tokens are kept)
      -> draw         (inverse CDF with one uniform number per row from that row's generator)

Temperature last is llama.cpp's convention (and the one the min-p paper argues for): the
truncation sets do not depend on the temperature. On logits ``[3, 2, 1]`` with
``temperature=0.5, top_p=0.8`` this keeps tokens {0, 1}; engines that apply temperature
first (Hugging Face, vLLM) keep {0}. ``temperature = 0`` is greedy: the argmax of the raw
logits (ties to the lowest id), with no random number consumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.sampling import functional as F

ORDER = ("top_k", "top_p", "min_p", "temperature")


class Draw(NamedTuple):
    """One drawn token per row.

    Attributes
    ----------
    token_ids : ndarray, shape (batch,), int64
    logprobs : ndarray, shape (batch,), float64
        Natural-log probability of each drawn token under the raw (unprocessed, temperature
        1, full-vocabulary) distribution.
    sampling_logprobs : ndarray, shape (batch,), float64
        Natural-log probability under the processed distribution it was drawn from
        (0.0 for greedy).
    """

    token_ids: np.ndarray
    logprobs: np.ndarray
    sampling_logprobs: np.ndarray


def process(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """Apply the transforms of ``params`` in the documented order.

    Parameters
    ----------
    logits : ndarray, shape (batch, vocab) or (vocab,), float
    params : SamplingParams

    Returns
    -------
    ndarray, shape (batch, vocab)
        Processed logits with ``-inf`` for removed tokens; a new array.
    """
    x = F.as_logits(logits)
    if params.top_k not in (0, -1):
        x = F.top_k(x, params.top_k)
    if params.top_p < 1.0:
        x = F.top_p(x, params.top_p)
    if params.min_p > 0.0:
        x = F.min_p(x, params.min_p)
    return F.temperature(x, params.temperature)


def _rows(rng: np.random.Generator | Sequence[np.random.Generator], batch: int) -> np.ndarray:
    if isinstance(rng, np.random.Generator):
        return rng.random(batch)
    if len(rng) != batch:
        raise ConfigError(f"need one generator per row: got {len(rng)} for batch {batch}")
    return np.array([g.random() for g in rng])


_BLOCK = 256


def _inverse_cdf(weights: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index ``i`` with ``cdf[i-1] <= u * total < cdf[i]`` per row, and the row totals.

    Two levels (block sums, then a cumulative sum inside one block), in float64: the same
    inverse CDF as a full cumulative sum at a fraction of its cost on large vocabularies.
    """
    b, v = weights.shape
    nb = -(-v // _BLOCK)
    padded = weights if nb * _BLOCK == v else np.pad(weights, ((0, 0), (0, nb * _BLOCK - v)))
    blocks = padded.reshape(b, nb, _BLOCK).sum(axis=-1, dtype=np.float64)
    bcdf = np.cumsum(blocks, axis=-1)
    total = bcdf[:, -1]
    ids = np.empty(b, dtype=np.int64)
    for r in range(b):
        target = u[r] * total[r]
        k = min(int(np.searchsorted(bcdf[r], target, side="right")), nb - 1)
        inner = np.cumsum(padded[r, k * _BLOCK : (k + 1) * _BLOCK], dtype=np.float64)
        j = int(np.searchsorted(inner, target - (bcdf[r, k - 1] if k else 0.0), side="right"))
        ids[r] = min(k * _BLOCK + min(j, _BLOCK - 1), v - 1)
    return ids, total


def sample(
    logits: np.ndarray,
    params: SamplingParams,
    rng: np.random.Generator | Sequence[np.random.Generator] | None,
) -> Draw:
    """Process ``logits`` and draw one token per row.

    Parameters
    ----------
    logits : ndarray, shape (batch, vocab) or (vocab,), float
        Raw next-token logits.
    params : SamplingParams
        Only the token-level fields are used (temperature, top_k, top_p, min_p).
    rng : Generator, sequence of Generator, or None
        One generator for all rows, or one per row (so each sequence keeps its own seeded
        stream). Unused, and may be None, when ``params.temperature == 0``.

    Returns
    -------
    Draw

    Raises
    ------
    ConfigError
        If logits are malformed (NaN, a row with no finite value) or ``rng`` is missing
        for a stochastic draw.
    """
    x = F.as_logits(logits)
    rows = np.arange(x.shape[0])
    z = x - x.max(axis=-1, keepdims=True)
    with np.errstate(under="ignore"):
        if params.greedy:
            ids = x.argmax(axis=-1)
            lse = np.log(np.exp(z).sum(axis=-1, dtype=np.float64))
            return Draw(ids.astype(np.int64), z[rows, ids] - lse, np.zeros(len(ids)))
        if rng is None:
            raise ConfigError("rng is required when temperature > 0")
        transformed = params.top_k not in (0, -1) or params.top_p < 1.0 or params.min_p > 0.0
        y = process(z, params) if transformed or params.temperature != 1.0 else z
        e = np.exp(y)  # row maxima of y are 0
        ids, total = _inverse_cdf(e, _rows(rng, x.shape[0]))
        lse = np.log(total) if y is z else np.log(np.exp(z).sum(axis=-1, dtype=np.float64))
        # rounding at the very end of the CDF must never select a removed token
        bad = ~np.isfinite(y[rows, ids])
        if bad.any():
            ids[bad] = y[bad].argmax(axis=-1)
        sampling_lp = y[rows, ids].astype(np.float64) - np.log(total)
    return Draw(ids.astype(np.int64), z[rows, ids].astype(np.float64) - lse, sampling_lp)
