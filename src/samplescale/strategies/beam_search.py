"""Step-level beam search guided by a process scorer.

As in Snell et al., 2024 ("Scaling LLM Test-Time Compute Optimally can be More Effective
than Scaling Model Parameters") and Yao et al., 2023 (Tree of Thoughts, BFS): keep the
``beam_width`` best partial solutions; each round, every unfinished beam gets
``expansions`` next steps (the beams' calls decoded in one batch where the backend batches
prompts, :meth:`TreeSearch.expand_many`), each new step is scored, and the
best ``beam_width`` of the new children and the finished beams form the next beam.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from samplescale.backends.base import Backend
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.search_state import SearchState
from samplescale.strategies.tree import TreeSearch, positive_int


@STRATEGIES.register("beam-search")
@dataclass(frozen=True)
class BeamSearch(TreeSearch):
    """Step-level beam search (see the module docstring and :class:`TreeSearch` options).

    Attributes
    ----------
    beam_width : int or None
        Beams kept per round (>= 1). None: ``max(1, params.n // expansions)``, so that
        ``params.n`` is the number of candidate steps per round (Snell et al.'s N).
    expansions : int
        Next steps drawn per unfinished beam per round (>= 1; default 4).

    Notes
    -----
    Ranking is by path value (``how`` over the step scores, higher is better; ties go to
    the earlier node). The search ends when every beam is done (complete or at
    ``max_steps``), or a budget cannot pay for the next call. The Result's samples are the
    final beams, best first; the selection is the best complete one (else the best).

    Raises
    ------
    ConfigError
        If ``beam_width`` or ``expansions`` is not an integer >= 1.
    """

    name = "beam-search"
    beam_width: int | None = None
    expansions: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("beam_width", self.beam_width)
        positive_int("expansions", self.expansions, allow_none=False)

    def width(self, state: SearchState) -> int:
        """The beam width used for ``state.params``."""
        if self.beam_width is not None:
            return self.beam_width
        return max(1, state.params.n // self.expansions)

    def advance(
        self, rng: np.random.Generator | None, state: SearchState, backend: Backend
    ) -> SearchState:
        kept = [b for b in state.frontier if state.nodes[b].done]
        parents = [b for b in state.frontier if not state.nodes[b].done]
        state, grown_by = self.expand_many(rng, state, backend, parents, self.expansions)
        grown = 0
        for parent, children in zip(parents, grown_by):
            grown += len(children)
            kept.extend(children or [parent])  # a beam that got no child stays a candidate
        ranked = sorted(kept, key=lambda i: (-_value(state, i), i))
        beams = tuple(ranked[: self.width(state)])
        stop = state.stop_reason
        if stop is None and all(state.nodes[b].done for b in beams):
            stop = "done"
        if stop is None and grown == 0:
            stop = "no-progress"  # every call of the round failed
        return state.model_copy(update={"frontier": beams, "stop_reason": stop})

    def candidates(self, state: SearchState) -> list[int]:
        return [b for b in state.frontier if b != 0]


def _value(state: SearchState, i: int) -> float:
    value = state.nodes[i].value
    return -math.inf if value is None else value
