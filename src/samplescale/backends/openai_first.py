"""Early exit over HTTP: k streamed requests, the unfinished ones closed once m finished.

:meth:`OpenAIHTTPBackend.generate_first <samplescale.backends.openai_http.OpenAIHTTPBackend.generate_first>`
(short-m@k, Hassid et al. 2025) sends one streamed single-choice request per sample, all at
once (up to the backend's ``max_in_flight``), each with its own seed as ``generate`` would.
As soon as ``m`` replies have finished with ``finish_reason="stop"`` the other requests'
tasks are cancelled, which closes their connections (httpx), so a server that stops
generating for a departed client (vLLM, SGLang, ``samplescale serve``) stops decoding them.

A cancelled sample keeps the text and per-token log-probabilities received before the
close (``finish_reason="cancelled"``); its tokens are counted from the log-probability
entries received (one per token), so with ``logprobs=False`` they count 0. The server may
have decoded a few more tokens before it noticed the close: the usage of cancelled rows is
what reached the client, a lower bound of what the server spent.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from samplescale.backends.decoding import FinishQuota
from samplescale.backends.openai_stream import StreamedReply, read_events
from samplescale.backends.openai_wire import UpstreamError, parse_reply
from samplescale.config import SamplingParams
from samplescale.types import Generation, Prompt, Sample, Usage

if TYPE_CHECKING:
    from samplescale.backends.openai_streaming import OpenAIStreaming


async def first_finished(
    backend: OpenAIStreaming, prompt: Prompt, params: SamplingParams, seeds: list[int],
    m: int,
) -> Generation:
    """``params.n`` streamed requests (seeds ``seeds``); once ``m`` finished, close the rest.

    Returns
    -------
    Generation
        Samples in request order: finished ones as the server sent them, the others
        ``finish_reason="cancelled"`` with what was received. Usage: the server's for the
        finished requests, plus the received tokens of the cancelled ones (one model call
        each).

    Raises
    ------
    ConfigError
        If ``m`` is not in ``[1, params.n]``.
    UpstreamError
        As ``generate``: a request that fails without retry, or every sample failed.
    """
    start = time.perf_counter()
    quota = FinishQuota(m, params.n)
    body = backend.request_body(prompt, params)
    chat = prompt.messages is not None
    path = "/chat/completions" if chat else "/completions"
    url = backend.base_url + path
    replies = [StreamedReply(chat, url) for _ in seeds]

    def parse(data: dict[str, Any]) -> tuple[list[Sample], Usage]:
        return parse_reply(data, chat, backend.token_ids, backend.base_url,
                           backend.reported_logprobs)

    async def one(i: int) -> tuple[Sample, Usage]:
        req = {**body, "seed": seeds[i], "stream": True,
               "stream_options": {"include_usage": True}}

        async def read(r: Any) -> dict[str, Any]:
            await read_events(r, replies[i], lambda delta: None)
            return replies[i].reply()

        samples, usage = parse(await backend._transport.send(path, req, read))
        if len(samples) != 1:
            raise UpstreamError(f"{backend.base_url}: asked for 1 choice, got {len(samples)}")
        return samples[0], usage

    tasks = [asyncio.ensure_future(one(i)) for i in range(len(seeds))]
    out: dict[int, tuple[Sample, Usage]] = {}
    first_error: UpstreamError | None = None
    pending = set(tasks)
    try:
        while pending and not quota.reached:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                i = tasks.index(t)
                exc = t.exception()
                if isinstance(exc, UpstreamError) and exc.retryable:
                    first_error = first_error or exc
                    out[i] = Sample.failed(str(exc)), Usage()
                elif exc is not None:
                    raise exc
                else:
                    out[i] = t.result()
                    quota.finished += out[i][0].finish_reason == "stop"
    finally:
        for t in pending:
            t.cancel()  # closes the request's connection
        await asyncio.gather(*pending, return_exceptions=True)
    for i in range(len(tasks)):
        if i not in out:  # cancelled: what was received before the close
            got = parse({"choices": [replies[i].choice()], "usage": {}})[0][0]
            cut = got.model_copy(update={"finish_reason": "cancelled"})
            out[i] = cut, Usage(completion_tokens=cut.num_tokens, model_calls=1)
    samples = [out[i][0] for i in range(len(tasks))]
    if first_error is not None and all(s.status == "error" for s in samples):
        raise first_error
    usage = sum((out[i][1] for i in range(len(tasks))), Usage())
    usage = usage.model_copy(update={"wall_time_s": time.perf_counter() - start})
    return Generation(samples=tuple(samples), usage=usage)
