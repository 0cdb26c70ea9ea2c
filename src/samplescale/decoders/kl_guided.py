"""KL-guided dynamic temperature (Chang et al., 2023, "KL-Divergence Guided Temperature
Sampling", arXiv:2306.01286).

At each step the model scores the next token twice: with the prompt's grounding source
(``p``) and without it (``q``). Where the source matters (large ``KL(p || q)``) the sample
should stick to it, so the temperature drops; where it does not, the sample may be as
diverse as the base temperature allows. The mapping used here is

    T_t = T_base(t) * 2 ** (-KL(p_t || q_t) / sigma)

with KL in nats over the raw (temperature 1, untruncated) distributions and ``T_base(t)``
the temperature the params give position ``t`` (FIRE included). ``T_t`` lies in
``(0, T_base]``: ``sigma`` (nats) is the KL that halves the temperature. The token is then
drawn from ``p`` through the usual pipeline (penalties, truncations) at ``T_t``.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from samplescale.backends.base import LogitsModel
from samplescale.backends.decoding import SequenceBuilder
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.rng import sample_generators
from samplescale.sampling import functional as F
from samplescale.sampling import pipeline
from samplescale.types import Generation, Prompt, Usage

__all__ = ["KLGuided", "kl_divergence", "kl_guided_generate", "kl_temperature"]


class KLGuided(NamedTuple):
    """Samples and their temperature schedules.

    Attributes
    ----------
    generation : Generation
    temperatures : tuple of tuple of float
        Per sample, the temperature used at each generated token.
    kl : tuple of tuple of float
        Per sample, ``KL(p || q)`` in nats at each generated token.
    """

    generation: Generation
    temperatures: tuple[tuple[float, ...], ...]
    kl: tuple[tuple[float, ...], ...]


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """``KL(p || q)`` in nats between the softmax distributions of two logit vectors.

    Tokens with ``p = 0`` contribute 0; a token with ``p > 0`` and ``q = 0`` gives ``inf``.
    """
    lp = F.log_softmax(p_logits)[0].astype(np.float64)
    lq = F.log_softmax(q_logits)[0].astype(np.float64)
    support = np.isfinite(lp)
    with np.errstate(invalid="ignore"):
        terms = np.exp(lp[support]) * (lp[support] - lq[support])
    return float(max(0.0, terms.sum()))


def kl_temperature(base: float, kl: float, sigma: float) -> float:
    """``base * 2 ** (-kl / sigma)``: the temperature for a step with divergence ``kl`` nats."""
    return base * 2.0 ** (-kl / sigma)


def kl_guided_generate(
    model: LogitsModel,
    prompt: Prompt,
    params: SamplingParams,
    rng: np.random.Generator | None = None,
) -> KLGuided:
    """Draw ``params.n`` samples with KL-guided temperature.

    Parameters
    ----------
    model : LogitsModel
    prompt : Prompt
        Must carry ``grounding`` (the source); the model is queried with it
        (``prompt.resolved()``) and without it.
    params : SamplingParams
        ``kl_sigma`` must be set; ``decoding`` must be ``independent``.
    rng : numpy.random.Generator, optional
        Randomness when ``params.seed`` is None.

    Returns
    -------
    KLGuided

    Raises
    ------
    ConfigError
        If the prompt has no grounding, ``kl_sigma`` is None, or ``decoding`` is not
        ``independent``.
    """
    if prompt.grounding is None:
        raise ConfigError("kl_sigma needs a prompt with a grounding source (Prompt.grounding)")
    if params.kl_sigma is None:
        raise ConfigError("kl_guided_generate needs params.kl_sigma (> 0)")
    if params.decoding != "independent":
        raise ConfigError(f"kl_sigma works with decoding='independent', got {params.decoding!r}")
    start = time.perf_counter()
    with_src = model.tokenize_prompt(prompt.resolved())
    without = model.tokenize_prompt(prompt.model_copy(update={"grounding": None}))
    gens = sample_generators(params.seed, rng, params.n)
    samples, temps, kls, calls = [], [], [], 0
    for g in gens:
        seq = SequenceBuilder(model.piece, model.is_end, params.stop, params.max_tokens)
        t_row: list[float] = []
        kl_row: list[float] = []
        while not seq.done:
            gen = seq.token_ids
            p = model.logits_at(with_src + gen, 1)
            q = model.logits_at(without + gen, 1)
            calls += 2
            kl = kl_divergence(p, q)
            t = kl_temperature(params.temperature_at(len(gen)), kl, params.kl_sigma)
            step = params.replace(temperature=t, fire_temperature=None)
            draw = pipeline.sample(p, step, g, history=[gen], position=len(gen))
            seq.push(draw.token_ids[0], draw.logprobs[0], draw.sampling_logprobs[0])
            t_row.append(t)
            kl_row.append(kl)
        samples.append(seq.to_sample())
        temps.append(tuple(t_row))
        kls.append(tuple(kl_row))
    usage = Usage(
        prompt_tokens=len(with_src) + len(without),
        completion_tokens=sum(s.num_tokens for s in samples),
        model_calls=calls,
        wall_time_s=time.perf_counter() - start,
    )
    return KLGuided(Generation(samples=tuple(samples), usage=usage), tuple(temps), tuple(kls))
