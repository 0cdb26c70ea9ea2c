"""Continuous batching through the real server on loopback (the embedded model)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from _server_helpers import in_threads, serve  # noqa: E402

from samplescale.server import create_app  # noqa: E402

pytestmark = pytest.mark.llama


def _chat(model: str, q: str, seed: int, max_tokens: int = 8) -> dict:
    return {"model": model, "max_tokens": max_tokens, "temperature": 1.0, "seed": seed,
            "messages": [{"role": "user", "content": q}]}


def _post_all(url: str, bodies: list[dict]) -> list[httpx.Response]:
    return in_threads(lambda b: httpx.post(url + "/chat/completions", json=b, timeout=300),
                      bodies)


def _answer(r: httpx.Response) -> tuple[str, ...]:
    assert r.status_code == 200, r.text
    return tuple(c["message"]["content"] for c in r.json()["choices"])


@pytest.mark.slow
def test_concurrent_plain_and_strategy_requests_share_steps_and_keep_their_answers(
    llama_backend,
):
    bodies = [_chat("smollm2", f"Name a color number {i}.", seed=i) for i in range(4)]
    bodies += [_chat("self-consistency@2/smollm2", f"What is {i} + 2?", seed=10 + i)
               for i in range(2)]
    bodies[1]["n"] = 2
    app = create_app(llama_backend, "smollm2", max_concurrency=8)
    batcher = llama_backend._live.batcher
    with serve(app) as url:
        alone = [_answer(r) for b in bodies for r in _post_all(url, [b])]
        steps, rows = batcher.steps, batcher.rows
        together = [_answer(r) for r in _post_all(url, bodies)]
    mean = (batcher.rows - rows) / (batcher.steps - steps)
    assert mean > 1.5, f"concurrent requests were not batched ({mean:.2f} rows a step)"
    assert together == alone  # seeded: the same text alone or batched
    assert len(together[1]) == 2 and llama_backend._live.held == (0, 0)


def test_a_client_that_leaves_stops_at_the_next_token_while_others_decode(
    llama_backend, caplog,
):
    """Cancellation (issue 16 item 1) with batching: the abandoned request's sequences are
    released within seconds (1000 tokens would take minutes), the request decoding beside
    it finishes with the answer it gives alone."""
    caplog.set_level(logging.INFO, logger="samplescale.server")
    other = _chat("smollm2", "Say hello.", seed=5, max_tokens=24)
    long = {"model": "smollm2", "prompt": "1, 2, 3, 4, 5,", "max_tokens": 1000,
            "temperature": 0}
    app = create_app(llama_backend, "smollm2", max_concurrency=4)
    with serve(app) as url:
        want = _answer(_post_all(url, [other])[0])
        got: list = []
        t = threading.Thread(target=lambda: got.extend(_post_all(url, [other])))
        t.start()
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/completions", json=long, timeout=2.0)
        left = time.monotonic()
        while llama_backend._live.held[1] >= 1000 and time.monotonic() - left < 20:
            time.sleep(0.05)
        released = time.monotonic() - left
        t.join(300)
    assert released < 20, "the abandoned request kept its sequence"
    assert _answer(got[0]) == want
    assert "the client disconnected; stopping the run" in caplog.text
    assert llama_backend._live.held == (0, 0)


@pytest.mark.parametrize("batching", [True, False], ids=["batching", "no-batching"])
def test_requests_whose_clients_left_while_waiting_never_decode_their_prompts(
    llama_backend, monkeypatch, batching,
):
    """Disconnect storm (issue 16, found by benchmarks/attack_server_batching.py): requests
    waiting for room in the cache (batching) or for their turn (``--no-batching``) whose
    clients leave are dropped while they wait. Before, each decoded its prompt once room
    came, only to stop at its first token: one queued prompt after another, 12 s of work
    for nobody after a storm of 48 clients."""
    live = llama_backend._live
    monkeypatch.setattr(live, "batching", batching)
    decoded: list[int] = []
    prefix = live.pool.prefix
    monkeypatch.setattr(live.pool, "prefix",
                        lambda *a, **k: decoded.append(1) or prefix(*a, **k))
    per_seq = live.pool.max_cells // live.pool.max_sequences - 8
    hog = {"model": "smollm2", "prompt": "1, 2, 3,", "max_tokens": per_seq, "temperature": 1.0,
           "n": live.pool.max_sequences}  # every sequence and cell: the others wait for room
    app = create_app(llama_backend, "smollm2", max_concurrency=8)

    def leave_after(body: dict, timeout_s: float) -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + ("/completions" if "prompt" in body else "/chat/completions"),
                       json=body, timeout=timeout_s)

    with serve(app) as url:
        hog_thread = threading.Thread(target=leave_after, args=(hog, 2.5))
        hog_thread.start()
        time.sleep(0.5)
        in_threads(lambda i: leave_after(_chat("smollm2", f"Say {i}.", i, 200), 1.0), list(range(5)))
        hog_thread.join(30)
        left = time.monotonic()
        while httpx.get(url.removesuffix("/v1") + "/health").json()["admitted"]:
            assert time.monotonic() - left < 10, "abandoned requests still running"
            time.sleep(0.05)
        assert decoded == [1]  # the hog's prompt only
        assert _answer(_post_all(url, [_chat("smollm2", "Say hi.", seed=1)])[0])
    assert live.held == (0, 0)
