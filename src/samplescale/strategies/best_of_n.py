"""Best-of-N: draw N samples and keep the one a scorer rates highest.

Used with outcome reward models and verifiers (e.g. Cobbe et al., 2021, "Training Verifiers
to Solve Math Word Problems"); with the model's mean token log-probability as the score it
selects the sample the model itself is most confident in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from samplescale.aggregate import argmax
from samplescale.errors import ConfigError
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Result
from samplescale.verifiers.scorers import MEAN_LOGPROB, SCORERS, Scorer, score_samples


@STRATEGIES.register("best-of-n")
@dataclass(frozen=True)
class BestOfN(Strategy):
    """Select the highest-scoring of N samples (ties to the earliest; error samples never win).

    Attributes
    ----------
    scorer : Scorer or str
        Per-sample score with a declared scale (default: mean token log-probability), or
        the registry name of one (``"mean-logprob"``, ``"sum-logprob"``).

    Raises
    ------
    UnknownNameError
        If ``scorer`` is a name that is not registered.
    ConfigError
        If ``scorer`` is neither a Scorer nor a string.
    """

    name = "best-of-n"
    scorer: Scorer | str = field(default=MEAN_LOGPROB)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.scorer, str):
            object.__setattr__(self, "scorer", SCORERS.get(self.scorer))
        elif not isinstance(self.scorer, Scorer):
            raise ConfigError(
                f"scorer must be a Scorer or one of {', '.join(SCORERS.names())}, "
                f"got {type(self.scorer).__name__} {self.scorer!r:.40}"
            )

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        scorer = self.scorer
        assert isinstance(scorer, Scorer)  # names are resolved in __post_init__
        scores, errors = score_samples(scorer, state.samples, answers)
        selected = argmax(scores)
        return self.result(
            self.scorer_errors(state, errors),
            answers,
            scores=scores,
            score_scale=scorer.scale,
            selected=selected,
            answer=answers[selected] if selected is not None else None,
        )
