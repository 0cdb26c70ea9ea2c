"""Streaming from OpenAI-compatible servers (``OpenAIHTTPBackend(stream=True)``): against
samplescale's own server and a scripted event-stream upstream, all on loopback."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest

pytest.importorskip("fastapi")

from _server_helpers import serve  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, StreamingResponse  # noqa: E402

from samplescale import Prompt, SamplingParams  # noqa: E402
from samplescale.backends.base import TextDelta, collect  # noqa: E402
from samplescale.backends.openai_http import OpenAIHTTPBackend, UpstreamError  # noqa: E402
from samplescale.backends.openai_request import request_seeds  # noqa: E402
from samplescale.backends.openai_stream import StreamedReply  # noqa: E402
from samplescale.errors import ConfigError  # noqa: E402
from samplescale.server import create_app  # noqa: E402
from samplescale.types import Generation  # noqa: E402

Q = Prompt.user("What is 3 + 4?")


def events(backend, prompt, params):
    """All stream events, deltas grouped by sample index, and the final Generation."""
    out = list(backend.stream(prompt, params))
    assert isinstance(out[-1], Generation) and all(isinstance(e, TextDelta) for e in out[:-1])
    texts: dict[int, str] = {}
    for d in out[:-1]:
        texts[d.index] = texts.get(d.index, "") + d.text
    return texts, out[-1], len(out) - 1


def test_stream_from_own_server_native_n(own_server):
    with OpenAIHTTPBackend(own_server, "fake", token_ids=True, stream=True) as be:
        assert be.capabilities.streaming
        texts, gen, n_deltas = events(be, Q, SamplingParams(n=3, max_tokens=50))
    assert gen.usage.model_calls == 1 and n_deltas > 3  # text arrived in pieces
    assert sorted(texts.values()) == ["The answer is 7.", "The answer is 7.", "The answer is 9."]
    for i, s in enumerate(gen.samples):
        assert s.text == texts[i] and s.status == "ok" and s.finish_reason == "stop"
        # the upstream's finish chunk carries the logprobs, with "token_id:<id>" tokens
        assert s.token_ids == tuple(ord(c) for c in s.text)
        assert s.logprobs == (-0.25,) * len(s.text)
    # usage is the upstream's (scripted: one token per character)
    assert gen.usage.completion_tokens == sum(len(t) for t in texts.values())
    assert gen.usage.prompt_tokens > 0


def test_streaming_is_opt_in_and_checked(own_server):
    with OpenAIHTTPBackend(own_server, "fake") as be:
        assert not be.capabilities.streaming
        with pytest.raises(ConfigError, match="streaming is off"):
            be.stream(Q, SamplingParams())
    with pytest.raises(ConfigError, match="stream must be True or False, got 'yes'"):
        OpenAIHTTPBackend(own_server, "fake", stream="yes")


class EventUpstream:
    """An upstream that streams scripted chunks on both endpoints.

    ``usage``: send the usage chunk; ``ignore_n``: always one choice; ``plan``: statuses of
    the next requests (before any event); ``error_after``: send an error chunk after that
    many text chunks; ``hold``: an Event the stream waits on after its first chunk.
    """

    def __init__(self, *, usage=True, ignore_n=False, plan=(), error_after=None, hold=None):
        self.usage, self.ignore_n, self.plan = usage, ignore_n, list(plan)
        self.error_after, self.hold = error_after, hold
        self.bodies: list[dict] = []
        self.closed = threading.Event()  # a stream's generator ended early (client left)
        app = FastAPI()
        app.post("/v1/chat/completions")(self.endpoint(chat=True))
        app.post("/v1/completions")(self.endpoint(chat=False))
        self.app = app

    def endpoint(self, chat):
        async def handle(request: Request):
            body = await request.json()
            self.bodies.append(body)
            step = self.plan.pop(0) if self.plan else 200
            if step != 200:
                return JSONResponse({"error": {"message": f"planned {step}"}}, step,
                                    {"Retry-After": "0"})
            n = 1 if self.ignore_n else body.get("n", 1)
            return StreamingResponse(self.chunks(chat, n, body), media_type="text/event-stream")

        return handle

    async def chunks(self, chat, n, body):
        words = ["Seven ", "is ", f"{body.get('seed')}."]
        finished = False
        try:
            for k, word in enumerate(words):
                if k == self.error_after:
                    yield "data: " + json.dumps({"error": {"message": "planned failure"}}) + "\n\n"
                    return
                for i in range(n):
                    choice = ({"index": i, "delta": {"content": word}} if chat
                              else {"index": i, "text": word})
                    choice["logprobs"] = (
                        {"content": [{"token": word, "logprob": -0.5}]} if chat
                        else {"tokens": [word], "token_logprobs": [-0.5]})
                    yield "data: " + json.dumps({"choices": [choice]}) + "\n\n"
                if k == 0 and self.hold is not None:
                    while not self.hold.is_set():
                        await asyncio.sleep(0.02)
            end = [{"index": i, "finish_reason": "length", **({"delta": {}} if chat else {"text": ""})}
                   for i in range(n)]
            yield "data: " + json.dumps({"choices": end}) + "\n\n"
            if self.usage:
                u = {"prompt_tokens": 4, "completion_tokens": 3 * n, "total_tokens": 4 + 3 * n}
                yield "data: " + json.dumps({"choices": [], "usage": u}) + "\n\n"
            yield "data: [DONE]\n\n"
            finished = True
        finally:
            if not finished and self.error_after is None:
                self.closed.set()


def _backend(url, **kw):
    return OpenAIHTTPBackend(url, "m", stream=True, backoff_s=0.01, backoff_max_s=0.05, **kw)


def test_text_prompts_stream_from_the_completions_endpoint_with_logprobs():
    up = EventUpstream()
    with serve(up.app) as url, _backend(url) as be:
        texts, gen, n_deltas = events(be, Prompt(text="3 + 4 ="), SamplingParams(n=2, seed=5))
    assert up.bodies[0]["stream"] is True and up.bodies[0]["stream_options"] == {"include_usage": True}
    assert n_deltas == 6 and texts == {0: "Seven is 5.", 1: "Seven is 5."}
    s = gen.samples[1]
    assert s.text == "Seven is 5." and s.finish_reason == "length"
    assert s.token_texts == ("Seven ", "is ", "5.") and s.logprobs == (-0.5,) * 3
    assert (gen.usage.prompt_tokens, gen.usage.completion_tokens, gen.usage.model_calls) == (4, 6, 1)


def test_a_server_that_ignores_n_streams_the_rest_as_single_requests():
    up = EventUpstream(ignore_n=True)
    with serve(up.app) as url, _backend(url) as be:
        texts, gen, _ = events(be, Q, SamplingParams(n=3, seed=7))
        assert not be.capabilities.parallel_n
    seeds = request_seeds(SamplingParams(n=3, seed=7), None)  # sample i's request seed
    assert seeds[0] == 7 and len(set(seeds)) == 3  # never one seed copied
    # the first request asked n=3 (and got 1); then the other two, in either order
    assert up.bodies[0]["seed"] == 7 and sorted(b["seed"] for b in up.bodies[1:]) == sorted(seeds[1:])
    # each single request's choice 0 is renumbered to its sample index
    assert texts == {i: f"Seven is {seeds[i]}." for i in range(3)}
    assert [s.text for s in gen.samples] == [texts[i] for i in range(3)]
    assert gen.usage.model_calls == 3 and gen.usage.completion_tokens == 9


def test_statuses_before_the_first_event_are_retried():
    up = EventUpstream(plan=[503, 429])
    with serve(up.app) as url, _backend(url, max_retries=2) as be:
        texts, gen, _ = events(be, Q, SamplingParams(seed=3))
    assert len(up.bodies) == 3 and texts == {0: "Seven is 3."} and gen.samples[0].text == texts[0]


@pytest.mark.parametrize(
    ("upstream", "message"),
    [({"usage": False}, "the stream reported no token usage"),
     ({"error_after": 1}, "the stream ended with an error: planned failure")],
)
def test_a_stream_without_usage_or_with_an_error_chunk_raises_after_its_text(upstream, message):
    up = EventUpstream(**upstream)
    with serve(up.app) as url, _backend(url, max_retries=3) as be:
        it = be.stream(Q, SamplingParams(seed=1))
        first = next(it)
        assert first == TextDelta(index=0, text="Seven ")
        with pytest.raises(UpstreamError, match=message):
            list(it)
    assert len(up.bodies) == 1  # text was handed out: never retried


def test_closing_the_stream_early_closes_the_upstream_request():
    hold = threading.Event()
    up = EventUpstream(hold=hold)
    with serve(up.app) as url, _backend(url) as be:
        it = be.stream(Q, SamplingParams())
        assert next(it).text == "Seven "
        it.close()
        assert up.closed.wait(10), "the upstream kept streaming to nobody"
        hold.set()


def test_the_server_streams_an_upstream_live():
    """samplescale serve --upstream-stream: the client reads the first words while the
    upstream still holds the rest (a server that buffered would never send them)."""
    hold = threading.Event()
    up = EventUpstream(hold=hold)
    with serve(up.app) as up_url, _backend(up_url) as be, serve(create_app(be, "m")) as url:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                "seed": 2, "max_tokens": 20}
        with httpx.stream("POST", url + "/chat/completions", json=body, timeout=20) as r:
            lines = r.iter_lines()
            got = ""
            for line in lines:
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    got += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
                    if got:
                        break
            assert got == "Seven " and not hold.is_set()
            hold.set()
            rest = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    got += "".join(c["delta"].get("content") or "" for ch in rest for c in ch["choices"])
    assert got == "Seven is 2."
    assert rest[-1]["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 3,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_collect_gives_the_generation_of_a_stream(own_server):
    with OpenAIHTTPBackend(own_server, "fake", stream=True) as be:
        seen: list[TextDelta] = []
        gen = collect(be.stream(Q, SamplingParams(max_tokens=8)), seen.append)
    assert "".join(d.text for d in seen) == gen.samples[0].text == "The answ"
    assert gen.samples[0].finish_reason == "length"


@pytest.mark.parametrize(
    ("chunk", "message"),
    [([1], "malformed stream chunk"),
     ({"choices": [{"index": 2, "delta": {"content": "x"}}]}, "stream choice index 2 for 2 choice"),
     ({"choices": [{"index": 0, "delta": {"content": 5}}]}, "stream text is not a string: 5"),
     ({"choices": [{"index": 0, "delta": "abc"}]}, "malformed stream delta 'abc'"),
     ({"choices": [{"index": 0, "delta": {}, "logprobs": {"content": "ab"}}]},
      "stream logprobs.content is not a list"),
     ({"choices": {"a": 1}}, "malformed stream chunk choices"),
     ({"choices": [{"index": "0", "delta": {"content": "x"}}]}, "choice index must be an integer"),
     ({"choices": [{"index": True}]}, "choice index must be an integer"),
     ({"choices": ["x"]}, "malformed choice 'x'"),
     ({"choices": [{"index": -1, "delta": {"content": "x"}}]}, "stream choice index -1 for 2"),
     ({"error": "overloaded"}, "the stream ended with an error: overloaded")],
)
def test_malformed_chunks_are_upstream_errors(chunk, message):
    """Checked before any of the chunk's text is handed out (clients accumulate by index)."""
    reply = StreamedReply(chat=True, url="http://x/v1/chat/completions", n=2)
    with pytest.raises(UpstreamError, match=message):
        reply.feed(chunk)
    text = StreamedReply(chat=False, url="http://x/v1/completions")
    with pytest.raises(UpstreamError, match="stream logprobs.tokens is not a list: 'abc'"):
        text.feed({"choices": [{"index": 0, "text": "abc", "logprobs": {"tokens": "abc"}}]})


def test_a_failed_request_of_a_split_call_closes_the_others():
    """n_mode="split": one request refused (400, not retried) ends the call at once, and
    the sibling streams are closed, not left generating for nobody."""
    hold = threading.Event()  # never set: the siblings would stream forever
    up = EventUpstream(plan=[400], hold=hold)
    with serve(up.app) as url, _backend(url, n_mode="split") as be:
        with pytest.raises(UpstreamError, match="HTTP 400: planned 400"):
            list(be.stream(Q, SamplingParams(n=3, seed=3)))
        assert up.closed.wait(10), "a sibling request kept streaming"
    hold.set()


def test_event_streams_are_utf8_whatever_charset_is_named():
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat():
        chunks = [{"choices": [{"index": 0, "delta": {"content": "café 中"}, "finish_reason": "stop"}]},
                  {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}]
        body = "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks)
        return StreamingResponse(iter([body.encode("utf-8")]),
                                 media_type="text/event-stream; charset=latin-1")

    with serve(app) as url, _backend(url) as be:
        texts, gen, _ = events(be, Q, SamplingParams())
    assert texts == {0: "café 中"} and gen.samples[0].text == "café 中"


def test_serve_upstream_stream_flag_makes_a_streaming_backend():
    from samplescale.cli import build_parser
    from samplescale.cli_serve import _backend as serve_backend

    args = build_parser().parse_args(["serve", "--upstream", "http://127.0.0.1:9/v1",
                                      "--upstream-model", "m", "--upstream-in-flight", "2",
                                      "--upstream-stream"])
    be, name = serve_backend(args)
    assert name == "m" and be.capabilities.streaming and be.max_in_flight == 2
    args.upstream_stream = False
    assert not serve_backend(args)[0].capabilities.streaming


def test_closing_the_backend_during_a_stream_wakes_its_consumer():
    """close() cancels the requests in flight: a thread reading a stream gets an error
    instead of waiting forever."""
    import concurrent.futures

    hold = threading.Event()
    up = EventUpstream(hold=hold)
    got: dict = {}
    with serve(up.app) as url:
        be = _backend(url)
        it = be.stream(Q, SamplingParams())
        assert next(it).text == "Seven "

        def consume():
            try:
                got["events"] = list(it)
            except (concurrent.futures.CancelledError, asyncio.CancelledError) as exc:
                got["error"] = exc

        reader = threading.Thread(target=consume)
        reader.start()
        be.close()
        reader.join(10)
        hold.set()
    assert not reader.is_alive() and "error" in got and up.closed.wait(10)
