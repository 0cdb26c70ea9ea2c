"""The Result of a step-level search: one trajectory sample per candidate node (split from
:mod:`samplescale.strategies.tree` by size)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from samplescale.steps import trajectory_sample as _trajectory
from samplescale.strategies.search_state import SearchState
from samplescale.types import Result
from samplescale.verifiers.extract import sample_answer

if TYPE_CHECKING:
    from samplescale.strategies.tree import TreeSearch


def search_result(
    strategy: TreeSearch, state: SearchState, ids: list[int], selected: int | None
) -> Result:
    """The Result of a search: one trajectory sample per candidate node."""
    samples, answers, scores = [], [], []
    for i in ids:
        node = state.nodes[i]
        steps = [n.step for n in state.path(i) if n.step is not None]
        sample = _trajectory(steps, complete=node.complete)
        samples.append(sample)
        answers.append(sample_answer(sample, strategy.extract))
        scores.append(node.value)
    end = {
        "event": "end",
        "stop_reason": state.stop_reason,
        "nodes": len(state.nodes) - 1,
        "policy_tokens": state.policy_tokens,
        "token_budget": strategy.token_budget,
        "scorer_calls": state.scorer_calls,
        "scorer_budget": strategy.scorer_budget,
        "policy_calls": state.calls,
    }
    pick = ids.index(selected) if selected is not None else None
    return Result(
        strategy=strategy.name,
        samples=tuple(samples),
        answers=tuple(answers),
        scores=tuple(scores),
        score_scale=state.scorer.scale if state.scorer is not None else None,
        selected=pick,
        answer=answers[pick] if pick is not None else None,
        trace=state.trace + (end,),
        usage=state.usage.model_copy(update={"scorer_calls": state.scorer_calls}),
    )
