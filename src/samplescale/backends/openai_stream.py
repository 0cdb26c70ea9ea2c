"""Streamed OpenAI replies: server-sent chunks to text deltas and the finished reply.

A streamed chat / text completion arrives as ``data: {chunk}`` events (``httpx-sse``
parses the event stream) ending with ``data: [DONE]``. :class:`StreamedReply` collects the
chunks of one request: it hands out each choice's new text as :class:`TextDelta` events
(renumbered by ``offset``, so parallel single-choice requests fill one ``Generation``) and
rebuilds the reply a non-streamed request would have returned, which
:func:`~samplescale.backends.openai_wire.parse_reply` turns into samples and usage. Usage
must come from the server (``stream_options.include_usage``); a stream without it is an
error, because a count made here (chunks, characters) would not be the server's tokens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from samplescale.backends.base import TextDelta
from samplescale.backends.openai_wire import UpstreamError, choice_index

Emit = Callable[[TextDelta], None]
"""Receives each text delta as it arrives (called on the event loop; must not block)."""


class StreamedReply:
    """The chunks of one streamed reply, collected.

    Parameters
    ----------
    chat : bool
        Chat chunks (``choices[i].delta.content``, ``logprobs.content``) or text completion
        chunks (``choices[i].text``, ``logprobs.tokens`` / ``token_logprobs``).
    url : str
        Named in errors.
    n : int
        The number of choices asked for: a choice index outside ``[0, n)`` is an error,
        raised before any of its text is handed out.
    offset : int
        Added to each choice index in the deltas (the sample's index in the call).
    """

    def __init__(self, chat: bool, url: str, n: int = 1, offset: int = 0) -> None:
        self.chat = chat
        self.url = url
        self.n = n
        self.offset = offset
        self.usage: dict[str, Any] | None = None
        self._text: dict[int, list[str]] = {}
        self._finish: dict[int, Any] = {}
        self._logprobs: dict[int, dict[str, list[Any]]] = {}

    def feed(self, chunk: Any) -> list[TextDelta]:
        """Take one chunk; return the new text it carries, in choice order.

        Parameters
        ----------
        chunk : any
            One event's parsed JSON (a ``chat.completion.chunk`` or ``text_completion``).

        Returns
        -------
        list of TextDelta
            Non-empty text per choice, indices shifted by ``offset``.

        Raises
        ------
        UpstreamError
            If the chunk is an error object or is malformed.
        """
        if not isinstance(chunk, dict):
            raise UpstreamError(f"{self.url}: malformed stream chunk {chunk!r:.80}")
        if "error" in chunk:
            err = chunk["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise UpstreamError(f"{self.url}: the stream ended with an error: {message!s:.300}")
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise UpstreamError(f"{self.url}: malformed stream chunk choices {choices!r:.80}")
        deltas = []
        for choice in choices:
            index = choice_index(choice, self.url)
            if not 0 <= index < self.n:
                raise UpstreamError(
                    f"{self.url}: stream choice index {index} for {self.n} choice(s) asked"
                )
            if self.chat:
                delta = choice.get("delta") or {}
                if not isinstance(delta, dict):
                    raise UpstreamError(f"{self.url}: malformed stream delta {delta!r:.80}")
                text = delta.get("content")
            else:
                text = choice.get("text")
            if text is not None and not isinstance(text, str):
                raise UpstreamError(f"{self.url}: stream text is not a string: {text!r:.80}")
            parts = self._text.setdefault(index, [])
            if text:
                parts.append(text)
                deltas.append(TextDelta(index=index + self.offset, text=text))
            if choice.get("finish_reason") is not None:
                self._finish[index] = choice["finish_reason"]
            self._add_logprobs(index, choice.get("logprobs"))
        return deltas

    def _add_logprobs(self, index: int, logprobs: Any) -> None:
        if not isinstance(logprobs, dict):
            return
        keys = ("content",) if self.chat else ("tokens", "token_logprobs")
        into = self._logprobs.setdefault(index, {k: [] for k in keys})
        for k in keys:
            values = logprobs.get(k) or []
            if not isinstance(values, list):
                raise UpstreamError(f"{self.url}: stream logprobs.{k} is not a list: {values!r:.80}")
            into[k].extend(values)

    def reply(self) -> dict[str, Any]:
        """The reply as a non-streamed request returns it (``choices`` and ``usage``).

        Raises
        ------
        UpstreamError
            If the stream reported no usage.
        """
        if self.usage is None:
            raise UpstreamError(
                f"{self.url}: the stream reported no token usage (the server ignores "
                "stream_options.include_usage); use this server without streaming"
            )
        return {"choices": [self.choice(i) for i in sorted(self._text)], "usage": self.usage}

    def choice(self, index: int = 0) -> dict[str, Any]:
        """Choice ``index`` as received so far, as a non-streamed reply holds it (text,
        ``finish_reason`` (None while unfinished), the log-probabilities received);
        also for a stream that was closed early."""
        text = "".join(self._text.get(index, []))
        choice: dict[str, Any] = {"index": index, "finish_reason": self._finish.get(index)}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        if index in self._logprobs:
            choice["logprobs"] = self._logprobs[index]
        return choice


async def read_events(response: httpx.Response, reply: StreamedReply, emit: Emit) -> None:
    """Feed the events of ``response`` to ``reply``, passing each delta to ``emit``, until
    ``[DONE]`` (or the end of the body).

    Event streams are UTF-8 whatever charset the server names (the SSE standard).

    Parameters
    ----------
    response : httpx.Response
        A streamed reply with status < 400, not read yet.
    reply : StreamedReply
        Collects the chunks.
    emit : Emit

    Raises
    ------
    UpstreamError
        If the body is not an event stream, an event is not JSON, a chunk is an error or
        malformed, the body cannot be decoded, or the connection drops or times out
        mid-stream (never retried: text may have been handed out).
    """
    response.encoding = "utf-8"
    try:
        async with aclosing(EventSource(response).aiter_sse()) as events:
            await _feed(events, reply, emit)
    except SSEError as exc:
        raise UpstreamError(f"{reply.url}: reply is not an event stream: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise UpstreamError(f"{reply.url}: the stream stalled ({type(exc).__name__})") from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise UpstreamError(f"{reply.url}: the stream broke off: {exc}") from exc
    except httpx.DecodingError as exc:
        raise UpstreamError(f"{reply.url}: the stream could not be decoded: {exc}") from exc


async def _feed(
    events: AsyncIterator[ServerSentEvent], reply: StreamedReply, emit: Emit
) -> None:
    """The loop of :func:`read_events`: events to chunks to deltas, until ``[DONE]``."""
    async for event in events:
        if event.data == "[DONE]":
            return
        if not event.data:
            continue
        try:
            chunk = json.loads(event.data)
        except ValueError as exc:
            raise UpstreamError(
                f"{reply.url}: stream event is not JSON ({event.data[:200]!r})"
            ) from exc
        for delta in reply.feed(chunk):
            emit(delta)
