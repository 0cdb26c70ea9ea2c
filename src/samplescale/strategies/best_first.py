"""Best-first (A*-style) step-level search with a priority queue and budgets.

The open list holds scored partial solutions; each round pops the highest-valued one. A
popped complete solution is a goal (the goal test is at pop time, as in A*, so no
better-valued open node remains); an unfinished one is expanded with ``expansions`` next
steps, which are scored and pushed. The path value (``how`` over the step scores) plays the
role of ``-f(n)``: with ``how="product"`` or ``"min"`` on probability scores it never
increases along a path, the monotone case in which best-first search returns the best
path first. Reward-guided best-first / A* decoding of this kind: Xie et al., 2023
("Self-Evaluation Guided Beam Search for Reasoning"), Wang et al., 2024 (Q*).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from samplescale.backends.base import Backend
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.search_state import SearchState, best_node
from samplescale.strategies.tree import TreeSearch, positive_int


@STRATEGIES.register("best-first")
@dataclass(frozen=True)
class BestFirst(TreeSearch):
    """Best-first search over steps (see the module docstring and :class:`TreeSearch`).

    Attributes
    ----------
    expansions : int or None
        Next steps drawn when a node is expanded (>= 1). None: ``params.n``.
    solutions : int
        Stop after this many complete solutions were popped (>= 1; default 1).

    Notes
    -----
    The search also ends when the open list is empty or a budget cannot pay for the next
    expansion. The Result's samples are the popped solutions in pop order; with none, the
    best open node (a partial solution, finish ``"length"``), else the best node found.

    Raises
    ------
    ConfigError
        If ``expansions`` or ``solutions`` is not an integer >= 1.
    """

    name = "best-first"
    expansions: int | None = None
    solutions: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("expansions", self.expansions)
        positive_int("solutions", self.solutions, allow_none=False)

    def advance(
        self, rng: np.random.Generator | None, state: SearchState, backend: Backend
    ) -> SearchState:
        if not state.frontier:
            return state.model_copy(update={"stop_reason": "exhausted"})
        top = max(state.frontier, key=lambda i: (_priority(state, i), -i))
        rest = tuple(i for i in state.frontier if i != top)
        if state.nodes[top].done:
            found = (*state.solutions, top)
            stop = "done" if len(found) >= self.solutions else None
            return state.model_copy(
                update={"frontier": rest, "solutions": found, "stop_reason": stop}
            )
        n = self.expansions if self.expansions is not None else state.params.n
        new, children = self.expand(rng, state, backend, top, n)
        # When the search stops here (a budget is spent), ``top`` stays open.
        keep = rest if new.stop_reason is None else state.frontier
        return new.model_copy(update={"frontier": keep + tuple(children)})

    def candidates(self, state: SearchState) -> list[int]:
        if state.solutions:
            return list(state.solutions)
        best = best_node(state, [i for i in state.frontier if i != 0])
        if best is None:  # only the root is open: the best partial solution found
            best = best_node(state, list(range(1, len(state.nodes))))
        return [] if best is None else [best]


def _priority(state: SearchState, i: int) -> float:
    value = state.nodes[i].value
    return math.inf if value is None else value  # the root is expanded first
