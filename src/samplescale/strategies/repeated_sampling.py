"""Repeated sampling: draw N independent samples; with an oracle, report coverage.

Brown et al., 2024, "Large Language Monkeys: Scaling Inference Compute with Repeated
Sampling": coverage (the chance that at least one of N samples is correct) keeps growing
with N when a verifier can recognise the correct sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from samplescale.strategies.base import State, Strategy, check_callable
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Result


@STRATEGIES.register("repeated-sampling")
@dataclass(frozen=True)
class RepeatedSampling(Strategy):
    """N i.i.d. samples; selects the first one the oracle accepts.

    Attributes
    ----------
    oracle : callable (answer: str or None) -> bool, optional
        Judges an extracted answer (e.g. equivalence with a gold answer). With an oracle,
        ``scores`` are 1.0 / 0.0 (probability scale) and ``selected`` is the first sample
        judged correct (None if none: the problem is not covered). Without one, no scores
        are given and the first successful sample is selected.

    Raises
    ------
    ConfigError
        If ``oracle`` is neither callable nor None.
    """

    name = "repeated-sampling"
    oracle: Callable[[str | None], bool] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_callable("oracle", self.oracle, "(answer: str or None) -> bool", allow_none=True)

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        ok = [i for i, s in enumerate(state.samples) if s.status == "ok"]
        if self.oracle is None:
            scores: tuple[float | None, ...] = ()
            selected = ok[0] if ok else None
        else:
            scores = tuple(
                (1.0 if self.oracle(a) else 0.0) if s.status == "ok" else None
                for s, a in zip(state.samples, answers)
            )
            selected = next((i for i, sc in enumerate(scores) if sc == 1.0), None)
        return self.result(
            state,
            answers,
            scores=scores,
            score_scale="probability" if scores else None,
            selected=selected,
            answer=answers[selected] if selected is not None else None,
        )
