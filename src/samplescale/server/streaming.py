"""The server-sent-events body of a streamed request (``stream: true``).

The start chunks go out at once (:func:`samplescale.server.chunks.start_chunks`); while the
run works, live text deltas are forwarded as they arrive and an SSE comment keeps the
connection alive every ``KEEPALIVE_S`` seconds when nothing else is sent; then come the
final chunks and ``data: [DONE]``. A run that fails ends the stream with an OpenAI error
object instead of the finish chunks (after whatever text was already sent). When the
stream ends for any reason (the client left included), the run's ``gone`` event is set
so that decoding stops at its next token.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from samplescale.backends.base import TextDelta
from samplescale.server import chunks, responses
from samplescale.server.chunks import Kind
from samplescale.server.schemas import APIError

log = logging.getLogger("samplescale.server")
KEEPALIVE_S = 10.0


def sse(obj: dict[str, Any] | str) -> bytes:
    """One SSE event carrying ``obj`` (strict JSON) or a literal such as ``[DONE]``."""
    data = obj.encode() if isinstance(obj, str) else responses.encode(obj)
    return b"data: " + data + b"\n\n"


async def stream(
    task: asyncio.Task[responses.Outcome],
    *,
    kind: Kind,
    n_choices: int,
    request_id: str,
    created: int,
    model: str,
    include_usage: bool,
    candidates: bool,
    deltas: asyncio.Queue[TextDelta] | None,
    gone: threading.Event,
    logprobs: Callable[[responses.Outcome], Awaitable[list[dict[str, Any] | None] | None]],
    echo: str | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body of one streamed request.

    Parameters
    ----------
    task : asyncio.Task
        The running request; its result is the :class:`~responses.Outcome`.
    kind : {"chat", "text"}
        Chat completion chunks or streamed text completions.
    n_choices : int
        Choices in the response (1 for a strategy).
    request_id, created, model
        The chunk header fields.
    include_usage, candidates
        ``stream_options.include_usage``; list every candidate in the extension field.
    deltas : asyncio.Queue or None
        Live text deltas (None: the text is sent after the work).
    gone : threading.Event
        Set when the stream ends, so that the run stops decoding.
    logprobs : async callable
        Each choice's ``logprobs`` object for an outcome (None: no log-probabilities).
    echo : str, optional
        Text completions: the prompt, sent first as each choice's text.
    """
    ids = (request_id, created, model)
    getting: asyncio.Future[Any] | None = None
    try:
        for chunk in chunks.start_chunks(kind, *ids, n_choices, echo):
            yield sse(chunk)
        while not task.done():
            waiting: set[asyncio.Future[Any]] = {task}
            if deltas is not None:
                getting = asyncio.ensure_future(deltas.get())
                waiting.add(getting)
            done, _ = await asyncio.wait(
                waiting, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED
            )
            for f in waiting - {task}:
                if f in done:
                    d = f.result()
                    yield sse(chunks.delta_chunk(kind, *ids, d.index, d.text))
                else:
                    f.cancel()
            if not done:
                yield b": keep-alive\n\n"
        while deltas is not None and not deltas.empty():  # sent before the run ended
            d = deltas.get_nowait()
            yield sse(chunks.delta_chunk(kind, *ids, d.index, d.text))
        try:
            outcome = task.result()
            scores = await logprobs(outcome)
        except APIError as exc:
            log.info("%s stream error %d %s", request_id, exc.status, exc.message)
            yield sse(exc.body())
            yield sse("[DONE]")
            return
        for chunk in chunks.final_chunks(
            kind, outcome, include_usage=include_usage, candidates=candidates,
            content=deltas is None, logprobs=scores, request_id=request_id,
            created=created, model=model,
        ):
            yield sse(chunk)
        yield sse("[DONE]")
    finally:
        gone.set()  # the client left (or the stream ended): stop decoding
        if getting is not None:
            getting.cancel()  # a read of the next delta, pending when the client left
