"""The state of a step-level tree search: nodes (partial solutions) and their bookkeeping.

Used by :mod:`samplescale.strategies.tree` and the search strategies built on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.steps import Step
from samplescale.types import Prompt, Usage
from samplescale.verifiers.process import ProcessScorer
from samplescale.verifiers.scorers import Scale


class Node(BaseModel):
    """One partial solution in a search tree.

    Attributes
    ----------
    id, parent, depth : int, int or None, int
        Node 0 is the root (no parent, depth 0, no step).
    step : Step or None
        The step this node adds to its parent.
    step_scores : tuple of float
        The scorer's score after each step of the path (scorer's scale).
    value : float or None
        ``step_scores`` aggregated (None for the root).
    done : bool
        The solution cannot be extended: its last step ended (``complete``) or the path
        reached ``max_steps``.
    complete : bool
        The last step ended with an end of sequence or its length limit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: int
    parent: int | None = None
    depth: int = 0
    step: Step | None = None
    step_scores: tuple[float, ...] = ()
    value: float | None = None
    done: bool = False
    complete: bool = False


class SearchState(BaseModel):
    """Immutable state of a tree search (fields not used by a strategy stay empty).

    Attributes
    ----------
    nodes : tuple of Node
        Indexed by node id.
    frontier : tuple of int
        Beam (beam search), open list (best-first) or kept first steps.
    solutions : tuple of int
        Complete solutions popped by best-first search, in order.
    visits, totals : tuple of int, tuple of float
        Per node: backed-up evaluations and their sum (MCTS, AB-MCTS; unit scale).
    policy_tokens, scorer_calls, calls, rounds : int
        Generated policy tokens, scorer calls, policy model calls, strategy steps so far.
    stop_reason : str or None
        Why the search ended (None while it runs).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    prompt: Prompt
    params: SamplingParams
    scorer: ProcessScorer | None = None
    nodes: tuple[Node, ...] = (Node(id=0),)
    frontier: tuple[int, ...] = (0,)
    solutions: tuple[int, ...] = ()
    visits: tuple[int, ...] = (0,)
    totals: tuple[float, ...] = (0.0,)
    usage: Usage = Usage()
    policy_tokens: int = 0
    scorer_calls: int = 0
    calls: int = 0
    rounds: int = 0
    stop_reason: str | None = None
    trace: tuple[dict[str, Any], ...] = ()

    def path(self, node_id: int) -> list[Node]:
        """The nodes from the root's first child down to ``node_id``."""
        out = []
        node = self.nodes[node_id]
        while node.parent is not None:
            out.append(node)
            node = self.nodes[node.parent]
        return out[::-1]

    def texts(self, node_id: int) -> tuple[str, ...]:
        """The step texts of the partial solution at ``node_id``."""
        return tuple(n.step.text for n in self.path(node_id) if n.step is not None)

    def children(self) -> dict[int, list[int]]:
        """Node id -> child ids, in creation order."""
        out: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            if n.parent is not None:
                out[n.parent].append(n.id)
        return out


def unit_value(value: float, scale: Scale, bounds: tuple[float, float]) -> float | None:
    """A score mapped to [0, 1]: probabilities as they are, log-probabilities exponentiated,
    rewards with finite ``bounds`` min-max scaled; None for unbounded rewards."""
    if scale == "probability":
        return value
    if scale == "log-probability":
        return math.exp(value)
    lo, hi = bounds
    if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
        return (value - lo) / (hi - lo)
    return None


def best_node(state: SearchState, ids: list[int]) -> int | None:
    """The highest-valued complete node of ``ids`` (else the highest-valued one); ties to the
    earliest; None if ``ids`` is empty."""
    scored = [i for i in ids if state.nodes[i].value is not None]
    pool = [i for i in scored if state.nodes[i].complete] or scored
    best: int | None = None
    for i in pool:
        if best is None or state.nodes[i].value > state.nodes[best].value:  # type: ignore[operator]
            best = i
    return best


def stalled(backend: Backend, steps: Sequence[Step], new: list[int]) -> str | None:
    """The stop reason after a call that drew ``steps`` and added the nodes ``new``.

    ``"max-total-tokens"`` once the backend's token budget refused a sample (its
    ``exhausted`` flag, :class:`~samplescale.backends.budget.TokenBudgetBackend`): later
    calls would be refused too. ``"no-progress"`` when the call generated no token and
    added no node (every sample failed). None otherwise.
    """
    if getattr(backend, "exhausted", False) is True:
        return "max-total-tokens"
    if not new and sum(s.tokens for s in steps) == 0:
        return "no-progress"
    return None
