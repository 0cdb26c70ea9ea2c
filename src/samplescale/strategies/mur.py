"""MUR: momentum uncertainty decides which reasoning steps get extra compute.

Yan et al. 2025, "MUR: Momentum Uncertainty guided Reasoning for Large Language Models"
(arXiv:2507.14958). One solution is built step by step. Each step is drawn once; its
uncertainty is the negative mean log-probability of its tokens,
``u_t = -mean(log p(token))`` (nats per token, >= 0), and the momentum uncertainty of the
path is the exponential average ``M_t = alpha * M_{t-1} + (1 - alpha) * u_t`` (``M_1 = u_1``:
the first step only starts the average). Step ``t > 1`` is re-drawn with extra compute --
``width`` candidate steps, the best by the process scorer kept -- when it is markedly more
uncertain than the path so far, gamma-control as we read the paper:

    exp(u_t) > exp(M_{t-1}) / gamma,  i.e.  u_t > M_{t-1} + ln(1 / gamma),

so ``gamma`` in (0, 1] is the knob: 1 scales every step above the momentum, smaller values
scale fewer steps (less compute). The momentum is then updated with the kept step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.backends.base import Backend
from samplescale.errors import ConfigError
from samplescale.steps import Step
from samplescale.strategies.base import check_number
from samplescale.strategies.registry import STRATEGIES
from samplescale.strategies.search_state import SearchState
from samplescale.strategies.tree import PathSearch, positive_int


def step_uncertainty(step: Step) -> float:
    """``-mean`` token log-probability of a step (nats per token, >= 0; 0.0 for no token).

    Raises
    ------
    ConfigError
        If the step's sample carries no log-probabilities (the backend does not return them).
    """
    lps = step.sample.logprobs
    if not lps:
        if step.tokens == 0:
            return 0.0
        raise ConfigError("mur needs the log-probability of every generated token; the "
                          "backend returned none")
    return -float(np.mean(lps))


@STRATEGIES.register("mur")
@dataclass(frozen=True)
class MUR(PathSearch):
    """Momentum-uncertainty guided reasoning (see the module docstring and the
    :class:`TreeSearch` options: scorer, delimiter, max_steps, budgets).

    Attributes
    ----------
    gamma : float
        Scaling threshold, in (0, 1] (default 0.9): higher scales more steps.
    alpha : float
        Momentum of the uncertainty average, in [0, 1) (default 0.9).
    width : int or None
        Candidate steps drawn for a scaled step (>= 1); None: ``params.n``.

    Notes
    -----
    Each scaled step spends its first draw plus ``width`` candidates and ``width`` scorer
    calls; an unscaled step one draw and no scorer call. Every decision is a trace record
    ``{"event": "mur", "depth", "uncertainty", "momentum_before", "threshold", "scaled",
    "kept", "momentum"}``. Needs a backend with log-probabilities.

    Raises
    ------
    ConfigError
        If ``gamma``, ``alpha`` or ``width`` is out of range.
    """

    name = "mur"
    requires = ("logprobs",)
    gamma: float = 0.9
    alpha: float = 0.9
    width: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("gamma", self.gamma, lambda v: 0 < v <= 1, "(0, 1]")
        check_number("alpha", self.alpha, lambda v: 0 <= v < 1, "[0, 1)")
        positive_int("width", self.width)

    def advance(
        self, rng: np.random.Generator | None, state: SearchState, backend: Backend
    ) -> SearchState:
        leaf = state.frontier[0]
        records = [t for t in state.trace if t.get("event") == "mur"]
        momentum = records[-1]["momentum"] if records else None
        state, first = self.expand(rng, state, backend, leaf, 1, scored=False)
        if not first:
            return state.model_copy(update={"stop_reason": state.stop_reason or "no-progress"})
        u = step_uncertainty(state.nodes[first[0]].step)  # type: ignore[arg-type]
        threshold = None if momentum is None else momentum + math.log(1 / self.gamma)
        scaled = threshold is not None and u > threshold
        kept = first[0]
        if scaled and state.stop_reason is None:
            width = self.width if self.width is not None else state.params.n
            state, alternatives = self.expand(rng, state, backend, leaf, width)
            if alternatives:  # the best by score, ties to the earlier
                kept = max(alternatives, key=lambda i: (state.nodes[i].value, -i))  # type: ignore[arg-type, return-value]
        u_kept = step_uncertainty(state.nodes[kept].step)  # type: ignore[arg-type]
        record: dict[str, Any] = {
            "event": "mur", "depth": state.nodes[kept].depth, "uncertainty": u,
            "momentum_before": momentum, "threshold": threshold, "scaled": scaled,
            "kept": kept,
            # alpha 0 forgets the past outright (0 * inf would be NaN after a step with a
            # token of log-probability -inf, and no step would ever be scaled again)
            "momentum": u_kept if momentum is None or self.alpha == 0
            else self.alpha * momentum + (1 - self.alpha) * u_kept,
        }
        stop = state.stop_reason or ("done" if state.nodes[kept].done else None)
        return state.model_copy(
            update={"frontier": (kept,), "trace": state.trace + (record,), "stop_reason": stop}
        )
