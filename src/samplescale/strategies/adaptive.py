"""Adaptive self-consistency: draw samples in rounds and stop once the vote is settled.

``params.n`` is the maximum number of samples (the budget N); a strategy draws one round
per step and, after each round, asks its stopping rule (:mod:`samplescale.stopping`)
whether to stop. Every decision is a trace record
(``{"event": "stopping", "decision": "continue" | "stop" | "budget" | "failed", ...}``
with the rule's statistic; ``failed``: every sample of the round was an error sample, e.g.
a spent ``max_total_tokens`` budget or a failing upstream, so the run stops there instead
of filling N with errors, and the record carries the first ``error``), ``Result.usage``
is what was actually spent, and the answer is the majority vote over all samples drawn
(ties to the class seen first, as :class:`~samplescale.strategies.voting.SelfConsistency`).

* ``esc`` -- ESC (Li et al. 2024, "Escape Sky-high Cost: Early-stopping Self-Consistency
  for Multi-step Reasoning"): windows of ``window`` samples; stop after a unanimous window.
* ``adaptive-consistency`` -- Aggarwal et al. 2023 ("Let's Sample Step by Step"): stop
  when the Beta / Dirichlet posterior probability that the leader is the true majority
  reaches ``threshold``.
* ``semantic-entropy`` -- rounds of parallel samples; stop when the entropy of the answer
  classes (clustered by the task's equivalence) is at most ``threshold`` nats
  (semantic-entropy guided termination, Xu et al. 2025).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import cluster, vote
from samplescale.backends.base import Backend
from samplescale.config import SamplingParams
from samplescale.stopping import (
    answer_entropy,
    check_fraction,
    check_positive,
    check_round,
    leader_probability,
    vote_counts,
    window_unanimous,
)
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt, Result

Labels = Sequence[int | None]


@dataclass(frozen=True)
class AdaptiveStrategy(Strategy):
    """Base of the adaptive-stopping strategies (see the module docstring).

    Subclasses give :meth:`round_size` (samples per step), :meth:`check_budget`
    (parameter checks against N) and :meth:`rule` (the stopping decision after a round).

    Raises
    ------
    ConfigError
        From :meth:`init` when a parameter does not fit the budget N (``params.n``).
    """

    def round_size(self, drawn: int) -> int:
        """Samples the next step asks for, given ``drawn`` so far (before the budget cut)."""
        raise NotImplementedError

    def check_budget(self, budget: int) -> None:
        """Raise ConfigError naming the field if a parameter does not fit budget N."""

    def settled(self, counts: Sequence[int], unanswered: int) -> tuple[bool, float]:
        """For rules that depend only on the vote: (stop?, statistic) given the vote
        ``counts`` of the classes seen (positive) and the ``unanswered`` samples."""
        raise NotImplementedError(f"{self.name} does not decide from vote counts alone")

    def rule(self, labels: Labels, last_round: int, state: State) -> dict[str, Any]:
        """The stopping decision after a round: ``{"stop": bool, <statistics>}``.

        ``labels`` are the answer classes of all samples drawn (None: no answer),
        ``last_round`` the number drawn by the last step.
        """
        raise NotImplementedError

    def init(self, prompt: Prompt, params: SamplingParams) -> State:
        state = super().init(prompt, params)
        self.check_budget(state.params.n)
        return state

    def done(self, state: State) -> bool:
        """True after a ``stop`` or ``failed`` decision or when N samples have been drawn."""
        last = state.trace[-1] if state.trace else {}
        return (last.get("decision") in ("stop", "budget", "failed")
                or len(state.samples) >= state.params.n)

    def labels(self, state: State) -> list[int | None]:
        """Answer class of every sample drawn (clustered by ``equivalent``)."""
        return cluster(self.answers(state), self.equivalent)

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Draw one round (at most the rest of the budget) and record the stopping decision."""
        if not state.samples:
            self.check_backend(backend)
        size = min(self.round_size(len(state.samples)), state.params.n - len(state.samples))
        state, info = self.draw(rng, state, backend, size)
        decision = self.rule(self.labels(state), size, state)
        stop = bool(decision.pop("stop"))
        spent = len(state.samples) >= state.params.n
        errors = [s.error for s in state.samples[-size:] if s.status == "error"]
        failed = size > 0 and len(errors) == size  # e.g. a spent token budget, a dead upstream
        record = {
            **info,
            "event": "stopping",
            "drawn": len(state.samples),
            **decision,
            "decision": ("stop" if stop else "budget" if spent
                         else "failed" if failed else "continue"),
            **({"error": errors[0]} if failed and not (stop or spent) else {}),
        }
        new = state.model_copy(update={"trace": state.trace[:-1] + (record,)})
        return new, record

    def finalize(self, state: State) -> Result:
        answers = self.answers(state)
        v = vote(answers, None, self.equivalent)
        return self.result(
            state, answers, selected=v.winner, answer=v.answer, vote_shares=v.shares
        )


@STRATEGIES.register("esc")
@dataclass(frozen=True)
class ESC(AdaptiveStrategy):
    """Early-stopping self-consistency (Li et al. 2024): windows of ``window`` samples.

    After each window the rule stops if all ``window`` samples of that window have the same
    answer class (the window's answer entropy is 0; a sample without an answer breaks
    unanimity); otherwise the next window is drawn, up to N samples (the last window is
    cut to the budget and, if shorter than ``window``, never counts as unanimous). The
    answer is the majority vote over all samples drawn.

    Attributes
    ----------
    window : int, default 4
        Window size ``w`` in samples, in ``[1, N]`` (the paper mostly uses 5 with N = 40;
        4 divides the usual power-of-two budgets).
    """

    name = "esc"
    window: int = 4

    def round_size(self, drawn: int) -> int:
        return self.window

    def check_budget(self, budget: int) -> None:
        check_round(self.window, "window", budget)

    def rule(self, labels: Labels, last_round: int, state: State) -> dict[str, Any]:
        window = list(labels[-last_round:])
        unanimous = last_round == self.window and window_unanimous(window)
        return {"stop": unanimous, "window_unanimous": unanimous}


@STRATEGIES.register("adaptive-consistency")
@dataclass(frozen=True)
class AdaptiveConsistency(AdaptiveStrategy):
    """Adaptive-Consistency (Aggarwal et al. 2023): stop when the leader is probably the
    true majority.

    After each round the posterior probability that the current leader is the majority
    answer (:func:`samplescale.stopping.leader_probability`: the Beta criterion for two
    classes, Dirichlet for more, computed exactly / by quadrature, no Monte Carlo) is
    compared with ``threshold``; the rule stops when it is at least ``threshold``. With the
    uniform prior a unanimous vote stops after 4 samples at threshold 0.95
    (``1 - 2^-5 = 0.969``).

    Attributes
    ----------
    threshold : float, default 0.95
        Stopping probability, in ``(0, 1)``.
    prior : float, default 1.0
        Symmetric Dirichlet concentration, ``> 0``.
    round : int, default 1
        Samples per step (1 as in the paper; more decode in parallel), in ``[1, N]``.
    """

    name = "adaptive-consistency"
    threshold: float = 0.95
    prior: float = 1.0
    round: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.threshold, "threshold")
        check_positive(self.prior, "prior")

    def round_size(self, drawn: int) -> int:
        return self.round

    def check_budget(self, budget: int) -> None:
        check_round(self.round, "round", budget)

    def settled(self, counts: Sequence[int], unanswered: int) -> tuple[bool, float]:
        """(stop?, leader probability) for the vote ``counts`` of the classes seen."""
        p = leader_probability(counts, self.prior)
        return p >= self.threshold, p

    def rule(self, labels: Labels, last_round: int, state: State) -> dict[str, Any]:
        stop, p = self.settled(*vote_counts(labels))
        return {"stop": stop, "leader_probability": p}


@STRATEGIES.register("semantic-entropy")
@dataclass(frozen=True)
class SemanticEntropy(AdaptiveStrategy):
    """Semantic-entropy guided termination: rounds of parallel samples until the answer
    classes agree.

    After each round of ``round`` samples the entropy (nats) of the answer classes of all
    samples so far (:func:`samplescale.stopping.answer_entropy`; classes by the task's
    equivalence, each sample without an answer a class of its own) is compared with
    ``threshold``; the rule stops when it is at most ``threshold``. ``threshold=0``
    stops only on a unanimous vote. Xu et al. 2025 (semantic-entropy guided adaptive
    sampling); semantic entropy after Kuhn et al. 2023.

    Attributes
    ----------
    threshold : float, default 0.4
        Entropy in nats, ``>= 0`` (for reference: a 7-1 split has 0.377, 3-1 has 0.562).
    round : int, default 4
        Samples per round, in ``[2, N]`` (one sample always has entropy 0).
    """

    name = "semantic-entropy"
    threshold: float = 0.4
    round: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self.threshold, "threshold", zero=True)

    def round_size(self, drawn: int) -> int:
        return self.round

    def check_budget(self, budget: int) -> None:
        check_round(self.round, "round", budget, minimum=2)

    def settled(self, counts: Sequence[int], unanswered: int) -> tuple[bool, float]:
        """(stop?, entropy) for the vote ``counts`` and ``unanswered`` samples."""
        h = answer_entropy(counts, unanswered)
        return h <= self.threshold, h

    def rule(self, labels: Labels, last_round: int, state: State) -> dict[str, Any]:
        stop, h = self.settled(*vote_counts(labels))
        return {"stop": stop, "entropy": h}
