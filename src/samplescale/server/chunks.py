"""Stream chunks: ``chat.completion.chunk`` and streamed ``text_completion`` objects.

A stream is: the start chunks (chat: the assistant role of every choice; text completions
with ``echo``: each choice's prompt), the text as deltas (live as it is decoded, or after
the work in word-sized pieces), a finish chunk per choice (its ``finish_reason`` and, when
asked, all its token log-probabilities), then the usage and the ``samplescale`` extension
field (on the last finish chunk, or with ``include_usage`` on an extra chunk whose
``choices`` is empty, as the OpenAI API does).

Log-probabilities ride on the finish chunks rather than being spread over the text deltas
because a token can end inside a UTF-8 character and the deltas must join to the exact
text; a client that concatenates each choice's ``logprobs`` lists over the chunks, as the
OpenAI clients do, gets the lists of the unstreamed response.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from samplescale.server.responses import Outcome, extension, header, usage_body

Kind = Literal["chat", "text"]


def text_pieces(text: str) -> list[str]:
    """``text`` cut into word-sized stream deltas (each word with its trailing space);
    joined, they give ``text`` back exactly."""
    return [p for p in re.findall(r"\s*\S+\s*|\s+", text) if p]


def _head(kind: Kind, request_id: str, created: int, model: str) -> dict[str, Any]:
    return header(kind, request_id, created, model, chunk=True)


def _choice(kind: Kind, index: int, text: str | None, logprobs: Any = None,
            finish_reason: str | None = None) -> dict[str, Any]:
    if kind == "chat":
        delta = {} if text is None else {"content": text}
        return {"index": index, "delta": delta, "logprobs": logprobs,
                "finish_reason": finish_reason}
    return {"index": index, "text": text or "", "logprobs": logprobs,
            "finish_reason": finish_reason}


def delta_chunk(kind: Kind, request_id: str, created: int, model: str, index: int,
                text: str) -> dict[str, Any]:
    """A chunk carrying new text of choice ``index``."""
    return {**_head(kind, request_id, created, model), "choices": [_choice(kind, index, text)]}


def start_chunks(kind: Kind, request_id: str, created: int, model: str, n: int,
                 echo: str | None = None) -> list[dict[str, Any]]:
    """The chunks sent as soon as work starts: chat, the assistant role of each of the
    ``n`` choices (one chunk); text completions, each choice's echoed prompt (none
    without ``echo``)."""
    head = _head(kind, request_id, created, model)
    if kind == "chat":
        return [{**head, "choices": [
            {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
             "finish_reason": None}
            for i in range(n)
        ]}]
    if echo is None:
        return []
    return [delta_chunk(kind, request_id, created, model, i, echo) for i in range(n)]


def final_chunks(
    kind: Kind,
    outcome: Outcome,
    *,
    request_id: str,
    created: int,
    model: str,
    include_usage: bool,
    candidates: bool,
    content: bool = True,
    logprobs: list[dict[str, Any] | None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The chunks after the work: each choice's text in word-sized deltas (unless
    ``content`` is False: it was streamed live), a finish chunk per choice, then the usage
    and the extension field (see the module docstring).

    Parameters
    ----------
    kind : {"chat", "text"}
        Chat completion chunks or streamed text completions.
    outcome : Outcome
    request_id, created, model
        The chunk header fields.
    include_usage : bool
        ``stream_options.include_usage``.
    candidates : bool
        List every candidate in the extension field.
    content : bool
        Send each choice's text (False when it was streamed live).
    logprobs : list, optional
        Each choice's ``logprobs`` object (in the format of ``kind``), put on its finish
        chunk.

    Yields
    ------
    dict
        Chunk objects.
    """
    head = _head(kind, request_id, created, model)
    for i, s in enumerate(outcome.choices if content else ()):
        for words in text_pieces(s.text):
            yield delta_chunk(kind, request_id, created, model, i, words)
    tail = {
        "usage": usage_body(outcome.usage),
        "samplescale": extension(outcome, request_id, candidates),
    }
    last = len(outcome.choices) - 1
    for i, s in enumerate(outcome.choices):
        chunk = {**head, "choices": [
            _choice(kind, i, None, None if logprobs is None else logprobs[i], s.finish_reason)
        ]}
        if i == last and not include_usage:
            chunk.update(tail)
        yield chunk
    if include_usage:
        yield {**head, "choices": [], **tail}
