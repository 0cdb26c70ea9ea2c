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

__all__ = ["apply_penalties", "frequency_presence_penalty", "repetition_penalty"]


def _counts(history: Sequence[Sequence[int]], shape: tuple[int, int]) -> list[tuple]:
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
    if not 0.0 < penalty <= 100.0:
        raise ConfigError(f"repetition_penalty must be in (0, 100], got {penalty}")
    x = as_logits(logits).copy()
    if penalty == 1.0:
        return x
    for r, (ids, _) in enumerate(_counts(history, x.shape)):
        v = x[r, ids]
        x[r, ids] = np.where(v > 0, v / penalty, v * penalty)
    return x


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
    for name, value in (("presence_penalty", presence), ("frequency_penalty", frequency)):
        if not -2.0 <= value <= 2.0:
            raise ConfigError(f"{name} must be in [-2, 2], got {value}")
    x = as_logits(logits).copy()
    if presence == 0.0 and frequency == 0.0:
        return x
    for r, (ids, counts) in enumerate(_counts(history, x.shape)):
        x[r, ids] -= presence + frequency * counts
    return x


def apply_penalties(
    logits: np.ndarray,
    history: Sequence[Sequence[int]] | None,
    repetition: float = 1.0,
    presence: float = 0.0,
    frequency: float = 0.0,
) -> np.ndarray:
    """Repetition penalty, then presence and frequency penalties (a new array).

    With no history, or all penalties off, the logits are returned as a copy.
    """
    x = as_logits(logits)
    if history is None or (repetition == 1.0 and presence == 0.0 and frequency == 0.0):
        return x.copy()
    x = repetition_penalty(x, history, repetition)
    return frequency_presence_penalty(x, history, presence, frequency)
