"""The llama.cpp KV cache between calls (issue 15): prefix sessions, the sequence pool,
cached vs recomputed logits, reproducibility, no leaked sequences, Usage.cached_prompt_tokens."""

from __future__ import annotations

import numpy as np
import pytest

from samplescale.backends.base import prefix_session, scored_logits
from samplescale.backends.budget import TokenBudgetBackend
from samplescale.backends.llama_kv import common_prefix
from samplescale.config import SamplingParams
from samplescale.sampling.functional import log_softmax
from samplescale.strategies import get_strategy
from samplescale.types import Prompt, Usage

pytestmark = pytest.mark.llama

PROMPT = Prompt.user("What is 12 + 30? Think step by step.")
# Total variation between a next-token distribution computed with a cached prefix and the
# same one computed from scratch. llama.cpp's CPU kernels (8-bit activations, tiled matrix
# products) round differently with the number of tokens in a batch, and a cached prompt
# decodes only its suffix: measured 0 to 0.026 on SmolLM2-135M Q4_1 (log-probabilities of the
# 50 likeliest tokens within 0.85 nats, the likeliest token the same). A wrong cached prefix
# gives a distribution of another context (total variation above 0.2 here).
TOL_TV = 0.05


def assert_idle(backend) -> None:
    """No sequence left in the KV cache, and llama.cpp agrees with the pool."""
    assert backend.cache_usage() == (0, 0)
    backend._pool.check()


def tv(x: np.ndarray, y: np.ndarray) -> float:
    """Total variation distance between the softmax distributions of two logit vectors."""
    px = np.exp(log_softmax(np.asarray(x, dtype=np.float64).reshape(1, -1))[0])
    py = np.exp(log_softmax(np.asarray(y, dtype=np.float64).reshape(1, -1))[0])
    return float(np.abs(px - py).sum() / 2)


def fresh_logits(backend, tokens: list[int]) -> np.ndarray:
    """Next-token logits after ``tokens`` computed from an empty cache."""
    with backend.prefix_session():
        logits, cached = backend.cached_logits_at(tokens)
    assert cached == 0
    return logits[0]


def test_cached_and_recomputed_logits_agree(llama_backend):
    """Scoring a prompt whose prefix a session already holds decodes only the suffix, and
    gives the same next-token distribution as from scratch (within TOL nats)."""
    b = llama_backend
    base = b.tokenize_prompt(PROMPT)
    longer = b.tokenize_prompt(PROMPT.continued("12 + 30 = 42, so the answer is"))
    assert longer[: len(base)] == base
    with b.prefix_session():
        _, first = b.cached_logits_at(base)
        cached_logits, cached = b.cached_logits_at(longer)
    assert first == 0 and cached == len(base)  # the whole first prompt came from the cache
    fresh = fresh_logits(b, longer)
    assert tv(cached_logits, fresh) < TOL_TV
    assert int(np.argmax(cached_logits)) == int(np.argmax(fresh))
    assert_idle(b)


def test_generate_reports_cached_prompt_tokens_and_keeps_samples(llama_backend):
    """In a session a sample's sequence stays cached: continuing it serves everything but
    the retokenised tail from the cache; outside a session nothing is reused."""
    b = llama_backend
    params = SamplingParams(n=2, max_tokens=12, temperature=0.8, seed=3)
    outside = b.generate(PROMPT, params)
    again = b.generate(PROMPT, params)
    assert outside.usage.cached_prompt_tokens == again.usage.cached_prompt_tokens == 0
    with b.prefix_session():
        g = b.generate(PROMPT, params)
        n_prompt = len(b.tokenize_prompt(PROMPT))
        assert b.cache_usage()[0] == 2  # one sequence per sample
        repeat = b.generate(PROMPT, params)
        assert repeat.usage.cached_prompt_tokens == n_prompt - 1  # the last one is decoded
        assert repeat.usage.prompt_tokens == n_prompt
        for s in g.samples:
            toks = b.tokenize_prompt(PROMPT.continued(s.text))
            held = [*b.tokenize_prompt(PROMPT), *s.token_ids[:-1]]  # the last is never decoded
            expected = min(common_prefix(toks, held), len(toks) - 1)
            assert expected > n_prompt  # the step's own tokens are reused
            assert b.cached_logits_at(toks)[1] >= expected
    assert [s.text for s in g.samples] == [s.text for s in outside.samples]
    assert_idle(b)


def test_a_copy_continues_its_own_parent(llama_backend):
    """Resampling copies the right parent: two different cached partial solutions, each
    continued, give the logits of their own text (not the other's)."""
    b = llama_backend
    a = b.tokenize_prompt(PROMPT.continued("First, add the tens: 10 + 30 = 40."))
    c = b.tokenize_prompt(PROMPT.continued("We need to count apples in the basket."))
    with b.prefix_session():
        b.cached_logits_at(a)
        b.cached_logits_at(c)
        # extend both by the same suffix: each is served from its own cached sequence
        suffix = b.tokenize_text(" Then")
        la, ka = b.cached_logits_at(a + suffix)
        lc, kc = b.cached_logits_at(c + suffix)
        assert (ka, kc) == (len(a), len(c))
    fa, fc = fresh_logits(b, a + suffix), fresh_logits(b, c + suffix)
    assert tv(la, fa) < TOL_TV and tv(lc, fc) < TOL_TV
    assert tv(la, fc) > 0.2 and tv(lc, fa) > 0.2  # the two parents' contexts differ
    assert_idle(b)


def test_the_pool_frees_least_recently_used_sequences_within_its_budget(llama_backend):
    """More cached prefixes than sequence ids: the least recently used is freed, cells
    stay within the budget, and the pool agrees with llama.cpp throughout."""
    b = llama_backend
    pool = b._pool
    texts = [f"Fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(20)]
    with b.prefix_session():
        for t in texts:
            b.cached_logits_at(b.tokenize_prompt(PROMPT.continued(t)))
            assert pool.live_sequences <= b.n_seq_max
            assert pool.cells_used() <= b.n_ctx
            pool.check()
        assert pool.live_sequences == b.n_seq_max
        # the most recent prefix is still cached, the first one was freed (only the shared
        # prompt part of it is served, from another sequence)
        last = b.tokenize_prompt(PROMPT.continued(texts[-1]))
        first = b.tokenize_prompt(PROMPT.continued(texts[0]))
        assert b.cached_logits_at(last)[1] == len(last) - 1
        assert b.cached_logits_at(first)[1] < len(first) - 1
    assert_idle(b)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, options",
    [
        ("particle-filtering", {}),
        ("beam-search", {"beam_width": 2, "expansions": 2}),
        ("particle-filtering", {"scorer": "p-true-in-context"}),
        ("beam-search", {"beam_width": 2, "expansions": 2, "scorer": "p-true-in-context"}),
    ],
)
def test_searches_reuse_the_cache_reproducibly_and_free_it(llama_backend, name, options):
    """A seeded search gives the same Result on a fresh backend and after other calls,
    serves most prompt tokens from the cache, spends exactly its token budget's count,
    and leaves no sequence behind."""
    from samplescale.backends.llamacpp import LlamaCppBackend

    strategy = get_strategy(name, max_steps=4, token_budget=96, **options)
    params = SamplingParams(n=4, temperature=0.8, max_tokens=24, seed=1)
    fresh = LlamaCppBackend(n_ctx=4096)
    r1 = strategy.run(fresh, PROMPT, params)
    assert_idle(fresh)
    llama_backend.generate(PROMPT, SamplingParams(n=3, max_tokens=7, seed=2))
    llama_backend.logits_at(llama_backend.tokenize_prompt(PROMPT.continued("So")))
    with llama_backend.prefix_session():  # a session left open elsewhere is closed first
        pass
    r2 = strategy.run(llama_backend, PROMPT, params)
    assert_idle(llama_backend)
    assert r1.model_dump(exclude={"usage"}) == r2.model_dump(exclude={"usage"})
    u1, u2 = r1.usage, r2.usage
    assert (u1.prompt_tokens, u1.cached_prompt_tokens) == (u2.prompt_tokens, u2.cached_prompt_tokens)
    assert u1.cached_prompt_tokens > u1.prompt_tokens / 2
    end = r1.trace[-1]
    assert u1.completion_tokens == end["policy_tokens"] <= 96


def test_budget_wrapper_charges_cached_scoring_like_logits_at(llama_backend):
    """TokenBudgetBackend charges cached_logits_at as logits_at and reports the cached
    count of the model it wraps; prefix_session passes through it."""
    wrapped = TokenBudgetBackend(llama_backend, 10_000)
    toks = llama_backend.tokenize_prompt(PROMPT)
    with prefix_session(wrapped):
        logits, cached = scored_logits(wrapped, toks)
        assert cached == 0 and wrapped.spent == len(toks)
        again, cached = scored_logits(wrapped, toks + [int(np.argmax(logits))])
        assert cached == len(toks) and wrapped.spent == len(toks) + 1
        assert llama_backend.cache_usage()[0] == 1
    assert_idle(llama_backend)


def test_usage_cached_tokens_are_within_prompt_tokens_and_add_up():
    with pytest.raises(ValueError, match=r"cached_prompt_tokens \(5\) must be in \[0, prompt_tokens=4\]"):
        Usage(prompt_tokens=4, cached_prompt_tokens=5)
    total = Usage(prompt_tokens=10, cached_prompt_tokens=7) + Usage(prompt_tokens=5, cached_prompt_tokens=1)
    assert (total.prompt_tokens, total.cached_prompt_tokens) == (15, 8)


def test_cached_tokens_travel_in_openai_usage():
    """The server writes Usage.cached_prompt_tokens as prompt_tokens_details.cached_tokens,
    and the OpenAI client backend reads it back (a count above prompt_tokens is refused)."""
    from samplescale.backends.openai_wire import UpstreamError, parse_reply
    from samplescale.server.responses import usage_body

    body = usage_body(Usage(prompt_tokens=40, cached_prompt_tokens=31, completion_tokens=5))
    assert body == {
        "prompt_tokens": 40,
        "completion_tokens": 5,
        "total_tokens": 45,
        "prompt_tokens_details": {"cached_tokens": 31},
    }
    choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    _, usage = parse_reply({"choices": [choice], "usage": body}, True, False, "http://up")
    assert (usage.prompt_tokens, usage.cached_prompt_tokens) == (40, 31)
    bad = {**body, "prompt_tokens_details": {"cached_tokens": 41}}
    with pytest.raises(UpstreamError, match="malformed usage"):
        parse_reply({"choices": [choice], "usage": bad}, True, False, "http://up")
