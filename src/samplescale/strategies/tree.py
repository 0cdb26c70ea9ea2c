"""Shared machinery of the step-level search strategies: nodes, expansion, budgets, Result.

A search tree holds partial solutions. The root is the empty solution; every other node adds
one :class:`~samplescale.steps.Step` to its parent and carries the process scorer's score of
its partial solution (``step_scores`` along the path, aggregated into ``value`` by
:func:`~samplescale.verifiers.process.aggregate_step_scores` with the strategy's ``how``).

Budgets (never exceeded):

- ``token_budget``: generated tokens of the policy model (completion tokens of the step
  calls). Before each call the per-step ``max_tokens`` is lowered to
  ``remaining // n`` when the full one could overrun (such steps may end with
  ``"length"``); when not even one token per step is left, the search stops.
- ``scorer_budget``: process-scorer calls (each new step is scored once; failed calls
  count). A call never asks for more steps than can still be scored.

Scorer model tokens are not part of ``token_budget`` (bound them with ``scorer_budget``);
``Result.usage`` holds the compute of both, and the last trace record (``event: "end"``)
has ``policy_tokens``, ``scorer_calls``, both budgets and the stop reason.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.rng import derived_seed
from samplescale.steps import (
    DEFAULT_DELIMITER,
    Step,
    check_delimiter,
    generate_rest,
    generate_steps,
    generate_steps_many,
)
from samplescale.strategies.base import Strategy
from samplescale.strategies.search_result import search_result
from samplescale.strategies.search_state import Node, SearchState, best_node, stalled
from samplescale.strategies.step_scorer import ScorerSpec, check_scorer, resolve_scorer
from samplescale.types import Prompt, Result, Usage
from samplescale.verifiers.process import (
    AGGREGATIONS,
    Aggregation,
    ProcessScorer,
    ScorerError,
    aggregate_step_scores,
)
from samplescale.verifiers.scorers import Scale


def positive_int(name: str, value: object, allow_none: bool = True) -> None:
    """Check a strategy option that counts something (widths, budgets, iterations).

    Raises
    ------
    ConfigError
        Naming ``name`` and the range ``[1, inf)`` if ``value`` is not an integer >= 1
        (a bool is refused), or is None while ``allow_none`` is False.
    """
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1 (in [1, inf)), got {value!r}")


@dataclass(frozen=True)
class TreeSearch(Strategy):
    """Base of the step-level search strategies (see the module docstring).

    Attributes
    ----------
    scorer : ProcessScorer, str, callable or None
        The process scorer. None: P(True) self-evaluation on the policy backend (it must be
        a :class:`~samplescale.backends.base.LogitsModel`); a name registered in
        :data:`~samplescale.verifiers.process.PROCESS_SCORERS` (``"p-true"``, ``"judge"``),
        built on the policy backend; or a callable ``(prompt, steps) -> float`` with
        ``scorer_scale``.
    scorer_scale : {"probability", "log-probability", "reward"} or None
        The scale of a callable scorer (required then, unused otherwise).
    how : {"last", "min", "mean", "product"}
        Step-score aggregation of a path (default ``"last"``: the score of the whole partial
        solution).
    delimiter : str
        Step delimiter (default a blank line).
    max_steps : int
        Most steps in a solution (>= 1); a path that reaches it is cut.
    token_budget : int or None
        Most generated policy tokens (>= 1), or None for no limit.
    scorer_budget : int or None
        Most scorer calls (>= 1), or None for no limit.
    """

    scorer: ScorerSpec = None
    scorer_scale: Scale | None = None
    how: Aggregation = "last"
    delimiter: str = DEFAULT_DELIMITER
    max_steps: int = 10
    token_budget: int | None = None
    scorer_budget: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_delimiter(self.delimiter)
        if self.how not in AGGREGATIONS:
            raise ConfigError(f"how must be one of {', '.join(AGGREGATIONS)}; got {self.how!r}")
        positive_int("max_steps", self.max_steps, allow_none=False)
        positive_int("token_budget", self.token_budget)
        positive_int("scorer_budget", self.scorer_budget)
        check_scorer(self.scorer, self.scorer_scale)

    # ------------------------------------------------------------------ protocol
    def init(self, prompt: Prompt, params: SamplingParams) -> SearchState:  # type: ignore[override]
        """The initial state: the root (empty solution) only."""
        return SearchState(prompt=prompt, params=self.sampling_params(params))

    def done(self, state: SearchState) -> bool:  # type: ignore[override]
        """True once the search has a stop reason."""
        return state.stop_reason is not None

    def step(  # type: ignore[override]
        self, rng: np.random.Generator | None, state: SearchState, backend: Backend
    ) -> tuple[SearchState, dict[str, Any]]:
        """One round of the search (strategy-specific), with the scorer resolved first."""
        if state.scorer is None:
            scorer = self.resolve_scorer(backend)
            scorer.check_prompt(state.prompt)
            state = state.model_copy(update={"scorer": scorer})
        before = len(state.trace)
        state = self.advance(rng, state, backend)
        state = state.model_copy(update={"rounds": state.rounds + 1})
        info = {"round": state.rounds, "records": len(state.trace) - before}
        return state, info

    @abstractmethod
    def advance(
        self, rng: np.random.Generator | None, state: SearchState, backend: Backend
    ) -> SearchState:
        """One round of this search; sets ``stop_reason`` when it is over."""

    @abstractmethod
    def candidates(self, state: SearchState) -> list[int]:
        """The node ids returned as the Result's samples."""

    def finalize(self, state: SearchState) -> Result:  # type: ignore[override]
        """Candidates as samples (trajectories), the best complete one selected."""
        ids = self.candidates(state)
        return search_result(self, state, ids, best_node(state, ids))

    # ------------------------------------------------------------------ helpers
    def resolve_scorer(self, backend: Backend) -> ProcessScorer:
        """The process scorer to use with ``backend`` (see :func:`resolve_scorer`)."""
        return resolve_scorer(self.name, self.scorer, self.scorer_scale, backend)

    def expand(
        self,
        rng: np.random.Generator | None,
        state: SearchState,
        backend: Backend,
        parent: int,
        n: int,
        *,
        rest: bool = False,
        scored: bool = True,
    ) -> tuple[SearchState, list[int]]:
        """Draw up to ``n`` next steps below ``parent`` in one call and score each.

        With ``rest=True`` the children are whole completions (no step delimiter, see
        :func:`~samplescale.steps.generate_rest`); with ``scored=False`` they are not
        scored and take their parent's step scores and value.

        Returns the new state and the ids of the new nodes (failed steps and steps the
        scorer could not score are traced, not added). When a budget cannot pay for one
        more step, nothing is drawn and ``stop_reason`` names that budget; a call refused by
        a :class:`~samplescale.backends.budget.TokenBudgetBackend` or one that drew nothing
        also sets it (see :func:`~samplescale.strategies.search_state.stalled`), so no
        search loops on calls that add nothing.
        """
        call = self.plan(state, n, scored)
        if isinstance(call, str):
            return state.model_copy(update={"stop_reason": call}), []
        n, params = call
        params, call_rng = self.call_params(rng, params, state.calls)
        texts = state.texts(parent)
        if rest:
            batch = generate_rest(backend, state.prompt, texts, params, n, call_rng)
        else:
            batch = generate_steps(
                backend, state.prompt, texts, params, n, call_rng, self.delimiter
            )
        state, new = self.add_steps(
            state, parent, list(batch), batch.usage, params.max_tokens, scored
        )
        return state.model_copy(update={"stop_reason": stalled(backend, batch, new)}), new

    def expand_many(
        self,
        rng: np.random.Generator | None,
        state: SearchState,
        backend: Backend,
        parents: Sequence[int],
        n: int,
    ) -> tuple[SearchState, list[list[int]]]:
        """:meth:`expand` (``n`` scored steps) below each of ``parents``, the calls decoded
        together where the backend batches prompts
        (:func:`~samplescale.steps.generate_steps_many`).

        The calls are planned together: each asks for ``n`` steps while scorer calls are
        left (the last may ask for fewer), and ``max_tokens`` is lowered to ``tokens left
        // steps asked`` when the full one could overrun the token budget; parents are
        dropped from the end until every step can have a token. Each call gets the seed
        (or random streams) its own :meth:`expand` would get. Nodes, usage and the trace
        are then added call by call, as :meth:`expand` adds them.

        Returns the new state and, per parent, the ids of its new nodes (empty for
        parents not expanded). ``stop_reason`` is set as :meth:`expand` sets it, for the
        round as a whole: ``"max-total-tokens"`` once the backend's token budget refused a
        sample, ``"no-progress"`` when no call of the round drew a token or added a node,
        else the budget that dropped parents from the round (``"token-budget"`` when the
        token budget dropped the first of them, ``"scorer-budget"`` otherwise), as the
        calls of one :meth:`expand` per parent would stop at the first parent that no
        budget can pay for.
        """
        sizes: list[int] = []
        scorer_left = (None if self.scorer_budget is None
                       else self.scorer_budget - state.scorer_calls)
        for _ in parents:
            k = n if scorer_left is None else min(n, scorer_left - sum(sizes))
            if k < 1:
                break
            sizes.append(k)
        if not sizes:
            return state.model_copy(update={"stop_reason": "scorer-budget"}), [[] for _ in parents]
        cut = "scorer-budget" if len(sizes) < len(parents) else None
        params = state.params
        if self.token_budget is not None:
            left = self.token_budget - state.policy_tokens
            while sizes and left // sum(sizes) < 1:
                sizes.pop()
                cut = "token-budget"
            if not sizes:
                return (state.model_copy(update={"stop_reason": "token-budget"}),
                        [[] for _ in parents])
            params = params.replace(max_tokens=min(params.max_tokens, left // sum(sizes)))
        calls = []
        for j, k in enumerate(sizes):
            p, call_rng = self.call_params(rng, params, state.calls + j)
            calls.append((state.texts(parents[j]), p, k, call_rng))
        batches = generate_steps_many(backend, state.prompt, calls, self.delimiter)
        out: list[list[int]] = []
        for parent, call, batch in zip(parents, calls, batches):
            state, new = self.add_steps(state, parent, list(batch), batch.usage, call[1].max_tokens)
            out.append(new)
        drawn = [step for batch in batches for step in batch]
        stop = stalled(backend, drawn, [i for new in out for i in new]) or cut
        return (state.model_copy(update={"stop_reason": stop}),
                out + [[] for _ in parents[len(sizes):]])

    def plan(
        self, state: SearchState, n: int, scored: bool = True
    ) -> tuple[int, SamplingParams] | str:
        """``(n, params)`` for a call of at most ``n`` steps that fits both budgets, or the
        name of the budget that cannot pay for it (``"scorer-budget"``, ``"token-budget"``).

        The number of steps is capped by the scorer calls left (when they are to be
        ``scored``); ``max_tokens`` is lowered to ``tokens left // n`` when the full one
        could overrun the token budget.
        """
        if scored and self.scorer_budget is not None:
            n = min(n, self.scorer_budget - state.scorer_calls)
            if n < 1:
                return "scorer-budget"
        params = state.params
        if self.token_budget is not None:
            per_step = (self.token_budget - state.policy_tokens) // n
            if per_step < 1:
                return "token-budget"
            if per_step < params.max_tokens:
                params = params.replace(max_tokens=per_step)
        return n, params

    def call_params(
        self, rng: np.random.Generator | None, params: SamplingParams, index: int
    ) -> tuple[SamplingParams, np.random.Generator | None]:
        """Per-call parameters: with a run seed, call ``index`` gets its own derived seed."""
        if params.seed is None:
            return params, rng
        return params.replace(seed=derived_seed(params.seed, index)), None

    def add_steps(
        self,
        state: SearchState,
        parent: int,
        steps: list[Step],
        usage: Usage,
        max_tokens: int,
        scored: bool = True,
    ) -> tuple[SearchState, list[int]]:
        """Score ``steps`` (children of ``parent``; unless ``scored`` is False), add them
        as nodes, trace the call."""
        scorer = state.scorer
        assert scorer is not None
        base = state.nodes[parent]
        texts = state.texts(parent)
        nodes, new, children = list(state.nodes), [], []
        spent, calls, errors = usage, 0, []
        for step in steps:
            if step.failed:
                errors.append(step.sample.error)
                continue
            scores, value, score = base.step_scores, base.value, None
            if scored:
                calls += 1
                try:
                    score, cost = scorer.measure(state.prompt, (*texts, step.text))
                except ScorerError as exc:
                    errors.append(str(exc))
                    spent = spent + exc.usage
                    continue
                spent = spent + cost
                scores = (*scores, score)
                value = aggregate_step_scores(scores, self.how, scorer.scale)
            depth = base.depth + 1
            node = Node(
                id=len(nodes),
                parent=parent,
                depth=depth,
                step=step,
                step_scores=scores,
                value=value,
                done=step.done or depth >= self.max_steps,
                complete=step.done,
            )
            nodes.append(node)
            new.append(node.id)
            children.append(
                {
                    "id": node.id,
                    "text": step.text,
                    "end": step.end,
                    "tokens": step.tokens,
                    "score": score,
                    "value": node.value,
                }
            )
        generated = sum(s.tokens for s in steps)
        record = {
            "event": "expand",
            "round": state.rounds,
            "parent": parent,
            "depth": base.depth + 1,
            "requested": len(steps),
            "max_tokens": max_tokens,
            "children": children,
            "errors": errors,
            "policy_tokens": state.policy_tokens + generated,
            "scorer_calls": state.scorer_calls + calls,
        }
        k = len(nodes) - len(state.nodes)
        new_state = state.model_copy(
            update={
                "nodes": tuple(nodes),
                "visits": state.visits + (0,) * k,
                "totals": state.totals + (0.0,) * k,
                "usage": state.usage + spent,
                "policy_tokens": state.policy_tokens + generated,
                "scorer_calls": state.scorer_calls + calls,
                "calls": state.calls + 1,
                "trace": state.trace + (record,),
            }
        )
        return new_state, new


@dataclass(frozen=True)
class PathSearch(TreeSearch):
    """Base of the searches that build ONE solution step by step (mur, phi-decoding): the
    frontier is its leaf, the Result its one trajectory, selected whether or not its steps
    were scored."""

    def candidates(self, state: SearchState) -> list[int]:
        return [i for i in state.frontier if i != 0]

    def finalize(self, state: SearchState) -> Result:  # type: ignore[override]
        ids = self.candidates(state)
        return search_result(self, state, ids, ids[0] if ids else None)
