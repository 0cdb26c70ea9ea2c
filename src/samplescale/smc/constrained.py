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

from collections.abc import Sequence

import numpy as np

from samplescale.backends.base import LogitsModel
from samplescale.config import SamplingParams
from samplescale.constraints.matcher import PrefixMatchers
from samplescale.errors import ConfigError
from samplescale.smc.token import TokenState, run_token_smc
from samplescale.types import Prompt, Result


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
    rng, resampling, ess_threshold
        As in :func:`samplescale.smc.token.token_smc`.

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
    matchers = PrefixMatchers(params.constraint, model.piece, model.is_end, model.vocab_size)

    def satisfied(states: Sequence[TokenState]) -> list[float]:  # Phi: ended on an end token
        return [-np.inf if s.finish_reason == "length" else 0.0 for s in states]

    return run_token_smc(
        model, prompt, params, n_particles, satisfied, rng=rng, resampling=resampling,
        ess_threshold=ess_threshold, matchers=matchers, strategy="constrained-smc",
    )
