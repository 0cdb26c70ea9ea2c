"""Several prompts' samples in shared batch steps on llama.cpp (issue 15):
``LlamaCppBackend.generate_prompts`` and :func:`samplescale.steps.generate_steps_many`."""

from __future__ import annotations

import numpy as np
import pytest

from samplescale.backends.budget import TokenBudgetBackend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.rng import spawn
from samplescale.steps import generate_steps, generate_steps_many
from samplescale.types import Prompt

pytestmark = pytest.mark.llama

PROMPT = Prompt.user("What is 12 + 30? Think step by step.")
REQUESTS = [
    (PROMPT, SamplingParams(n=2, temperature=0.9, max_tokens=12, seed=3)),
    (PROMPT.continued("First, 12 + 30"), SamplingParams(n=1, temperature=0.7, max_tokens=9,
                                                         seed=4)),
    (Prompt.user("Name a prime number."), SamplingParams(n=1, temperature=0.0, max_tokens=6)),
]


def assert_idle(backend) -> None:
    assert backend.cache_usage() == (0, 0)
    assert backend._live.held == (0, 0)
    backend._pool.check()


def texts(gen) -> list[tuple[str, tuple[int, ...], str]]:
    return [(s.text, tuple(s.token_ids), s.finish_reason) for s in gen.samples]


def test_requests_decoded_together_draw_what_each_draws_alone(llama_backend):
    """Rows of one llama.cpp batch step are computed independently on SmolLM2 (see
    backends/llama_sched.py), so each request's samples are the ones its own call draws:
    same tokens, same log-probabilities; usage is each request's own."""
    b = llama_backend
    alone = [b.generate(p, params) for p, params in REQUESTS]
    together = b.generate_prompts(REQUESTS)
    assert_idle(b)
    assert [texts(g) for g in together] == [texts(g) for g in alone]
    for g, a in zip(together, alone):
        np.testing.assert_allclose(
            [lp for s in g.samples for lp in s.logprobs],
            [lp for s in a.samples for lp in s.logprobs], atol=1e-5,
        )
        assert g.usage.prompt_tokens == a.usage.prompt_tokens
        assert g.usage.completion_tokens == sum(s.num_tokens for s in g.samples)
        assert g.usage.model_calls == 1
    total = sum(g.usage.wall_time_s for g in together)
    for g in together:  # the call's seconds shared out by completion tokens
        share = g.usage.completion_tokens / sum(x.usage.completion_tokens for x in together)
        assert g.usage.wall_time_s == pytest.approx(total * share, rel=1e-9)


def test_unseeded_requests_use_the_streams_of_their_own_generators(llama_backend):
    b = llama_backend
    reqs = [(p, params.replace(seed=None)) for p, params in REQUESTS[:2]]
    alone = [b.generate(p, params, g) for (p, params), g in zip(reqs, spawn(
        np.random.default_rng(5), 2))]
    together = b.generate_prompts(reqs, spawn(np.random.default_rng(5), 2))
    assert [texts(g) for g in together] == [texts(g) for g in alone]


def test_in_a_session_prompts_are_served_from_the_cache_and_freed_at_the_end(llama_backend):
    b = llama_backend
    with b.prefix_session():
        b.generate(PROMPT, SamplingParams(n=1, max_tokens=4, seed=1))
        gens = b.generate_prompts(REQUESTS[:2])
        base = len(b.tokenize_prompt(PROMPT))
        # both prompts start with PROMPT, which the first call left in the cache
        assert all(g.usage.cached_prompt_tokens >= base - 1 for g in gens)
    assert_idle(b)


def test_requests_that_do_not_fit_at_once_run_one_after_the_other():
    """Four rows on a backend of two sequences: the call falls back to one request after
    the other, with the same streams (the same samples as each request alone)."""
    from samplescale.backends.llamacpp import LlamaCppBackend

    small = LlamaCppBackend(n_ctx=1024, n_seq_max=2)
    reqs = REQUESTS[:2] + [(PROMPT, SamplingParams(n=1, temperature=1.0, max_tokens=5, seed=8))]
    alone = [small.generate(p, params) for p, params in reqs]
    together = small.generate_prompts(reqs)
    assert [texts(g) for g in together] == [texts(g) for g in alone]
    assert_idle(small)


@pytest.mark.parametrize(
    "requests, rngs, match",
    [
        ([], None, "at least one"),
        (REQUESTS[:2], [None], "one generator"),
        (REQUESTS[:2], np.random.default_rng(0), "got one Generator"),
        ([PROMPT], None, r"requests\[0\] must be a \(Prompt, SamplingParams\) pair, got Prompt"),
        ([("What is 2 + 2?", REQUESTS[0][1])], None, r"requests\[0\] must be a \(Prompt"),
        ([(PROMPT, SamplingParams(n=2, decoding="arithmetic", seed=1))], None,
         r"requests\[0\]: generate_prompts decodes independent samples only"),
    ],
)
def test_bad_requests_are_refused(llama_backend, requests, rngs, match):
    with pytest.raises(ConfigError, match=match):
        llama_backend.generate_prompts(requests, rngs)
    assert_idle(llama_backend)


def test_steps_of_several_partial_solutions_in_one_call(llama_backend):
    """generate_steps_many gives each partial solution the steps generate_steps gives it;
    through a wrapper without generate_prompts (a token budget) the calls run one by one."""
    b = llama_backend
    params = SamplingParams(temperature=0.8, max_tokens=16, seed=2)
    calls = [((), params, 2, None), (("12 + 30 = 42.\n\n",), params.replace(seed=7), 1, None)]
    alone = [generate_steps(b, PROMPT, steps, p, n, rng) for steps, p, n, rng in calls]
    many = generate_steps_many(b, PROMPT, calls)
    wrapped = generate_steps_many(TokenBudgetBackend(b, 10_000), PROMPT, calls)
    for batch in (many, wrapped):
        assert [[(s.text, s.end) for s in x] for x in batch] == [
            [(s.text, s.end) for s in x] for x in alone
        ]
    assert [x.usage.model_calls for x in many] == [1, 1]
    assert_idle(b)


def test_a_full_cache_frees_least_recently_used_entries_for_the_rows():
    """In a session whose four sequences all hold earlier calls' prompts, four rows of two
    requests still fit: the cached entries are freed (least recently used first), and the
    samples are the ones each request draws alone."""
    from samplescale.backends.llamacpp import LlamaCppBackend

    small = LlamaCppBackend(n_ctx=1024, n_seq_max=4)
    reqs = [(p, params.replace(n=2)) for p, params in REQUESTS[:2]]
    alone = [small.generate(p, params) for p, params in reqs]
    with small.prefix_session():
        for word in ("one", "two", "three", "four"):
            small.generate(Prompt.user(f"Say {word}."), SamplingParams(max_tokens=2, seed=0))
        assert small.cache_usage()[0] == 4
        together = small.generate_prompts(reqs)
    assert [texts(g) for g in together] == [texts(g) for g in alone]
    assert_idle(small)
