"""Best-of-N: draw N samples and keep the one a scorer rates highest.

Used with outcome reward models and verifiers (e.g. Cobbe et al., 2021, "Training Verifiers
to Solve Math Word Problems"); with the model's mean token log-probability as the score it
selects the sample the model itself is most confident in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from samplescale.aggregate import argmax
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Result
from samplescale.verifiers.scorers import MEAN_LOGPROB, Scorer


@STRATEGIES.register("best-of-n")
@dataclass(frozen=True)
class BestOfN(Strategy):
    """Select the highest-scoring of N samples (ties to the earliest; error samples never win).

    Attributes
    ----------
    scorer : Scorer
        Per-sample score with a declared scale (default: mean token log-probability).
    """

    name = "best-of-n"
    scorer: Scorer = field(default=MEAN_LOGPROB)

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        scores = tuple(self.scorer(s, a) for s, a in zip(state.samples, answers))
        selected = argmax(scores)
        return Result(
            strategy=self.name,
            samples=state.samples,
            answers=answers,
            scores=scores,
            score_scale=self.scorer.scale,
            selected=selected,
            answer=answers[selected] if selected is not None else None,
            trace=state.trace,
            usage=state.usage,
        )
