"""Response bodies: OpenAI chat / text completions, stream chunks and the extension field.

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

import re
from collections.abc import Callable, Iterator
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


Piece = Callable[[int], bytes]


def text_token_ids(s: Sample, piece: Callable[[int], bytes]) -> tuple[list[int], int | None]:
    """The sample's token ids that make its text, and its end-of-sequence token (or None).

    A sample that stopped may have generated tokens past its text: the tokens of a stop
    string (not returned, as OpenAI and vLLM do not) and a final end-of-sequence token (an
    id whose text is empty). Tokens are kept while the text they start in is inside
    ``s.text``; the end-of-sequence token is returned apart when the sample ended on it
    right after its text.
    """
    ids = list(s.token_ids)
    if s.finish_reason != "stop":
        return ids, None
    limit, at, kept = len(s.text.encode("utf-8")), 0, []
    for tok in ids:
        if at >= limit:
            break
        kept.append(tok)
        at += len(piece(tok))
    end = ids[-1] if len(kept) == len(ids) - 1 and piece(ids[-1]) == b"" else None
    return kept, end


def _tokens(
    s: Sample, piece: Piece | None, token_ids: bool, end_name: Callable[[int], str] | None = None
) -> list[tuple[str, bytes | None]]:
    """Each token's string and bytes: from its id (``piece``; ``"token_id:<id>"`` when
    asked or without ``piece``), else as the backend reported it (bytes unknown).

    Only the tokens of the text are listed (:func:`text_token_ids`: not those of a stop
    string). A final end-of-sequence token is left out (chat, as OpenAI does), or listed
    under its name ``end_name(id)`` (legacy completions, as vLLM does, so that a harness
    that drops the last entry as the generated one finds it there).
    """
    if not s.token_ids:  # token strings only: those of the text (not of a stop string)
        texts, at = [], 0
        for t in s.token_texts:
            if s.finish_reason == "stop" and at >= len(s.text):
                break
            texts.append(t)
            at += len(t)
        return [(t, None) for t in texts]
    ids, end = (list(s.token_ids), None) if piece is None else text_token_ids(s, piece)
    out: list[tuple[str, bytes | None]] = []
    for tok in ids:
        raw = piece(tok) if piece is not None and not token_ids else None
        out.append((f"token_id:{tok}", None) if raw is None
                   else (raw.decode("utf-8", errors="replace"), raw))
    if end_name is not None and end is not None:
        out.append((f"token_id:{end}", None) if token_ids else (end_name(end), b""))
    return out


def _rows(
    s: Sample, piece: Piece | None, token_ids: bool, end_name: Callable[[int], str] | None = None
) -> list[tuple[str, bytes | None, float]]:
    """``(token, bytes, logprob)`` per listed token (see :func:`_tokens`); empty when the
    sample has no log-probabilities or no token identities."""
    tokens = _tokens(s, piece, token_ids, end_name)
    listed = len(s.token_ids) if s.token_ids else len(s.token_texts)
    if not s.logprobs or len(s.logprobs) != listed:
        return []
    return [(text, raw, lp) for (text, raw), lp in zip(tokens, s.logprobs)]


def chat_logprobs(s: Sample, piece: Piece | None, token_ids: bool) -> dict[str, Any] | None:
    """A chat choice's ``logprobs`` object (``Sample.logprobs``: raw model natural-log
    probabilities); None when the sample has none or no token identities."""
    rows = _rows(s, piece, token_ids)
    if not rows:
        return None
    return {
        "content": [
            {"token": text, "logprob": lp, "bytes": None if raw is None else list(raw),
             "top_logprobs": []}
            for text, raw, lp in rows
        ]
    }


def completion_logprobs(
    s: Sample, piece: Piece | None, token_ids: bool, end_name: Callable[[int], str] | None = None
) -> dict[str, Any] | None:
    """A text completion choice's ``logprobs`` object (legacy format, no top tokens).

    ``text_offset[i]`` is the character offset of token ``i`` in the choice's text: the
    summed length of the token strings before it (as vLLM computes it without ``echo``).
    """
    rows = _rows(s, piece, token_ids, end_name)
    if not rows:
        return None
    offsets, at = [], 0
    for text, _, _ in rows:
        offsets.append(at)
        at += len(text)
    return {
        "tokens": [text for text, _, _ in rows],
        "token_logprobs": [lp for _, _, lp in rows],
        "top_logprobs": None,
        "text_offset": offsets,
    }


def chat_body(
    outcome: Outcome,
    *,
    request_id: str,
    created: int,
    model: str,
    logprobs: bool,
    piece: Piece | None,
    token_ids: bool,
    candidates: bool,
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": s.text},
            "logprobs": chat_logprobs(s, piece, token_ids) if logprobs else None,
            "finish_reason": s.finish_reason,
        }
        for i, s in enumerate(outcome.choices)
    ]
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_body(outcome.usage),
        "samplescale": extension(outcome, request_id, candidates),
    }


def completion_body(
    outcome: Outcome,
    *,
    request_id: str,
    created: int,
    model: str,
    logprobs: bool,
    piece: Piece | None,
    token_ids: bool,
    candidates: bool,
    echo_prompt: str | None = None,
    scored: list[dict[str, Any]] | None = None,
    end_name: Callable[[int], str] | None = None,
) -> dict[str, Any]:
    """A ``text_completion`` object.

    ``echo_prompt`` is put before each choice's text (``echo: true``); ``scored`` replaces
    each choice's ``logprobs`` with one computed by the model
    (:func:`samplescale.server.echo.choice_logprobs`: prompt tokens, top alternatives);
    ``end_name`` names a final end-of-sequence token in the logprobs (see ``_tokens``).
    """
    choices = [
        {
            "index": i,
            "text": (echo_prompt or "") + s.text,
            "logprobs": (
                scored[i] if scored is not None
                else completion_logprobs(s, piece, token_ids, end_name) if logprobs else None
            ),
            "finish_reason": s.finish_reason,
        }
        for i, s in enumerate(outcome.choices)
    ]
    return {
        "id": f"cmpl-{request_id}",
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_body(outcome.usage),
        "samplescale": extension(outcome, request_id, candidates),
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
    usage = {k: sum(b["usage"][k] for b in bodies) for k in bodies[0]["usage"]}
    return {
        **bodies[0],
        "choices": choices,
        "usage": usage,
        "samplescale": {"request_id": request_id, "prompts": [b["samplescale"] for b in bodies]},
    }


def text_pieces(text: str) -> list[str]:
    """``text`` cut into word-sized stream deltas (each word with its trailing space);
    joined, they give ``text`` back exactly."""
    return [p for p in re.findall(r"\s*\S+\s*|\s+", text) if p]


def delta_chunk(request_id: str, created: int, model: str, index: int, text: str) -> dict[str, Any]:
    """A chunk carrying new text of choice ``index``."""
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
        ],
    }


def chat_chunks(
    outcome: Outcome,
    *,
    request_id: str,
    created: int,
    model: str,
    include_usage: bool,
    candidates: bool,
    content: bool = True,
    logprobs: bool = False,
    piece: Piece | None = None,
    token_ids: bool = False,
) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects after the role chunk: each choice's text in
    word-sized deltas (unless ``content`` is False: the text was already streamed as it
    was decoded), a chunk with each ``finish_reason``, then the usage and the extension
    field (on the last finish chunk, or with ``include_usage`` on an extra chunk whose
    ``choices`` is empty, as the OpenAI API does).

    With ``logprobs``, each choice's finish chunk carries all its token log-probabilities
    (``chat_logprobs``): a client that concatenates ``logprobs.content`` over the chunks,
    as the OpenAI clients do, gets the list of the unstreamed response. They are not spread
    over the text deltas because a token can end inside a UTF-8 character, and the deltas
    must join to the exact text.

    Parameters
    ----------
    outcome : Outcome
    request_id, created, model
        The chunk header fields.
    include_usage : bool
        ``stream_options.include_usage``.
    candidates : bool
        List every candidate in the extension field.
    content : bool
        Send each choice's text (False when it was streamed live).
    logprobs : bool
        Put each choice's token logprobs on its finish chunk.
    piece : callable int -> bytes, optional
        The backend's token bytes (token strings for logprobs).
    token_ids : bool
        Report tokens as ``"token_id:<id>"``.

    Yields
    ------
    dict
        ``chat.completion.chunk`` objects.
    """
    head = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    for i, s in enumerate(outcome.choices if content else ()):
        for words in text_pieces(s.text):
            yield delta_chunk(request_id, created, model, i, words)
    tail = {
        "usage": usage_body(outcome.usage),
        "samplescale": extension(outcome, request_id, candidates),
    }
    last = len(outcome.choices) - 1
    for i, s in enumerate(outcome.choices):
        chunk = {
            **head,
            "choices": [{
                "index": i, "delta": {},
                "logprobs": chat_logprobs(s, piece, token_ids) if logprobs else None,
                "finish_reason": s.finish_reason,
            }],
        }
        if i == last and not include_usage:
            chunk.update(tail)
        yield chunk
    if include_usage:
        yield {**head, "choices": [], **tail}


def role_chunk(request_id: str, created: int, model: str, n: int) -> dict[str, Any]:
    """The first chunk: the assistant role for each choice, sent as soon as work starts."""
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
             "finish_reason": None}
            for i in range(n)
        ],
    }
