"""short-m@k (Hassid et al. 2025): the vote and tie-break on scripted chains, the early exit
on llama.cpp (cancelled rows leave the batch) and over HTTP (requests closed, seen by a
real loopback server), the honest fallback, bad ``m``, the server's name and the CLI."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from samplescale.backends.base import Capabilities
from samplescale.backends.fake import ScriptedBackend
from samplescale.cli import main
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies import ShortMAtK, get_strategy, short_m_at_k
from samplescale.types import Prompt

# lengths 14, 9, 11, 31 characters (one character is one token; a reply of L characters
# finishes at step L + 1, when the scripted backend runs out)
REPLIES = ["aaaa \\boxed{5}", "\\boxed{7}", "b \\boxed{5}", "c" * 21 + " \\boxed{5}"]


class DrawsAll(ScriptedBackend):
    """A scripted backend without early exit: the strategy must draw all k."""

    capabilities = Capabilities(logits=False, seeds=True, parallel_n=True, chat=True)


def test_first_two_finished_vote_and_a_tie_goes_to_the_shortest_chain():
    r = short_m_at_k(ScriptedBackend(REPLIES), "q", SamplingParams(n=4), m=2)
    # voters: chain 1 (9 tokens, answer 7) and chain 2 (11 tokens, answer 5): a 1-1 tie,
    # won by the shortest chain's answer, although 5 is the majority of all four chains
    assert (r.answer, r.selected) == ("7", 1)
    assert [s.finish_reason for s in r.samples] == ["cancelled", "stop", "stop", "cancelled"]
    # chain 2 finished at step 12 (11 characters, then the end): the others had drawn 12
    assert [s.num_tokens for s in r.samples] == [12, 9, 11, 12]
    assert [s.text for s in r.samples] == ["aaaa \\boxed{", REPLIES[1], REPLIES[2], "c" * 12]
    assert r.answers == (None, "7", "5", None)
    assert r.weights == (0.0, 0.5, 0.5, 0.0) and r.vote_shares == {"7": 0.5, "5": 0.5}
    assert r.usage.completion_tokens == 12 + 9 + 11 + 12 and r.usage.model_calls == 1
    (t,) = r.trace
    assert (t["mode"], t["decision"], t["finished"], t["cancelled"]) == ("early-exit", "stop", 2, 2)
    assert (t["voters"], t["cut_at"], t["cancelled_tokens"]) == ([1, 2], 11, 24)
    assert t["tokens_saveable"] is None and t["wall_time_saved"] is True


def test_three_voters_majority_and_selected_is_the_shortest_of_the_winning_class():
    r = short_m_at_k(ScriptedBackend(REPLIES), "q", SamplingParams(n=4), m=3)
    assert (r.answer, r.selected) == ("5", 2)
    assert [s.finish_reason for s in r.samples] == ["stop", "stop", "stop", "cancelled"]
    assert r.samples[3].num_tokens == 15 and r.usage.completion_tokens == 14 + 9 + 11 + 15
    assert r.trace[0]["voters"] == [1, 2, 0] and r.vote_shares == {"7": 1 / 3, "5": 2 / 3}


def test_short_1_at_k_is_the_first_chain_to_finish():
    r = short_m_at_k(ScriptedBackend(REPLIES), "q", SamplingParams(n=4), m=1)
    assert (r.answer, r.selected) == ("7", 1)
    assert [s.num_tokens for s in r.samples] == [10, 9, 10, 10]


def test_backend_without_early_exit_draws_all_and_reports_what_would_be_saved():
    r = short_m_at_k(DrawsAll(REPLIES), "q", SamplingParams(n=4), m=2)
    assert (r.answer, r.selected) == ("7", 1)  # the same choice
    assert [s.finish_reason for s in r.samples] == ["stop"] * 4
    assert r.usage.completion_tokens == 14 + 9 + 11 + 31  # what was actually spent
    (t,) = r.trace
    assert (t["mode"], t["cancelled"], t["wall_time_saved"]) == ("drawn-all", 0, False)
    # non-voters past the cut at 11 tokens: chain 0 (14 - 11) and chain 3 (31 - 11)
    assert (t["voters"], t["cut_at"], t["tokens_saveable"]) == ([1, 2], 11, 3 + 20)
    assert r.answers == ("5", "7", "5", "5") and r.weights == (0.0, 0.5, 0.5, 0.0)


def test_chains_cut_by_max_tokens_vote_only_when_fewer_than_m_finished():
    r = short_m_at_k(ScriptedBackend(REPLIES), "q", SamplingParams(n=4, max_tokens=10), m=2)
    # only chain 1 finishes (9 characters); all others are cut at 10 tokens together
    assert [s.finish_reason for s in r.samples] == ["length", "stop", "length", "length"]
    assert r.trace[0]["voters"] == [1, 0] and r.answer == "7"


@pytest.mark.parametrize("m, n, match", [
    (0, 4, r"m must be an integer in \[1, k\]"),
    (-1, 4, r"m must be an integer in \[1, k\]"),
    (2.0, 4, r"m must be an integer in \[1, k\]"),
    (True, 4, r"m must be an integer in \[1, k\]"),
    (5, 4, r"m must be an integer in \[1, k\] = \[1, 4\] \(k = n, the chains decoded "
           r"together\), got 5"),
])
def test_bad_m_is_refused_naming_the_field_and_range(m, n, match):
    backend = ScriptedBackend(REPLIES)
    with pytest.raises(ConfigError, match=match):
        short_m_at_k(backend, "q", SamplingParams(n=n), m=m)
    assert backend.calls == []
    with pytest.raises(ConfigError, match=r"m must be an integer in \[1, k\] = \[1, 4\]"):
        backend.generate_first(Prompt.user("q"), SamplingParams(n=4), 7)


def test_a_token_budget_charges_the_early_exit_and_cannot_be_escaped():
    from samplescale.backends.budget import TokenBudgetBackend

    roomy = TokenBudgetBackend(ScriptedBackend(REPLIES), 1000)
    r = short_m_at_k(roomy, "q", SamplingParams(n=4, max_tokens=40), m=2)
    assert r.trace[0]["mode"] == "early-exit" and r.samples[0].finish_reason == "cancelled"
    assert roomy.spent == r.usage.total_tokens == 7 + 44  # the prompt "user: q", 7 tokens
    # the budget wrapper knows no exact prompt cost of a scripted backend, so it pays for
    # one chain first (budget.py): that chain is drawn (m = min(2, 1)), the rest refused
    tight = TokenBudgetBackend(ScriptedBackend(REPLIES), 100)
    r = short_m_at_k(tight, "q", SamplingParams(n=4, max_tokens=40), m=2)
    assert [s.status for s in r.samples] == ["ok", "error", "error", "error"]
    assert "max_total_tokens budget (100 tokens)" in r.samples[2].error
    assert tight.spent == 7 + 14 <= 100 and tight.not_drawn == 3
    assert r.trace[0]["voters"] == [0] and r.answer == "5"


def test_registered_under_its_name():
    assert isinstance(get_strategy("short-m-at-k", m=2), ShortMAtK)
    assert isinstance(get_strategy("short_m_at_k"), ShortMAtK)


# ---------------------------------------------------------------- llama.cpp
ARITH = Prompt.user("What is 17 + 25? Answer with the number only.")


@pytest.mark.slow
def test_llama_cancels_the_unfinished_rows_in_the_batch(llama_backend):
    params = SamplingParams(n=8, max_tokens=32, temperature=1.0, seed=11)
    full = llama_backend.generate(ARITH, params)
    r = short_m_at_k(llama_backend, ARITH, params, m=2)  # generate_first, same seeds
    stops = sorted(s.num_tokens for s in full.samples if s.finish_reason == "stop")
    cut = stops[1]  # the second chain to finish in the full draw
    assert cut < max(s.num_tokens for s in full.samples)  # the case is informative
    for a, b in zip(full.samples, r.samples):
        if a.finish_reason == "stop" and a.num_tokens <= cut:  # finished by then: kept
            assert b == a
        else:  # stopped in the same batch step, the tokens drawn so far kept
            assert b.finish_reason == "cancelled" and b.num_tokens == cut < params.max_tokens
            assert b.token_ids == a.token_ids[:cut] and b.logprobs == a.logprobs[:cut]
    finished = [i for i, s in enumerate(r.samples) if s.finish_reason == "stop"]
    assert len(finished) == sum(s <= cut for s in stops)
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)
    assert r.usage.completion_tokens < full.usage.completion_tokens
    t = r.trace[0]
    assert t["mode"] == "early-exit" and t["cut_at"] == cut and set(t["voters"]) <= set(finished)
    assert r.selected in t["voters"] and t["completion_tokens"] == r.usage.completion_tokens


# ---------------------------------------------------------------- HTTP
pytest.importorskip("fastapi")
from _server_helpers import serve  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from samplescale.backends.openai_http import OpenAIHTTPBackend  # noqa: E402
from samplescale.server import create_app  # noqa: E402


def _upstream(lengths, delay_s):
    """A streaming upstream: the i-th request to arrive gets ``lengths[i]`` tokens ("x",
    logprob -0.5 each, ``delay_s`` apart) and the answer ``\\boxed{i}``; ``log`` records
    per request whether it completed or was closed by the client, and the tokens sent."""
    log: list[dict] = []
    lock = threading.Lock()

    async def chat(request: Request):
        body = await request.json()
        with lock:
            i = len(log)
            entry = {"i": i, "sent": 0, "state": "open"}
            log.append(entry)

        def chunk(text=None, finish=None, usage=None):
            choice = {"index": 0, "delta": {"content": text} if text else {},
                      "finish_reason": finish}
            if text:
                choice["logprobs"] = {"content": [{"token": text, "logprob": -0.5}]}
            body = {"choices": [] if usage else [choice]}
            if usage:
                body["usage"] = usage
            return f"data: {json.dumps(body)}\n\n"

        async def events():
            try:
                for _ in range(lengths[i] - 1):
                    await asyncio.sleep(delay_s)
                    entry["sent"] += 1
                    yield chunk("x")
                entry["sent"] += 1
                yield chunk(f"\\boxed{{{i}}}")
                yield chunk(finish="stop")
                yield chunk(usage={"prompt_tokens": 5, "completion_tokens": lengths[i]})
                yield "data: [DONE]\n\n"
                entry["state"] = "completed"
            finally:
                if entry["state"] == "open":
                    entry["state"] = "closed by client"

        if not body.get("stream"):  # a plain reply, all at once
            entry["state"], entry["sent"] = "completed", lengths[i]
            content = "x" * (lengths[i] - 1) + f"\\boxed{{{i}}}"
            return JSONResponse({"choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": content}}], "usage": {
                "prompt_tokens": 5, "completion_tokens": lengths[i]}})
        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]), log


def test_http_closes_the_unfinished_requests_once_m_finished():
    lengths = [3, 5, 400, 400]
    app, log = _upstream(lengths, 0.02)
    with serve(app) as url, OpenAIHTTPBackend(url, "m", stream=True, n_mode="split") as b:
        assert b.capabilities.early_exit
        start = time.perf_counter()
        gen = b.generate_first(Prompt.user("q"), SamplingParams(n=4, seed=1), 2)
        took = time.perf_counter() - start
        deadline = time.monotonic() + 5
        while any(e["state"] == "open" for e in log) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert took < 4.0  # the long requests would take 8 s
    by_state = {e["i"]: e for e in log}
    short = [i for i, e in by_state.items() if lengths[i] < 100]
    long_ = [i for i, e in by_state.items() if lengths[i] == 400]
    assert all(by_state[i]["state"] == "completed" for i in short)
    assert all(by_state[i]["state"] == "closed by client" and by_state[i]["sent"] < 400
               for i in long_)
    finished = sorted(s.num_tokens for s in gen.samples if s.finish_reason == "stop")
    assert finished == [3, 5]
    cancelled = [s for s in gen.samples if s.finish_reason == "cancelled"]
    assert len(cancelled) == 2 and all(set(s.text) <= {"x"} for s in cancelled)
    # usage: the server's for the finished, the tokens received for the cancelled
    assert gen.usage.completion_tokens == 3 + 5 + sum(s.num_tokens for s in cancelled)
    assert gen.usage.model_calls == 4 and gen.usage.prompt_tokens == 10


def test_http_without_streaming_falls_back_to_drawing_all():
    app, log = _upstream([3, 5, 8, 4], 0.0)
    with serve(app) as url, OpenAIHTTPBackend(url, "m", n_mode="split") as b:
        assert not b.capabilities.early_exit
        with pytest.raises(ConfigError, match="early exit needs stream=True"):
            b.generate_first(Prompt.user("q"), SamplingParams(n=4), 2)
        r = short_m_at_k(b, "q", SamplingParams(n=4), m=2)
    assert sorted(e["state"] for e in log) == ["completed"] * 4  # nothing was cancelled
    t = r.trace[0]
    assert (t["mode"], t["wall_time_saved"], t["cancelled"]) == ("drawn-all", False, 0)
    assert r.usage.completion_tokens == 3 + 5 + 8 + 4 and len(t["voters"]) == 2


def test_server_runs_short_m_at_k_by_name_and_refuses_bad_m():
    app = create_app(ScriptedBackend(REPLIES), "fake")
    user = [{"role": "user", "content": "q"}]
    with serve(app) as url:
        r = httpx.post(url + "/chat/completions", timeout=30, json={
            "model": "short-m-at-k@4/fake", "messages": user,
            "samplescale": {"options": {"m": 2}}})
        assert r.status_code == 200, r.text
        ext = r.json()["samplescale"]
        assert ext["strategy"] == "short-m-at-k" and ext["selected"] == 1
        assert r.json()["choices"][0]["message"]["content"] == REPLIES[1]
        # the early exit runs through the server's budget and client-gone wrappers
        assert [c["finish_reason"] for c in ext["candidates"]] == [
            "cancelled", "stop", "stop", "cancelled"]
        assert ext["budget"]["spent"] == 7 + 44 == r.json()["usage"]["total_tokens"]
        r = httpx.post(url + "/chat/completions", timeout=30, json={
            "model": "short-m-at-k@2/fake", "messages": user})  # default m=3 > k=2
        assert r.status_code == 400 and "m must be an integer in [1, k] = [1, 2]" in r.text


@pytest.mark.slow
def test_cli_generate_and_eval_run_short_m_at_k(capsys, tmp_path, llama_backend):
    model = str(llama_backend.model_path)
    code = main(["generate", "What is 2 + 3?", "-n", "4", "--max-tokens", "32", "--seed", "1",
                 "--strategy", "short-m-at-k", "--option", "m=2", "--json", "--model", model])
    body = json.loads(capsys.readouterr().out)
    assert code == 0 and body["strategy"] == "short-m-at-k"
    assert body["trace"][0]["mode"] == "early-exit" and len(body["trace"][0]["voters"]) == 2
    assert body["usage"]["completion_tokens"] == sum(len(s["token_ids"]) for s in body["samples"])
    code = main(["generate", "What is 2 + 3?", "-n", "4", "--max-tokens", "32", "--seed", "1",
                 "--strategy", "short-m-at-k", "--option", "m=2", "--model", model])
    finished, cancelled = body["trace"][0]["finished"], body["trace"][0]["cancelled"]
    assert code == 0 and (f"stopping: {finished} of 4 chains finished, {cancelled} cancelled "
                          "(early-exit") in capsys.readouterr().out
    code = main(["eval", "--limit", "1", "--n", "4", "--max-tokens", "24", "--strategy",
                 "short-m-at-k", "--option", "m=2", "--output", str(tmp_path / "run"),
                 "--model", model])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    code = main(["eval", "--limit", "1", "--n", "4", "--max-tokens", "24", "--strategy",
                 "short-m-at-k", "--option", "m=5", "--output", str(tmp_path / "bad"),
                 "--model", model])
    assert code != 0 and "m must be an integer in [1, k] = [1, 4]" in capsys.readouterr().err


# ---------------------------------------------------------------- pricing from one pool
from samplescale.analysis import stopping_price  # noqa: E402
from samplescale.analysis.short_m_price import price_short_m  # noqa: E402

POOL = dict(labels=["A", "B", "A", None], correct_label="A", tokens=[5, 3, 8, 10],
            finish=["stop", "stop", "stop", "length"])


def test_pricing_short_m_enumerates_the_k_subsets_exactly():
    # the four 3-subsets, voters (m = 2) the two shortest finished: {0,1,2} -> B,A tie to
    # B (3 tokens) at cut 5, 13 tokens; {0,1,3} -> B, 13; {0,2,3} -> A,A, cut 8, 21;
    # {1,2,3} -> B,A tie to B, 19
    p = price_short_m(ShortMAtK(m=2), **POOL, budget=3)
    assert (p.method, p.accuracy, p.samples, p.tokens) == ("exact", 0.25, 3.0, 66 / 4)
    p = price_short_m(ShortMAtK(m=1), **POOL, budget=4)  # the shortest chain answers B
    assert (p.accuracy, p.tokens) == (0.0, 3 * 4)
    with pytest.raises(ConfigError, match=r"m must be an integer in \[1, k\] = \[1, 2\]"):
        price_short_m(ShortMAtK(m=3), **POOL, budget=2)


def test_pricing_short_m_by_monte_carlo_agrees_with_enumeration(monkeypatch):
    import numpy as np

    rng = np.random.default_rng(0)
    labels = [int(x) for x in rng.integers(0, 3, 10)]
    tokens = [int(x) for x in rng.integers(5, 60, 10)]
    finish = ["stop" if t < 50 else "length" for t in tokens]
    exact = price_short_m(ShortMAtK(m=3), labels, 0, tokens, finish, budget=6)
    monkeypatch.setattr(stopping_price, "MAX_STATES", 0)
    mc = price_short_m(ShortMAtK(m=3), labels, 0, tokens, finish, budget=6,
                       rng=np.random.default_rng(1), draws=4000)
    assert exact.method == "exact" and mc.method == "monte-carlo"
    assert abs(mc.accuracy - exact.accuracy) < 4 * mc.accuracy_se
    assert abs(mc.tokens - exact.tokens) < 4 * mc.tokens_se and mc.samples == 6.0
