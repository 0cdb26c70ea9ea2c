"""Response bodies: OpenAI chat / text completions and the extension field.

``choices[0]`` of a strategy response is the selected sample. When the strategy selects
none although some samples succeeded (no sample had an extractable answer), ``choices[0]``
is the first successful sample and the extension's ``selected`` is null. ``usage`` counts
every token the request spent (all samples and calls), and the ``samplescale`` extension
field lists every candidate with its extracted answer, score and vote share.

Bodies are strict JSON: a non-finite number (a ``-inf`` log-probability score, an SMC weight
of ``inf``) is written as the string ``"-Infinity"``, ``"Infinity"`` or ``"NaN"``, the
convention of pydantic's ``ser_json_inf_nan="strings"``, so that no client's parser meets a
bare ``-Infinity`` and no score is confused with a missing one (``null``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from samplescale.types import Result, Sample, Usage


def encode(body: dict[str, Any] | list[Any]) -> bytes:
    """A response body as strict UTF-8 JSON; non-finite floats become strings
    (``"-Infinity"``, ``"Infinity"``, ``"NaN"``).

    Parameters
    ----------
    body : dict or list
        JSON-like data (pydantic models, tuples and numpy scalars are converted).

    Returns
    -------
    bytes
    """
    return to_json(body, inf_nan_mode="strings")


@dataclass(frozen=True)
class Outcome:
    """What a request produced.

    Attributes
    ----------
    choices : tuple of Sample
        The samples returned as choices (all ``n`` for pass-through; the selected one for a
        strategy).
    usage : Usage
        Everything the request spent.
    result : Result or None
        The strategy's result (None for pass-through).
    equivalent : callable or None
        The strategy's answer equivalence (to find each candidate's vote class).
    budget : dict
        ``max_total_tokens``, ``spent``, ``exhausted``, ``samples_not_drawn``.
    """

    choices: tuple[Sample, ...]
    usage: Usage
    result: Result | None
    equivalent: Callable[[str, str], bool] | None
    budget: dict[str, Any]


def usage_body(usage: Usage) -> dict[str, Any]:
    """The OpenAI ``usage`` object (``prompt_tokens_details.cached_tokens``: prompt tokens
    served from the KV cache, ``Usage.cached_prompt_tokens``)."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
    }


def _share(answer: str | None, shares: dict[str, float], equivalent: Any) -> float | None:
    if answer is None or not shares:
        return None
    if answer in shares:
        return shares[answer]
    for rep, share in shares.items():
        if equivalent is not None and equivalent(rep, answer):
            return share
    return None


def extension(outcome: Outcome, request_id: str, candidates: bool) -> dict[str, Any]:
    """The ``samplescale`` field: strategy, selection, candidates, usage and budget."""
    r = outcome.result
    u = outcome.usage
    body: dict[str, Any] = {
        "request_id": request_id,
        "usage": {**usage_body(u), "model_calls": u.model_calls, "wall_time_s": u.wall_time_s},
        "budget": outcome.budget,
    }
    if r is None:
        return body
    body.update(
        strategy=r.strategy,
        n=len(r.samples),
        selected=r.selected,
        answer=r.answer,
        vote_shares=r.vote_shares,
        score_scale=r.score_scale,
    )
    stopping = [t for t in r.trace if t.get("event") == "stopping"]
    if stopping:  # adaptive strategies: every stopping decision, with its statistic
        body["stopping"] = stopping
    if candidates:
        rows = []
        for i, s in enumerate(r.samples):
            answer = r.answers[i] if r.answers else None
            rows.append(
                {
                    "index": i,
                    "text": s.text,
                    "answer": answer,
                    "score": r.scores[i] if r.scores else None,
                    "vote_share": _share(answer, r.vote_shares, outcome.equivalent),
                    "weight": r.weights[i] if r.weights else None,
                    "status": s.status,
                    "error": s.error,
                    "finish_reason": s.finish_reason,
                    "completion_tokens": s.num_tokens,
                }
            )
        body["candidates"] = rows
    return body


def header(kind: str, request_id: str, created: int, model: str, chunk: bool = False) -> dict[str, Any]:
    """The ``id``, ``object``, ``created`` and ``model`` fields of a chat (``kind`` "chat")
    or text completion body, or of a stream chunk (``chunk``)."""
    chat = kind == "chat"
    obj = "text_completion" if not chat else "chat.completion.chunk" if chunk else "chat.completion"
    return {"id": f"{'chatcmpl' if chat else 'cmpl'}-{request_id}", "object": obj,
            "created": created, "model": model}


def _body(
    kind: str, outcome: Outcome, request_id: str, created: int, model: str, candidates: bool,
    choices: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        **header(kind, request_id, created, model),
        "choices": choices,
        "usage": usage_body(outcome.usage),
        "samplescale": extension(outcome, request_id, candidates),
    }


def chat_body(
    outcome: Outcome,
    *,
    request_id: str,
    created: int,
    model: str,
    candidates: bool,
    logprobs: list[dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object; ``logprobs`` gives each choice's ``logprobs`` object
    (:mod:`samplescale.server.logprobs` or :mod:`samplescale.server.echo`)."""
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": s.text},
            "logprobs": None if logprobs is None else logprobs[i],
            "finish_reason": s.finish_reason,
        }
        for i, s in enumerate(outcome.choices)
    ]
    return _body("chat", outcome, request_id, created, model, candidates, choices)


def completion_body(
    outcome: Outcome,
    *,
    request_id: str,
    created: int,
    model: str,
    candidates: bool,
    logprobs: list[dict[str, Any] | None] | None = None,
    echo_prompt: str | None = None,
) -> dict[str, Any]:
    """A ``text_completion`` object; ``echo_prompt`` is put before each choice's text
    (``echo: true``) and ``logprobs`` gives each choice's legacy ``logprobs`` object."""
    choices = [
        {
            "index": i,
            "text": (echo_prompt or "") + s.text,
            "logprobs": None if logprobs is None else logprobs[i],
            "finish_reason": s.finish_reason,
        }
        for i, s in enumerate(outcome.choices)
    ]
    return _body("text", outcome, request_id, created, model, candidates, choices)


def _summed(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Usage objects summed key by key, nested objects (``prompt_tokens_details``) too."""
    return {
        k: _summed([u[k] for u in usages]) if isinstance(v, dict) else sum(u[k] for u in usages)
        for k, v in usages[0].items()
    }


def merge_bodies(bodies: list[dict[str, Any]], request_id: str) -> dict[str, Any]:
    """One response for a list of prompts: the bodies' choices in prompt order, numbered
    ``i * n + j`` (prompt ``i``'s ``j``-th choice, as OpenAI numbers them), usage summed;
    the ``samplescale`` field lists each prompt's. A single body is returned as it is."""
    if len(bodies) == 1:
        return bodies[0]
    choices = [c for b in bodies for c in b["choices"]]
    for i, c in enumerate(choices):
        c["index"] = i
    return {
        **bodies[0],
        "choices": choices,
        "usage": _summed([b["usage"] for b in bodies]),
        "samplescale": {"request_id": request_id, "prompts": [b["samplescale"] for b in bodies]},
    }
