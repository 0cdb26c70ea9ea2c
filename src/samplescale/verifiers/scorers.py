"""Scorers: one number per sample, on a declared scale, used by best-of-N and weighted votes.

Scales: ``"log-probability"`` (natural log, <= 0), ``"probability"`` ([0, 1]) and
``"reward"`` (unbounded real, higher is better).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from samplescale.registry import Registry
from samplescale.types import Sample

Scale = Literal["log-probability", "probability", "reward"]


class Scorer(BaseModel):
    """A named per-sample score with its scale.

    Attributes
    ----------
    name : str
    scale : {"log-probability", "probability", "reward"}
    fn : callable (Sample, answer: str or None) -> float
        Error samples are never passed to ``fn``; they score ``-inf`` (log scale) or
        ``None`` in results and never win.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    name: str
    scale: Scale
    fn: Callable[[Sample, str | None], float]

    def __call__(self, sample: Sample, answer: str | None) -> float | None:
        """Score ``sample`` (None for error samples)."""
        if sample.status == "error":
            return None
        return float(self.fn(sample, answer))


SCORERS: Registry[Scorer] = Registry("scorer")

MEAN_LOGPROB = SCORERS.register("mean-logprob")(
    Scorer(name="mean-logprob", scale="log-probability", fn=lambda s, a: s.mean_logprob)
)
"""Mean per-token log-probability of the sample under the model (the model's confidence)."""

SUM_LOGPROB = SCORERS.register("sum-logprob")(
    Scorer(name="sum-logprob", scale="log-probability", fn=lambda s, a: s.sum_logprob)
)
"""Sequence log-probability (favours short samples)."""


def oracle(is_correct: Callable[[str | None], bool]) -> Scorer:
    """An outcome verifier with access to the gold answer: 1.0 if correct else 0.0 (probability scale)."""
    return Scorer(name="oracle", scale="probability", fn=lambda s, a: 1.0 if is_correct(a) else 0.0)


def to_weight(score: float | None, scale: Scale) -> float:
    """Turn a score into a non-negative vote weight.

    Log-probabilities become probabilities (``exp``); probabilities are used as they are;
    rewards must already be >= 0 (a ``ValueError`` otherwise). ``None`` gives 0.
    """
    if score is None or math.isnan(score):
        return 0.0
    if scale == "log-probability":
        return math.exp(score)
    if score < 0:
        raise ValueError(f"a reward used as a vote weight must be >= 0, got {score}")
    return score
