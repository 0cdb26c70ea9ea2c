"""OSCA: a sample budget spread over sampling temperatures by a learned allocation.

Zhang et al. 2024, "Scaling LLM Inference with Optimized Sample Compute Allocation"
(arXiv:2410.22480). The allocation is learned offline from pools over training problems
(``samplescale allocate``, :mod:`samplescale.analysis.allocation`); this strategy applies
it: ``k_t`` samples at each temperature ``t``, one backend call per temperature, and the
majority vote over all of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import vote
from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt, Result


def parse_allocation(allocation: Any) -> tuple[tuple[float, int], ...]:
    """``{temperature: count}`` (keys may be strings, as JSON writes them; the mapping may
    be given as its JSON text) as sorted ``((temperature, count), ...)`` pairs without zero
    counts.

    Raises
    ------
    ConfigError
        If it is not valid JSON text, or not a non-empty mapping of temperatures in
        [0, 100] to integer counts >= 0 with at least one count >= 1.
    """
    if isinstance(allocation, str):  # the JSON text the command line takes, in a request body
        try:
            allocation = json.loads(allocation)
        except ValueError:
            raise ConfigError(f"osca: allocation is not valid JSON: {allocation!r:.80}") from None
    if not isinstance(allocation, Mapping) or not allocation:
        raise ConfigError("osca: allocation must be a non-empty mapping of temperature to samples, "
                          "e.g. allocation='{\"0.3\": 2, \"1.0\": 6}' (samplescale allocate "
                          f"prints one), got {allocation!r}")
    pairs = []
    for key, count in allocation.items():
        try:
            t = float(key)
        except (TypeError, ValueError, OverflowError):
            t = math.nan
        if not 0.0 <= t <= 100.0:
            raise ConfigError(f"allocation key {key!r} must be a temperature in [0, 100]")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(f"allocation[{key!r}] must be an integer >= 0 (samples), "
                              f"got {count!r}")
        if count:
            pairs.append((t, count))
    if len({t for t, _ in pairs}) != len(pairs):
        raise ConfigError("allocation names one temperature twice")
    if not pairs:
        raise ConfigError("allocation must give at least one temperature >= 1 sample")
    return tuple(sorted(pairs))


@STRATEGIES.register("osca")
@dataclass(frozen=True)
class OSCA(Strategy):
    """Samples at several temperatures in a learned proportion, then a majority vote.

    One step per temperature (in increasing order), each one backend call of ``k_t``
    samples at ``params`` with that temperature; with a run seed each temperature draws
    its own stream (:meth:`Strategy.draw`). The trace records the temperature and what
    each step spent; the answer is the majority vote over all samples (ties to the class
    seen first, as self-consistency). Zhang et al. 2024 (OSCA).

    Attributes
    ----------
    allocation : mapping of float to int
        Samples per temperature; the counts must sum to N (``params.n``). Learn one with
        ``samplescale allocate`` (it prints the option to pass).

    Raises
    ------
    ConfigError
        When built, for a malformed allocation; from :meth:`init` when its counts do not
        sum to N.
    """

    name = "osca"
    allocation: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "allocation", dict(parse_allocation(self.allocation)))

    def init(self, prompt: Prompt, params: SamplingParams) -> State:
        state = super().init(prompt, params)
        total = sum(self.allocation.values())
        if total != state.params.n:
            raise ConfigError(f"the allocation spends {total} samples but n is "
                              f"{state.params.n}; give n = {total} or another allocation")
        return state

    def done(self, state: State) -> bool:
        """True once every temperature of the allocation had its step (a decoding that
        returns fewer samples than asked, e.g. priority sampling at temperature 0, leaves
        fewer than N)."""
        return sum("temperature" in t for t in state.trace) >= len(self.allocation)

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Draw the samples of the next temperature of the allocation."""
        done = len([t for t in state.trace if "temperature" in t])
        temperature, count = list(self.allocation.items())[done]
        at_t = state.model_copy(update={"params": state.params.replace(temperature=temperature)})
        drawn, info = self.draw(rng, at_t, backend, count)
        record = {**info, "temperature": temperature}
        new = drawn.model_copy(
            update={"params": state.params, "trace": drawn.trace[:-1] + (record,)}
        )
        return new, record

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        v = vote(answers, None, self.equivalent)
        return self.result(state, answers, selected=v.winner, answer=v.answer,
                           vote_shares=v.shares)
