"""Adaptive-branching MCTS: at each node, go wider (a new child) or deeper (into a child)
by Thompson sampling on score posteriors.

Inoue et al., 2025, "Wider or Deeper? Scaling LLM Inference-Time Compute with Adaptive
Branching Tree Search" (AB-MCTS). This is the node-aggregation variant (AB-MCTS-A) with
Beta posteriors over scores on [0, 1], at step level. Each iteration walks from the
root; at node ``x`` it draws one value from each option's posterior

- GEN (wider): ``Beta(a + S, b + n - S)`` over the values of ``x``'s direct children
  (``n`` of them, sum ``S``): how good a fresh step from ``x`` tends to be;
- each non-exhausted child ``c`` (deeper): ``Beta(a + S_c, b + n_c - S_c)`` over every
  value backed up in ``c``'s subtree (``c`` included),

and takes the option with the largest draw (ties to GEN, then the earlier child). GEN
draws one new step from ``x`` (one backend call, one scorer call); its value is backed up
to the root. Unlike UCT's fixed ``branching``, the width of each node adapts: a node
whose children score well keeps getting new ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from samplescale.backends.base import Backend
from samplescale.errors import ConfigError
from samplescale.rng import derived_seed, make_rng
from samplescale.strategies.mcts import (
    back_up,
    exhausted_nodes,
    node_unit_value,
    search_candidates,
)
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.search_state import SearchState
from samplescale.strategies.tree import TreeSearch, positive_int

THOMPSON_STREAM = 1  # sub-stream key of the Thompson draws (policy calls use key 0 + index)


@STRATEGIES.register("ab-mcts")
@dataclass(frozen=True)
class ABMCTS(TreeSearch):
    """AB-MCTS-A with Beta posteriors (see the module docstring and :class:`TreeSearch`).

    Attributes
    ----------
    iterations : int or None
        Most iterations, each one new step and one scorer call (>= 1). None: ``params.n``.
    prior : (float, float)
        Beta prior ``(a, b)``, both > 0 (default (1, 1): uniform).
    max_children : int or None
        Most children per node (>= 1), or None for no limit (the paper's setting).

    Notes
    -----
    Values are path values mapped to [0, 1] as in :class:`~samplescale.strategies.mcts.MCTS`.
    The Thompson draws use ``rng`` (or, with ``params.seed``, a stream derived from the
    seed and the iteration, so a seed reproduces the search). Samples and selection are
    as in MCTS: every complete solution, the highest-valued one selected.

    Raises
    ------
    ConfigError
        If an option is out of range, or (at run time) the scorer's rewards are unbounded.
    """

    name = "ab-mcts"
    iterations: int | None = None
    prior: tuple[float, float] = (1.0, 1.0)
    max_children: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("iterations", self.iterations)
        positive_int("max_children", self.max_children)
        if len(self.prior) != 2 or not all(0 < p < math.inf for p in self.prior):
            raise ConfigError(f"prior must be two numbers in (0, inf), got {self.prior!r}")

    def budget(self, state: SearchState) -> int:
        """Iterations for ``state.params``."""
        return self.iterations if self.iterations is not None else state.params.n

    def thompson_rng(
        self, rng: np.random.Generator | None, state: SearchState
    ) -> np.random.Generator:
        """The generator of this iteration's Thompson draws."""
        if state.params.seed is not None:
            return make_rng(derived_seed(state.params.seed, THOMPSON_STREAM, state.rounds))
        return rng if rng is not None else make_rng(None)

    def posterior(self, values_sum: float, count: int) -> tuple[float, float]:
        """Beta parameters after ``count`` values on [0, 1] summing to ``values_sum``."""
        a, b = self.prior
        return a + values_sum, b + count - values_sum

    def advance(
        self, rng: np.random.Generator | None, state: SearchState, backend: Backend
    ) -> SearchState:
        exhausted = exhausted_nodes(state, self.max_children)
        if 0 in exhausted:
            return state.model_copy(update={"stop_reason": "exhausted"})
        draw = self.thompson_rng(rng, state)
        children = state.children()
        node = 0
        while True:
            kids = children[node]
            can_widen = self.max_children is None or len(kids) < self.max_children
            own = [node_unit_value(state, k) for k in kids]
            options = [(-1, self.posterior(math.fsum(own), len(own)))] if can_widen else []
            options += [
                (k, self.posterior(state.totals[k], state.visits[k]))
                for k in kids
                if k not in exhausted
            ]
            samples = [draw.beta(a, b) for _, (a, b) in options]
            choice = options[int(np.argmax(samples))][0]
            if choice == -1:
                break
            node = choice
        state, new = self.expand(rng, state, backend, node, 1)
        for child in new:
            state = back_up(state, child, node_unit_value(state, child))
        if state.stop_reason is None and state.rounds + 1 >= self.budget(state):
            state = state.model_copy(update={"stop_reason": "iterations"})
        return state

    def candidates(self, state: SearchState) -> list[int]:
        return search_candidates(state)
