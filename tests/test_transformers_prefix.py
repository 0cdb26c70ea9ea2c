"""Prefix caching on the transformers backend (issue 15, item 3): the DynamicCache store,
cached vs recomputed logits, reproducibility, no leaked sequences, cached_prompt_tokens.

Tolerance: a cached prefix runs only the suffix through the model, so the matrix products
have other shapes and round differently in float32. Measured on SmolLM2-135M (the GGUF
dequantized to float32, one torch thread), every position of three continuations of
three chat prompts: max |logit difference| 0 to 5.2e-5, the argmax always the same.
Bound: TOL_LOGIT = 1e-3, far below what a wrong prefix does (logits move by whole units).
"""

from __future__ import annotations

import numpy as np
import pytest

from samplescale.backends.base import prefix_session
from samplescale.backends.budget import TokenBudgetBackend
from samplescale.config import SamplingParams
from samplescale.strategies import get_strategy
from samplescale.types import Prompt

pytestmark = pytest.mark.transformers
torch = pytest.importorskip("torch", reason="the 'transformers' extra is not installed")
transformers = pytest.importorskip("transformers", reason="the 'transformers' extra is not installed")

from samplescale.backends.hf_prefix import PrefixStore, share  # noqa: E402

PROMPT = Prompt.user("What is 12 + 30? Think step by step.")
TOL_LOGIT = 1e-3


def _cache(tokens: int, fill: float = 1.0, batch: int = 1):
    """A two-layer DynamicCache of ``tokens`` positions; position p holds ``fill + p``."""
    pos = torch.arange(tokens, dtype=torch.float32)[None, None, :, None]
    kv = (fill + pos).expand(batch, 2, tokens, 4).contiguous()
    return transformers.DynamicCache(ddp_cache_data=[(kv, kv.clone()), (kv.clone(), kv.clone())])


def _keys(cache) -> list[float]:
    return cache.layers[0].keys[0, 0, :, 0].tolist()


def test_share_then_grow_or_crop_leaves_the_original():
    c = _cache(5)
    a, b = share(c), share(c)
    a.crop(-2)
    new = torch.full((1, 2, 1, 4), 9.0)
    for i in range(2):
        b.update(new, new, i)
    assert _keys(c) == [1, 2, 3, 4, 5]
    assert _keys(a) == [1, 2, 3] and _keys(b) == [1, 2, 3, 4, 5, 9]
    assert c.get_seq_length() == 5


def test_store_serves_the_longest_prefix_cropped_and_keeps_its_entry():
    s = PrefixStore(max_entries=4, max_tokens=100)
    s.add([1, 2, 3, 4], _cache(4, fill=10))
    s.add([1, 2, 7], _cache(3, fill=20))
    cache, k = s.lookup([1, 2, 3, 9, 9], limit=4)
    assert k == 3 and _keys(cache) == [10, 11, 12]  # cropped copy of the first entry
    cache, k = s.lookup([1, 2, 3, 4], limit=3)  # at least one token left to run
    assert k == 3 and _keys(cache) == [10, 11, 12]
    cache, k = s.lookup([1, 2, 7, 5], limit=3)
    assert k == 3 and _keys(cache) == [20, 21, 22]
    assert s.lookup([5, 1], limit=1) == (None, 0)
    cache, _ = s.lookup([1, 2, 3, 4, 5], limit=4)
    assert _keys(cache) == [10, 11, 12, 13] and len(s) == 2 and s.tokens == 7


def test_store_budget_drops_least_recently_used():
    s = PrefixStore(max_entries=2, max_tokens=8)
    s.add([1, 1, 1], _cache(3))
    s.add([2, 2, 2], _cache(3))
    s.lookup([1, 1, 1, 5], limit=3)  # entry 1 used last
    s.add([3, 3, 3], _cache(3))  # over max_entries: entry 2 goes
    assert s.lookup([2, 2, 2], 2) == (None, 0) and s.lookup([1, 1, 1], 2)[1] == 2
    s.add([4] * 6, _cache(6))  # 3 + 3 + 6 > 8 tokens: the two oldest go
    assert len(s) == 1 and s.tokens == 6
    s.add([5] * 9, _cache(9))  # longer than the whole budget: not stored
    assert len(s) == 1


def full_logits(backend, tokens: list[int]) -> np.ndarray:
    """Next-token logits after ``tokens`` from one full pass (nothing cached)."""
    with backend.prefix_session():
        logits, cached = backend.cached_logits_at(tokens)
    assert cached == 0
    return logits[0]


def test_cached_and_recomputed_logits_agree(hf_backend):
    b = hf_backend
    assert b.capabilities.prefix_caching
    base = b.tokenize_prompt(PROMPT)
    longer = b.tokenize_prompt(PROMPT.continued("12 + 30 = 42, so the answer is"))
    assert longer[: len(base)] == base
    last = len(longer) - len(base)  # every position after the cached prompt
    with b.prefix_session():
        _, first = b.cached_logits_at(base)
        cached_logits, cached = b.cached_logits_at(longer, last)
        assert b.cache_usage() == (2, len(base) + len(longer))
    assert first == 0 and cached == len(base)
    with b.prefix_session():
        fresh, none = b.cached_logits_at(longer, last)
    assert none == 0 and fresh.shape == cached_logits.shape == (last, b.vocab_size)
    assert np.abs(cached_logits - fresh).max() <= TOL_LOGIT
    assert (cached_logits.argmax(-1) == fresh.argmax(-1)).all()
    assert np.abs(cached_logits[-1] - full_logits(b, longer)).max() <= TOL_LOGIT
    assert b.cache_usage() == (0, 0)


def test_generate_caches_prompt_and_samples(hf_backend):
    """A call in a session caches its prompt and every sample; a call continuing a sample
    prefills only what follows it, and its samples match the uncached call's."""
    b = hf_backend
    params = SamplingParams(n=2, temperature=0.8, max_tokens=12, seed=5)
    prompt_ids = b.tokenize_prompt(PROMPT)
    n_prompt = len(prompt_ids)
    with b.prefix_session():
        gen = b.generate(PROMPT, params)
        assert gen.usage.cached_prompt_tokens == 0
        # the prompt and each sample's sequence (all its tokens but the last, which was
        # never fed); identical sequences are one entry
        held = {tuple(prompt_ids)} | {tuple(prompt_ids) + s.token_ids[:-1] for s in gen.samples}
        assert b.cache_usage() == (len(held), sum(map(len, held)))
        again = b.generate(PROMPT, params)
        assert again.usage.cached_prompt_tokens == n_prompt - 1  # the last one is run
        assert [s.token_ids for s in again.samples] == [s.token_ids for s in gen.samples]
        for x, y in zip(again.samples, gen.samples):  # the last prompt token ran on a cache
            assert np.abs(np.subtract(x.logprobs, y.logprobs)).max() <= TOL_LOGIT
        s = gen.samples[0]
        follow = PROMPT.continued(s.text)
        ids = b.tokenize_prompt(follow)
        step = b.generate(follow, params.replace(n=1, max_tokens=6))
    cached = step.usage.cached_prompt_tokens
    # served from the sample's sequence: the prompt and the sample's tokens that
    # re-tokenize the same (its last token never entered the cache)
    assert n_prompt < cached <= min(len(ids) - 1, n_prompt + s.num_tokens - 1)
    alone = b.generate(follow, params.replace(n=1, max_tokens=6))
    assert alone.usage.cached_prompt_tokens == 0
    assert alone.samples[0].token_ids == step.samples[0].token_ids
    diff = np.abs(np.subtract(alone.samples[0].logprobs, step.samples[0].logprobs)).max()
    assert diff <= TOL_LOGIT
    assert b.cache_usage() == (0, 0)


def test_session_budget_and_wrappers(hf_backend, monkeypatch):
    """The cache stays within ``cache_tokens``; prefix_session passes through a budget
    wrapper; nested sessions share the outer one and nothing is left after it."""
    b = hf_backend
    monkeypatch.setattr(b, "cache_tokens", 80)
    wrapped = TokenBudgetBackend(b, 10_000)
    with prefix_session(wrapped):
        with prefix_session(wrapped):
            for i in range(3):
                b.generate(PROMPT, SamplingParams(n=2, max_tokens=8, seed=i))
                assert b.cache_usage()[1] <= 80
        assert b.cache_usage()[0] >= 1
    assert b.cache_usage() == (0, 0)


SEARCH_PARAMS = SamplingParams(n=4, temperature=0.8, max_tokens=24, seed=1)


@pytest.mark.slow
def test_particle_filtering_reuses_the_cache_reproducibly(hf_backend):
    """A seeded particle filter serves most prompt tokens from the cache (measured 486 of
    792), gives the same Result after other calls, and leaves nothing cached."""
    b = hf_backend
    strategy = get_strategy("particle-filtering", max_steps=4, token_budget=96)
    r1 = strategy.run(b, PROMPT, SEARCH_PARAMS)
    assert b.cache_usage() == (0, 0)
    b.generate(PROMPT, SamplingParams(n=2, max_tokens=5, seed=2))
    b.logits_at(b.tokenize_prompt(PROMPT.continued("So")))
    r2 = strategy.run(b, PROMPT, SEARCH_PARAMS)
    assert r1.model_dump(exclude={"usage"}) == r2.model_dump(exclude={"usage"})
    u1, u2 = r1.usage, r2.usage
    assert (u1.prompt_tokens, u1.cached_prompt_tokens) == (u2.prompt_tokens, u2.cached_prompt_tokens)
    assert u1.cached_prompt_tokens > u1.prompt_tokens / 2
    assert b.cache_usage() == (0, 0)


@pytest.mark.slow
def test_beam_search_reuses_the_cache(hf_backend):
    """Beam search at this budget makes few calls: its scorer's first judge prompt shares
    only the chat preamble with the policy's (measured 86 of 246 prompt tokens cached)."""
    b = hf_backend
    strategy = get_strategy("beam-search", max_steps=4, token_budget=96, beam_width=2, expansions=2)
    r = strategy.run(b, PROMPT, SEARCH_PARAMS)
    assert r.usage.cached_prompt_tokens > r.usage.prompt_tokens / 4
    assert b.cache_usage() == (0, 0)
