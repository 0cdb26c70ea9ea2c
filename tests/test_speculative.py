"""Speculative sampling: cases C15/C16, exactness against the toy LM's enumerated law,
multi-draft selection law, tokenizer checks, and SmolLM2 drafting for itself."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from exact_law import chisquare_pvalue
from scipy.stats import chisquare

from samplescale.backends.fake import ToyLM
from samplescale.config import SamplingParams
from samplescale.decoders.acceptance import (
    accept_or_resample,
    selection_cost,
    selection_distribution,
)
from samplescale.decoders.speculative import MAX_SELECTION_WORK, SpeculativeBackend
from samplescale.errors import ConfigError
from samplescale.sampling import functional as F
from samplescale.sampling import pipeline
from samplescale.types import Prompt

PROMPT = Prompt(text="x")
DRAFT_TABLE = np.array(
    [
        [0.25, 0.25, 0.25, 0.25],
        [0.40, 0.30, 0.20, 0.10],
        [0.10, 0.10, 0.40, 0.40],
        [0.30, 0.30, 0.20, 0.20],
    ]
)
ALPHA = 1e-3  # chi-square tests: fixed seeds, reject at p < 0.001


def processed_probs(probs: list[float], params: SamplingParams) -> np.ndarray:
    return F.softmax(pipeline.process(np.log(np.array(probs)), params))[0]


# ------------------------------------------------------------------ cases.md C15, C16
def test_c15_greedy_outputs_the_target_argmax():
    """T=0: p and q are one-hot; the draft argmax a (p/q = 1.5 before processing) is rejected."""
    greedy = SamplingParams(temperature=0)
    q = processed_probs([0.20, 0.16, 0.16, 0.16, 0.16, 0.16], greedy)
    p = processed_probs([0.30, 0.50, 0.05, 0.05, 0.05, 0.05], greedy)
    assert q.tolist() == [1, 0, 0, 0, 0, 0] and p.tolist() == [0, 1, 0, 0, 0, 0]
    for seed in range(50):
        assert accept_or_resample(p, q, 0, np.random.default_rng(seed)) == (1, False)


def test_c15_end_to_end_with_six_token_models():
    target = ToyLM(np.tile([0.30, 0.50, 0.05, 0.05, 0.05, 0.05], (6, 1)))
    draft = ToyLM(np.tile([0.20, 0.16, 0.16, 0.16, 0.16, 0.16], (6, 1)))
    spec = SpeculativeBackend(target, draft, k=3)
    gen, stats = spec.generate_with_stats(
        PROMPT, SamplingParams(temperature=0, max_tokens=4, n=20, seed=0)
    )
    # the draft proposes <eos> (its argmax) every block; the target's argmax "1" replaces it
    assert {s.token_ids for s in gen.samples} == {(1, 1, 1, 1)}
    assert stats.accepted == 0 and stats.verified == 80 and stats.tokens == 80
    assert gen.samples[0].logprobs[0] == pytest.approx(math.log(0.5))
    assert gen.samples[0].sampling_logprobs == (0.0, 0.0, 0.0, 0.0)


def test_c16_equal_distributions_accept_every_draft_and_never_divide_zero():
    rng = np.random.default_rng(16)
    p = np.array([0.7, 0.2, 0.1])
    out = []
    for _ in range(20_000):
        x = int(rng.choice(3, p=p))
        token, accepted = accept_or_resample(p, p.copy(), x, rng)
        assert accepted and token == x
        out.append(token)
    counts = np.bincount(out, minlength=3)
    assert chisquare(counts, p * len(out)).pvalue > ALPHA
    onehot = np.array([0.0, 1.0, 0.0])
    with np.errstate(all="raise"):  # any 0/0 would raise FloatingPointError
        assert accept_or_resample(onehot, onehot.copy(), 1, rng) == (1, True)


def test_rejection_draws_from_the_residual():
    """p = [.5, .5], q = [.9, .1], proposal 0: accept 5/9, else the residual is onehot(1)."""
    rng = np.random.default_rng(3)
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    results = [accept_or_resample(p, q, 0, rng) for _ in range(9_000)]
    assert {r for r in results if not r[1]} == {(1, False)}
    accepted = sum(r[1] for r in results)
    assert abs(accepted / 9_000 - 5 / 9) < 4 * math.sqrt(5 / 9 * 4 / 9 / 9_000)


# ------------------------------------------------------------------ exact output law
PARAMS = [
    SamplingParams(max_tokens=3),
    SamplingParams(max_tokens=3, temperature=0.7, top_p=0.8),
    SamplingParams(max_tokens=3, repetition_penalty=1.5, min_p=0.2),
]


@pytest.mark.parametrize("params", PARAMS, ids=["plain", "T0.7_top_p0.8", "penalty_min_p"])
def test_output_law_equals_target_with_another_draft(params):
    target, draft = ToyLM(), ToyLM(DRAFT_TABLE)
    spec = SpeculativeBackend(target, draft, k=2)
    gen, stats = spec.generate_with_stats(PROMPT, params.replace(n=6_000, seed=5))
    exact = target.exact_distribution(params)
    assert chisquare_pvalue((s.token_ids for s in gen.samples), exact) > ALPHA
    assert 0.3 < stats.acceptance_rate < 1.0
    s = gen.samples[0]
    assert math.exp(math.fsum(s.sampling_logprobs)) == pytest.approx(exact[s.token_ids])


def test_the_exactness_test_rejects_the_draft_law():
    """The same test fails on samples of the draft: the statistical tests above can fail."""
    params = SamplingParams(max_tokens=3)
    draws = ToyLM(DRAFT_TABLE).generate(PROMPT, params.replace(n=10_000, seed=5)).samples
    assert chisquare_pvalue((s.token_ids for s in draws), ToyLM().exact_distribution(params)) < 1e-6


def test_draft_equal_to_target_accepts_everything_and_is_exact():
    toy = ToyLM()
    params = SamplingParams(max_tokens=3, temperature=0.8)
    gen, stats = SpeculativeBackend(toy, toy, k=2).generate_with_stats(
        PROMPT, params.replace(n=6_000, seed=9)
    )
    assert stats.acceptance_rate == 1.0
    assert (
        chisquare_pvalue((s.token_ids for s in gen.samples), toy.exact_distribution(params)) > ALPHA
    )


def test_greedy_returns_the_target_greedy_path_and_counts_calls():
    """Draft == target at T=0: each target call accepts k=4 drafts and adds a bonus token."""
    toy = ToyLM()
    params = SamplingParams(temperature=0, max_tokens=10, n=3)
    gen, stats = SpeculativeBackend(toy, ToyLM(DRAFT_TABLE), k=4).generate_with_stats(
        PROMPT, params
    )
    assert [s.text for s in gen.samples] == [toy.generate(PROMPT, params).samples[0].text] * 3
    assert gen.samples[0].text == "1212121212"
    gen, stats = SpeculativeBackend(toy, toy, k=4).generate_with_stats(PROMPT, params)
    assert stats.acceptance_rate == 1.0
    assert stats.target_calls == 6 and stats.tokens_per_target_call == 5.0
    assert gen.usage.completion_tokens == 30 and gen.usage.model_calls == 1


# ------------------------------------------------------------------ multi-draft
def brute_force_selection(p: np.ndarray, q: np.ndarray, m: int) -> np.ndarray:
    out = np.zeros_like(p)
    for tup in itertools.product(range(len(p)), repeat=m):
        prob = float(np.prod(q[list(tup)]))
        if prob == 0:
            continue
        w = p[list(tup)] / q[list(tup)]
        w = w if w.sum() > 0 else np.ones(m)
        for j, y in enumerate(tup):
            out[y] += prob * w[j] / w.sum()
    return out


def test_selection_distribution_hand_value():
    """p=[.5,.5], q=[.75,.25], m=2: w=[2/3, 2]; q~(0) = .5625 + 2 * .1875 * (1/4) = .65625."""
    sel = selection_distribution(np.array([0.5, 0.5]), np.array([0.75, 0.25]), 2)
    assert sel == pytest.approx([0.65625, 0.34375], abs=1e-15)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_selection_distribution_equals_enumeration(m):
    rng = np.random.default_rng(m)
    for _ in range(5):
        p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
        p[rng.integers(5)] = 0.0  # a token the target removes (weight 0)
        q[rng.integers(5)] = 0.0  # a token the draft never proposes
        p, q = p / p.sum(), q / q.sum()
        sel = selection_distribution(p, q, m)
        assert sel == pytest.approx(brute_force_selection(p, q, m), abs=1e-12)
        assert sel.sum() == pytest.approx(1.0)
    # all-zero weights: a target supported only where the draft is not
    p, q = np.array([0.0, 0.0, 1.0]), np.array([0.5, 0.5, 0.0])
    assert selection_distribution(p, q, m) == pytest.approx([0.5, 0.5, 0.0])


@pytest.mark.parametrize("drafts", [2, 3])
def test_multi_draft_output_law_equals_target(drafts):
    target, draft = ToyLM(), ToyLM(DRAFT_TABLE)
    params = SamplingParams(max_tokens=3, temperature=0.9)
    one = SpeculativeBackend(target, draft, k=2)
    many = SpeculativeBackend(target, draft, k=2, drafts=drafts)
    gen, stats = many.generate_with_stats(PROMPT, params.replace(n=6_000, seed=21))
    exact = target.exact_distribution(params)
    assert chisquare_pvalue((s.token_ids for s in gen.samples), exact) > ALPHA
    _, single = one.generate_with_stats(PROMPT, params.replace(n=2_000, seed=22))
    assert stats.acceptance_rate > single.acceptance_rate + 0.05  # selection moves q toward p


def test_multi_draft_greedy_is_the_target_argmax():
    toy = ToyLM()
    gen = SpeculativeBackend(toy, ToyLM(DRAFT_TABLE), k=3, drafts=4).generate(
        PROMPT, SamplingParams(temperature=0, max_tokens=7, n=2)
    )
    assert [s.text for s in gen.samples] == ["1212121"] * 2


def test_multi_draft_cost_limit_is_a_config_error():
    big = ToyLM(np.full((40, 40), 1 / 40))
    assert selection_cost(40, 16) > MAX_SELECTION_WORK
    spec = SpeculativeBackend(big, big, drafts=16)
    with pytest.raises(ConfigError, match="drafts=16.*top_k"):
        spec.generate(PROMPT, SamplingParams(max_tokens=2))
    out = spec.generate(PROMPT, SamplingParams(max_tokens=2, top_k=2, seed=0))
    assert len(out.samples) == 1


# ------------------------------------------------------------------ validation
class OtherPieces(ToyLM):
    """Same vocabulary size, different token text."""

    def piece(self, token: int) -> bytes:
        return b"" if token == self.EOS else b"abc"[token - 1 : token]


def test_tokenizers_must_match():
    with pytest.raises(ConfigError, match="vocab_size 4 .target. != 5"):
        SpeculativeBackend(ToyLM(), ToyLM(np.full((5, 5), 0.2)))
    with pytest.raises(ConfigError, match="token 1 is b'1'"):
        SpeculativeBackend(ToyLM(), OtherPieces())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, r"k must be an integer in \[1, 32\]"),
        ({"k": 2.0}, r"k must be an integer"),
        ({"drafts": 17}, r"drafts must be an integer in \[1, 16\]"),
    ],
)
def test_parameter_ranges(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SpeculativeBackend(ToyLM(), ToyLM(), **kwargs)


def test_non_independent_decoding_is_refused():
    with pytest.raises(ConfigError, match="decoding='arithmetic'"):
        SpeculativeBackend(ToyLM(), ToyLM()).generate(PROMPT, SamplingParams(decoding="arithmetic"))
    with pytest.raises(ConfigError, match="kl_sigma is not supported"):
        SpeculativeBackend(ToyLM(), ToyLM()).generate(PROMPT, SamplingParams(kl_sigma=1.0))


def test_stats_accumulate_over_calls():
    spec = SpeculativeBackend(ToyLM(), ToyLM(DRAFT_TABLE), k=2)
    _, a = spec.generate_with_stats(PROMPT, SamplingParams(max_tokens=3, n=5, seed=1))
    _, b = spec.generate_with_stats(PROMPT, SamplingParams(max_tokens=3, n=5, seed=2))
    assert spec.stats == a + b
    assert spec.stats.tokens == a.tokens + b.tokens > 0


# ------------------------------------------------------------------ real model
@pytest.mark.llama
def test_smollm2_drafting_for_itself(llama_backend):
    """Target and draft are the same model: every proposal is accepted (up to the float
    differences of scoring one token vs a block), and greedy equals plain greedy decoding."""
    prompt = Prompt.user("Name three colours.")
    spec = SpeculativeBackend(llama_backend, llama_backend, k=4)
    gen, stats = spec.generate_with_stats(
        prompt, SamplingParams(temperature=0.8, max_tokens=12, n=2, seed=3)
    )
    assert stats.acceptance_rate >= 0.95
    assert stats.tokens_per_target_call > 3.0
    assert all(s.status == "ok" and s.num_tokens > 0 for s in gen.samples)
    greedy = SamplingParams(temperature=0, max_tokens=12)
    spec_greedy = spec.generate(prompt, greedy).samples[0]
    assert spec_greedy.token_ids == llama_backend.generate(prompt, greedy).samples[0].token_ids
