"""Live streaming: backend ``stream`` methods, stop-string hold-back, and the server's live
SSE for plain requests (driven by the official ``openai`` client on 127.0.0.1)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samplescale import Prompt, SamplingParams, ScriptedBackend, ToyLM
from samplescale.backends.base import StreamingBackend, TextDelta, collect
from samplescale.backends.decoding import SequenceBuilder
from samplescale.types import Generation

PROMPT = Prompt.user("go")


def joined(events) -> dict[int, str]:
    """Concatenated delta text per sample index (the final Generation excluded)."""
    out: dict[int, str] = {}
    for ev in events:
        if isinstance(ev, TextDelta):
            out[ev.index] = out.get(ev.index, "") + ev.text
    return out


def deltas_of(backend, params, prompt=PROMPT) -> tuple[list, Generation]:
    events = list(backend.stream(prompt, params))
    assert isinstance(events[-1], Generation)
    assert not any(isinstance(e, Generation) for e in events[:-1])
    return events[:-1], events[-1]


# ----------------------------------------------------------------------- hold-back tables
@pytest.mark.parametrize(
    "reply,stops,expected_deltas,text",
    [
        # "E" could start "END": held until "!" rules it out; "END" is cut entirely
        ("abE!END tail", ("END",), ["a", "b", "E!"], "abE!"),
        # "b" and "bc" could start "bcd", "a" could start "ab"; "ab" then stops
        ("xbcab", ("bcd", "ab"), ["x", "bc"], "xbc"),
        # no stop strings: every character at once
        ("hey", (), ["h", "e", "y"], "hey"),
        # the reply ends while "S" is held back: released at the end
        ("abS", ("STOP",), ["a", "b", "S"], "abS"),
    ],
)
def test_deltas_hold_back_possible_stop_prefixes(reply, stops, expected_deltas, text):
    events, gen = deltas_of(ScriptedBackend([reply]), SamplingParams(stop=stops))
    assert [e.text for e in events] == expected_deltas
    assert all(e.index == 0 for e in events)
    assert gen.samples[0].text == text


def test_incomplete_utf8_is_held_until_the_character_is_complete():
    seq = SequenceBuilder(lambda t: bytes([t]), lambda t: False, (), 10)
    out = []
    for byte in "aé€".encode():  # 1 + 2 + 3 bytes
        seq.push(byte, -0.5, -0.5)
        out.append(seq.take_delta())
    assert out == ["a", "", "é", "", "", "€"]


@settings(max_examples=150, deadline=None)
@given(
    replies=st.lists(st.text("abc", max_size=12), min_size=1, max_size=3),
    stops=st.lists(st.text("abc", min_size=1, max_size=3), max_size=2),
    max_tokens=st.integers(1, 14),
)
def test_joined_deltas_equal_the_generated_text(replies, stops, max_tokens):
    """Property: per sample, the deltas joined equal ``generate``'s text (so a stop string
    never leaks), and no delta is empty."""
    params = SamplingParams(n=len(replies), stop=tuple(stops), max_tokens=max_tokens)
    events, gen = deltas_of(ScriptedBackend(replies), params)
    plain = ScriptedBackend(replies).generate(PROMPT, params)
    assert gen.samples == plain.samples
    assert gen.usage.completion_tokens == plain.usage.completion_tokens
    got = joined(events)
    for i, s in enumerate(gen.samples):
        assert got.get(i, "") == s.text
        assert not any(stop in s.text for stop in stops)
    assert all(e.text for e in events)


@settings(max_examples=150, deadline=None)
@given(
    reply=st.text("abc", max_size=20),
    stops=st.lists(st.text("abc", min_size=1, max_size=4), min_size=1, max_size=3),
)
def test_hold_back_is_bounded_by_the_longest_stop(reply, stops):
    """Property: after every token, the text sent is a prefix of the text so far and lacks
    at most ``max(len(stop)) - 1`` characters of it (streaming stays live)."""
    seq = SequenceBuilder(lambda t: chr(t).encode(), lambda t: False, stops, 100)
    sent = ""
    for ch in reply:
        done = seq.push(ord(ch), -0.1, -0.1)
        sent += seq.take_delta()
        assert seq.text.startswith(sent)
        assert len(seq.text) - len(sent) <= (0 if done else max(map(len, stops)) - 1)
        if done:
            break
    seq.end()
    sent += seq.take_delta()
    assert sent == seq.text


def test_toy_lm_stream_equals_generate_for_the_same_seed():
    params = SamplingParams(n=6, max_tokens=6, seed=11, temperature=0.9)
    toy = ToyLM()
    assert isinstance(toy, StreamingBackend) and toy.capabilities.streaming
    events, gen = deltas_of(toy, params)
    plain = toy.generate(PROMPT, params)
    assert gen.samples == plain.samples
    assert joined(events) == {i: s.text for i, s in enumerate(plain.samples) if s.text}
    assert len({s.text for s in plain.samples}) > 1


def test_errors_are_raised_at_the_call_and_error_samples_stream_nothing():
    with pytest.raises(Exception, match="priority"):
        ToyLM().stream(PROMPT, SamplingParams(decoding="priority"))
    events, gen = deltas_of(ScriptedBackend(["ok", RuntimeError("down")]), SamplingParams(n=2))
    assert joined(events) == {0: "ok"}
    assert gen.samples[1].status == "error" and gen.samples[1].text == ""


def test_collect_closes_the_stream_when_the_callback_raises():
    class Stop(Exception):
        pass

    stream = ScriptedBackend(["abcdef"]).stream(PROMPT, SamplingParams())

    def stop(delta):
        raise Stop

    with pytest.raises(Stop):
        collect(stream, stop)
    assert stream.gi_frame is None  # the generator was closed, not left suspended


# ----------------------------------------------------------------------- server, live SSE
openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

from _server_helpers import serve  # noqa: E402

from samplescale.server import create_app  # noqa: E402

REPLY = "Tag one. The answer is 7."  # 25 characters = 25 tokens
DELAY_S = 0.03


def timed_chunks(client, **kw) -> list[tuple[float, object]]:
    start = time.perf_counter()
    stream = client.chat.completions.create(messages=[{"role": "user", "content": "q"}],
                                            stream=True, **kw)
    return [(time.perf_counter() - start, c) for c in stream]


def texts_by_index(chunks) -> dict[int, str]:
    out: dict[int, str] = {}
    for _, c in chunks:
        for ch in c.choices:
            if ch.delta.content:
                out[ch.index] = out.get(ch.index, "") + ch.delta.content
    return out


@pytest.fixture
def slow_url():
    backend = ScriptedBackend([REPLY, "aST bSTOP c"], token_delay_s=DELAY_S)
    with serve(create_app(backend, "fake")) as url:
        yield url


def test_plain_stream_sends_text_while_decoding(slow_url):
    client = openai.OpenAI(base_url=slow_url, api_key="unused", max_retries=0)
    chunks = timed_chunks(client, model="fake", n=2, stop=["STOP"],
                          stream_options={"include_usage": True})
    content = [(t, c) for t, c in chunks if c.choices and c.choices[0].delta.content]
    # one token per decoding step, one character per token: a chunk per step (less hold-back)
    assert len(content) >= len(REPLY)
    first, last = content[0][0], content[-1][0]
    # 25 steps of DELAY_S each: text arrives spread over the decoding, not at its end
    assert last - first >= 0.5 * (len(REPLY) - 1) * DELAY_S
    assert len({round(t, 3) for t, _ in content}) >= len(REPLY) // 2
    texts = texts_by_index(chunks)
    assert texts == {0: REPLY, 1: "aST b"}  # "ST" was held back, then sent; "STOP" never
    assert not any("STOP" in (c.choices[0].delta.content or "") for _, c in content)
    finish = sorted((c.choices[0].index, c.choices[0].finish_reason)
                    for _, c in chunks if c.choices and c.choices[0].finish_reason)
    assert finish == [(0, "stop"), (1, "stop")]
    usage = chunks[-1][1].usage
    assert chunks[-1][1].choices == [] and usage.completion_tokens == len(REPLY) + len("aST bSTOP")


def test_client_disconnect_stops_decoding():
    backend = ScriptedBackend(["T" + "x" * 99], token_delay_s=DELAY_S)  # 3 s of decoding
    with serve(create_app(backend, "fake")) as url:
        health = url.removesuffix("/v1") + "/health"
        body = {"model": "fake", "messages": [{"role": "user", "content": "q"}], "stream": True}
        start = time.perf_counter()
        with httpx.stream("POST", url + "/chat/completions", json=body, timeout=10) as r:
            for line in r.iter_lines():
                if '"content":"T"' in line:
                    break  # the first letter: leave
        for _ in range(300):
            if httpx.get(health).json()["admitted"] == 0:
                break
            time.sleep(0.01)
        assert httpx.get(health).json()["admitted"] == 0
        # the run ended soon after the client left, long before the 100 tokens
        assert time.perf_counter() - start < 50 * DELAY_S


def test_a_failure_after_live_text_ends_the_stream_with_an_error_object():
    backend = ScriptedBackend(["partial", RuntimeError("upstream down")])
    with serve(create_app(backend, "fake")) as url:
        with httpx.stream("POST", url + "/chat/completions", timeout=10, json={
            "model": "fake", "n": 2, "messages": [{"role": "user", "content": "q"}],
            "stream": True}) as r:
            events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[1:-1])
    assert text == "partial"  # sample 0 streamed while sample 1 had already failed
    err = chunks[-1]["error"]
    assert err["code"] == "samples_failed" and "1 of 2 samples failed" in err["message"]
    assert "upstream down" in err["message"]
    assert not any(c.get("choices") and c["choices"][0]["finish_reason"] for c in chunks)


def test_live_stream_equals_the_non_streamed_reply_for_the_same_seed():
    with serve(create_app(ToyLM(), "toy")) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        kw = {"model": "toy", "n": 5, "seed": 4, "max_tokens": 6}
        plain = client.chat.completions.create(messages=[{"role": "user", "content": "q"}], **kw)
        chunks = timed_chunks(client, **kw)
    texts = texts_by_index(chunks)
    assert [texts.get(i, "") for i in range(5)] == [c.message.content for c in plain.choices]
    final = chunks[-1][1]
    assert final.usage.model_dump() == plain.usage.model_dump()
    assert final.model_extra["samplescale"]["usage"]["completion_tokens"] == \
        plain.usage.completion_tokens


def test_a_strategy_stream_still_sends_the_selected_answer_at_the_end(slow_url):
    with httpx.stream("POST", slow_url + "/chat/completions", timeout=10, json={
        "model": "self-consistency@2/fake", "messages": [{"role": "user", "content": "q"}],
        "stream": True, "stop": ["STOP"]}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[1:])
    e = events[-1]["samplescale"]
    assert content == e["candidates"][e["selected"]]["text"]
    assert [c["choices"][0]["index"] for c in events] == [0] * len(events)


@pytest.mark.llama
def test_embedded_model_stream_equals_generate_and_streams_live(llama_backend):
    params = SamplingParams(n=2, max_tokens=32, temperature=0.8, seed=3, stop=(".",))
    events, gen = deltas_of(llama_backend, params)
    plain = llama_backend.generate(PROMPT, params)
    assert gen.samples == plain.samples
    assert joined(events) == {i: s.text for i, s in enumerate(plain.samples) if s.text}
    with serve(create_app(llama_backend, "smollm2")) as url:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        kw = {"model": "smollm2", "max_tokens": 32, "temperature": 0.8, "seed": 5}
        ref = client.chat.completions.create(messages=[{"role": "user", "content": "q"}], **kw)
        chunks = timed_chunks(client, stream_options={"include_usage": True}, **kw)
    content = [t for t, c in chunks if c.choices and c.choices[0].delta.content]
    assert texts_by_index(chunks) == {0: ref.choices[0].message.content}
    assert chunks[-1][1].usage.model_dump() == ref.usage.model_dump()
    # the first text arrives while the model is still decoding the rest
    assert len(content) >= 8 and content[0] < content[-1]
    assert len({round(t, 4) for t in content}) >= 4
