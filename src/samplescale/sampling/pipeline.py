"""The ONE order in which token-level transforms are applied, and the draw itself.

Order (the same on every backend that exposes logits)::

    raw logits
      -> constraint   (the allowed-token mask of a grammar or JSON schema, when given)
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

The constraint's mask comes first, so every truncation works on the distribution
renormalised over the allowed tokens and never leaves a row empty (truncations keep at
least the argmax). Log-probabilities of a draw: ``Draw.logprobs`` are BEFORE the mask
(the raw model), ``Draw.sampling_logprobs`` AFTER it (the processed distribution the
token was drawn from); at temperature 1 without truncation their difference is the log
of the probability mass the mask kept (constrained SMC's incremental weight).

Temperature last is llama.cpp's convention (and the one the min-p paper argues for): the
truncation sets do not depend on the temperature. On logits ``[3, 2, 1]`` with
``temperature=0.5, top_p=0.8`` this keeps tokens {0, 1}; engines that apply temperature
first (Hugging Face, vLLM) keep {0}. Temperature ``0`` is greedy: the argmax of the
penalised logits (ties to the lowest id; truncations never remove the argmax), with no
random number consumed.

Speed without a second implementation: the pipeline chains the SAME mask functions as the
public transforms (``*_mask`` in :mod:`functional` and :mod:`truncation`) on one
:class:`~samplescale.sampling.rows.Rows` that shrinks to the kept tokens after each step
(:meth:`Rows.restrict`), validates the logits once, draws from the kept columns only, and
keeps its vocabulary-sized arrays in a reusable :mod:`~samplescale.sampling.workspace`.
:func:`process` and :func:`sample` therefore agree exactly: ``sample`` draws from
``softmax(process(...))``, and its ``sampling_logprobs`` are that distribution's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.sampling import functional as F
from samplescale.sampling import truncation as T
from samplescale.sampling.penalties import history_counts, penalize
from samplescale.sampling.rows import Rows, divide
from samplescale.sampling.workspace import Workspace, borrow

ORDER = (
    "constraint",
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


def _masks(params: SamplingParams) -> list[Callable[[Rows], np.ndarray]]:
    """The truncations of ``params`` in :data:`ORDER`, as mask functions."""
    steps: list[Callable[[Rows], np.ndarray]] = []
    if params.top_k not in (0, -1):
        steps.append(partial(F.top_k_mask, k=params.top_k))
    if params.top_n_sigma is not None:
        steps.append(partial(T.top_n_sigma_mask, n=params.top_n_sigma))
    if params.typical_p < 1.0:
        steps.append(partial(T.typical_mask, p=params.typical_p))
    if params.top_p < 1.0:
        steps.append(partial(F.top_p_mask, p=params.top_p))
    if params.min_p > 0.0:
        steps.append(partial(F.min_p_mask, p=params.min_p))
    if params.epsilon > 0.0:
        steps.append(partial(T.epsilon_mask, epsilon=params.epsilon))
    if params.eta > 0.0:
        steps.append(partial(T.eta_mask, eta=params.eta))
    return steps


def _penalized(
    x: np.ndarray, params: SamplingParams, history: History | None, ws: Workspace | None = None
) -> tuple[np.ndarray, list | None]:
    """The penalised logits (``x`` itself without penalties; in ``ws`` when given) and the
    history counts (None without penalties)."""
    if not (params.penalized and history is not None):
        return x, None
    counts = history_counts(history, x.shape)
    rep, pres, freq = params.repetition_penalty, params.presence_penalty, params.frequency_penalty
    out = None if ws is None else ws.array("penalized", x.shape, x.dtype)
    return penalize(x, counts, rep, pres, freq, out), counts


def _allowed_rows(rows: Rows, allowed: np.ndarray | None) -> Rows:
    """``rows`` restricted to the ``allowed`` tokens (shape (batch, vocab), bool), checked:
    each row must keep a token of positive probability."""
    if allowed is None:
        return rows
    if allowed.shape != rows.x.shape:
        raise ConfigError(f"allowed must have shape {rows.x.shape}, got {allowed.shape}")
    kept = rows.restrict(allowed)
    empty = np.flatnonzero(~np.isfinite(kept.m[:, 0]))
    if empty.size:
        raise ConfigError(
            f"the constraint allows no token of positive probability in row(s) {empty[:5].tolist()}"
        )
    return kept


def _truncated(rows: Rows, masks: list[Callable[[Rows], np.ndarray]]) -> Rows:
    for mask in masks:
        rows = rows.restrict(mask(rows))
    return rows


def process(
    logits: np.ndarray,
    params: SamplingParams,
    history: History | None = None,
    position: int = 0,
    allowed: np.ndarray | None = None,
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
    allowed : ndarray, shape (batch, vocab), bool, optional
        A constraint's allowed tokens (:mod:`samplescale.constraints`); None: all.

    Returns
    -------
    ndarray, shape (batch, vocab)
        Processed logits with ``-inf`` for removed tokens, row maximum 0; a new array.

    Raises
    ------
    ConfigError
        If logits are malformed, ``history`` or ``allowed`` does not match them, or a row
        allows no token of positive probability.
    """
    x, _ = _penalized(F.as_logits(logits), params, history)
    kept = _truncated(_allowed_rows(Rows(x), allowed), _masks(params)).dense(x.shape[1])
    return F.temperature(kept, params.temperature_at(position))


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
    s0, s1 = weights.strides
    full = as_strided(weights, (b, nb, _BLOCK), (s0, _BLOCK * s1, s1), writeable=False)
    blocks = full.sum(axis=-1, dtype=np.float64)  # a view: no copy when v % _BLOCK != 0
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
    allowed: np.ndarray | None = None,
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
    allowed : ndarray, shape (batch, vocab), bool, optional
        A constraint's allowed tokens, applied first (see the module docstring); None: all.

    Returns
    -------
    Draw

    Raises
    ------
    ConfigError
        If logits are malformed (NaN, a row with no finite value), ``codes`` are outside
        [0, 1), ``rng`` is missing for a stochastic draw, or a row of ``allowed`` keeps no
        token of positive probability.
    """
    x, top = F.checked_logits(logits)
    t = params.temperature_at(position)
    if t == 0.0:
        with borrow() as ws:
            return _greedy(x, top, params, history, position, codes, ws, allowed)
    b = x.shape[0]
    if codes is not None:
        u = np.asarray(codes, dtype=np.float64)
        if u.shape != (b,) or not ((u >= 0) & (u < 1)).all():
            raise ConfigError(f"codes must have shape ({b},) with values in [0, 1)")
    elif rng is None:
        raise ConfigError("rng is required when temperature > 0")
    else:
        u = _rows(rng, b)
    with borrow() as ws:
        return _draw(x, top, params, history, t, u, codes is not None, ws, allowed)


def _greedy(
    x: np.ndarray,
    top: np.ndarray,
    params: SamplingParams,
    history: History | None,
    position: int,
    codes: np.ndarray | None,
    ws: Workspace,
    allowed: np.ndarray | None,
) -> Draw:
    rows = np.arange(x.shape[0])
    # penalties see the raw logits (the repetition penalty depends on their sign)
    changed = params.penalized or allowed is not None
    y = process(x, params, history, position, allowed) if changed else x
    ids = y.argmax(axis=-1)
    raw_lse = np.log(Rows(x, top, ws=ws).total[:, 0])
    return Draw(
        ids.astype(np.int64),
        (x[rows, ids] - top[:, 0]).astype(np.float64) - raw_lse,
        np.zeros(len(ids)),
        None if codes is None else np.asarray(codes, dtype=np.float64).copy(),
    )


def _draw(
    x: np.ndarray,
    top: np.ndarray,
    params: SamplingParams,
    history: History | None,
    t: float,
    u: np.ndarray,
    coded: bool,
    ws: Workspace,
    allowed: np.ndarray | None,
) -> Draw:
    """One inverse-CDF draw per row at temperature ``t > 0`` with uniforms (or codes) ``u``."""
    rows = np.arange(x.shape[0])
    pen, counts = _penalized(x, params, history, ws)
    start = Rows(x, top, ws=ws) if counts is None else Rows(pen, ws=ws)
    kept = _truncated(_allowed_rows(start, allowed), _masks(params))
    w = kept.tempered(t)  # exp(y), y = what process() returns
    cols, total, before = _inverse_cdf(w, u)
    y = divide(kept.x[rows, cols] - kept.m[:, 0], t)  # y at the drawn cells
    # rounding at the very end of the CDF must never select a removed token
    bad = ~np.isfinite(y)
    if bad.any():
        cols[bad] = divide(kept.x[bad] - kept.m[bad], t).argmax(axis=-1)
        y = divide(kept.x[rows, cols] - kept.m[:, 0], t)
    next_codes = None
    if coded:
        next_codes = np.clip(
            (u * total - before) / w[rows, cols].astype(np.float64), 0.0, np.nextafter(1.0, 0.0)
        )
    if counts is not None:
        raw_lse = _raw_lse(x, top, start, counts)
    elif kept is not start:
        raw_lse = np.log(start.total[:, 0])
    elif t == 1.0:  # plain sampling: the draw's own total is the raw one
        raw_lse = np.log(total)
    else:  # temperature only: the raw weights go into the draw's buffer
        raw = w if w.dtype == x.dtype else np.empty(x.shape, x.dtype)
        with np.errstate(under="ignore"):
            np.exp(np.subtract(x, top, out=raw), out=raw)
        raw_lse = np.log(raw.sum(axis=-1, dtype=np.float64))
    tokens = kept.token_ids(rows, cols)
    return Draw(
        tokens,
        (x[rows, tokens] - top[:, 0]).astype(np.float64) - raw_lse,
        y.astype(np.float64) - np.log(total),
        next_codes,
    )


def _raw_lse(x: np.ndarray, top: np.ndarray, pen: Rows, counts: list) -> np.ndarray:
    """``log(sum(exp(x - top)))`` per row, shape (batch,), float64, from the penalised rows'
    total: only the history tokens differ between ``x`` and the penalised logits.

    The penalised weights are relative to the penalised maximum; where a penalty raised a
    logit above the raw maximum they may have underflowed, so such rows are summed anew.
    """
    b = x.shape[0]
    r = np.repeat(np.arange(b), [ids.size for ids, _ in counts])
    c = np.concatenate([ids for ids, _ in counts])
    m, t = pen.m[:, 0].astype(np.float64), top[:, 0].astype(np.float64)
    with np.errstate(under="ignore"):
        others = pen.total[:, 0] - np.bincount(r, weights=pen.e[r, c], minlength=b)
        mine = np.bincount(r, weights=np.exp(x[r, c].astype(np.float64) - t[r]), minlength=b)
        total = np.maximum(others, 0.0) * np.exp(np.minimum(m - t, 0.0)) + mine
        for i in np.flatnonzero(m > t):
            total[i] = np.exp(x[i] - top[i]).sum(dtype=np.float64)
    return np.log(total)
