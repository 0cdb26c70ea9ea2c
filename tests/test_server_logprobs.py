"""Token strings of partial UTF-8 characters, chat ``top_logprobs`` scored by the model, and
streamed text completions (issue 16, item 3)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from _server_helpers import serve  # noqa: E402

from samplescale import ScriptedBackend  # noqa: E402
from samplescale.server import create_app  # noqa: E402
from samplescale.server.logprobs import text_offsets, token_string  # noqa: E402


def _unescape(token: str) -> bytes:
    """The bytes a token string stands for (``"bytes:\\xNN..."`` or text)."""
    if token.startswith("bytes:"):
        return bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-f]{2})", token[6:]))
    return token.encode("utf-8")


def test_token_strings_and_offsets_by_hand():
    assert token_string(b" pizza") == " pizza"
    assert token_string(b"\x8d") == "bytes:\\x8d"
    assert token_string(b"") == ""
    # "I", " love", " " + first half of the pizza emoji, the rest, " pizza"
    pieces = [b"I", b" love", b" \xf0\x9f", b"\x8d\x95", b" pizza"]
    assert text_offsets(pieces) == [0, 1, 6, 7, 8]  # the emoji is one character (index 7)


def test_a_partial_character_is_escaped_byte_by_byte():
    assert token_string(b" \xf0\x9f") == "bytes:\\x20\\xf0\\x9f"


@given(st.text(min_size=1, max_size=30), st.lists(st.integers(0, 120), max_size=8))
def test_token_strings_give_back_their_bytes_and_offsets_count_characters(text, cuts):
    data = text.encode("utf-8")
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    assert b"".join(_unescape(token_string(p)) for p in pieces) == data
    offsets = text_offsets(pieces)
    for (a, _), off in zip(zip(bounds, bounds[1:]), offsets):
        # a piece starts at the character that holds its first byte
        assert off == len(data[:a].decode("utf-8", errors="ignore"))
        assert text[off:].encode("utf-8").startswith(data[a:]) or data[a] & 0xC0 == 0x80


@pytest.fixture(scope="module")
def fake_url():
    with serve(create_app(ScriptedBackend(["The answer is 7."]), "fake")) as u:
        yield u


def _events(r: httpx.Response) -> list[dict]:
    out = []
    for line in r.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    assert r.text.rstrip().endswith("data: [DONE]")
    return out


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"logprobs": True, "top_logprobs": 2}, "top_logprobs: 2 needs a backend with next-token logits"),
        ({"top_logprobs": 2}, "top_logprobs: needs logprobs: true"),
        ({"logprobs": True, "top_logprobs": 21}, "less than or equal to 20"),
    ],
)
def test_chat_top_logprobs_that_cannot_be_served_are_400s(fake_url, fields, fragment):
    r = httpx.post(fake_url + "/chat/completions", json={
        "model": "fake", "messages": [{"role": "user", "content": "hi"}], **fields})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "top_logprobs" and fragment in err["message"]


def test_a_text_completion_streams_and_joins_to_the_unstreamed_text(fake_url):
    body = {"model": "fake", "prompt": "Q:", "n": 2, "max_tokens": 20, "echo": True,
            "stream_options": {"include_usage": True}}
    whole = httpx.post(fake_url + "/completions", json=body).json()
    r = httpx.post(fake_url + "/completions", json={**body, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r)
    assert {e["object"] for e in events} == {"text_completion"}
    assert len({e["id"] for e in events}) == 1 and events[0]["id"].startswith("cmpl-")
    texts = {0: "", 1: ""}
    finish = {}
    for e in events[:-1]:
        (c,) = e["choices"]
        texts[c["index"]] += c["text"]
        if c["finish_reason"] is not None:
            finish[c["index"]] = c["finish_reason"]
    assert texts == {c["index"]: c["text"] for c in whole["choices"]}
    assert texts[0] == "Q:The answer is 7."
    assert finish == {0: whole["choices"][0]["finish_reason"], 1: whole["choices"][1]["finish_reason"]}
    assert events[-1]["choices"] == [] and events[-1]["usage"] == whole["usage"]


def test_a_streamed_list_of_prompts_is_a_400_naming_stream(fake_url):
    r = httpx.post(fake_url + "/completions", json={"model": "fake", "prompt": ["a", "b"],
                                                    "stream": True})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream"


@pytest.mark.llama
def test_partial_characters_of_the_prompt_are_escaped_and_offsets_count_characters(llama_backend):
    prompt = "I love 🍕 pizza"  # SmolLM2 splits the emoji over three tokens
    with serve(create_app(llama_backend, "smollm2")) as u:
        c = httpx.post(u + "/completions", json={
            "model": "smollm2", "prompt": prompt, "max_tokens": 2, "temperature": 0,
            "echo": True, "logprobs": 1,
        }, timeout=60).json()["choices"][0]
    lp = c["logprobs"]
    tokens = lp["tokens"]
    assert tokens[:6] == ["I", " love", "bytes:\\x20\\xf0\\x9f", "bytes:\\x8d", "bytes:\\x95",
                          " pizza"]
    assert lp["text_offset"][:6] == [0, 1, 6, 7, 7, 8]
    assert b"".join(_unescape(t) for t in tokens) == c["text"].encode("utf-8")
    for top in lp["top_logprobs"][1:]:  # distinct tokens never collapse into one string
        assert len(top) in (1, 2)


@pytest.mark.llama
def test_chat_top_logprobs_are_the_models_alternatives_streamed_or_not(llama_backend):
    import numpy as np

    from samplescale.sampling.functional import log_softmax
    from samplescale.types import Prompt

    messages = [{"role": "user", "content": "Name a colour."}]
    body = {"model": "smollm2", "messages": messages, "max_tokens": 6, "temperature": 0,
            "seed": 3, "logprobs": True, "top_logprobs": 3}
    with serve(create_app(llama_backend, "smollm2")) as u:
        r = httpx.post(u + "/chat/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        streamed = _events(httpx.post(u + "/chat/completions", json={**body, "stream": True},
                                      timeout=60))
    content = choice["logprobs"]["content"]
    assert b"".join(bytes(t["bytes"]) for t in content) == choice["message"]["content"].encode()
    for t in content:  # greedy: each token is its position's most likely, listed first
        assert len(t["top_logprobs"]) == 3
        assert t["top_logprobs"][0]["token"] == t["token"]
        assert t["top_logprobs"][0]["logprob"] == pytest.approx(t["logprob"], abs=1e-9)
        lps = [a["logprob"] for a in t["top_logprobs"]]
        assert lps == sorted(lps, reverse=True) and all(v <= 0 for v in lps)
    # the first token's log-probability is the model's given the rendered chat prompt
    ids = llama_backend.tokenize_prompt(Prompt(messages=tuple(messages)))
    row = log_softmax(np.asarray(llama_backend.logits_at(ids), np.float64))[0]
    assert content[0]["logprob"] == pytest.approx(float(row.max()), abs=2e-3)
    finish = [c for e in streamed for c in e["choices"] if c.get("finish_reason")]
    assert finish[0]["logprobs"]["content"] == content


@pytest.mark.llama
def test_a_live_streamed_text_completion_is_the_unstreamed_one_with_its_logprobs(llama_backend):
    body = {"model": "smollm2", "prompt": "Once upon a time", "n": 2, "max_tokens": 12,
            "temperature": 0.8, "seed": 11, "logprobs": 0}
    with serve(create_app(llama_backend, "smollm2")) as u:
        whole = httpx.post(u + "/completions", json=body, timeout=60).json()["choices"]
        events = _events(httpx.post(u + "/completions", json={**body, "stream": True},
                                    timeout=60))
    texts = {0: "", 1: ""}
    logprobs = {}
    for e in events:
        for c in e["choices"]:
            texts[c["index"]] += c["text"]
            if c["finish_reason"] is not None:
                logprobs[c["index"]] = c["logprobs"]
    assert len(events) > 4  # live: more than one delta per choice
    assert texts == {c["index"]: c["text"] for c in whole}
    assert logprobs == {c["index"]: c["logprobs"] for c in whole}
