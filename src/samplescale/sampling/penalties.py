"""Repetition, presence and frequency penalties on ``(batch, vocab)`` logits.

They depend on each row's history: the token ids that sequence has generated so far (the
prompt is not counted, as in the OpenAI API). Same contract as
:mod:`samplescale.sampling.functional`: a NEW array is returned, ``-inf`` stays ``-inf``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from samplescale.errors import ConfigError
from samplescale.sampling.functional import as_logits

__all__ = ["apply_penalties", "frequency_presence_penalty", "history_counts", "repetition_penalty"]

Counts = list[tuple[np.ndarray, np.ndarray]]


def history_counts(history: Sequence[Sequence[int]], shape: tuple[int, int]) -> Counts:
    """Distinct token ids of each row's history and how often each occurs.

    Parameters
    ----------
    history : sequence of sequence of int
        Generated token ids of each row (length ``batch``).
    shape : (int, int)
        ``(batch, vocab)`` of the logits.

    Returns
    -------
    list of (ndarray, ndarray), one per row
        Sorted distinct ids (int64) and their counts (int64).

    Raises
    ------
    ConfigError
        If ``history`` does not have one list per row or an id is outside [0, vocab).
    """
    if len(history) != shape[0]:
        raise ConfigError(
            f"history needs one token list per row: got {len(history)} for {shape[0]}"
        )
    out = []
    for h in history:
        ids, counts = np.unique(np.asarray(h, dtype=np.int64), return_counts=True)
        if ids.size and (ids[0] < 0 or ids[-1] >= shape[1]):
            raise ConfigError(f"history token ids must be in [0, {shape[1] - 1}]")
        out.append((ids, counts))
    return out


def _check(repetition: float, presence: float, frequency: float) -> None:
    if not 0.0 < repetition <= 100.0:
        raise ConfigError(f"repetition_penalty must be in (0, 100], got {repetition}")
    for name, value in (("presence_penalty", presence), ("frequency_penalty", frequency)):
        if not -2.0 <= value <= 2.0:
            raise ConfigError(f"{name} must be in [-2, 2], got {value}")


def penalize(
    x: np.ndarray,
    counts: Counts,
    repetition: float,
    presence: float,
    frequency: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Repetition penalty, then presence and frequency penalties, on validated logits.

    Parameters
    ----------
    x : ndarray, shape (batch, vocab), float
        Validated logits (:func:`samplescale.sampling.functional.as_logits`); not mutated.
    counts : list of (ndarray, ndarray)
        :func:`history_counts` of the rows.
    repetition, presence, frequency : float
        Validated penalties (1, 0, 0 leave the logits unchanged).
    out : ndarray, shape (batch, vocab), optional
        Where to write the result (default: a new array); must not overlap ``x``.

    Returns
    -------
    ndarray, shape (batch, vocab)
        ``out`` or a new array; only the history tokens' logits differ from ``x``.
    """
    out = np.empty(x.shape, x.dtype) if out is None else out
    np.copyto(out, x)
    x = out
    for r, (ids, c) in enumerate(counts):
        if repetition != 1.0:
            v = x[r, ids]
            x[r, ids] = np.where(v > 0, v / repetition, v * repetition)
        if presence != 0.0 or frequency != 0.0:
            x[r, ids] -= presence + frequency * c
    return x


def repetition_penalty(
    logits: np.ndarray, history: Sequence[Sequence[int]], penalty: float
) -> np.ndarray:
    """The CTRL repetition penalty (Keskar et al., 2019, "CTRL: A Conditional Transformer
    Language Model for Controllable Generation").

    For every token already generated in the row, a positive logit is divided by
    ``penalty`` and a negative logit is multiplied by it, so with ``penalty > 1`` a repeated
    token always becomes LESS likely (also when its logit is negative; dividing a negative
    logit would make it more likely). ``penalty = 1`` disables it; ``penalty < 1`` favours
    repetition.

    Parameters
    ----------
    logits : ndarray, shape (batch, vocab), float
    history : sequence of sequence of int
        Generated token ids of each row (length ``batch``).
    penalty : float
        Valid range (0, 100].

    Raises
    ------
    ConfigError
        If ``penalty`` is out of range or ``history`` does not match the batch.
    """
    return apply_penalties(logits, history, repetition=penalty)


def frequency_presence_penalty(
    logits: np.ndarray,
    history: Sequence[Sequence[int]],
    presence: float = 0.0,
    frequency: float = 0.0,
) -> np.ndarray:
    """OpenAI-style additive penalties: ``logit[t] -= presence * [c_t > 0] + frequency * c_t``.

    ``c_t`` is how often token ``t`` occurs in the row's history. Positive values discourage
    repetition, negative values encourage it.

    Parameters
    ----------
    presence, frequency : float
        Valid range [-2, 2] each (the OpenAI API's range).

    Raises
    ------
    ConfigError
        If a value is out of range or ``history`` does not match the batch.
    """
    return apply_penalties(logits, history, 1.0, presence, frequency)


def apply_penalties(
    logits: np.ndarray,
    history: Sequence[Sequence[int]] | None,
    repetition: float = 1.0,
    presence: float = 0.0,
    frequency: float = 0.0,
) -> np.ndarray:
    """Repetition penalty, then presence and frequency penalties (a new array).

    With no history, or all penalties off, the logits are returned as a copy.

    Raises
    ------
    ConfigError
        If a penalty is out of range, or ``history`` does not match the batch.
    """
    _check(repetition, presence, frequency)
    x = as_logits(logits)
    if history is None or (repetition == 1.0 and presence == 0.0 and frequency == 0.0):
        return x.copy()
    return penalize(x, history_counts(history, x.shape), repetition, presence, frequency)
