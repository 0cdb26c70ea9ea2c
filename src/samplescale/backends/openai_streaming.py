"""Streaming and early exit over HTTP: the ``stream`` and ``generate_first`` half of
:class:`~samplescale.backends.openai_http.OpenAIHTTPBackend`, split from it by size.

Streaming is opt-in (``stream=True``, ``samplescale serve --upstream-stream``): ``stream``
then asks the server for event streams and yields each choice's text as it arrives
(:mod:`samplescale.backends.openai_stream` parses the events), and ``generate_first`` closes
the unfinished requests once ``m`` have finished
(:mod:`samplescale.backends.openai_first`). Usage must come from the server
(``stream_options.include_usage``, which samplescale's own server honours and vLLM, SGLang
and the OpenAI API document); llama-cpp-python's server ignores it, and a stream without
usage ends in ``UpstreamError`` rather than in token counts made up here. Retries happen
only until the server answers with a status; a stream that breaks off later raises.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np

from samplescale.backends.base import Capabilities, StreamEvent, TextDelta
from samplescale.backends.http_transport import RetryingTransport
from samplescale.backends.openai_first import first_finished
from samplescale.backends.openai_request import request_seeds
from samplescale.backends.openai_stream import Emit, StreamedReply, read_events
from samplescale.backends.openai_wire import LogprobsField
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.types import Generation, Prompt


class OpenAIStreaming:
    """``stream`` and ``generate_first`` over the backend's transport (a base of
    ``OpenAIHTTPBackend``, which sets the attributes and defines the methods named here)."""

    base_url: str
    token_ids: bool
    reported_logprobs: LogprobsField
    capabilities: Capabilities
    _transport: RetryingTransport

    def request_body(self, prompt: Prompt, params: SamplingParams) -> dict[str, Any]:
        """The JSON body for ``prompt`` and ``params`` (``OpenAIHTTPBackend`` defines it)."""
        raise NotImplementedError

    async def _agenerate(
        self, prompt: Prompt, params: SamplingParams, seeds: list[int], emit: Emit | None = None
    ) -> Generation:
        """``params.n`` samples with request seeds ``seeds``, streamed to ``emit`` when given
        (``OpenAIHTTPBackend`` defines it)."""
        raise NotImplementedError

    async def _post_stream(
        self, path: str, body: dict[str, Any], chat: bool, n: int, offset: int, emit: Emit
    ) -> dict[str, Any]:
        """POST a streamed request for ``n`` choices with retries (until the server answers
        with a status); each choice's text goes to ``emit`` (indices shifted by
        ``offset``); returns the reply rebuilt as a non-streamed one."""
        reply = StreamedReply(chat, self.base_url + path, n, offset)
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}

        async def read(r: httpx.Response) -> dict[str, Any]:
            await read_events(r, reply, emit)
            return reply.reply()

        return await self._transport.send(path, body, read)

    def generate_first(
        self, prompt: Prompt, params: SamplingParams, m: int,
        rng: np.random.Generator | None = None,
    ) -> Generation:
        """:meth:`generate` as streamed single requests, the unfinished ones closed once
        ``m`` have finished (:func:`samplescale.backends.openai_first.first_finished`;
        needs ``stream=True``, ``capabilities.early_exit``).

        Raises
        ------
        ConfigError
            If streaming is off, ``m`` is not in ``[1, params.n]``, or as :meth:`generate`.
        UpstreamError
            As :meth:`stream`.
        """
        if not self.capabilities.streaming:
            raise ConfigError(f"{self.base_url}: early exit needs stream=True")
        self.request_body(prompt, params)  # validate before any I/O
        coro = first_finished(self, prompt, params, request_seeds(params, rng), m)
        return self._transport.submit(coro).result()

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """:meth:`generate`, yielding each sample's text as the server streams it
        (:class:`~samplescale.backends.base.StreamingBackend`; needs ``stream=True``).

        The samples and seeds are those of :meth:`generate`; usage is what the server
        reported at the end of each stream. Closing the iterator early cancels the requests
        (the server sees the connections close).

        Parameters
        ----------
        prompt, params, rng
            As :meth:`generate`.

        Yields
        ------
        TextDelta, then Generation
            Each sample's new text as it arrives (``index`` in ``[0, params.n)``), then the
            ``Generation`` of :meth:`generate` (samples in order, the server's usage).

        Raises
        ------
        ConfigError
            If the backend was made with ``stream=False``, or as :meth:`generate`.
        UpstreamError
            As :meth:`generate`; also when a stream breaks off, carries an error chunk, or
            reports no usage.
        """
        if not self.capabilities.streaming:
            raise ConfigError(f"{self.base_url}: streaming is off (create the backend with stream=True)")
        self.request_body(prompt, params)  # validate before any I/O
        return self._events(prompt, params, request_seeds(params, rng))

    def _events(
        self, prompt: Prompt, params: SamplingParams, seeds: list[int]
    ) -> Iterator[StreamEvent]:
        events: queue.SimpleQueue[TextDelta | None] = queue.SimpleQueue()

        async def run() -> Generation:
            try:
                return await self._agenerate(prompt, params, seeds, events.put)
            finally:
                events.put(None)

        done = self._transport.submit(run())
        try:
            while (delta := events.get()) is not None:
                yield delta
            yield done.result()
        finally:
            done.cancel()  # a consumer that stops early: the requests are cancelled
