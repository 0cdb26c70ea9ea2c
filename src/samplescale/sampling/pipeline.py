"""The ONE order in which token-level transforms are applied, and the draw itself.

Order (the same on every backend that exposes logits)::

    raw logits
      -> penalties    (repetition, then presence / frequency; on the sample's generated tokens)
      -> top_k        (on the temperature-1 logits)
      -> top_n_sigma  (on the logits left by top-k)
      -> typical_p    (on the renormalised distribution left by the steps before)
      -> top_p        (likewise)
      -> min_p        (relative to the top probability)
      -> epsilon      (absolute probability of the renormalised distribution)
      -> eta          (likewise, with the entropy of that distribution)
      -> temperature  (last; FIRE's hot temperature for the first tokens, then the regular one)
      -> draw         (inverse CDF with one uniform number per row, or an arithmetic code)

Temperature last is llama.cpp's convention (and the one the min-p paper argues for): the
truncation sets do not depend on the temperature. On logits ``[3, 2, 1]`` with
``temperature=0.5, top_p=0.8`` this keeps tokens {0, 1}; engines that apply temperature
first (Hugging Face, vLLM) keep {0}. Temperature ``0`` is greedy: the argmax of the
penalised logits (ties to the lowest id; truncations never remove the argmax), with no
random number consumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.sampling import functional as F
from samplescale.sampling import truncation as T
from samplescale.sampling.penalties import apply_penalties

ORDER = (
    "penalties",
    "top_k",
    "top_n_sigma",
    "typical_p",
    "top_p",
    "min_p",
    "epsilon",
    "eta",
    "temperature",
)

History = Sequence[Sequence[int]]


class Draw(NamedTuple):
    """One drawn token per row.

    Attributes
    ----------
    token_ids : ndarray, shape (batch,), int64
    logprobs : ndarray, shape (batch,), float64
        Natural-log probability of each drawn token under the raw (unprocessed, temperature
        1, full-vocabulary, unpenalised) distribution.
    sampling_logprobs : ndarray, shape (batch,), float64
        Natural-log probability under the processed distribution it was drawn from
        (0.0 for greedy).
    next_codes : ndarray, shape (batch,), float64, or None
        With arithmetic codes: each row's code rescaled into the drawn token's interval,
        ``(code - cdf_before) / p(token)``, in [0, 1); None otherwise.
    """

    token_ids: np.ndarray
    logprobs: np.ndarray
    sampling_logprobs: np.ndarray
    next_codes: np.ndarray | None = None


def _steps(params: SamplingParams) -> list:
    steps = []
    if params.top_k not in (0, -1):
        steps.append(lambda x: F.top_k(x, params.top_k))
    if params.top_n_sigma is not None:
        steps.append(lambda x: T.top_n_sigma(x, params.top_n_sigma))
    if params.typical_p < 1.0:
        steps.append(lambda x: T.typical_p(x, params.typical_p))
    if params.top_p < 1.0:
        steps.append(lambda x: F.top_p(x, params.top_p))
    if params.min_p > 0.0:
        steps.append(lambda x: F.min_p(x, params.min_p))
    if params.epsilon > 0.0:
        steps.append(lambda x: T.epsilon_cutoff(x, params.epsilon))
    if params.eta > 0.0:
        steps.append(lambda x: T.eta_cutoff(x, params.eta))
    return steps


def process(
    logits: np.ndarray,
    params: SamplingParams,
    history: History | None = None,
    position: int = 0,
) -> np.ndarray:
    """Apply the transforms of ``params`` in the documented order.

    Parameters
    ----------
    logits : ndarray, shape (batch, vocab) or (vocab,), float
    params : SamplingParams
    history : sequence of sequence of int, optional
        Each row's generated token ids so far (for the penalties); None: nothing generated.
    position : int
        0-based index of the token being drawn (for FIRE's temperature schedule).

    Returns
    -------
    ndarray, shape (batch, vocab)
        Processed logits with ``-inf`` for removed tokens, row maximum 0; a new array.
    """
    x = F.as_logits(logits)
    if params.penalized and history is not None:
        x = apply_penalties(
            x,
            history,
            params.repetition_penalty,
            params.presence_penalty,
            params.frequency_penalty,
        )
    for step in _steps(params):
        x = step(x)
    return F.temperature(x, params.temperature_at(position))


def _rows(rng: np.random.Generator | Sequence[np.random.Generator], batch: int) -> np.ndarray:
    if isinstance(rng, np.random.Generator):
        return rng.random(batch)
    if len(rng) != batch:
        raise ConfigError(f"need one generator per row: got {len(rng)} for batch {batch}")
    return np.array([g.random() for g in rng])


_BLOCK = 256


def _inverse_cdf(weights: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index ``i`` with ``cdf[i-1] <= u * total < cdf[i]`` per row, the row totals, and
    ``cdf[i-1]`` (the mass before the chosen index).

    Two levels (block sums, then a cumulative sum inside one block), in float64: the same
    inverse CDF as a full cumulative sum at a fraction of its cost on large vocabularies.
    """
    b, v = weights.shape
    if v <= _BLOCK:  # small vocabularies: one cumulative sum
        cdf = np.cumsum(weights, axis=-1, dtype=np.float64)
        total = cdf[:, -1]
        ids = np.minimum((cdf <= (u * total)[:, None]).sum(axis=-1), v - 1)
        before = np.where(ids > 0, cdf[np.arange(b), np.maximum(ids - 1, 0)], 0.0)
        return ids.astype(np.int64), total, before
    nb = v // _BLOCK  # full blocks; the tail (v % _BLOCK tokens) is one more block
    blocks = weights[:, : nb * _BLOCK].reshape(b, nb, _BLOCK).sum(axis=-1, dtype=np.float64)
    if nb * _BLOCK < v:
        tail = weights[:, nb * _BLOCK :].sum(axis=-1, dtype=np.float64)[:, None]
        blocks = np.concatenate([blocks, tail], axis=-1)
    bcdf = np.cumsum(blocks, axis=-1)
    total = bcdf[:, -1]
    last = bcdf.shape[1] - 1
    ids = np.empty(b, dtype=np.int64)
    before = np.empty(b, dtype=np.float64)
    for r in range(b):
        target = u[r] * total[r]
        k = min(int(np.searchsorted(bcdf[r], target, side="right")), last)
        inner = np.cumsum(weights[r, k * _BLOCK : (k + 1) * _BLOCK], dtype=np.float64)
        base = bcdf[r, k - 1] if k else 0.0
        j = min(int(np.searchsorted(inner, target - base, side="right")), inner.size - 1)
        ids[r] = k * _BLOCK + j
        before[r] = base + (inner[j - 1] if j else 0.0)
    return ids, total, before


def sample(
    logits: np.ndarray,
    params: SamplingParams,
    rng: np.random.Generator | Sequence[np.random.Generator] | None,
    *,
    history: History | None = None,
    position: int = 0,
    codes: np.ndarray | None = None,
) -> Draw:
    """Process ``logits`` and draw one token per row.

    Parameters
    ----------
    logits : ndarray, shape (batch, vocab) or (vocab,), float
        Raw next-token logits.
    params : SamplingParams
        Only the token-level fields are used.
    rng : Generator, sequence of Generator, or None
        One generator for all rows, or one per row (so each sequence keeps its own seeded
        stream). Unused, and may be None, for greedy steps or when ``codes`` are given.
    history : sequence of sequence of int, optional
        Each row's generated token ids (for the penalties).
    position : int
        0-based index of the token being drawn (FIRE schedule).
    codes : ndarray, shape (batch,), float64, optional
        Arithmetic-sampling code points in [0, 1) used instead of fresh uniforms (Vilnis et
        al., 2023); the rescaled codes come back in ``Draw.next_codes``.

    Returns
    -------
    Draw

    Raises
    ------
    ConfigError
        If logits are malformed (NaN, a row with no finite value), ``codes`` are outside
        [0, 1), or ``rng`` is missing for a stochastic draw.
    """
    x = F.as_logits(logits)
    rows = np.arange(x.shape[0])
    z = x - x.max(axis=-1, keepdims=True)
    with np.errstate(under="ignore"):
        raw_lse = None
        if params.temperature_at(position) == 0.0:
            # penalties see the raw logits (the repetition penalty depends on their sign)
            y = process(x, params, history, position) if params.penalized else z
            ids = y.argmax(axis=-1)
            raw_lse = np.log(np.exp(z).sum(axis=-1, dtype=np.float64))
            return Draw(
                ids.astype(np.int64),
                z[rows, ids] - raw_lse,
                np.zeros(len(ids)),
                None if codes is None else np.asarray(codes, dtype=np.float64).copy(),
            )
        if codes is not None:
            u = np.asarray(codes, dtype=np.float64)
            if u.shape != (x.shape[0],) or not ((u >= 0) & (u < 1)).all():
                raise ConfigError(f"codes must have shape ({x.shape[0]},) with values in [0, 1)")
        elif rng is None:
            raise ConfigError("rng is required when temperature > 0")
        else:
            u = _rows(rng, x.shape[0])
        plain = params.temperature_at(position) == 1.0 and not (
            _steps(params) or (params.penalized and history is not None)
        )
        y = z if plain else process(x, params, history, position)
        e = np.exp(y)  # row maxima of y are 0
        ids, total, before = _inverse_cdf(e, u)
        # rounding at the very end of the CDF must never select a removed token
        bad = ~np.isfinite(y[rows, ids])
        if bad.any():
            ids[bad] = y[bad].argmax(axis=-1)
        raw_lse = np.log(total) if plain else np.log(np.exp(z).sum(axis=-1, dtype=np.float64))
        sampling_lp = y[rows, ids].astype(np.float64) - np.log(total)
        next_codes = None
        if codes is not None:
            w = e[rows, ids].astype(np.float64)
            next_codes = np.clip((u * total - before) / w, 0.0, np.nextafter(1.0, 0.0))
    return Draw(
        ids.astype(np.int64), z[rows, ids].astype(np.float64) - raw_lse, sampling_lp, next_codes
    )
