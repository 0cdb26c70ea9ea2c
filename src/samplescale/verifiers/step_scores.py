"""Step-score aggregation: one score for a path from the scores after each of its steps.

How the per-step scores of a process scorer are combined is a parameter of every
step-level strategy, never hard-coded: ``product`` silently favours short paths
(cases.md C20), while ``last``, ``min`` and ``mean`` do not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from samplescale.errors import ConfigError
from samplescale.verifiers.scorers import Scale

Aggregation = Literal["last", "min", "mean", "product"]
AGGREGATIONS: tuple[str, ...] = ("last", "min", "mean", "product")


def aggregate_step_scores(
    scores: Sequence[float], how: Aggregation, scale: Scale = "probability"
) -> float:
    """One score for a path from the scores after each of its steps.

    ``how``: ``"last"`` (the score of the whole partial solution), ``"min"`` (the weakest
    step), ``"mean"`` or ``"product"``. On the log-probability scale the result is the log
    of the same aggregate of the probabilities (``product`` sums the logs, ``mean`` is
    ``log(mean(exp(s)))``), so ranking agrees across the two scales. ``product`` favours
    short paths: step scores A = [.9, .9, .9, .9], B = [.8] give A 0.6561 < B 0.8, while
    min, mean and last prefer A.

    Parameters
    ----------
    scores : sequence of float, length >= 1
    how : {"last", "min", "mean", "product"}
    scale : {"probability", "log-probability", "reward"}

    Returns
    -------
    float
        On ``scale``.

    Raises
    ------
    ConfigError
        If ``how`` is unknown, ``scores`` is empty, or ``product`` is asked of negative
        rewards.
    """
    if how not in AGGREGATIONS:
        raise ConfigError(f"how must be one of {', '.join(AGGREGATIONS)}; got {how!r}")
    values = [float(s) for s in scores]
    if not values:
        raise ConfigError("aggregate_step_scores needs at least one step score")
    if how == "last":
        return values[-1]
    if how == "min":
        return min(values)
    if scale == "log-probability":
        if how == "product":
            return math.fsum(values)
        top = max(values)
        if top == -math.inf:
            return -math.inf
        return top + math.log(math.fsum(math.exp(v - top) for v in values) / len(values))
    if how == "mean":
        return math.fsum(values) / len(values)
    if scale == "reward" and min(values) < 0:
        raise ConfigError("how='product' needs rewards >= 0; use 'last', 'min' or 'mean'")
    return math.prod(values)
