"""The backend protocol, the same checks on every backend that samples with samplescale's
own pipeline: the exact toy LM always, and the two real engines on the embedded SmolLM2
(llama.cpp, and transformers on the same GGUF)."""

from __future__ import annotations

import numpy as np
import pytest

from samplescale.backends.base import Backend, LogitsModel, StreamingBackend, collect
from samplescale.backends.fake import ToyLM
from samplescale.config import SamplingParams
from samplescale.types import Generation, Prompt

KINDS = [
    "toy",
    pytest.param("llama_backend", marks=pytest.mark.llama),
    pytest.param("hf_backend", marks=pytest.mark.transformers),
]


@pytest.fixture(params=KINDS)
def backend(request):
    if request.param == "toy":
        return ToyLM()
    return request.getfixturevalue(request.param)


def _prompt(backend) -> Prompt:
    return (
        Prompt(text="", prefix="1") if isinstance(backend, ToyLM) else Prompt.user("Count to five.")
    )


def test_protocols_and_capabilities(backend):
    assert isinstance(backend, Backend) and isinstance(backend, StreamingBackend)
    assert isinstance(backend, LogitsModel)
    caps = backend.capabilities
    assert caps.logits and caps.seeds and caps.parallel_n and caps.streaming


def test_seeded_generate_stream_and_usage(backend):
    prompt = _prompt(backend)
    params = SamplingParams(n=3, temperature=1.0, max_tokens=6, seed=11)
    g = backend.generate(prompt, params)
    assert isinstance(g, Generation) and len(g.samples) == 3 and g.usage.model_calls == 1
    assert g.usage.completion_tokens == sum(s.num_tokens for s in g.samples)
    assert backend.generate(prompt, params).samples == g.samples  # same seed, same samples
    deltas: dict[int, str] = {}
    streamed = collect(
        backend.stream(prompt, params),
        on_delta=lambda d: deltas.__setitem__(d.index, deltas.get(d.index, "") + d.text),
    )
    assert streamed.samples == g.samples
    assert {i: t for i, t in deltas.items()} == {
        i: s.text for i, s in enumerate(g.samples) if s.text
    }
    for s in g.samples:
        assert s.status == "ok" and 1 <= s.num_tokens <= 6
        assert len(s.logprobs) == len(s.sampling_logprobs) == s.num_tokens
        # temperature 1 and no truncation: the sampling distribution is the model's
        np.testing.assert_allclose(s.sampling_logprobs, s.logprobs, atol=1e-4)


def test_logits_at_rows_are_the_next_token_logits(backend):
    ids = backend.tokenize_prompt(_prompt(backend))
    g = backend.generate(_prompt(backend), SamplingParams(temperature=0, max_tokens=3))
    k = g.samples[0].num_tokens
    # row i: the logits after the prompt and the first i generated tokens
    rows = backend.logits_at(ids + list(g.samples[0].token_ids[:-1]), last=k)
    assert rows.shape == (k, backend.vocab_size)
    # greedy picked each row's argmax
    assert [int(r.argmax()) for r in rows] == list(g.samples[0].token_ids)
    assert all(isinstance(backend.piece(t), bytes) for t in g.samples[0].token_ids)
