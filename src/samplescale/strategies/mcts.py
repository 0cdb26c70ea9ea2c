"""Monte Carlo tree search over steps with the UCT rule.

UCT: Kocsis & Szepesvari, 2006, "Bandit based Monte-Carlo Planning". Each iteration walks
from the root: a node with fewer than ``branching`` children is expanded with ONE new step
(one backend call, one scorer call); otherwise the walk moves to the child maximising

    Q(c) + exploration * sqrt(ln N(parent) / N(c)),

where ``N`` counts the evaluations backed up through a node and ``Q`` is their mean. The
new node is evaluated by the process scorer (its path value, mapped to [0, 1]: no
rollout, as with a learned value function in LLM tree search, e.g. Zhang et al., 2024,
ReST-MCTS*), and the value is backed up to the root. Complete solutions and subtrees
with nothing left to expand are never selected again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from samplescale.backends.base import Backend
from samplescale.errors import ConfigError
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.search_state import SearchState, unit_value
from samplescale.strategies.tree import TreeSearch, positive_int


def exhausted_nodes(state: SearchState, width: int | None) -> set[int]:
    """Ids of nodes with nothing left to expand: done nodes, and nodes with ``width``
    children (None: no limit) that are all exhausted."""
    children = state.children()
    out: set[int] = set()
    for node in reversed(state.nodes):  # children have larger ids than their parent
        kids = children[node.id]
        full = width is not None and len(kids) >= width
        if node.done or (full and all(k in out for k in kids)):
            out.add(node.id)
    return out


def back_up(state: SearchState, node_id: int, value: float) -> SearchState:
    """Add one evaluation ``value`` to ``node_id`` and each of its ancestors."""
    visits, totals = list(state.visits), list(state.totals)
    i: int | None = node_id
    while i is not None:
        visits[i] += 1
        totals[i] += value
        i = state.nodes[i].parent
    return state.model_copy(update={"visits": tuple(visits), "totals": tuple(totals)})


def node_unit_value(state: SearchState, node_id: int) -> float:
    """The path value of a node on [0, 1] (see :func:`unit_value`).

    Raises
    ------
    ConfigError
        If the scorer gives rewards without finite bounds.
    """
    scorer = state.scorer
    value = state.nodes[node_id].value
    assert scorer is not None and value is not None
    unit = unit_value(value, scorer.scale, scorer.bounds)
    if unit is None:
        raise ConfigError(
            f"tree search needs scores on [0, 1]: scorer {scorer.name!r} gives rewards "
            "without finite bounds; use a probability scorer or give the reward's bounds"
        )
    return unit


@STRATEGIES.register("mcts")
@dataclass(frozen=True)
class MCTS(TreeSearch):
    """UCT Monte Carlo tree search over steps (see the module docstring and
    :class:`TreeSearch` options).

    Attributes
    ----------
    iterations : int or None
        Most iterations, each one new step and one scorer call (>= 1). None: ``params.n``.
    branching : int
        Most children per node (>= 1; default 3).
    exploration : float
        The UCT constant (>= 0; default sqrt(2), for values on [0, 1]).

    Notes
    -----
    Values are the scorer's path values mapped to [0, 1] (probabilities as they are,
    log-probabilities exponentiated, bounded rewards min-max scaled). The search ends
    after ``iterations``, when the tree is exhausted or a budget is spent. The Result's
    samples are every complete solution found (in creation order; with none, the best
    partial one), and the selection is the highest-valued one.

    Raises
    ------
    ConfigError
        If an option is out of range, or (at run time) the scorer's rewards are unbounded.
    """

    name = "mcts"
    iterations: int | None = None
    branching: int = 3
    exploration: float = math.sqrt(2.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("iterations", self.iterations)
        positive_int("branching", self.branching, allow_none=False)
        if not (isinstance(self.exploration, (int, float)) and 0 <= self.exploration < math.inf):
            raise ConfigError(f"exploration must be in [0, inf), got {self.exploration!r}")

    def budget(self, state: SearchState) -> int:
        """Iterations for ``state.params``."""
        return self.iterations if self.iterations is not None else state.params.n

    def advance(
        self, rng: np.random.Generator | None, state: SearchState, backend: Backend
    ) -> SearchState:
        exhausted = exhausted_nodes(state, self.branching)
        if 0 in exhausted:
            return state.model_copy(update={"stop_reason": "exhausted"})
        children = state.children()
        node = 0
        while len(children[node]) >= self.branching:
            open_kids = [k for k in children[node] if k not in exhausted]
            node = max(open_kids, key=lambda k: (self.uct(state, node, k), -k))
        state, new = self.expand(rng, state, backend, node, 1)
        for child in new:
            state = back_up(state, child, node_unit_value(state, child))
        if state.stop_reason is None and state.rounds + 1 >= self.budget(state):
            state = state.model_copy(update={"stop_reason": "iterations"})
        return state

    def uct(self, state: SearchState, parent: int, child: int) -> float:
        """The UCT score of ``child`` under ``parent``."""
        n = state.visits[child]
        if n == 0:
            return math.inf
        mean = state.totals[child] / n
        return mean + self.exploration * math.sqrt(math.log(state.visits[parent]) / n)

    def candidates(self, state: SearchState) -> list[int]:
        return search_candidates(state)


def search_candidates(state: SearchState) -> list[int]:
    """Every complete solution in creation order; with none, the best-valued partial one."""
    done = [n.id for n in state.nodes if n.complete]
    if done:
        return done
    scored = [n for n in state.nodes if n.value is not None]
    return [max(scored, key=lambda n: (n.value, -n.id)).id] if scored else []
