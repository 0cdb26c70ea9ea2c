"""What OpenAI clients send: neutral standard fields, unique ids, clients that vanish or
stall mid-upload, and the legacy completions logprobs (issue 16, items 3 and 4)."""

from __future__ import annotations

import logging
import socket
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from _server_helpers import serve  # noqa: E402

from samplescale import ScriptedBackend  # noqa: E402
from samplescale.errors import ConfigError  # noqa: E402
from samplescale.server import create_app  # noqa: E402
from samplescale.server.routing import Limits  # noqa: E402

USER = [{"role": "user", "content": "Say 7."}]


@pytest.fixture(scope="module")
def url():
    app = create_app(ScriptedBackend(["The answer is 7."]), "fake",
                     limits=Limits(body_timeout_s=1.0))
    with serve(app) as u:
        yield u


NEUTRAL = [
    {"response_format": {"type": "text"}},
    {"tool_choice": "none"},
    {"tools": []},
    {"functions": [], "function_call": "none"},
    {"parallel_tool_calls": False},
    {"parallel_tool_calls": True},
    {"store": False},
    {"metadata": {"user": "ada", "run": "3"}},
    {"service_tier": "auto"},
    {"service_tier": "default"},
    {"modalities": ["text"]},
    {"prompt_cache_key": "k1", "safety_identifier": "u-9"},
    {"tools": None, "tool_choice": None, "response_format": None},  # null: the default
]


@pytest.mark.parametrize("fields", NEUTRAL)
def test_standard_fields_with_neutral_values_are_accepted(url, fields):
    r = httpx.post(url + "/chat/completions", json={"model": "fake", "messages": USER, **fields})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "The answer is 7."


REFUSED = [
    # a backend without a token mask (scripted replies) cannot honour a response format
    ({"response_format": {"type": "json_object"}}, "response_format",
     "response_format: 'fake' cannot constrain generation"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
     "response_format", "cannot constrain generation"),
    ({"tool_choice": "auto"}, "tool_choice", 'accepted: "none"'),
    ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice", "not supported"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "tools are not supported"),
    ({"store": True}, "store", "this server stores nothing"),
    ({"metadata": {"k": 1}}, "metadata", "string keys to strings"),
    ({"service_tier": "flex"}, "service_tier", '"auto" or "default"'),
    ({"modalities": ["text", "audio"]}, "modalities", '["text"]'),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls", "true or false"),
    ({"reasoning_effort": "high"}, "reasoning_effort", "unknown or unsupported field"),
    ({"frobnicate": 1}, "frobnicate", "this server does not implement it"),
]


@pytest.mark.parametrize(("fields", "param", "fragment"), REFUSED)
def test_values_that_would_change_the_answer_are_refused_by_name(url, fields, param, fragment):
    r = httpx.post(url + "/chat/completions", json={"model": "fake", "messages": USER, **fields})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param and fragment in err["message"]
    assert "sampling fields are" not in err["message"]


def test_response_ids_are_unique_whatever_the_client_sends(url):
    body = {"model": "fake", "messages": USER}
    a = httpx.post(url + "/chat/completions", json=body, headers={"X-Request-ID": "dup"})
    b = httpx.post(url + "/chat/completions", json=body, headers={"X-Request-ID": "dup"})
    assert a.headers["x-request-id"] == b.headers["x-request-id"] == "dup"  # the client's id
    assert a.json()["id"] != b.json()["id"]
    assert a.json()["id"].startswith("chatcmpl-") and "dup" not in a.json()["id"]


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def test_a_client_that_stalls_mid_upload_gets_408_and_is_closed(url):
    sock = _raw(url)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\": ")
    start = time.monotonic()
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
        if b"\r\n\r\n" in reply and b"body_timeout" in reply:
            break
    assert reply.startswith(b"HTTP/1.1 408")
    assert b"not received within 1 s" in reply
    assert time.monotonic() - start < 4
    sock.close()


def test_a_client_that_vanishes_mid_upload_is_one_log_line(url, caplog):
    with caplog.at_level(logging.INFO, logger="samplescale.server"):
        sock = _raw(url)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"mod")
        time.sleep(0.2)
        sock.close()
        deadline = time.monotonic() + 5
        while "the client left" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "the client left: the client disconnected after sending 5 bytes" in caplog.text
    assert "Traceback" not in caplog.text and "ClientDisconnect" not in caplog.text
    # and the server goes on serving
    r = httpx.post(url + "/chat/completions", json={"model": "fake", "messages": USER})
    assert r.status_code == 200


def test_limits_check_the_body_timeout():
    for bad in (0, -1.0, 3601, "5", True):
        with pytest.raises(ConfigError, match=r"Limits.body_timeout_s must be in \(0, 3600\]"):
            Limits(body_timeout_s=bad)


@pytest.mark.llama
def test_completion_logprobs_have_offsets_and_no_end_of_sequence_entry(llama_backend):
    app = create_app(llama_backend, "smollm2")
    with serve(app) as u:
        r = httpx.post(u + "/chat/completions", json={
            "model": "smollm2", "messages": [{"role": "user", "content": "Say hi."}],
            "max_tokens": 64, "logprobs": True, "seed": 1, "temperature": 0,
        }, timeout=60).json()
        choice = r["choices"][0]
        assert choice["finish_reason"] == "stop"  # ended by the end-of-sequence token
        content = choice["logprobs"]["content"]
        assert "".join(t["token"] for t in content) == choice["message"]["content"]
        assert all(t["token"] != "" for t in content)
        c = httpx.post(u + "/completions", json={
            "model": "smollm2", "prompt": "The capital of France is", "max_tokens": 6,
            "logprobs": 0, "seed": 1, "temperature": 0,
        }, timeout=60).json()["choices"][0]
        lp = c["logprobs"]
        tokens = lp["tokens"]
        assert len(lp["text_offset"]) == len(tokens) == len(lp["token_logprobs"])
        assert lp["text_offset"][0] == 0
        for i in range(1, len(tokens)):
            assert lp["text_offset"][i] == lp["text_offset"][i - 1] + len(tokens[i - 1])
        assert "".join(tokens) == c["text"]


@pytest.mark.llama
def test_an_over_long_prompt_is_the_same_400_streamed_or_not(llama_backend):
    app = create_app(llama_backend, "smollm2")
    long = [{"role": "user", "content": "word " * 5000}]  # over the 4096-cell context
    with serve(app) as u:
        for model in ("smollm2", "self-consistency@2/smollm2"):
            for stream in (False, True):
                r = httpx.post(u + "/chat/completions", json={
                    "model": model, "messages": long, "max_tokens": 8, "stream": stream,
                }, timeout=60)
                assert r.status_code == 400, (model, stream, r.text[:200])
                err = r.json()["error"]
                assert err["param"] == "messages" and "exceeds the context" in err["message"]


def test_a_list_of_prompts_gives_choices_numbered_prompt_by_prompt(url):
    r = httpx.post(url + "/completions", json={
        "model": "fake", "prompt": ["a", "b", "c"], "n": 2, "max_tokens": 20,
    })
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["index"] for c in body["choices"]] == list(range(6))
    assert all(c["text"] == "The answer is 7." for c in body["choices"])
    per = [p["usage"] for p in body["samplescale"]["prompts"]]
    assert len(per) == 3
    assert body["usage"]["completion_tokens"] == sum(u["completion_tokens"] for u in per) == 6 * 16
    cached = body["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached == sum(u["prompt_tokens_details"]["cached_tokens"] for u in per)
    assert body["usage"]["total_tokens"] == sum(u["total_tokens"] for u in per)
    one = httpx.post(url + "/completions", json={"model": "fake", "prompt": ["a"]}).json()
    assert "prompts" not in one["samplescale"]  # one prompt: the plain body


def test_echo_and_top_logprobs_need_a_backend_with_logits(url):
    for fields, param in (({"echo": True, "logprobs": 0}, "echo"), ({"logprobs": 2}, "logprobs")):
        r = httpx.post(url + "/completions", json={"model": "fake", "prompt": "a", **fields})
        assert r.status_code == 400 and r.json()["error"]["param"] == param
        assert "needs a backend with next-token logits" in r.json()["error"]["message"]
    r = httpx.post(url + "/completions", json={"model": "fake", "prompt": "a", "logprobs": 6})
    assert r.status_code == 400 and "less than or equal to 5" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ([], "prompt: an empty list; give a string or a list of strings"),
        ([[504, 3575, 282]], "prompt: token-id prompts are not supported; send the text"),
        ([504, 3575], "prompt: token-id prompts are not supported"),
    ],
)
def test_prompt_lists_that_cannot_be_served_are_400s_naming_prompt(url, prompt, fragment):
    r = httpx.post(url + "/completions", json={"model": "fake", "prompt": prompt})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "prompt" and fragment in r.json()["error"]["message"]


@pytest.mark.llama
def test_echo_scores_the_prompt_and_the_choice_with_the_model(llama_backend):
    import math

    import numpy as np

    from samplescale.sampling.functional import log_softmax
    from samplescale.types import Prompt

    app = create_app(llama_backend, "smollm2")
    prompt = "The capital of France is"
    with serve(app) as u:
        r = httpx.post(u + "/completions", json={
            "model": "smollm2", "prompt": [prompt, "One, two,"], "max_tokens": 3,
            "temperature": 0, "echo": True, "logprobs": 2,
        }, timeout=120)
        assert r.status_code == 200, r.text
        choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    c = choices[0]
    lp = c["logprobs"]
    assert c["text"].startswith(prompt) and "".join(lp["tokens"]) == c["text"]
    ids = llama_backend.tokenize_prompt(Prompt(text=prompt))
    lead = 0  # leading control tokens (BOS, where the model adds one): context, not listed
    while llama_backend.piece(ids[lead]) == b"":
        lead += 1
    n_prompt = len(ids) - lead
    assert "".join(lp["tokens"][:n_prompt]) == prompt
    if lead == 0:  # the first token has no context at all
        assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    # every prompt token's log-probability is the model's, given the tokens before it
    for i in (1, n_prompt - 1):
        before = ids[: lead + i]
        row = log_softmax(np.asarray(llama_backend.logits_at(before), np.float64))[0]
        assert lp["token_logprobs"][i] == pytest.approx(row[ids[lead + i]], abs=2e-3)
    # greedy choice tokens are each position's most likely token
    for i in range(n_prompt, len(lp["tokens"])):
        best = max(lp["top_logprobs"][i].values())
        assert lp["token_logprobs"][i] == pytest.approx(best, abs=1e-6)
        assert len(lp["top_logprobs"][i]) in (2, 3)
        assert all(v <= 0 for v in lp["top_logprobs"][i].values())
    assert all(x is None or not math.isnan(x) for x in lp["token_logprobs"])
    offsets = lp["text_offset"]
    assert offsets[0] == 0 and all(
        offsets[i] == offsets[i - 1] + len(lp["tokens"][i - 1]) for i in range(1, len(offsets))
    )


@pytest.mark.llama
def test_legacy_logprobs_list_every_generated_token_and_read_special_tokens(llama_backend):
    """lm-evaluation-harness sums token_logprobs[ctxlen:-1] of an echo with max_tokens 1:
    the last entry must be the generated token, also when it is the end-of-sequence token;
    and special tokens written in a prompt are single tokens, as its tokenizer reads them."""
    app = create_app(llama_backend, "smollm2")
    with serve(app) as u:
        def ask(**fields):
            body = {"model": "smollm2", "temperature": 0, "seed": 0, **fields}
            r = httpx.post(u + "/completions", json=body, timeout=120)
            assert r.status_code == 200, r.text
            return r.json()

        prompt = "<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\nHello! How can I help you today?"
        body = ask(prompt=prompt, max_tokens=4, echo=True, logprobs=1)
        c = body["choices"][0]
        lp = c["logprobs"]
        assert c["finish_reason"] == "stop" and lp["tokens"][-1] == "<|im_end|>"
        assert lp["tokens"][:4] == ["<|im_start|>", "user", "\n", "Say"]  # one token each
        n_prompt = body["usage"]["prompt_tokens"]
        assert len(lp["tokens"]) == n_prompt + body["usage"]["completion_tokens"]
        assert "".join(lp["tokens"][:-1]) == c["text"] == prompt  # ended at once
        plain = ask(prompt=prompt, max_tokens=4, logprobs=0)["choices"][0]["logprobs"]
        assert plain["tokens"] == ["<|im_end|>"]  # without echo too, under its name
        assert plain["token_logprobs"][0] == pytest.approx(lp["token_logprobs"][-1], abs=2e-3)


def test_tokenizer_endpoints_exist_only_where_the_backend_tokenizes(url):
    root = url.removesuffix("/v1")
    assert httpx.get(root + "/tokenizer_info").status_code == 404
    assert httpx.post(root + "/tokenize", json={"prompt": "x"}).status_code == 404


@pytest.mark.llama
def test_vllm_tokenizer_endpoints_serve_the_models_own_tokenizer(llama_backend):
    from samplescale.types import Prompt

    app = create_app(llama_backend, "smollm2")
    with serve(app) as u:
        root = u.removesuffix("/v1")
        info = httpx.get(root + "/tokenizer_info").json()
        assert info["eos_token"] == "<|im_end|>" and "im_start" in info["chat_template"]
        text = "<|im_start|>user\nWhat is 2 + 2?"
        t = httpx.post(root + "/tokenize", json={"prompt": text, "add_special_tokens": False})
        tokens = t.json()["tokens"]
        assert t.json()["count"] == len(tokens) and tokens[0] == 1  # <|im_start|>: one token
        assert tokens == llama_backend.tokenize_text(text)
        # what the completions endpoint scores: the same ids (no BOS is added by this model)
        assert tokens == llama_backend.tokenize_prompt(Prompt(text=text))
        back = httpx.post(root + "/detokenize", json={"tokens": tokens}).json()["prompt"]
        assert back == text
        bad = httpx.post(root + "/detokenize", json={"tokens": [10**9]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"
        lone = httpx.post(root + "/tokenize", content=b'{"prompt": "\\ud800"}',
                          headers={"Content-Type": "application/json"})
        assert lone.status_code == 400


@pytest.mark.parametrize("model", ["fake", "self-consistency@2/fake"])
def test_a_long_non_streamed_call_stops_at_the_next_token_when_its_client_leaves(model):
    """One long model call (a plain request, or a strategy's whole pool in one call) is
    drawn through the backend's stream and stops at the next token: the next request is
    served at once even with one request at a time."""
    long = "x" * 4000  # 4000 tokens at 5 ms each: 20 s if it ran to the end
    backend = ScriptedBackend([long], token_delay_s=0.005)
    app = create_app(backend, "fake", max_concurrency=1)
    body = {"model": model, "messages": USER, "max_tokens": 4000}
    with serve(app) as u:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(u + "/chat/completions", json=body, timeout=0.5)
        start = time.monotonic()
        r = httpx.post(u + "/chat/completions",
                       json={**body, "model": "fake", "max_tokens": 3}, timeout=30)
        waited = time.monotonic() - start
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "xxx"
        assert waited < 8, f"the abandoned call kept decoding ({waited:.1f} s)"


def test_a_prompt_list_is_capped_by_the_choices_a_request_may_ask_for():
    app = create_app(ScriptedBackend(["ok"]), "fake", limits=Limits(max_samples=8))
    with serve(app) as u:
        r = httpx.post(u + "/completions", json={"model": "fake", "prompt": ["a"] * 5, "n": 2})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
        assert "5 prompts x n=2 choices is beyond this server's limit of 8" in r.text
        ok = httpx.post(u + "/completions", json={"model": "fake", "prompt": ["a"] * 4, "n": 2})
        assert ok.status_code == 200 and len(ok.json()["choices"]) == 8


def test_logprobs_of_a_stopped_choice_are_those_of_its_text(url):
    r = httpx.post(url + "/completions", json={
        "model": "fake", "prompt": "x", "logprobs": 0, "stop": [" is"], "max_tokens": 20,
    }).json()["choices"][0]
    assert r["text"] == "The answer" and r["finish_reason"] == "stop"
    assert "".join(r["logprobs"]["tokens"]) == "The answer"


@pytest.mark.llama
def test_stop_string_tokens_are_not_listed_in_logprobs(llama_backend):
    app = create_app(llama_backend, "smollm2")
    with serve(app) as u:
        for echo in (False, True):
            c = httpx.post(u + "/completions", json={
                "model": "smollm2", "prompt": "Count: 1, 2, 3,", "max_tokens": 8, "stop": [","],
                "temperature": 0, "logprobs": 1, "echo": echo,
            }, timeout=60).json()["choices"][0]
            assert c["finish_reason"] == "stop"
            assert "".join(c["logprobs"]["tokens"]) == c["text"]
            assert len(c["logprobs"]["text_offset"]) == len(c["logprobs"]["tokens"])
