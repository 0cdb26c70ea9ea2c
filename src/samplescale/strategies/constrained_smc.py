"""The ``constrained-smc`` strategy: exact conditional sampling under a constraint.

Runs :func:`samplescale.smc.constrained.constrained_smc` (masked proposals weighted by the
mass the mask kept, resampled by ESS; Loula et al., 2025) with ``N = params.n`` particles
and selects by a weighted majority vote of the particles' answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.aggregate import vote
from samplescale.backends.base import Backend, LogitsModel
from samplescale.config import Constraint, SamplingParams
from samplescale.errors import ConfigError
from samplescale.smc.constrained import constrained_smc
from samplescale.smc.engine import check_threshold
from samplescale.smc.resampling import RESAMPLERS
from samplescale.strategies.base import State, Strategy
from samplescale.strategies.registry import STRATEGIES
from samplescale.types import Prompt, Result


class ConstrainedSMCState(State):
    """:class:`State` plus the SMC run's result (None until the one step has run)."""

    run_result: Result | None = None


@STRATEGIES.register("constrained-smc")
@dataclass(frozen=True)
class ConstrainedSMC(Strategy):
    """Constrained SMC with ``N = params.n`` particles; ``params.constraint`` is required.

    Attributes
    ----------
    constraint : Constraint or None
        The constraint when ``params.constraint`` is None (a strategy built for one
        constraint, e.g. by name with options); a different ``params.constraint`` is an
        error.
    resampling : str
        multinomial, residual, stratified or systematic.
    ess_threshold : float in [0, 1]
        Resample when ``ESS <= ess_threshold * N``.

    Notes
    -----
    The backend must be a ``LogitsModel`` (llama.cpp, transformers, the toy LM). The
    Result has the particles, their normalised weights, ``log_evidence`` (natural-log
    estimate of ``P(constraint satisfied within max_tokens)`` under the model), and the
    answer of the largest total weight (``vote_shares`` are weight shares; classes by
    ``equivalent``).

    Raises
    ------
    ConfigError
        If ``resampling`` is unknown or ``ess_threshold`` outside [0, 1] (when built), or
        at run time if the backend has no logits or ``params.constraint`` is None.
    """

    name = "constrained-smc"
    constraint: Constraint | None = None
    resampling: str = "multinomial"
    ess_threshold: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        RESAMPLERS.get(self.resampling)
        check_threshold(self.ess_threshold)

    def sampling_params(self, params: SamplingParams) -> SamplingParams:
        """``params`` with the strategy's constraint (when ``params`` has none).

        Raises
        ------
        ConfigError
            If neither has a constraint, or they have different ones.
        """
        c, own = params.constraint, self.constraint
        if c is not None and own is not None and c != own:
            raise ConfigError("constrained-smc: params.constraint differs from the strategy's constraint")
        if c is None and own is None:
            raise ConfigError(
                "constrained-smc needs a constraint (params.constraint or the strategy's "
                "constraint option: a JSON schema, regex or grammar)"
            )
        return params if c is not None else params.replace(constraint=own)

    def init(self, prompt: Prompt, params: SamplingParams) -> ConstrainedSMCState:
        """The initial state (nothing run yet)."""
        return ConstrainedSMCState(prompt=prompt, params=self.sampling_params(params))

    def done(self, state: State) -> bool:
        """True once the SMC run is complete (one step)."""
        return isinstance(state, ConstrainedSMCState) and state.run_result is not None

    def step(
        self, rng: np.random.Generator | None, state: State, backend: Backend
    ) -> tuple[State, dict[str, Any]]:
        """Run the whole SMC (every token step) on ``backend``."""
        if not isinstance(backend, LogitsModel):
            raise ConfigError(
                f"constrained-smc needs a backend with logits (llama.cpp, transformers), got {backend.name}"
            )
        out = constrained_smc(
            backend, state.prompt, state.params, state.params.n,
            rng=rng,
            resampling=self.resampling, ess_threshold=self.ess_threshold,
        )
        info = {"step": 0, "particles": len(out.samples), "log_evidence": out.log_evidence}
        new = state.model_copy(
            update={"samples": out.samples, "usage": state.usage + out.usage,
                    "trace": out.trace, "run_result": out}
        )
        return new, info

    def finalize(self, state: State) -> Result:
        """Weighted particles, log-evidence and the weighted-majority answer."""
        assert isinstance(state, ConstrainedSMCState) and state.run_result is not None
        run = state.run_result
        answers = self.answers(state)
        fields: dict[str, Any] = {}
        if run.weights:
            v = vote(answers, list(run.weights), self.equivalent)
            fields = {"selected": v.winner, "answer": v.answer, "vote_shares": v.shares}
        return self.result(
            state, answers, weights=run.weights, log_evidence=run.log_evidence, **fields
        )
