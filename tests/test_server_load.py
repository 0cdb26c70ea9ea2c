"""Load: 32 concurrent clients x 4 requests against the server on loopback.

Every request must be answered exactly once (no loss, no duplicate), each with its own
answer (no cross-talk between concurrent requests), within bounded time.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi")

from _server_helpers import percentile, run_load, serve  # noqa: E402

from samplescale import ScriptedBackend  # noqa: E402
from samplescale.server import create_app  # noqa: E402

CLIENTS, PER_CLIENT = 32, 4


def _echo(prompt, i):
    tag = re.search(r"tag=(\S+)", prompt.messages[-1].content).group(1)
    return f"reply to {tag}: The answer is {len(tag)}."


def _check(records, expect):
    ids = [r[0] for r in records]
    assert len(records) == CLIENTS * PER_CLIENT
    assert sorted(ids) == sorted({f"c{c}-r{k}" for c in range(CLIENTS) for k in range(PER_CLIENT)})
    assert len({body["id"] for *_, body in records}) == len(records)  # unique response ids
    for rid, status, _, body in records:
        assert status == 200, body
        expect(rid, body)


def test_load_fake_backend_strategy_requests():
    backend = ScriptedBackend(_echo)
    app = create_app(backend, "fake", max_queue=CLIENTS, max_concurrency=4)

    def body(c, k):
        return {"model": "self-consistency@3/fake",
                "messages": [{"role": "user", "content": f"tag=c{c}-r{k} go"}]}

    def expect(rid, body):
        text = body["choices"][0]["message"]["content"]
        assert text == f"reply to {rid}: The answer is {len(rid)}."
        cands = body["samplescale"]["candidates"]
        assert len(cands) == 3 and all(c["text"] == text for c in cands)

    with serve(app) as url:
        records = run_load(url, CLIENTS, PER_CLIENT, body, timeout_s=60)
    _check(records, expect)
    assert len(backend.calls) == CLIENTS * PER_CLIENT  # each request ran exactly once
    assert percentile([r[2] for r in records], 0.99) < 30


@pytest.mark.llama
def test_load_embedded_model(llama_backend):
    """Greedy replies to four distinct prompts, computed alone first: under load every
    response must equal its prompt's reference (a crossed wire would show)."""
    from samplescale import Prompt, SamplingParams

    prompts = [f"{i}, {i + 1}, {i + 2}," for i in range(4)]
    params = SamplingParams(temperature=0.0, max_tokens=2)
    reference = {p: llama_backend.generate(Prompt(text=p), params).samples[0].text for p in prompts}
    assert len(set(reference.values())) == 4
    app = create_app(llama_backend, "smollm2", max_queue=CLIENTS, max_concurrency=2)

    def body(c, k):
        return {"model": "smollm2", "temperature": 0, "max_tokens": 2,
                "prompt": prompts[(c + k) % 4]}

    def expect(rid, body):
        c, k = (int(x) for x in re.findall(r"\d+", rid))
        assert body["choices"][0]["text"] == reference[prompts[(c + k) % 4]]

    with serve(app) as url:
        records = run_load(url, CLIENTS, PER_CLIENT, body, timeout_s=120, path="/completions")
    _check(records, expect)
