"""The sampler set on the real embedded model (SmolLM2-135M via llama.cpp)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.decoders.kl_guided import kl_guided_generate
from samplescale.sampling import functional as F
from samplescale.sampling import pipeline
from samplescale.types import Prompt

pytestmark = pytest.mark.llama

PROMPT = Prompt.user("Name a colour.")


def test_prefix_cache_branches_give_exact_logits(llama_backend):
    b = llama_backend
    base = b.tokenize_prompt(PROMPT)
    a, c = base + [100, 200], base + [300]
    fresh = {}
    for seq in (a, c, a + [5], c + [7, 8]):
        b.generate(PROMPT, SamplingParams(max_tokens=1))  # clears the cache
        fresh[tuple(seq)] = b.logits_at(seq, 2)
    # interleaved branches reuse each other's prefix and must not disturb each other
    for seq in (a, c, a + [5], c + [7, 8], a, c + [7, 8]):
        np.testing.assert_allclose(b.logits_at(seq, 2), fresh[tuple(seq)], atol=1e-4)


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(typical_p=0.5),
        SamplingParams(epsilon=0.02),
        SamplingParams(eta=0.05),
        SamplingParams(top_n_sigma=1.0, temperature=1.5),
        SamplingParams(min_p=0.1, top_p=0.9, top_k=20, temperature=0.7),
        SamplingParams(temperature=0.0, fire_temperature=2.0, fire_tokens=1),
    ],
    ids=["typical", "epsilon", "eta", "top_n_sigma", "mixed", "fire"],
)
def test_first_tokens_lie_in_the_kept_set_with_processed_logprob(llama_backend, params):
    logits = llama_backend.next_token_logits(PROMPT)
    processed = pipeline.process(logits, params)
    g = llama_backend.generate(PROMPT, params.replace(n=8, max_tokens=4, seed=1))
    lp = F.log_softmax(processed)[0]
    raw = F.log_softmax(logits)[0]
    for s in g.samples:
        t = s.token_ids[0]
        assert np.isfinite(processed[0, t])
        assert s.sampling_logprobs[0] == pytest.approx(float(lp[t]), abs=1e-4)
        assert s.logprobs[0] == pytest.approx(float(raw[t]), abs=1e-4)


def test_repetition_penalty_lowers_repeats_on_the_real_model(llama_backend):
    p = Prompt(text="the the the the the the the the")
    plain = llama_backend.generate(p, SamplingParams(temperature=0, max_tokens=12))
    penal = llama_backend.generate(
        p, SamplingParams(temperature=0, max_tokens=12, repetition_penalty=3.0)
    )
    count = lambda s: len(s.token_ids) - len(set(s.token_ids))  # noqa: E731
    assert count(penal.samples[0]) < count(plain.samples[0])


def test_arithmetic_first_tokens_are_evenly_spread(llama_backend):
    """With n evenly spaced codes, token t is chosen floor(n p_t) or ceil(n p_t) times."""
    n = 16
    params = SamplingParams(n=n, max_tokens=1, temperature=1.0, top_k=8, seed=4)
    probs = F.softmax(pipeline.process(llama_backend.next_token_logits(PROMPT), params))[0]
    g = generate(llama_backend, PROMPT, params.replace(decoding="arithmetic"))
    counts = np.bincount([s.token_ids[0] for s in g.samples], minlength=len(probs))
    for t in np.flatnonzero(probs > 0):
        assert math.floor(n * probs[t]) <= counts[t] <= math.ceil(n * probs[t])
    again = generate(llama_backend, PROMPT, params.replace(decoding="arithmetic"))
    assert [s.token_ids for s in again.samples] == [s.token_ids for s in g.samples]


def test_kl_guided_temperature_on_the_real_model(llama_backend):
    prompt = Prompt.user("What is the vault code?").model_copy(
        update={"grounding": "The vault code is 4721."}
    )
    params = SamplingParams(n=2, max_tokens=12, temperature=1.0, kl_sigma=0.5, seed=0)
    out = kl_guided_generate(llama_backend, prompt, params)
    assert len(out.generation.samples) == 2
    for temps, kls in zip(out.temperatures, out.kl):
        assert all(0 < t <= 1.0 for t in temps) and all(k >= 0 for k in kls)
        for t, k in zip(temps, kls):
            assert t == pytest.approx(2.0 ** (-k / 0.5))
    assert max(max(k) for k in out.kl) > 0.1  # the source changes some predictions


def test_seeded_generate_does_not_depend_on_earlier_calls(llama_backend):
    """generate starts from an empty KV cache, so a seeded pool is the same whatever was
    scored or generated before (llama.cpp's numerics depend on batching)."""
    b = llama_backend
    params = SamplingParams(temperature=0.8, max_tokens=12, n=6, seed=3)
    first = b.generate(PROMPT, params)
    b.logits_at(b.tokenize_prompt(Prompt.user("Another prompt.")) + [5, 6], 2)
    b.generate(Prompt.user("Something else."), SamplingParams(max_tokens=4, n=3, seed=1))
    again = b.generate(PROMPT, params)
    assert [s.token_ids for s in again.samples] == [s.token_ids for s in first.samples]


def test_logits_at_after_a_full_generate_finds_room():
    """generate frees its samples' KV cells, so logits_at can use the whole cache after it."""
    pytest.importorskip("llama_cpp")
    from samplescale.backends.llamacpp import LlamaCppBackend

    b = LlamaCppBackend(n_ctx=512, n_seq_max=4)
    b.generate(PROMPT, SamplingParams(n=4, max_tokens=110, seed=0, temperature=1.0))
    ids = b.tokenize_prompt(PROMPT)
    ids = (ids * (300 // len(ids) + 1))[:300]
    assert b.logits_at(ids).shape == (1, b.vocab_size)


def test_max_tokens_beyond_the_trained_context_fails_before_allocation(llama_backend):
    from samplescale.backends.llamacpp import LlamaCppBackend
    from samplescale.errors import ConfigError

    trained = llama_backend.n_ctx_train
    with pytest.raises(
        ConfigError, match=f"max_tokens must be below the model's trained context of {trained}"
    ):
        LlamaCppBackend(n_ctx=4096, max_tokens=trained)
    with pytest.raises(ConfigError, match="exceeds n_seq_max x trained context"):
        LlamaCppBackend(n_ctx=2 * trained + 64, n_seq_max=2)
