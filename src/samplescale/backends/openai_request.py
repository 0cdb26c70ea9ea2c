"""The request side of the OpenAI wire format: which ``SamplingParams`` fields an
OpenAI-compatible server is sent, under which names, and which are refused; and the seed
each request of a call carries."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from samplescale.backends.openai_wire import response_format
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.rng import sample_generators
from samplescale.types import Prompt

# Fields every OpenAI-compatible server understands, sent on every request.
_ALWAYS = ("temperature", "top_p")
# SamplingParams fields mapped by hand (not sent under their own name).
OPENAI_MAPPED_FIELDS = frozenset({"n", "max_tokens", "stop", "seed"})
# OpenAI fields sent only when they differ from the SamplingParams default.
_OPENAI_OPTIONAL = ("presence_penalty", "frequency_penalty")
DEFAULT_EXTRA_FIELDS = ("top_k", "min_p", "typical_p")


def request_body(
    prompt: Prompt,
    params: SamplingParams,
    *,
    model: str,
    base_url: str,
    extra_fields: Collection[str] = DEFAULT_EXTRA_FIELDS,
    send_defaults: bool = False,
    logprobs: bool = True,
    token_ids: bool = False,
    extra_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a completion request for ``prompt`` and ``params`` (without ``n``
    and ``seed``, which the caller sets per request).

    Sent: ``model``, ``max_tokens``, ``temperature`` and ``top_p`` always; ``stop`` when
    set; ``presence_penalty``, ``frequency_penalty`` and ``extra_fields`` when they differ
    from the ``SamplingParams`` default (or always, with ``send_defaults``); a constraint as
    ``response_format`` (chat only); ``messages`` for a chat prompt, else ``prompt`` (the
    text plus ``Prompt.prefix``); log-probability requests as ``logprobs``; ``extra_body``
    merged last. The parameters are those of :class:`~samplescale.backends.openai_http.
    OpenAIHTTPBackend`; ``base_url`` only names the server in errors.

    Raises
    ------
    ConfigError
        If ``params`` sets a field this server is not known to apply, the prompt continues
        a chat reply (``Prompt.prefix`` with messages), which the OpenAI chat API cannot
        express, or a constraint is given with a text prompt.
    """
    defaults = SamplingParams()
    fmt = None if params.constraint is None else response_format(params.constraint)
    body: dict[str, Any] = {"model": model, "max_tokens": params.max_tokens}
    for name in _ALWAYS:
        body[name] = getattr(params, name)
    sendable = set(_ALWAYS) | OPENAI_MAPPED_FIELDS | set(_OPENAI_OPTIONAL) | set(extra_fields)
    for name in SamplingParams.model_fields:
        if name == "constraint":  # sent as response_format (chat only), below
            continue
        value = getattr(params, name)
        changed = value != getattr(defaults, name)
        if name not in sendable:
            if changed:
                raise ConfigError(
                    f"{name}={value!r} cannot be sent to {base_url}: the server is not "
                    f"known to apply it (add it to extra_fields if it does)"
                )
        elif name in _OPENAI_OPTIONAL or name in extra_fields:
            if changed or send_defaults:
                body[name] = value
    if params.stop:
        body["stop"] = list(params.stop)
    if prompt.messages is not None:
        if prompt.prefix:
            raise ConfigError(
                "the OpenAI chat API cannot continue a partial reply (Prompt.prefix); "
                "use a text prompt (Prompt(text=...)) with this backend"
            )
        body["messages"] = [{"role": m.role, "content": m.content} for m in prompt.messages]
        if fmt is not None:
            body["response_format"] = fmt
        if logprobs:
            # top_logprobs: llama-cpp-python's server reports none without it
            body["logprobs"], body["top_logprobs"] = True, 0
    else:
        if fmt is not None:
            raise ConfigError(
                "a constraint goes to an OpenAI-compatible server as response_format, "
                "a chat-completions field: use a chat prompt (messages)"
            )
        body["prompt"] = (prompt.text or "") + prompt.prefix
        if logprobs:
            body["logprobs"] = 0
    if token_ids:
        body["return_tokens_as_token_ids"] = True
    body.update(extra_body or {})
    return body


def request_seeds(params: SamplingParams, rng: np.random.Generator | None) -> list[int]:
    """One request seed per sample, each from the sample's own random stream
    (:func:`samplescale.rng.sample_generators`), in ``[0, 2**31 - 1)``; length ``params.n``.

    Sample 0's seed is ``params.seed`` itself when set, so a plain ``n=1`` request sends the
    caller's seed unchanged; ``rng`` is used only when ``params.seed`` is None.
    """
    gens = sample_generators(params.seed, rng, params.n)
    seeds = [int(g.integers(0, 2**31 - 1)) for g in gens]
    if params.seed is not None:
        seeds[0] = params.seed  # a plain n=1 request sends the caller's seed unchanged
    return seeds
