"""Constrained SMC: exact conditional sampling of a language model given a constraint.

Masked decoding (the grammar mask of :mod:`samplescale.constraints`) draws each token from
``p(token | prefix)`` renormalised over the allowed tokens. That is a sample of *some*
distribution over valid strings, but not of the target ``p(x | x satisfies the
constraint)``: the renormalisation at each step is greedy, and prefixes whose continuations
are mostly invalid keep their full prior mass (Lew et al., 2023; Loula et al., 2025).

Constrained SMC uses masked decoding as the proposal ``q`` and corrects it with importance
weights. For one token, ``p(t) / q(t) = M``, the probability mass the mask kept (with
temperature 1 and no truncation; otherwise the weight also corrects those), so a particle's
incremental log-weight is ``log M``; a particle cut by ``max_tokens`` before an end token
gets weight zero. Resampling when the effective sample size falls (:mod:`samplescale.smc.
engine`) concentrates particles on prefixes with mass; the weighted particles are
asymptotically (N -> infinity) distributed as the exact conditional, and the SMC
log-evidence estimates ``log Z``, ``Z = P(x satisfies the constraint and ends within
max_tokens)`` under the model (unbiased on the ``Z`` scale).

References: Lew, Zhi-Xuan, Grand & Mansinghka (2023), "Sequential Monte Carlo Steering of
Large Language Models using Probabilistic Programs"; Loula et al. (2025), "Syntactic and
Semantic Control of Large Language Models via Sequential Monte Carlo" (ICLR).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from samplescale.backends.base import LogitsModel
from samplescale.config import SamplingParams
from samplescale.constraints.matcher import PrefixMatchers
from samplescale.errors import ConfigError
from samplescale.rng import make_rng
from samplescale.smc import engine
from samplescale.smc.token import TokenProposal, TokenState, to_sample
from samplescale.types import Prompt, Result, Usage


def constrained_smc(
    model: LogitsModel,
    prompt: Prompt,
    params: SamplingParams,
    n_particles: int,
    *,
    rng: np.random.Generator | int | None = None,
    resampling: str = "multinomial",
    ess_threshold: float = 0.5,
) -> Result:
    """``n_particles`` weighted samples of ``p(x | x satisfies params.constraint)``.

    Parameters
    ----------
    model : LogitsModel
        The base model ``p`` (``ToyLM``, ``LlamaCppBackend``, ``TransformersBackend``).
    prompt : Prompt
    params : SamplingParams
        ``params.constraint`` (required) and the proposal's transforms (temperature 1 and
        no truncation make the proposal exactly the masked model); ``max_tokens`` bounds
        the length; ``params.seed`` (when set) seeds the run; ``params.n`` is not used.
    n_particles : int >= 1
    rng : Generator or int, optional
        Randomness when ``params.seed`` is None.
    resampling : str
        multinomial, residual, stratified or systematic.
    ess_threshold : float in [0, 1]
        Resample when ``ESS <= ess_threshold * N``.

    Returns
    -------
    Result
        ``strategy="constrained-smc"``; ``samples`` the final particles, ``weights`` their
        normalised importance weights (empty if every particle was cut by ``max_tokens``),
        ``selected`` the heaviest, ``log_evidence`` the estimate of ``log Z`` (natural
        log; ``-inf`` when no particle satisfied the constraint), ``trace`` one record per
        token step, ``usage`` tokens drawn over all particles and logits evaluations.

    Raises
    ------
    ConfigError
        If ``params.constraint`` is None, the constraint is invalid, or the proposal is
        not one SMC can weight (:func:`samplescale.smc.token.check_proposal_params`).
    MissingDependencyError
        Without llguidance (extra ``constraints``).
    """
    if params.constraint is None:
        raise ConfigError("constrained SMC needs params.constraint (a JSON schema, regex or grammar)")
    start = time.perf_counter()
    gen = make_rng(params.seed if params.seed is not None else rng)
    prompt_ids = model.tokenize_prompt(prompt)
    matchers = PrefixMatchers(params.constraint, model.piece, model.is_end, model.vocab_size)
    proposal = TokenProposal(model, prompt_ids, params, matchers)

    def satisfied(states: Sequence[TokenState]) -> list[float]:  # Phi: ended on an end token
        return [-np.inf if s.finish_reason == "length" else 0.0 for s in states]

    system, infos = engine.run(
        TokenState(), n_particles, proposal, satisfied, gen,
        resampling=resampling, ess_threshold=ess_threshold, max_steps=params.max_tokens,
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
        strategy="constrained-smc",
        samples=samples,
        weights=weights,
        selected=int(np.argmax(weights)) if alive else None,
        trace=tuple(infos),
        usage=usage,
        log_evidence=system.log_evidence,
    )
