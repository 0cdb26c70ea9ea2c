"""First-step selection: sample several first steps, keep the best, continue only from them.

Round 1 draws ``first_steps`` first steps in one call and scores each. Round 2 completes
each of the ``keep`` best (one call per kept step, ``completions`` samples, without the
step delimiter: the rest of the solution at once). The early steps of a solution decide
much of its fate, so spending the scorer on them alone is a cheap form of search (the
first level of a step-level beam search, Snell et al., 2024, "Scaling LLM Test-Time
Compute Optimally can be More Effective than Scaling Model Parameters").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from samplescale.aggregate import vote
from samplescale.backends.base import Backend
from samplescale.errors import ConfigError
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.search_result import search_result
from samplescale.strategies.search_state import SearchState, best_node
from samplescale.strategies.tree import TreeSearch, positive_int
from samplescale.types import Result


@STRATEGIES.register("first-step-selection")
@dataclass(frozen=True)
class FirstStepSelection(TreeSearch):
    """First-step selection (see the module docstring and :class:`TreeSearch` options).

    Attributes
    ----------
    first_steps : int or None
        First steps drawn (>= 1). None: ``params.n``.
    keep : int
        First steps kept (>= 1; default 1), best by score (ties to the earlier).
    completions : int
        Completions drawn from each kept first step (>= 1; default 1).
    select : {"score", "vote"}
        ``"score"`` (default): each completed solution is scored (one scorer call each),
        its value is ``how`` over [first-step score, solution score], and the best
        complete one is selected. ``"vote"``: majority vote over the completions'
        extracted answers (``equivalent`` classes, no further scorer calls; each keeps
        its first step's value as its score).

    Notes
    -----
    A first step that already ends the solution is a candidate as it is. When a budget
    runs out in round 2, the kept first steps not yet completed are candidates as partial
    solutions (finish ``"length"``).

    Raises
    ------
    ConfigError
        If a count is not an integer >= 1 or ``select`` is unknown.
    """

    name = "first-step-selection"
    first_steps: int | None = None
    keep: int = 1
    completions: int = 1
    select: Literal["score", "vote"] = "score"

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("first_steps", self.first_steps)
        positive_int("keep", self.keep, allow_none=False)
        positive_int("completions", self.completions, allow_none=False)
        if self.select not in ("score", "vote"):
            raise ConfigError(f"select must be 'score' or 'vote', got {self.select!r}")

    def advance(
        self, rng: np.random.Generator | None, state: SearchState, backend: Backend
    ) -> SearchState:
        if state.rounds == 0:
            n = self.first_steps if self.first_steps is not None else state.params.n
            state, firsts = self.expand(rng, state, backend, 0, n)
            ranked = sorted(firsts, key=lambda i: (-state.nodes[i].value, i))  # type: ignore[operator]
            stop = state.stop_reason or (None if ranked else "no-progress")
            return state.model_copy(
                update={"frontier": tuple(ranked[: self.keep]), "stop_reason": stop}
            )
        ends: list[int] = []
        for first in state.frontier:
            children: list[int] = []
            if not state.nodes[first].done and state.stop_reason is None:
                state, children = self.expand(
                    rng,
                    state,
                    backend,
                    first,
                    self.completions,
                    rest=True,
                    scored=self.select == "score",
                )
            ends.extend(children or [first])
        return state.model_copy(
            update={"frontier": tuple(ends), "stop_reason": state.stop_reason or "done"}
        )

    def candidates(self, state: SearchState) -> list[int]:
        return [i for i in state.frontier if i != 0]

    def finalize(self, state: SearchState) -> Result:  # type: ignore[override]
        ids = self.candidates(state)
        if self.select == "score":
            return search_result(self, state, ids, best_node(state, ids))
        result = search_result(self, state, ids, None)
        v = vote(result.answers, None, self.equivalent)
        return result.model_copy(
            update={"selected": v.winner, "answer": v.answer, "vote_shares": v.shares}
        )
