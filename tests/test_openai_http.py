"""The openai_http backend against samplescale's own server, a deliberately failing upstream
and llama-cpp-python's server (a real third-party OpenAI-compatible server), all on loopback."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")

from _server_helpers import serve  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from samplescale import Prompt, SamplingParams, ScriptedBackend  # noqa: E402
from samplescale.backends.openai_http import OpenAIHTTPBackend, UpstreamError  # noqa: E402
from samplescale.backends.openai_wire import parse_reply  # noqa: E402
from samplescale.errors import ConfigError  # noqa: E402
from samplescale.sampling import functional as F  # noqa: E402
from samplescale.server import create_app  # noqa: E402
from samplescale.strategies import best_of_n, self_consistency  # noqa: E402

Q = Prompt.user("What is 3 + 4?")


def test_against_own_server_native_n_token_ids_and_logprobs(own_server):
    with OpenAIHTTPBackend(own_server, "fake", token_ids=True) as be:
        gen = be.generate(Q, SamplingParams(n=3, max_tokens=50))
    assert gen.usage.model_calls == 1 and be.capabilities.parallel_n
    texts = [s.text for s in gen.samples]
    assert sorted(texts) == ["The answer is 7.", "The answer is 7.", "The answer is 9."]
    for s in gen.samples:
        assert s.token_ids == tuple(ord(c) for c in s.text)  # scripted: a token per character
        assert s.logprobs == (-0.25,) * len(s.text)
        assert s.finish_reason == "stop" and s.status == "ok"
    assert gen.usage.completion_tokens == sum(len(t) for t in texts)


def test_without_token_ids_logprobs_come_with_the_token_strings(own_server):
    with OpenAIHTTPBackend(own_server, "fake") as be:
        s = be.generate(Q, SamplingParams(max_tokens=4)).samples[0]
    assert s.text == "The " and s.finish_reason == "length"
    assert s.token_ids == () and s.token_texts == ("T", "h", "e", " ")
    assert s.logprobs == (-0.25,) * 4 and s.sampling_logprobs == ()  # raw, as reported
    assert s.num_tokens == 4 and s.mean_logprob == pytest.approx(-0.25)


def test_reported_logprobs_can_name_the_sampling_distribution(own_server):
    with OpenAIHTTPBackend(own_server, "fake", reported_logprobs="sampling_logprobs") as be:
        s = be.generate(Q, SamplingParams(max_tokens=3)).samples[0]
    assert s.sampling_logprobs == (-0.25,) * 3 and s.logprobs == ()
    assert s.mean_logprob == float("-inf")  # no raw scores: never guessed from the others
    with pytest.raises(ConfigError, match="reported_logprobs"):
        OpenAIHTTPBackend(own_server, "fake", reported_logprobs="raw")


def test_text_prompts_use_the_completions_endpoint(own_server):
    with OpenAIHTTPBackend(own_server, "fake", token_ids=True) as be:
        gen = be.generate(Prompt(text="2+2="), SamplingParams(max_tokens=50, stop=(" is",)))
    s = gen.samples[0]
    assert s.text == "The answer"
    # the completions endpoint reports the tokens as "token_id:<id>" with their logprobs:
    # those of the text, not those of the stop string (as OpenAI and vLLM report them)
    assert s.token_ids == tuple(ord(c) for c in "The answer")
    assert s.logprobs == (-0.25,) * 10 and s.token_texts == ()
    assert gen.usage.prompt_tokens == len("2+2=")


def test_a_strategy_over_http_matches_the_direct_run():
    params = SamplingParams(n=4, max_tokens=50, seed=3)
    replies = ["The answer is 7.", "The answer is 9."]
    direct = self_consistency(ScriptedBackend(replies), Q, params)
    with serve(create_app(ScriptedBackend(replies), "fake")) as url:
        with OpenAIHTTPBackend(url, "fake") as be:
            remote = self_consistency(be, Q, params)
    assert remote.answer == direct.answer == "7"
    assert remote.vote_shares == direct.vote_shares == {"7": 0.5, "9": 0.5}


def test_request_body_maps_fields_and_refuses_what_the_server_cannot_apply():
    be = OpenAIHTTPBackend("http://127.0.0.1:9/v1", "m")
    body = be.request_body(Q, SamplingParams(temperature=0.5, top_k=20, stop=("x",)))
    assert body["temperature"] == 0.5 and body["top_p"] == 1.0 and body["top_k"] == 20
    assert body["stop"] == ["x"] and body["max_tokens"] == 256 and body["logprobs"] is True
    assert body["top_logprobs"] == 0  # without it llama-cpp-python's server reports none
    assert "min_p" not in body and "n" not in body
    with pytest.raises(ConfigError, match="top_n_sigma=1.0 cannot be sent"):
        be.request_body(Q, SamplingParams(top_n_sigma=1.0))
    with pytest.raises(ConfigError, match="cannot continue a partial reply"):
        be.request_body(Q.continued("Step 1"), SamplingParams())
    full = OpenAIHTTPBackend(
        "http://127.0.0.1:9/v1", "m", send_defaults=True, extra_body={"repeat_penalty": 1.0}
    ).request_body(Q, SamplingParams())
    assert full["top_k"] == 0 and full["min_p"] == 0.0 and full["typical_p"] == 1.0
    assert full["presence_penalty"] == 0.0 and full["repeat_penalty"] == 1.0
    with pytest.raises(ConfigError, match="max_in_flight"):
        OpenAIHTTPBackend("http://x/v1", "m", max_in_flight=0)
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIHTTPBackend("ftp://x", "m")


class FlakyUpstream:
    """An OpenAI-style upstream that fails on purpose, and records what it was sent.

    ``plan`` is a list of HTTP statuses to answer before succeeding (or ``"sleep"``);
    ``ignore_n`` answers one choice whatever ``n`` is; ``fail_seeds`` answers 500 forever
    for those seeds.
    """

    def __init__(self, plan=(), ignore_n=False, fail_seeds=(), delay_s=0.0):
        self.plan = list(plan)
        self.ignore_n = ignore_n
        self.fail_seeds = set(fail_seeds)
        self.delay_s = delay_s
        self.bodies: list[dict] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            with self.lock:
                self.bodies.append(body)
                step = self.plan.pop(0) if self.plan else 200
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            try:
                if step == "sleep":
                    await asyncio.sleep(3)
                await asyncio.sleep(self.delay_s)
                if body.get("seed") in self.fail_seeds:
                    step = 500
                if step != 200:
                    headers = {"Retry-After": "0"} if step == 429 else None
                    return JSONResponse({"error": {"message": f"planned {step}"}}, step, headers)
                n = 1 if self.ignore_n else body.get("n", 1)
                text = f"seed {body.get('seed')}"
                return {
                    "choices": [
                        {"index": i, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}
                        for i in range(n)
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2 * n, "total_tokens": 5 + 2 * n},
                }
            finally:
                with self.lock:
                    self.active -= 1

        self.app = app


def _backend(url, **kw):
    kw = {"backoff_s": 0.01, "backoff_max_s": 0.05, **kw}
    return OpenAIHTTPBackend(url, "m", **kw)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_retryable_statuses_are_retried(status):
    up = FlakyUpstream(plan=[status, status])
    with serve(up.app) as url, _backend(url, max_retries=3) as be:
        gen = be.generate(Q, SamplingParams())
    assert len(up.bodies) == 3 and gen.samples[0].text == "seed " + str(up.bodies[0]["seed"])
    assert gen.usage.model_calls == 1


def test_retries_give_up_with_a_typed_error():
    up = FlakyUpstream(plan=[502] * 10)
    with serve(up.app) as url, _backend(url, max_retries=2) as be:
        with pytest.raises(UpstreamError, match="gave up after 3 attempts") as info:
            be.generate(Q, SamplingParams())
    assert info.value.status_code == 502 and info.value.retryable
    assert len(up.bodies) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(status):
    up = FlakyUpstream(plan=[status])
    with serve(up.app) as url, _backend(url, max_retries=5) as be:
        with pytest.raises(UpstreamError, match=f"HTTP {status}: planned {status}") as info:
            be.generate(Q, SamplingParams())
    assert len(up.bodies) == 1 and info.value.status_code == status
    assert not info.value.retryable


def test_connection_refused_is_retried_then_raised():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with _backend(f"http://127.0.0.1:{port}/v1", max_retries=2) as be:
        start = time.perf_counter()
        with pytest.raises(UpstreamError, match="ConnectError.*gave up after 3 attempts"):
            be.generate(Q, SamplingParams())
    assert time.perf_counter() - start < 5


def test_a_timeout_is_not_retried():
    up = FlakyUpstream(plan=["sleep"])
    with serve(up.app) as url, _backend(url, timeout_s=0.3, max_retries=3) as be:
        with pytest.raises(UpstreamError, match="no response within 0.3 s"):
            be.generate(Q, SamplingParams())
    assert len(up.bodies) == 1


def test_ignored_n_falls_back_to_parallel_single_requests_with_distinct_seeds():
    up = FlakyUpstream(ignore_n=True)
    with serve(up.app) as url, _backend(url) as be:
        gen = be.generate(Q, SamplingParams(n=4, seed=7))
        assert not be.capabilities.parallel_n
        seeds_first = [b["seed"] for b in up.bodies]
        up.bodies.clear()
        gen2 = be.generate(Q, SamplingParams(n=4, seed=7))
    assert up.bodies and all("n" not in b for b in up.bodies)  # straight to single requests
    assert seeds_first[0] == 7 and len(set(seeds_first)) == 4  # never one seed copied
    assert sorted(b["seed"] for b in up.bodies) == sorted(seeds_first)
    assert [s.text for s in gen.samples] == [s.text for s in gen2.samples]
    assert gen.usage.model_calls == 4 and gen.usage.completion_tokens == 4 * 2
    assert gen.usage.prompt_tokens == 4 * 5


def test_native_mode_refuses_a_server_that_ignores_n():
    up = FlakyUpstream(ignore_n=True)
    with serve(up.app) as url, _backend(url, n_mode="native") as be:
        with pytest.raises(UpstreamError, match="returned 1 choices for n=3"):
            be.generate(Q, SamplingParams(n=3))


def test_failed_single_requests_become_error_samples_not_text():
    up = FlakyUpstream()
    with serve(up.app) as url, _backend(url, n_mode="split", max_retries=1) as be:
        gen = be.generate(Q, SamplingParams(n=4, seed=11))
        bad = up.bodies[1]["seed"]
        up.bodies.clear()
        up.fail_seeds = {bad}
        gen = be.generate(Q, SamplingParams(n=4, seed=11))
    errors = [s for s in gen.samples if s.status == "error"]
    assert len(errors) == 1 and errors[0].text == "" and "planned" not in errors[0].text
    assert "HTTP 500" in errors[0].error and errors[0].finish_reason == "error"
    assert gen.usage.model_calls == 3
    up.fail_seeds = set()


def test_every_sample_failing_raises():
    up = FlakyUpstream(plan=[500] * 100)
    with serve(up.app) as url, _backend(url, n_mode="split", max_retries=1) as be:
        with pytest.raises(UpstreamError, match="HTTP 500"):
            be.generate(Q, SamplingParams(n=3))


def test_requests_in_flight_are_bounded():
    up = FlakyUpstream(delay_s=0.2)
    with serve(up.app) as url, _backend(url, n_mode="split", max_in_flight=2) as be:
        threads = [threading.Thread(target=be.generate, args=(Q, SamplingParams(n=3)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(up.bodies) == 6 and up.max_active == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    """llama-cpp-python's own OpenAI-compatible server with the embedded model."""
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")
    from samplescale.backends.llamacpp import default_model_path

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail("llama_cpp.server exited during start-up")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.llama
def test_against_llama_cpp_python_server(llama_server):
    with OpenAIHTTPBackend(llama_server, "smollm2") as be:
        params = SamplingParams(n=3, max_tokens=12, temperature=0.8, seed=5)
        gen = be.generate(Q, params)
        assert not be.capabilities.parallel_n  # it ignores n: detected, then single requests
        again = be.generate(Q, params)
        greedy = be.generate(Prompt(text="1, 2, 3, 4,"), SamplingParams(max_tokens=6, temperature=0))
    assert len(gen.samples) == 3 and all(s.status == "ok" and s.text for s in gen.samples)
    assert gen.usage.model_calls == 3 and 3 <= gen.usage.completion_tokens <= 36
    assert [s.text for s in gen.samples] == [s.text for s in again.samples]  # seeds honoured
    assert greedy.samples[0].text.startswith(" 5")


@pytest.mark.llama
def test_best_of_n_over_llama_cpp_python_server_scores_by_mean_logprob(llama_server):
    """llama-cpp-python's server reports token strings and logprobs but no ids: the samples
    carry them, so best-of-N over HTTP scores each by its mean logprob and picks the argmax."""
    with OpenAIHTTPBackend(llama_server, "smollm2") as be:
        r = best_of_n(be, Q, SamplingParams(n=4, max_tokens=12, temperature=0.9, seed=2))
    assert r.score_scale == "log-probability" and len(r.samples) == 4
    for s, score in zip(r.samples, r.scores):
        assert s.status == "ok" and s.token_ids == ()
        assert s.num_tokens == len(s.token_texts) == len(s.logprobs)
        assert s.num_tokens >= 1 and s.num_tokens <= 12
        assert "".join(s.token_texts).startswith(s.text[:3])
        assert score == pytest.approx(math.fsum(s.logprobs) / len(s.logprobs))
        assert -30 < score < 0
    assert len(set(r.scores)) == 4  # distinct samples, distinct scores: the argmax is real
    assert r.selected == max(range(4), key=lambda i: r.scores[i])
    assert r.text == r.samples[r.selected].text
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)


@pytest.mark.llama
def test_llama_cpp_python_server_reports_the_raw_model_logprobs(llama_server, llama_backend):
    """The server's values are the model's raw next-token log-probabilities (temperature 1,
    full vocabulary: the definition of ``Sample.logprobs``), not those of the temperature-0.5
    distribution the tokens were drawn from. Reference: the embedded model scoring the same
    tokens (two llama.cpp configurations of a Q4 model differ by a few percent)."""
    prompt = Prompt(text="The capital of France is")
    with OpenAIHTTPBackend(llama_server, "smollm2") as be:
        s = be.generate(prompt, SamplingParams(max_tokens=8, temperature=0.5, seed=1)).samples[0]
    ids = [llama_backend._model.tokenize(t.encode(), add_bos=False, special=False)
           for t in s.token_texts]
    assert all(len(i) == 1 for i in ids), ids  # each reported token string is one token
    ids = [i[0] for i in ids]
    ctx = llama_backend.tokenize_prompt(prompt)
    logits = llama_backend.logits_at(ctx + ids[:-1], last=len(ids))  # row k: after ids[:k]
    rows = np.arange(len(ids))
    raw = F.log_softmax(logits)[rows, ids]
    cooled = F.log_softmax(logits / 0.5)[rows, ids]
    # observed: within 8 % (0.18 at a logprob of -5); cooled values differ far more (-5.0 vs -2.8)
    assert s.logprobs == pytest.approx(raw.tolist(), rel=0.15, abs=0.05)
    assert s.logprobs != pytest.approx(cooled.tolist(), rel=0.15, abs=0.05)


@pytest.mark.llama
def test_samplescale_server_passes_upstream_logprobs_through(llama_server):
    openai = pytest.importorskip("openai")
    with OpenAIHTTPBackend(llama_server, "smollm2") as be, serve(create_app(be, "m")) as url:
        c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}],
                                      max_tokens=8, temperature=0, logprobs=True)
        t = c.completions.create(model="m", prompt="1, 2, 3,", max_tokens=4, temperature=0,
                                 logprobs=0)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(x.token for x in content) == r.choices[0].message.content
    assert all(x.logprob < 0 for x in content)
    # the upstream's token strings read back as bytes (this prompt's tokens are whole text)
    assert all(bytes(x.bytes) == x.token.encode() for x in content)
    lp = t.choices[0].logprobs
    assert "".join(lp.tokens) == t.choices[0].text and len(lp.token_logprobs) == 4
    assert all(v <= 0 for v in lp.token_logprobs)


def _choice(index=0, **kw):
    return {"index": index, "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop", **kw}


@pytest.mark.parametrize(
    "choices, token_ids",
    [
        ([_choice(0), _choice("1")], False),  # index mixed str / int
        ([_choice(None), _choice(1)], False),  # index null
        ([_choice(0, logprobs={"content": ["a", "b"]})], False),  # items not dicts
        ([{"index": 0, "message": "hi", "finish_reason": "stop"}], False),  # message a string
    ],
)
def test_malformed_upstream_replies_are_upstream_errors(choices, token_ids):
    reply = {"choices": choices, "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    with pytest.raises(UpstreamError, match="http://up"):
        parse_reply(reply, chat=True, token_ids=token_ids, base_url="http://up")


@pytest.mark.parametrize("usage", [{"prompt_tokens": math.inf, "completion_tokens": 1},
                                   {"prompt_tokens": 1, "completion_tokens": "x"}])
def test_malformed_usage_is_an_upstream_error(usage):
    with pytest.raises(UpstreamError, match="http://up: malformed usage"):
        parse_reply({"choices": [_choice(0)], "usage": usage}, chat=True, token_ids=False,
                    base_url="http://up")


def test_an_undecodable_reply_is_an_upstream_error():
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat():
        from fastapi.responses import Response

        return Response(b"not gzip", media_type="application/json",
                        headers={"Content-Encoding": "gzip"})

    with serve(app) as url, _backend(url, max_retries=3) as be:
        with pytest.raises(UpstreamError, match="the reply could not be decoded"):
            be.generate(Q, SamplingParams())


def test_a_token_id_with_a_non_ascii_digit_is_a_token_text_not_a_crash():
    lp = {"content": [{"token": "token_id:\u00b2", "logprob": -1.0}]}
    reply = {"choices": [_choice(0, logprobs=lp)],
             "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    (sample,), _ = parse_reply(reply, chat=True, token_ids=True, base_url="http://up")
    assert sample.token_ids == () and sample.token_texts == ("token_id:\u00b2",)


@pytest.mark.llama
def test_streaming_from_llama_cpp_python_server_ends_in_an_error_for_lack_of_usage(llama_server):
    """A real third-party event stream: its text arrives in pieces and matches the
    unstreamed reply at temperature 0, but llama-cpp-python's server ignores
    ``stream_options.include_usage``, so the stream ends in an error, not in made-up usage."""
    from samplescale.backends.base import TextDelta

    params = SamplingParams(max_tokens=8, temperature=0, seed=1)
    deltas = []
    with OpenAIHTTPBackend(llama_server, "smollm2", stream=True) as be:
        whole = be.generate(Q, params)
        with pytest.raises(UpstreamError, match="the stream reported no token usage"):
            for event in be.stream(Q, params):
                assert isinstance(event, TextDelta)
                deltas.append(event)
    assert len(deltas) > 1 and "".join(d.text for d in deltas) == whole.samples[0].text


@pytest.mark.llama
def test_cli_backend_openai_against_llama_cpp_python_server(llama_server, capsys):
    """`--backend openai` from the command line against a third-party server that ignores
    `n` (parallel single requests) and reports logprobs as token strings."""
    import json

    from samplescale.cli import main

    code = main(["generate", "What is 2 + 3? Answer with the number.", "--backend", "openai",
                 "--base-url", llama_server, "-n", "3", "--max-tokens", "16", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    body = json.loads(out)
    assert len(body["samples"]) == 3 and body["usage"]["model_calls"] == 3
    assert all(s["status"] == "ok" and len(s["logprobs"]) == len(s["token_texts"]) > 0 for s in body["samples"])
