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
    raw_lp = F.log_softmax(x)
    rows = np.arange(x.shape[0])
    if params.greedy:
        ids = x.argmax(axis=-1)
        return Draw(ids.astype(np.int64), raw_lp[rows, ids].astype(np.float64), np.zeros(len(ids)))
    if rng is None:
        raise ConfigError("rng is required when temperature > 0")
    lp = F.log_softmax(process(x, params)).astype(np.float64)
    cdf = np.cumsum(np.exp(lp), axis=-1)
    u = _rows(rng, x.shape[0]) * cdf[:, -1]
    ids = np.minimum((cdf <= u[:, None]).sum(axis=-1), x.shape[1] - 1)
    # guard against landing on a zero-probability token through rounding at the end
    bad = ~np.isfinite(lp[rows, ids])
    if bad.any():
        ids[bad] = lp[bad].argmax(axis=-1)
    return Draw(ids.astype(np.int64), raw_lp[rows, ids].astype(np.float64), lp[rows, ids])
