"""Token-level SMC on any :class:`~samplescale.backends.base.LogitsModel`.

The base model ``p`` is the model's raw next-token distribution (temperature 1, no
truncation). The proposal ``q`` is the same distribution processed by
:func:`samplescale.sampling.pipeline.process` with the given ``SamplingParams`` (tempered,
truncated, penalised), so each drawn token has the incremental log-weight
``log p(token) - log q(token) + log psi(new prefix) - log psi(old prefix)``
(:mod:`samplescale.smc.engine`). A sequence is complete at an end-of-sequence token or
after ``params.max_tokens`` tokens.

Tempering alone keeps every token in the proposal's support, so the SMC targets exactly
``p(x) Phi(x) / Z``. Truncation (top-k, top-p, min-p, ...) removes tokens from the
proposal: the target is then ``p(x) Phi(x)`` restricted to sequences the truncated
proposal can produce, and ``Z`` is that restricted sum.

Twisted SMC for language models: Zhao, Brekelmans, Makhzani & Grosse (2024), "Probabilistic
Inference in Language Models via Twisted Sequential Monte Carlo"; Lew et al. (2023),
"Sequential Monte Carlo Steering of Large Language Models using Probabilistic Programs".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from samplescale.backends.base import LogitsModel
from samplescale.backends.decoding import SequenceBuilder
from samplescale.config import SamplingParams
from samplescale.constraints.matcher import PrefixMatchers
from samplescale.errors import ConfigError
from samplescale.rng import make_rng
from samplescale.sampling import pipeline
from samplescale.smc import engine
from samplescale.smc.engine import Extension
from samplescale.types import Prompt, Result, Sample, Usage

TokenPotential = Callable[[tuple[int, ...], bool], float]
"""``(generated token ids, complete) -> natural-log potential``: the twist ``log psi`` of a
prefix, the final ``log Phi`` of a complete sequence; ``-inf`` forbids it."""


@dataclass(frozen=True)
class TokenState:
    """A partial or complete generated sequence.

    Attributes
    ----------
    tokens : tuple of int
        Generated token ids (the prompt excluded), length ``L``.
    logprobs : tuple of float
        Length ``L``: natural-log probability of each token under the raw model.
    sampling_logprobs : tuple of float
        Length ``L``: natural-log probability under the proposal it was drawn from.
    finish_reason : {"stop", "length"} or None
        ``stop``: ended on an end-of-sequence token; ``length``: ``max_tokens`` reached;
        None while the sequence is partial.
    """

    tokens: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()
    sampling_logprobs: tuple[float, ...] = ()
    finish_reason: str | None = None

    @property
    def done(self) -> bool:
        """True when the sequence is complete."""
        return self.finish_reason is not None


def check_proposal_params(params: SamplingParams) -> None:
    """Raise unless ``params`` define a stochastic proposal the SMC weights can correct.

    Raises
    ------
    ConfigError
        If a temperature is 0 (a greedy proposal has no density to weight by), the
        decoding is not ``independent``, or stop strings are given (token-level SMC ends
        sequences at end-of-sequence tokens and ``max_tokens`` only).
    """
    if params.temperature == 0.0 or params.fire_temperature == 0.0:
        raise ConfigError(
            "temperature must be > 0 for an SMC proposal (range (0, 100]): a greedy proposal "
            "cannot be importance-weighted"
        )
    if params.decoding != "independent":
        raise ConfigError(
            f"SMC proposals draw tokens independently; decoding must be 'independent', "
            f"got {params.decoding!r}"
        )
    if params.stop:
        raise ConfigError(
            "token-level SMC ends sequences at end-of-sequence tokens and max_tokens; "
            "stop strings are not supported (use step-level particle filtering)"
        )


class TokenProposal:
    """Draw the next token of each particle from the processed model distribution.

    Parameters
    ----------
    model : LogitsModel
    prompt_ids : sequence of int
        The prompt's token ids (``model.tokenize_prompt(prompt)``).
    params : SamplingParams
        The proposal's token-level transforms and ``max_tokens``.
    matchers : PrefixMatchers, optional
        A constraint's matchers: tokens are drawn from the masked distribution (the mask
        first, :mod:`samplescale.sampling.pipeline`), so ``log p - log q`` of a token
        includes the log of the mass the mask kept.

    Attributes
    ----------
    tokens : int
        Tokens drawn so far (over all calls).
    calls : int
        Next-token logits evaluated (one per drawn token).

    Raises
    ------
    ConfigError
        See :func:`check_proposal_params`.
    """

    def __init__(
        self,
        model: LogitsModel,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        matchers: PrefixMatchers | None = None,
    ):
        check_proposal_params(params)
        self.matchers = matchers
        self.model = model
        self.prompt_ids = [int(t) for t in prompt_ids]
        self.params = params
        self.tokens = 0
        self.calls = 0

    def __call__(
        self, rng: np.random.Generator, states: Sequence[TokenState]
    ) -> list[Extension[TokenState]]:
        """One extension per state (all states have the same length: one SMC step each)."""
        if not states:
            return []
        position = len(states[0].tokens)
        if any(len(s.tokens) != position for s in states):
            raise ConfigError("token-level SMC extends particles of equal length only")
        logits = np.stack(
            [self.model.logits_at(self.prompt_ids + list(s.tokens), 1)[0] for s in states]
        )
        m = self.matchers
        draw = pipeline.sample(
            logits,
            self.params,
            rng,
            history=[s.tokens for s in states],
            position=position,
            allowed=None if m is None else m.allowed([s.tokens for s in states]),
        )
        self.calls += len(states)
        self.tokens += len(states)
        out = []
        for s, tok, lp, lq in zip(states, draw.token_ids, draw.logprobs, draw.sampling_logprobs):
            tok = int(tok)
            end = self.model.is_end(tok)
            full = position + 1 >= self.params.max_tokens
            new = TokenState(
                tokens=(*s.tokens, tok),
                logprobs=(*s.logprobs, float(lp)),
                sampling_logprobs=(*s.sampling_logprobs, float(lq)),
                finish_reason="stop" if end else ("length" if full else None),
            )
            if m is not None:
                m.extend(s.tokens, tok)
            out.append(Extension(new, float(lp), float(lq), new.done))
        if m is not None:  # particles not extended here are complete: no matcher needed
            m.prune([e.state.tokens for e in out if not e.state.done])
        return out


def token_potential(potential: TokenPotential | None) -> engine.Potential[TokenState]:
    """The engine's batch potential from a per-sequence one (None: ``Phi = 1``, no twist)."""
    if potential is None:
        return lambda states: [0.0] * len(states)
    return lambda states: [potential(s.tokens, s.done) for s in states]


def to_sample(model: LogitsModel, state: TokenState, max_tokens: int) -> Sample:
    """The :class:`Sample` of a token state (text decoded with the model's pieces)."""
    seq = SequenceBuilder(model.piece, model.is_end, (), max_tokens)
    for tok, lp, lq in zip(state.tokens, state.logprobs, state.sampling_logprobs):
        seq.push(tok, lp, lq)
    return seq.to_sample()  # a partial sequence (weight zero, never extended) reads "length"


def token_smc(
    model: LogitsModel,
    prompt: Prompt,
    params: SamplingParams,
    n_particles: int,
    potential: TokenPotential | None = None,
    *,
    rng: np.random.Generator | int | None = None,
    resampling: str = "multinomial",
    ess_threshold: float = 0.5,
) -> Result:
    """Token-level SMC: ``n_particles`` weighted samples of ``p(x) Phi(x) / Z``.

    Parameters
    ----------
    model : LogitsModel
        The base model ``p`` (e.g. ``ToyLM`` or ``LlamaCppBackend``).
    prompt : Prompt
    params : SamplingParams
        The proposal (see :func:`check_proposal_params`); ``max_tokens`` bounds the length.
        ``params.seed`` (when set) seeds the run; ``params.n`` is not used.
    n_particles : int >= 1
    potential : callable (tokens, complete) -> float, optional
        Natural-log potential (see :data:`TokenPotential`); None for ``Phi = 1``.
    rng : Generator or int, optional
        Randomness when ``params.seed`` is None.
    resampling : str
        multinomial, residual, stratified or systematic.
    ess_threshold : float in [0, 1]
        Resample when ``ESS <= ess_threshold * N``.

    Returns
    -------
    Result
        ``strategy="token-smc"``; ``samples`` the final particles, ``weights`` their
        normalised weights (empty if every weight is zero), ``selected`` the heaviest,
        ``log_evidence`` the estimate of ``log Z`` (natural log), ``trace`` one record per
        step, ``usage`` tokens drawn over all particles (``completion_tokens``) and logits
        evaluations (``model_calls``).

    Raises
    ------
    ConfigError
        For invalid parameters (see :func:`check_proposal_params` and
        :func:`samplescale.smc.engine.step`).
    """
    return run_token_smc(
        model, prompt, params, n_particles, token_potential(potential), rng=rng,
        resampling=resampling, ess_threshold=ess_threshold,
    )


def run_token_smc(
    model: LogitsModel,
    prompt: Prompt,
    params: SamplingParams,
    n_particles: int,
    potential: engine.Potential[TokenState],
    *,
    rng: np.random.Generator | int | None,
    resampling: str,
    ess_threshold: float,
    matchers: PrefixMatchers | None = None,
    strategy: str = "token-smc",
) -> Result:
    """The run behind :func:`token_smc` and constrained SMC: a batch ``potential`` over
    token states, optional constraint ``matchers`` for the proposal, and the Result's
    ``strategy`` name (arguments and Result as in :func:`token_smc`)."""
    start = time.perf_counter()
    gen = make_rng(params.seed if params.seed is not None else rng)
    prompt_ids = model.tokenize_prompt(prompt)
    proposal = TokenProposal(model, prompt_ids, params, matchers)
    system, infos = engine.run(
        TokenState(),
        n_particles,
        proposal,
        potential,
        gen,
        resampling=resampling,
        ess_threshold=ess_threshold,
        max_steps=params.max_tokens,
    )
    samples = tuple(to_sample(model, s, params.max_tokens) for s in system.states)
    alive = any(system.alive)
    weights = tuple(float(w) for w in system.weights()) if alive else ()
    usage = Usage(
        prompt_tokens=len(prompt_ids),
        completion_tokens=proposal.tokens,
        model_calls=proposal.calls,
        wall_time_s=time.perf_counter() - start,
    )
    return Result(
        strategy=strategy,
        samples=samples,
        weights=weights,
        selected=int(np.argmax(weights)) if alive else None,
        trace=tuple(infos),
        usage=usage,
        log_evidence=system.log_evidence,
    )
