"""Greedy decoding: one sample at temperature 0 (the baseline every strategy is compared to)."""

from __future__ import annotations

from dataclasses import dataclass

from samplescale.config import SamplingParams
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Result


@STRATEGIES.register("greedy")
@dataclass(frozen=True)
class Greedy(Strategy):
    """Argmax decoding of one sample.

    By definition it decodes with ``temperature=0`` and ``n=1``; the other fields of the
    given ``SamplingParams`` (``max_tokens``, ``stop``, truncation) are used as given.
    """

    name = "greedy"

    def sampling_params(self, params: SamplingParams) -> SamplingParams:
        return params.replace(temperature=0.0, n=1)

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        ok = state.samples[0].status == "ok"
        return self.result(
            state,
            answers,
            selected=0 if ok else None,
            answer=answers[0],
        )
