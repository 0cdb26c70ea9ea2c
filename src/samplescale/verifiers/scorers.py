"""Scorers: one number per sample, on a declared scale, used by best-of-N and weighted votes.

Scales: ``"log-probability"`` (natural log, <= 0), ``"probability"`` ([0, 1]) and
``"reward"`` (unbounded real, higher is better).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from samplescale.errors import SamplescaleError
from samplescale.registry import Registry
from samplescale.types import Sample, Usage

Scale = Literal["log-probability", "probability", "reward"]

SCALE_BOUNDS: dict[str, tuple[float, float]] = {
    "probability": (0.0, 1.0),
    "log-probability": (-math.inf, 0.0),
    "reward": (-math.inf, math.inf),
}
"""The closed interval of each scale (a reward must moreover be finite)."""


class ScorerError(SamplescaleError, RuntimeError):
    """A scorer could not produce a score (unparseable judge reply, a label the model did
    not produce, a value outside the scorer's scale). Never turned into a score.

    Attributes
    ----------
    usage : Usage
        The model usage the failed call spent (set by ``ProcessScorer.measure``; empty for outcome scorers).
    """

    usage: Usage = Usage()


def check_score(
    name: str, scale: Scale, value: object, bounds: tuple[float, float] | None = None
) -> float:
    """``value`` as a float on ``scale``, within ``bounds`` (default: the scale's).

    Raises
    ------
    ScorerError
        If ``value`` is not a real number (strings and bools are refused, not parsed), is
        NaN or beyond float range, lies outside ``bounds``, or is an infinite reward (it
        would win every comparison and break vote weights).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # "0.5", True, 1j
        raise ScorerError(f"scorer {name!r} returned {value!r:.40}, not a real number")
    try:
        score = float(value)
    except OverflowError as exc:  # an int beyond float range
        raise ScorerError(f"scorer {name!r} returned an integer beyond float range") from exc
    lo, hi = bounds or SCALE_BOUNDS[scale]
    if not lo <= score <= hi or (scale == "reward" and math.isinf(score)):  # NaN fails too
        finite = " (finite)" if scale == "reward" else ""
        raise ScorerError(
            f"scorer {name!r} returned {score}, outside its {scale} range [{lo}, {hi}]{finite}"
        )
    return score


class Scorer(BaseModel):
    """A named per-sample score with its scale.

    Attributes
    ----------
    name : str
    scale : {"log-probability", "probability", "reward"}
    fn : callable (Sample, answer: str or None) -> float
        Error samples are never passed to ``fn``; they score ``-inf`` (log scale) or
        ``None`` in results and never win. Its value must lie on ``scale``
        (:data:`SCALE_BOUNDS`; rewards finite), else calling the scorer raises
        :class:`ScorerError`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    name: str
    scale: Scale
    fn: Callable[[Sample, str | None], float]

    def __call__(self, sample: Sample, answer: str | None) -> float | None:
        """Score ``sample`` (None for error samples).

        Raises
        ------
        ScorerError
            If ``fn`` returns a value off the scorer's scale (see :func:`check_score`).
        """
        if sample.status == "error":
            return None
        return check_score(self.name, self.scale, self.fn(sample, answer))


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


def score_samples(
    scorer: Scorer, samples: Sequence[Sample], answers: Sequence[str | None]
) -> tuple[tuple[float | None, ...], list[str]]:
    """``scorer`` on every sample. A sample the scorer fails on (:class:`ScorerError`)
    scores None, like an error sample, and never wins; the other scores are kept.

    Returns
    -------
    scores : tuple of (float or None)
        One per sample, on ``scorer.scale``.
    errors : list of str
        The message of each failure, in sample order.
    """
    scores: list[float | None] = []
    errors: list[str] = []
    for i, (sample, answer) in enumerate(zip(samples, answers)):
        try:
            scores.append(scorer(sample, answer))
        except ScorerError as exc:
            scores.append(None)
            errors.append(f"sample {i}: {exc}")
    return tuple(scores), errors


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
