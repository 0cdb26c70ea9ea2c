"""The OpenAI-compatible server, driven by the official ``openai`` client on 127.0.0.1."""

from __future__ import annotations

import json
import math
import re
import threading

import httpx
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

from _server_helpers import serve  # noqa: E402

from samplescale import ScriptedBackend, ToyLM  # noqa: E402
from samplescale.server import Limits, create_app  # noqa: E402
from samplescale.server.chunks import text_pieces  # noqa: E402
from samplescale.strategies import STRATEGIES  # noqa: E402
from samplescale.strategies.tree import TreeSearch  # noqa: E402

USER = [{"role": "user", "content": "What is 3 + 4?"}]
SAMPLING_STRATEGIES = {"greedy", "best-of-n", "repeated-sampling", "self-consistency", "weighted-vote"}


def echo_reply(prompt, i):
    """Reply naming the request's tag (``tag=<x>`` in the last message) and a vote answer."""
    last = prompt.messages[-1].content if prompt.messages else prompt.text
    tag = re.search(r"tag=(\w+)", last)
    answer = ["7", "7", "9"][i % 3]
    return f"Tag {tag.group(1) if tag else '-'}. The answer is {answer}."


@pytest.fixture(scope="module")
def fake_url():
    app = create_app(ScriptedBackend(echo_reply), "fake", limits=Limits(max_request_tokens=50_000))
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(fake_url):
    return openai.OpenAI(base_url=fake_url, api_key="unused", max_retries=0)


def ext(response) -> dict:
    return response.model_extra["samplescale"]


def test_plain_chat_returns_n_choices_and_summed_usage(client):
    r = client.chat.completions.create(model="fake", messages=USER, n=3, max_tokens=100)
    texts = [c.message.content for c in r.choices]
    assert len(texts) == 3 and all(t.startswith("Tag -. The answer is") for t in texts)
    assert [c.index for c in r.choices] == [0, 1, 2]
    # ScriptedBackend: one token per character
    assert r.usage.completion_tokens == sum(len(t) for t in texts)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.object == "chat.completion" and r.model == "fake"
    assert "strategy" not in ext(r)


def test_max_tokens_and_stop_are_applied(client):
    r = client.chat.completions.create(model="fake", messages=USER, max_tokens=5)
    assert r.choices[0].message.content == "Tag -" and r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model="fake", messages=USER, stop=". The")
    assert r.choices[0].message.content == "Tag -" and r.choices[0].finish_reason == "stop"


def test_self_consistency_through_the_model_name(client):
    r = client.chat.completions.create(model="self-consistency@6/fake", messages=USER)
    e = ext(r)
    assert e["strategy"] == "self-consistency" and e["n"] == 6
    answers = [c["answer"] for c in e["candidates"]]
    assert sorted(answers) == ["7", "7", "7", "7", "9", "9"]
    assert e["answer"] == "7" and e["vote_shares"] == pytest.approx({"7": 4 / 6, "9": 2 / 6})
    assert r.choices[0].message.content == e["candidates"][e["selected"]]["text"]
    assert "The answer is 7" in r.choices[0].message.content
    shares = {c["answer"]: c["vote_share"] for c in e["candidates"]}
    assert shares == pytest.approx({"7": 4 / 6, "9": 2 / 6})
    # usage counts every sample, not just the winner
    assert r.usage.completion_tokens == sum(c["completion_tokens"] for c in e["candidates"])
    assert r.usage.completion_tokens == sum(len(c["text"]) for c in e["candidates"])


def test_strategy_through_the_extension_field(client):
    r = client.chat.completions.create(
        model="fake",
        messages=USER,
        extra_body={"samplescale": {"strategy": "best-of-n", "n": 4}},
    )
    e = ext(r)
    assert e["strategy"] == "best-of-n" and len(e["candidates"]) == 4
    assert e["score_scale"] == "log-probability"
    assert all(c["score"] == pytest.approx(-0.1) for c in e["candidates"])
    assert e["selected"] == 0  # equal scores: the earliest wins


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_registered_strategy_runs_through_the_server(name):
    """Contract: any registered strategy runs through the server unchanged. Sampling
    strategies answer; step-search strategies that need what the scripted backend lacks
    (logits for a P(True) scorer) answer with an OpenAI error that says so, never a crash."""
    with serve(create_app(ScriptedBackend(echo_reply), "fake")) as url:
        resp = httpx.post(url + "/chat/completions", timeout=30, json={
            "model": f"{name}@4/fake", "messages": USER, "max_tokens": 64, "seed": 1})
    if name in SAMPLING_STRATEGIES:
        assert resp.status_code == 200, resp.text
    if resp.status_code != 200:
        err = resp.json()["error"]
        assert resp.status_code in (400, 502) and name in err["message"], err
        return
    r = openai.types.chat.ChatCompletion.model_validate(resp.json())
    e = ext(r)
    assert e["strategy"] == name
    ok = [cand for cand in e["candidates"] if cand["status"] == "ok"]
    assert ok, "no candidate succeeded"
    spent_on_candidates = sum(cand["completion_tokens"] for cand in e["candidates"])
    # also spent on branches it dropped; thinksum: on its sub-queries (1-token greedy
    # replies on this backend without logits)
    if issubclass(STRATEGIES.get(name), TreeSearch) or name == "thinksum":
        assert r.usage.completion_tokens >= spent_on_candidates > 0
    else:
        assert r.usage.completion_tokens == spent_on_candidates
    if e["selected"] is not None:
        assert r.choices[0].message.content == e["candidates"][e["selected"]]["text"]


def test_seed_makes_a_strategy_request_reproducible():
    app = create_app(ToyLM(), "toy")
    with serve(app) as url:
        c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        runs = [
            ext(c.chat.completions.create(model="self-consistency@8/toy", messages=USER,
                                          max_tokens=4, seed=seed))
            for seed in (5, 5, 6)
        ]
    texts = [[cand["text"] for cand in e["candidates"]] for e in runs]
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]
    assert len(set(texts[0])) > 1  # eight i.i.d. samples, not one copied eight times


def test_streaming_sends_the_selected_answer_then_usage_and_extension(client):
    stream = client.chat.completions.create(
        model="self-consistency@3/fake",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    e = last.model_extra["samplescale"]
    assert text == e["candidates"][e["selected"]]["text"]
    assert last.usage.completion_tokens == sum(len(c["text"]) for c in e["candidates"])
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_streaming_without_include_usage_puts_usage_on_the_finish_chunk(fake_url):
    with httpx.stream(
        "POST",
        fake_url + "/chat/completions",
        json={"model": "fake", "messages": USER, "stream": True},
        timeout=10,
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["choices"] for c in chunks)  # no empty-choices chunk unless asked
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == len("Tag -. The answer is 7.")


@pytest.mark.parametrize(
    "text", ["", "one", "  two  words ", "a\nb\n\nc", "x  y\t z "]
)
def test_text_pieces_join_back_exactly(text):
    assert "".join(text_pieces(text)) == text


def test_completions_endpoint(client):
    r = client.completions.create(model="fake", prompt="tag=zz say", max_tokens=50)
    assert r.choices[0].text == "Tag zz. The answer is 7."
    assert r.object == "text_completion"
    assert r.usage.completion_tokens == len(r.choices[0].text)


def test_logprobs_pass_through_on_both_endpoints(client):
    r = client.completions.create(model="fake", prompt="tag=zz say", max_tokens=6, logprobs=0)
    lp = r.choices[0].logprobs
    assert lp.tokens == list("Tag zz") and lp.token_logprobs == [-0.1] * 6
    assert client.completions.create(model="fake", prompt="x", max_tokens=3).choices[0].logprobs is None
    c = client.chat.completions.create(model="fake", messages=USER, max_tokens=4, logprobs=True)
    content = c.choices[0].logprobs.content
    assert [(t.token, t.logprob, t.bytes) for t in content] == [
        (ch, -0.1, [ord(ch)]) for ch in "Tag "
    ]


@pytest.mark.parametrize("model", ["fake", "self-consistency@3/fake"])
def test_streamed_logprobs_concatenate_to_the_unstreamed_list(client, model):
    """Live (plain) and after-the-work (strategy) streams: each choice's token logprobs
    arrive on its finish chunk; concatenated per choice they equal the unstreamed ones."""
    kw = {"model": model, "messages": USER, "max_tokens": 5, "n": 2 if model == "fake" else 1,
          "seed": 3}
    whole = client.chat.completions.create(**kw, logprobs=True)
    got: dict[int, list] = {}
    text: dict[int, str] = {}
    for chunk in client.chat.completions.create(**kw, logprobs=True, stream=True):
        for c in chunk.choices:
            text[c.index] = text.get(c.index, "") + (c.delta.content or "")
            if c.logprobs is not None:
                got.setdefault(c.index, []).extend(c.logprobs.content)
    assert len(got) == len(whole.choices) >= 1
    for c in whole.choices:
        assert [(t.token, t.logprob, t.bytes) for t in got[c.index]] == [
            (t.token, t.logprob, t.bytes) for t in c.logprobs.content]
        assert "".join(t.token for t in got[c.index]) == text[c.index] == c.message.content
    plain = client.chat.completions.create(**kw, stream=True)
    assert all(c.logprobs is None for chunk in plain for c in chunk.choices)


def test_null_optional_fields_take_their_defaults(fake_url):
    """OpenAI's optional fields are "type or null"; clients send None as null."""
    nulls = {k: None for k in ("n", "temperature", "top_p", "presence_penalty", "logprobs",
                               "stream", "seed", "stop", "max_tokens", "samplescale", "user")}
    r = httpx.post(fake_url + "/chat/completions",
                   json={"model": "fake", "messages": USER, **nulls,
                         "stream_options": {"include_usage": None},
                         "samplescale": {"candidates": None, "n": None, "options": None}})
    assert r.status_code == 200, r.text
    assert len(r.json()["choices"]) == 1 and r.json()["choices"][0]["logprobs"] is None
    r = httpx.post(fake_url + "/completions", json={"model": "fake", "prompt": "x", **nulls})
    assert r.status_code == 200, r.text
    r = httpx.post(fake_url + "/chat/completions", json={"model": "fake", "messages": None})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_models_and_health(fake_url, client):
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "fake" and "self-consistency@8/fake" in ids
    assert "greedy/fake" in ids and not any(i.startswith("greedy@") for i in ids)
    r = client.chat.completions.create(model="greedy/fake", messages=USER, max_tokens=40)
    assert ext(r)["strategy"] == "greedy"  # every listed id is servable
    h = httpx.get(fake_url.removesuffix("/v1") + "/health").json()
    assert h["status"] == "ok" and h["model"] == "fake" and h["admitted"] == 0


def test_request_id_is_returned_and_honoured(fake_url):
    body = {"model": "fake", "messages": USER}
    r = httpx.post(fake_url + "/chat/completions", json=body, headers={"X-Request-ID": "abc-1"})
    assert r.headers["x-request-id"] == "abc-1"  # the client's id comes back in the header
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{24}", r.json()["id"])  # the body's id is unique
    r2 = httpx.post(fake_url + "/chat/completions", json=body)
    assert re.fullmatch(r"[0-9a-f]{24}", r2.headers["x-request-id"])


BAD = [
    ({"model": "nonsense@8/fake"}, "model", "unknown strategy 'nonsense'"),
    ({"model": "self-consistency@0/fake"}, "model", "integer >= 1"),
    ({"n": 0}, "n", "greater than or equal to 1"),
    ({"temperature": -1}, "temperature", "valid range [0.0, 100.0]"),
    ({"top_p": 1.5}, "top_p", "valid range [0.0, 1.0]"),
    ({"max_tokens": 0}, "max_tokens", "greater than or equal to 1"),
    ({"seed": -3}, "seed", "greater than or equal to 0"),
    ({"messages": None}, "messages", "Field required"),
    ({"messages": []}, "messages", "at least 1 item"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role", "'system'"),
    ({"samplescale": {"strategy": "nope"}}, "samplescale.strategy", "unknown strategy"),
    ({"samplescale": {"strategy": "self-consistency", "n": 0}}, "samplescale.n", "greater than or equal to 1"),
    ({"samplescale": {"max_total_tokens": 10**9}}, "samplescale.max_total_tokens", "[256 (max_tokens"),
    ({"samplescale": {"max_total_tokens": 10}}, "samplescale.max_total_tokens", "one sample must fit"),
    ({"samplescale": {"strategy": "best-of-n", "options": {"scorer": "x"}}}, "samplescale.options", "unknown scorer"),
    ({"samplescale": {"strategy": "greedy", "options": {"bogus": 1}}}, "samplescale.options", "bogus"),
    ({"model": "self-consistency@4/fake", "n": 2}, "n", "must be 1 with a strategy"),
    ({"model": "self-consistency@4/fake", "samplescale": {"n": 5}}, "samplescale.n", "contradicts"),
    ({"frobnicate": True}, "frobnicate", "unknown or unsupported field"),
    ({"logit_bias": {"1": 5}}, "logit_bias", "not supported"),
    ({"n": 65}, "n", "valid range [1, 64]"),
    ({"model": "self-consistency@65/fake"}, "model", "valid range [1, 64]"),
    ({"max_tokens": 5, "max_completion_tokens": 6}, "max_completion_tokens", "contradicts"),
    ({"stream": "yes"}, "stream", "valid boolean"),
    ({"logprobs": 1}, "logprobs", "valid boolean"),
    ({"return_tokens_as_token_ids": "true"}, "return_tokens_as_token_ids", "valid boolean"),
]


@pytest.mark.parametrize("change,field,fragment", BAD, ids=[b[1] + ":" + str(i) for i, b in enumerate(BAD)])
def test_bad_input_is_a_400_naming_the_field(fake_url, change, field, fragment):
    body = {"model": "fake", "messages": USER, **change}
    if change.get("messages", ...) is None:
        del body["messages"]
    r = httpx.post(fake_url + "/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == field
    assert err["type"] == "invalid_request_error"
    assert err["message"].startswith(field + ":")
    assert fragment in err["message"]


def test_bad_input_through_the_openai_client_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="fake", messages=USER, temperature=-1)
    with pytest.raises(openai.BadRequestError, match="unknown strategy"):
        client.chat.completions.create(model="majority@8/fake", messages=USER)


def test_malformed_json_and_unknown_model(fake_url):
    r = httpx.post(fake_url + "/chat/completions", content=b'{"model": "fake", "messages": [',
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"
    assert "malformed JSON" in r.json()["error"]["message"]
    r = httpx.post(fake_url + "/chat/completions", json=[1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"]
    r = httpx.post(fake_url + "/chat/completions", json={"model": "gpt-4o", "messages": USER})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_token_budget_stops_sampling_and_says_so():
    backend = ScriptedBackend(["The answer is 7. " + "x" * 33])  # 50 tokens each
    app = create_app(backend, "fake")
    with serve(app) as url:
        r = httpx.post(url + "/chat/completions", json={
            "model": "self-consistency@8/fake", "messages": USER, "max_tokens": 50,
            "samplescale": {"max_total_tokens": 200},
        }).json()
    e = r["samplescale"]
    drawn = [c for c in e["candidates"] if c["status"] == "ok"]
    refused = [c for c in e["candidates"] if c["status"] == "error"]
    assert e["budget"]["exhausted"] is True
    assert e["budget"]["samples_not_drawn"] == len(refused) > 0
    assert all("max_total_tokens budget (200 tokens) was spent" in c["error"] for c in refused)
    assert r["usage"]["total_tokens"] == e["budget"]["spent"] <= 200 + r["usage"]["prompt_tokens"]
    assert len(drawn) >= 1 and e["answer"] == "7"


def test_failed_samples_are_never_text():
    backend = ScriptedBackend([RuntimeError("upstream down")])
    with serve(create_app(backend, "fake")) as url:
        r = httpx.post(url + "/chat/completions",
                       json={"model": "self-consistency@3/fake", "messages": USER})
    assert r.status_code == 502
    assert "3 of 3 samples failed" in r.json()["error"]["message"]


def test_api_key_auth():
    with serve(create_app(ScriptedBackend(["ok"]), "fake", api_key="s3cret")) as url:
        bad = openai.OpenAI(base_url=url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="fake", messages=USER)
        assert httpx.get(url + "/models").status_code == 401
        assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200
        good = openai.OpenAI(base_url=url, api_key="s3cret", max_retries=0)
        assert good.chat.completions.create(model="fake", messages=USER).choices[0].message.content == "ok"


def test_full_queue_answers_429_at_once():
    gate = threading.Event()

    def slow(prompt, i):
        gate.wait(10)
        return "done"

    app = create_app(ScriptedBackend(slow), "fake", max_queue=2, max_concurrency=1)
    with serve(app) as url:
        body = {"model": "fake", "messages": USER}
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(httpx.post(url + "/chat/completions",
                                                                      json=body, timeout=20)))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        health = url.removesuffix("/v1") + "/health"
        for _ in range(500):
            if httpx.get(health).json()["admitted"] == 2:
                break
            threading.Event().wait(0.01)
        r = httpx.post(url + "/chat/completions", json=body, timeout=5)
        assert r.status_code == 429 and r.json()["error"]["code"] == "queue_full"
        gate.set()
        for t in threads:
            t.join(20)
        assert [x.status_code for x in results] == [200, 200]
        assert httpx.get(health).json()["admitted"] == 0


def test_graceful_shutdown_finishes_requests_in_flight():
    gate = threading.Event()

    def slow(prompt, i):
        gate.wait(10)
        return "finished"

    results = []
    app = create_app(ScriptedBackend(slow), "fake")
    with serve(app) as url:
        t = threading.Thread(target=lambda: results.append(httpx.post(
            url + "/chat/completions", json={"model": "fake", "messages": USER}, timeout=20)))
        t.start()
        health = url.removesuffix("/v1") + "/health"
        for _ in range(500):
            if httpx.get(health).json()["running"] == 1:
                break
            threading.Event().wait(0.01)
        threading.Timer(0.5, gate.set).start()
    # leaving serve() asked the server to exit while the request was running
    t.join(20)
    assert results[0].status_code == 200
    assert results[0].json()["choices"][0]["message"]["content"] == "finished"


@pytest.mark.llama
def test_embedded_model_self_consistency_with_the_openai_client(llama_backend):
    app = create_app(llama_backend, "smollm2")
    with serve(app) as url:
        c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        r = c.chat.completions.create(
            model="self-consistency@4/smollm2",
            messages=[{"role": "user", "content": "What is 2 + 3? End with 'The answer is N'."}],
            max_tokens=24, temperature=0.7, seed=0,
        )
        plain = c.chat.completions.create(
            model="smollm2", messages=USER, max_tokens=8, temperature=0, logprobs=True
        )
    e = ext(r)
    assert len(e["candidates"]) == 4 and e["usage"]["model_calls"] == 1
    assert r.usage.completion_tokens == sum(cand["completion_tokens"] for cand in e["candidates"])
    assert r.usage.completion_tokens >= 1 and r.usage.completion_tokens <= 4 * 24
    assert r.choices[0].message.content == e["candidates"][e["selected"] or 0]["text"]
    lp = plain.choices[0].logprobs.content
    assert len(lp) == plain.usage.completion_tokens and all(t.logprob <= 0 for t in lp)
    assert "".join(t.token for t in lp).startswith(plain.choices[0].message.content[:3])


def test_cli_serve_over_an_upstream_finishes_in_flight_work_on_sigterm():
    """`samplescale serve --upstream` as a real process: SIGTERM while a request runs."""
    import asyncio
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from fastapi import FastAPI

    upstream = FastAPI()

    @upstream.post("/v1/chat/completions")
    async def slow(body: dict):
        await asyncio.sleep(1.5)
        return {"choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "The answer is 7."}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with serve(upstream) as up_url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "samplescale.cli", "serve", "--upstream", up_url,
             "--upstream-model", "m", "--port", str(port), "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            results = []
            t = threading.Thread(target=lambda: results.append(httpx.post(
                base + "/v1/chat/completions", timeout=20,
                json={"model": "self-consistency@2/m", "messages": USER})))
            t.start()
            for _ in range(300):
                if httpx.get(base + "/health", timeout=1).json()["running"] == 1:
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            t.join(20)
            # uvicorn finishes the request, then re-raises SIGTERM to exit by the signal
            assert proc.wait(20) in (0, -signal.SIGTERM)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
    r = results[0]
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "The answer is 7."
    assert body["usage"] == {
        "prompt_tokens": 6,
        "completion_tokens": 10,
        "total_tokens": 16,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert body["samplescale"]["usage"]["model_calls"] == 2  # upstream ignores n: 2 requests


@pytest.mark.parametrize(
    "change, field, fragment",
    [
        ({"model": "self-consistency@\u00b2/fake"}, "model", "ASCII digits"),
        ({"model": "self-consistency@\u0663/fake"}, "model", "ASCII digits"),
        ({"model": "self-consistency@" + "1" * 5000 + "/fake"}, "model", "ASCII digits"),
        ({"model": "mcts@2/fake", "samplescale": {"options": {"iterations": 10_000_000}}},
         "samplescale.options.iterations", "valid range [1, 1024]"),
        ({"model": "self-consistency@2/fake", "samplescale": {"options": {"extract": "x"}}},
         "samplescale.options", "extract must be a callable"),
        ({"model": "best-of-n@2/fake", "samplescale": {"options": {"scorer": None}}},
         "samplescale.options", "scorer must be a Scorer"),
        ({"model": "mcts@2/fake", "samplescale": {"options": {"scorer": 5}}},
         "samplescale.options", "scorer must be a ProcessScorer"),
        ({"max_tokens": 60_000}, "max_tokens", "valid range [1, 50000]"),
        ({"messages": [{"role": "user", "content": "hi \ud800"}]}, "body", "lone UTF-16"),
    ],
)
def test_more_bad_input_is_a_400_naming_the_field(fake_url, change, field, fragment):
    body = {"model": "fake", "messages": USER, **change}
    content = json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as \ud800
    r = httpx.post(fake_url + "/chat/completions", content=content,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == field and fragment in err["message"], err


def test_a_body_over_the_limit_is_a_413_whatever_its_length_header_says():
    with serve(create_app(ScriptedBackend(echo_reply), "fake", limits=Limits(max_body_bytes=2000))) as url:
        small = {"model": "fake", "messages": USER, "max_tokens": 5}
        assert httpx.post(url + "/chat/completions", json=small).status_code == 200
        big = json.dumps({**small, "user": "x" * 3000}).encode()
        r = httpx.post(url + "/chat/completions", content=big,
                       headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
        err = r.json()["error"]
        assert err["param"] == "body" and "limit of 2000 bytes" in err["message"]

        def chunked():  # no Content-Length: the limit holds while the body streams in
            for i in range(0, len(big), 500):
                yield big[i:i + 500]

        r = httpx.post(url + "/chat/completions", content=chunked(),
                       headers={"content-type": "application/json"})
        assert r.status_code == 413 and "limit of 2000 bytes" in r.json()["error"]["message"]


def test_deeply_nested_json_is_a_400(fake_url):
    deep = b'{"model": "fake", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = httpx.post(fake_url + "/chat/completions", content=deep,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "body"


def test_priority_decoding_is_charged_against_the_request_budget():
    with serve(create_app(ToyLM(), "toy")) as url:
        body = {"model": "self-consistency@4/toy", "prompt": "x", "max_tokens": 5,
                "decoding": "priority", "seed": 0}
        r = httpx.post(url + "/completions", json={**body, "samplescale": {"max_total_tokens": 6}})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "samplescale.max_total_tokens"
        ok = httpx.post(url + "/completions", json=body).json()
    assert ok["samplescale"]["budget"]["spent"] >= ok["usage"]["total_tokens"] > 0


class CountedPrompts(ScriptedBackend):
    """A scripted backend whose prompts count 20 tokens in advance (as llama.cpp's do)."""

    def tokenize_prompt(self, prompt):
        return [0] * 20


def test_a_budget_below_prompt_plus_max_tokens_is_a_400():
    with serve(create_app(CountedPrompts(["ok"]), "fake")) as url:
        plain = {"model": "fake", "messages": USER, "max_tokens": 5}
        small = httpx.post(url + "/chat/completions",
                           json={**plain, "samplescale": {"max_total_tokens": 24}})
    assert small.status_code == 400, small.text  # 20 prompt + 5 tokens cannot fit in 24
    assert small.json()["error"]["param"] == "samplescale.max_total_tokens"
    assert "cannot pay for the prompt plus max_tokens (5)" in small.json()["error"]["message"]


def test_a_search_that_spends_its_budget_returns_quickly_with_its_best_partial_solution():
    def reply(prompt, i):
        last = prompt.messages[-1].content if prompt.messages else prompt.text
        return "Score: 7" if "Rate how likely" in last else f"Step {i}.\n\nThe answer is {i % 3}."

    with serve(create_app(ScriptedBackend(reply), "fake")) as url:
        for model, options in [("mcts@2/fake", {"iterations": 1024}),
                               ("ab-mcts@2/fake", {"iterations": 1024}), ("best-first@2/fake", {})]:
            r = httpx.post(url + "/chat/completions", timeout=30, json={
                "model": model, "messages": [{"role": "user", "content": "What is 1+1?"}],
                "max_tokens": 16, "seed": 0,
                "samplescale": {"options": {"scorer": "judge", **options},
                                "max_total_tokens": 2000}})
            assert r.status_code == 200, r.text
            e = r.json()["samplescale"]
            assert e["budget"]["exhausted"] is True and e["budget"]["spent"] <= 2000
            assert len(r.json()["choices"]) == 1  # the best (partial) solution


@pytest.mark.parametrize("stream", [False, True])
def test_a_strategy_stops_when_its_client_disconnects(stream):
    import time

    def reply(prompt, i):
        last = prompt.messages[-1].content if prompt.messages else prompt.text
        return "Score: 7" if "Rate how likely" in last else f"Step {i}.\n\nThe answer is {i % 3}."

    backend = ScriptedBackend(reply, token_delay_s=0.002)
    with serve(create_app(backend, "fake")) as url:
        body = {"model": "mcts@2/fake", "messages": USER, "max_tokens": 16, "stream": stream,
                "samplescale": {"options": {"scorer": "judge", "iterations": 1024}}}
        if stream:
            with httpx.stream("POST", url + "/chat/completions", json=body, timeout=30) as r:
                lines = r.iter_lines()  # kept: a dropped iterator closes the stream
                next(lines)  # the role chunk
                deadline = time.monotonic() + 10
                while not backend.calls and time.monotonic() < deadline:
                    time.sleep(0.01)  # until the run has made a model call; then leave
        else:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(url + "/chat/completions", json=body, timeout=1.0)
        time.sleep(1.0)  # the server notices within DISCONNECT_POLL_S and one model call
        stopped = len(backend.calls)
        time.sleep(1.0)
        assert len(backend.calls) == stopped  # no model call after the client left
        assert 0 < stopped < 300  # a full run makes thousands (1024 iterations, each scored)
        assert httpx.get(url.removesuffix("/v1") + "/health").json()["running"] == 0


def test_plain_requests_run_every_decoder_and_kl_needs_its_grounding():
    body = {"model": "toy", "prompt": "x", "max_tokens": 5, "n": 3, "seed": 0}
    with serve(create_app(ToyLM(), "toy")) as url:
        r = httpx.post(url + "/completions", json={**body, "decoding": "priority"})
        assert r.status_code == 200, r.text
        texts = [c["text"] for c in r.json()["choices"]]
        assert len(set(texts)) == 3  # priority sampling: distinct sequences, without replacement
        chunks = []
        with httpx.stream("POST", url + "/chat/completions", json={
            "model": "toy", "messages": USER, "max_tokens": 5, "n": 2, "stream": True,
            "decoding": "priority"}) as s:
            chunks = [json.loads(x[6:]) for x in s.iter_lines() if x.startswith("data: {")]
        streamed = {c["choices"][0]["index"] for c in chunks if c["choices"]}
        assert s.status_code == 200 and streamed == {0, 1}
        r = httpx.post(url + "/completions", json={**body, "kl_sigma": 0.5})
        assert r.status_code == 400 and r.json()["error"]["param"] == "samplescale.grounding"
        r = httpx.post(url + "/completions", json={
            **body, "kl_sigma": 0.5, "samplescale": {"grounding": "The code is 12."}})
        assert r.status_code == 200 and len(r.json()["choices"]) == 3
    with serve(create_app(ScriptedBackend(["The answer is 7."]), "fake")) as url:
        r = httpx.post(url + "/completions",
                       json={**body, "model": "fake", "decoding": "arithmetic"})
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "decoding"
        assert "needs a backend with next-token logits" in r.json()["error"]["message"]


def test_a_failing_user_scorer_is_an_api_error_streamed_or_not(monkeypatch):
    from samplescale.verifiers.scorers import SCORERS, Scorer

    for name, fn in (("boom-raises", lambda s, a: 1 / 0), ("boom-nan", lambda s, a: math.nan)):
        # the registry is global: monkeypatch removes the entries after the test
        monkeypatch.setitem(SCORERS._items, name, Scorer(name=name, scale="reward", fn=fn))
    _failing_scorer_requests()


def test_non_finite_scores_are_strict_json_strings_streamed_or_not(monkeypatch):
    """A -inf log-probability score is on its scale; the body says "-Infinity" (strict JSON,
    and distinct from a missing score's null), never a bare -Infinity or null."""
    from samplescale.verifiers.scorers import SCORERS, Scorer

    monkeypatch.setitem(SCORERS._items, "zero-prob",
                        Scorer(name="zero-prob", scale="log-probability", fn=lambda s, a: -math.inf))
    body = {"model": "best-of-n@2/fake", "messages": USER, "max_tokens": 40,
            "samplescale": {"options": {"scorer": "zero-prob"}}}

    def strict(text):  # the standard's grammar has no Infinity / NaN literals
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in {text}"))

    with serve(create_app(ScriptedBackend(echo_reply), "fake")) as url:
        r = httpx.post(url + "/chat/completions", json=body)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        rows = strict(r.text)["samplescale"]["candidates"]
        assert [c["score"] for c in rows] == ["-Infinity", "-Infinity"]
        with httpx.stream("POST", url + "/chat/completions", json={**body, "stream": True}) as s:
            chunks = [strict(x[6:]) for x in s.iter_lines()
                      if x.startswith("data: ") and x != "data: [DONE]"]
        assert [c["score"] for c in chunks[-1]["samplescale"]["candidates"]] == ["-Infinity"] * 2


def _failing_scorer_requests():
    with serve(create_app(ScriptedBackend(echo_reply), "fake")) as url:
        body = {"model": "best-of-n@2/fake", "messages": USER, "max_tokens": 40,
                "samplescale": {"options": {"scorer": "boom-raises"}}}
        r = httpx.post(url + "/chat/completions", json=body)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert "ZeroDivisionError" in r.json()["error"]["message"]
        with httpx.stream("POST", url + "/chat/completions", json={**body, "stream": True}) as s:
            lines = [x for x in s.iter_lines() if x.startswith("data: ")]
        assert "ZeroDivisionError" in lines[-2] and lines[-1] == "data: [DONE]"
        # a score off the scale only drops that sample; with none scored, the first sample
        body["samplescale"]["options"]["scorer"] = "boom-nan"
        r = httpx.post(url + "/chat/completions", json=body)
        assert r.status_code == 200, r.text  # the samples are kept; none is scored
        # refused before a stream starts: decoders that need logits, strict booleans
        for change, field in (({"decoding": "priority"}, "decoding"),
                              ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
                              ({"samplescale": {"candidates": 0}}, "samplescale.candidates")):
            r = httpx.post(url + "/chat/completions",
                           json={"model": "fake", "messages": USER, "stream": True, **change})
            assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text


def test_limits_are_checked():
    from samplescale.errors import ConfigError

    with pytest.raises(ConfigError, match=r"Limits.max_body_bytes must be an integer >= 1, got -1"):
        Limits(max_body_bytes=-1)
