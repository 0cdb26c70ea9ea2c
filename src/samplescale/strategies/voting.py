"""Self-consistency (majority vote) and weighted voting over answer equivalence classes.

Self-consistency: Wang et al., 2023, "Self-Consistency Improves Chain of Thought Reasoning
in Language Models". Weighted voting as in Li et al., 2023 ("Making Language Models Better
Reasoners with Step-Aware Verifier") and the sequence-probability weighting of Wang et al.
Ties: the class seen first in sample order wins (see :mod:`samplescale.aggregate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from samplescale.aggregate import vote
from samplescale.errors import ConfigError
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Result
from samplescale.verifiers.scorers import Scorer, score_samples, to_weight


@STRATEGIES.register("self-consistency")
@dataclass(frozen=True)
class SelfConsistency(Strategy):
    """Majority vote over the extracted answers of N samples.

    Answers are clustered by equivalence (``equivalent``, math equivalence by default, so
    ``0.5``, ``\\frac{1}{2}`` and ``1/2`` are one class); samples without an answer and
    error samples do not vote. ``vote_shares`` gives each class's share of the votes cast;
    ``selected`` is the first sample of the winning class.
    """

    name = "self-consistency"

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        v = vote(answers, None, self.equivalent)
        return self.result(
            state,
            answers,
            selected=v.winner,
            answer=v.answer,
            vote_shares=v.shares,
        )


WeightSource = Literal["mean-logprob", "sum-logprob"]


@STRATEGIES.register("weighted-vote")
@dataclass(frozen=True)
class WeightedVote(Strategy):
    """Vote where each sample counts with a weight from a score or its sequence log-probability.

    Attributes
    ----------
    weight : {"mean-logprob", "sum-logprob"} or Scorer
        ``"mean-logprob"`` (default): weight ``exp(mean token logprob)``, the per-token
        geometric-mean probability in (0, 1]. ``"sum-logprob"``: weight proportional to the
        sequence probability ``exp(sum logprob)`` (normalised over the samples, computed
        stably). A Scorer: its score as a weight (log-probabilities exponentiated;
        probabilities and rewards must be >= 0).
    """

    name = "weighted-vote"
    weight: WeightSource | Scorer = field(default="mean-logprob")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.weight, Scorer) and self.weight not in (
            "mean-logprob",
            "sum-logprob",
        ):
            raise ConfigError(
                f"weight must be 'mean-logprob', 'sum-logprob' or a Scorer, got {self.weight!r}"
            )

    def weights(
        self, state: State, answers: tuple[str | None, ...]
    ) -> tuple[list[float], tuple, str | None, list[str]]:
        """Per-sample weights, scores, score scale and scorer failures (a failed sample
        weighs 0)."""
        samples = state.samples
        if isinstance(self.weight, Scorer):
            scores, errors = score_samples(self.weight, samples, answers)
            w = [to_weight(sc, self.weight.scale) for sc in scores]
            return w, scores, self.weight.scale, errors
        if self.weight == "mean-logprob":
            scores = tuple(s.mean_logprob if s.status == "ok" else None for s in samples)
            return (
                [to_weight(sc, "log-probability") for sc in scores],
                scores,
                "log-probability",
                [],
            )
        if self.weight == "sum-logprob":
            scores = tuple(s.sum_logprob if s.status == "ok" else None for s in samples)
            finite = [sc for sc in scores if sc is not None and math.isfinite(sc)]
            top = max(finite) if finite else 0.0
            w = [
                math.exp(sc - top) if sc is not None and math.isfinite(sc) else 0.0 for sc in scores
            ]
        return w, scores, "log-probability", []

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        w, scores, scale, errors = self.weights(state, answers)
        v = vote(answers, w, self.equivalent)
        total = math.fsum(w)
        return self.result(
            self.scorer_errors(state, errors),
            answers,
            scores=scores,
            score_scale=scale,
            weights=tuple(x / total for x in w) if total > 0 else (),
            selected=v.winner,
            answer=v.answer,
            vote_shares=v.shares,
        )
