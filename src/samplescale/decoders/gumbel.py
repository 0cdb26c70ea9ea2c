"""Gumbel-max counterfactual generation.

Oberst & Sontag (2019), "Counterfactual Off-Policy Evaluation with Gumbel-Max Structural
Causal Models", ICML; Chatzi, Benz, Straitouri, Tsirtsis & Gomez-Rodriguez (2024),
"Counterfactual Token Generation in Large Language Models"; the posterior noise is the
top-down construction of Maddison, Tarlow & Minka (2014), "A* Sampling", NeurIPS.

The structural causal model: token ``t`` of a sample is ``argmax_i (phi_t[i] + g_t[i])``,
where ``phi_t`` (shape (V,), float64) is the natural-log processed next-token distribution
(:func:`samplescale.sampling.pipeline.process` with the sample's history and position,
``-inf`` for removed tokens) and the noise ``g_t[i]`` are i.i.d. standard Gumbel. By the
Gumbel-max trick the token is an exact draw from ``softmax(phi_t)``. Holding the noise fixed
and changing the model, the prompt or the sampling parameters gives the counterfactual: what
the sample would have been under the change with the same randomness.

Given an observed sequence, :func:`infer_noise` draws the noise from its exact posterior
(the noise conditioned on reproducing the sequence): at each step the maximum
``M = max_i (phi_i + g_i)`` is ``Gumbel(logsumexp(phi))`` and independent of the argmax
``k``; given ``k`` and ``M``, every other kept token's perturbed value is an independent
Gumbel(``phi_i``) truncated to ``<= M``; removed tokens (``phi_i = -inf``) carry no
information and keep their prior noise. Positions after the observed sequence are fresh
noise. So "draw noise, run both models" and "run the first model, infer the noise, run the
second" give the same joint law of (observed, counterfactual).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from samplescale.backends.base import LogitsModel
from samplescale.backends.decoding import SequenceBuilder
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.sampling import functional as F
from samplescale.sampling import pipeline
from samplescale.types import Prompt, Sample


class NoisySample(NamedTuple):
    """A sample and the Gumbel noise that produced it.

    Attributes
    ----------
    sample : Sample
        ``logprobs`` raw model, ``sampling_logprobs`` processed (natural log).
    noise : ndarray, shape (L, V), float64
        Row ``t``: the standard-Gumbel noise of generated position ``t`` over the whole
        vocabulary (``L`` = the sample's length).
    """

    sample: Sample
    noise: np.ndarray


def truncated_gumbel(loc: np.ndarray, bound: float, rng: np.random.Generator) -> np.ndarray:
    """Draw ``Gumbel(loc)`` variables conditioned on being ``<= bound``.

    Inverse CDF: ``x = loc - log(exp(loc - bound) + E)`` with ``E ~ Exponential(1)``,
    computed as ``loc - logaddexp(loc - bound, log E)`` (no overflow). Its CDF is
    ``exp(-exp(loc - x) + exp(loc - bound))`` for ``x <= bound``.

    Parameters
    ----------
    loc : ndarray, shape (m,), float64
        Finite locations (natural-log scale).
    bound : float
        Upper bound (finite).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (m,), float64
        Values ``<= bound``.
    """
    loc = np.asarray(loc, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_e = np.log(rng.exponential(size=loc.shape))
    return loc - np.logaddexp(loc - bound, log_e)


def _phi(
    model: LogitsModel,
    ctx: list[int],
    tokens: Sequence[int],
    params: SamplingParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Processed and raw natural-log next-token distributions after ``tokens``, each (V,)."""
    logits = model.logits_at([*ctx, *tokens], 1)
    proc = pipeline.process(logits, params, [list(tokens)], len(tokens))
    return (
        F.log_softmax(proc)[0].astype(np.float64),
        F.log_softmax(logits)[0].astype(np.float64),
    )


def _one_sample(params: SamplingParams) -> None:
    if params.n != 1:
        raise ConfigError(
            f"Gumbel-max decoding draws one sample per call: n must be 1, got {params.n}"
        )


def counterfactual(
    model: LogitsModel,
    prompt: Prompt,
    params: SamplingParams,
    noise: np.ndarray,
    rng: np.random.Generator | None = None,
) -> NoisySample:
    """Generate under ``model``, ``prompt`` and ``params`` with the given Gumbel noise.

    Token ``t`` is ``argmax(phi_t + noise[t])``; positions ``t >= len(noise)`` use fresh
    standard-Gumbel noise from ``rng``.

    Parameters
    ----------
    model : LogitsModel
    prompt : Prompt
    params : SamplingParams
        Token-level transforms, ``max_tokens``, ``stop``; ``n`` must be 1.
    noise : ndarray, shape (L, V), float
        Noise rows from :func:`sample_with_noise` or :func:`infer_noise` (any ``L >= 0``).
    rng : numpy.random.Generator, optional
        Needed only when the sample outgrows ``noise``.

    Returns
    -------
    NoisySample
        The counterfactual sample and the noise rows it used (``noise`` extended by the
        fresh rows, cut to the sample's length).

    Raises
    ------
    ConfigError
        If ``noise`` is not (L, vocab_size) or not finite, ``n != 1``, or fresh noise is
        needed and ``rng`` is None.
    """
    _one_sample(params)
    v = model.vocab_size
    g = np.asarray(noise, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != v or not np.isfinite(g).all():
        raise ConfigError(
            f"noise must be a finite array of shape (L, {v}) (vocab_size), got {g.shape}"
        )
    ctx = model.tokenize_prompt(prompt)
    seq = SequenceBuilder(model.piece, model.is_end, params.stop, params.max_tokens)
    rows = []
    while not seq.done:
        t = len(seq.token_ids)
        phi, raw = _phi(model, ctx, seq.token_ids, params)
        if t < len(g):
            row = g[t]
        elif rng is None:
            raise ConfigError("rng is required: the sample is longer than the given noise")
        else:
            row = rng.gumbel(size=v)
        tok = int(np.argmax(phi + row))
        seq.push(tok, raw[tok], phi[tok])
        rows.append(row)
    return NoisySample(seq.to_sample(), np.stack(rows))


def sample_with_noise(
    model: LogitsModel,
    prompt: Prompt,
    params: SamplingParams,
    rng: np.random.Generator,
) -> NoisySample:
    """Draw one exact sample of the processed distribution by the Gumbel-max trick, keeping
    the noise.

    Parameters
    ----------
    model : LogitsModel
    prompt : Prompt
    params : SamplingParams
        ``n`` must be 1.
    rng : numpy.random.Generator

    Returns
    -------
    NoisySample

    Raises
    ------
    ConfigError
        If ``n != 1``.
    """
    return counterfactual(model, prompt, params, np.empty((0, model.vocab_size)), rng)


def _check_not_stopped(model: LogitsModel, tokens: list[int], params: SamplingParams) -> None:
    """Raise ConfigError when decoding ``tokens`` with ``params`` finishes before the last:
    the ids after that point cannot have been sampled."""
    seq = SequenceBuilder(model.piece, model.is_end, params.stop, params.max_tokens)
    for t, k in enumerate(tokens[:-1]):
        if seq.push(k, 0.0, 0.0):
            if seq.finish_reason == "length":
                why = f"max_tokens={params.max_tokens} is reached"
            elif model.is_end(k):
                why = "it is an end-of-sequence token"
            else:
                why = f"the text ends in a stop string of {list(params.stop)!r}"
            raise ConfigError(
                f"token_ids[{t}] = {k}: generation stops there ({why}), so the "
                f"{len(tokens) - t - 1} token ids after it cannot have been sampled"
            )


def infer_noise(
    model: LogitsModel,
    prompt: Prompt,
    token_ids: Sequence[int],
    params: SamplingParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw Gumbel noise from its posterior given an observed token sequence.

    See the module docstring: at each step the maximum is ``Gumbel(logsumexp(phi))``, the
    observed token takes it, every other kept token is a Gumbel(``phi_i``) truncated to the
    maximum (:func:`truncated_gumbel`), and removed tokens keep prior noise.

    Parameters
    ----------
    model : LogitsModel
        The model that produced the observation.
    prompt : Prompt
    token_ids : sequence of int, length L
        The observed generated tokens (e.g. ``Sample.token_ids``).
    params : SamplingParams
        The parameters the observation was sampled with.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (L, V), float64
        Noise with which ``counterfactual(model, prompt, params, noise)`` reproduces
        ``token_ids`` (with probability 1).

    Raises
    ------
    ConfigError
        If a token id is not an integer, is out of range, or has probability 0 under
        ``params`` at its position; if generation with ``params`` would have stopped before
        the last id (at an end-of-sequence token, a stop string of ``params.stop``, or
        ``params.max_tokens``); or if ``params.n != 1``.
    """
    v = model.vocab_size
    ids = list(token_ids)
    if any(isinstance(t, bool) for t in ids):
        raise ConfigError(f"token_ids must be integers, not bools: {ids!r:.80}")
    try:
        tokens = [operator.index(t) for t in ids]  # 1.7 is refused, not truncated
    except TypeError as exc:
        raise ConfigError(f"token_ids must be integers, got {ids!r:.80}") from exc
    if params.n != 1:
        raise ConfigError(f"n must be 1 (one observed sequence), got {params.n}")
    if any(not 0 <= t < v for t in tokens):
        raise ConfigError(f"token_ids must be in [0, {v - 1}]")
    _check_not_stopped(model, tokens, params)
    ctx = model.tokenize_prompt(prompt)
    out = np.empty((len(tokens), v))
    for t, k in enumerate(tokens):
        phi, _ = _phi(model, ctx, tokens[:t], params)
        if not np.isfinite(phi[k]):
            raise ConfigError(
                f"token_ids[{t}] = {k} has probability 0 under these params: it cannot have "
                "been sampled with them"
            )
        kept = np.flatnonzero(np.isfinite(phi))
        top = float(np.logaddexp.reduce(phi[kept])) + rng.gumbel()
        row = rng.gumbel(size=v)  # prior noise, kept for removed tokens
        row[kept] = truncated_gumbel(phi[kept], top, rng) - phi[kept]
        row[k] = top - phi[k]
        out[t] = row
    return out
