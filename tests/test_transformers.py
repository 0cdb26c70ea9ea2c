"""The transformers backend on the embedded SmolLM2 GGUF, checked against the llama.cpp
backend on the same file.

Tolerances: transformers dequantizes the Q4_1 weights to float32, llama.cpp multiplies the
quantized weights with 8-bit-quantized activations, so the two compute slightly different
logits from the same file. Measured on these prompts: total variation between the two
next-token distributions 0.008-0.035, largest log-probability gap among llama.cpp's 50 most
likely tokens 0.22-0.29 nats; greedy texts identical for the first 5 tokens (the text
prompt: " Paris.\n\nThe" then a near-tie) and the first 15 or more (the chat prompts). The tests
allow TV <= 0.1 (raw and processed distributions) and a 0.4-nat log-probability gap, and
check greedy decoding token by token: where the two differ, the transformers choice must
be a near-tie for llama.cpp (within 0.6 nats = twice the gap allowed per log-probability).
"""

from __future__ import annotations

import numpy as np
import pytest

from samplescale.backends.base import collect
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, ModelNotFoundError
from samplescale.sampling import functional as F
from samplescale.sampling import pipeline
from samplescale.types import Prompt

pytestmark = pytest.mark.transformers

PROMPTS = [
    Prompt.user("What is 7 + 5? Answer with the number."),
    Prompt.user("What is 23 + 48?"),
    Prompt(text="The capital of France is"),
]
TV_MAX = 0.1
LOGPROB_GAP = 0.4
NEAR_TIE = 0.6


def _probs(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max())
    return p / p.sum()


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.parametrize("prompt", PROMPTS, ids=["chat-7+5", "chat-23+48", "text"])
def test_first_token_distribution_agrees_with_llamacpp(hf_backend, llama_backend, prompt):
    ids = hf_backend.tokenize_prompt(prompt)
    assert ids == llama_backend.tokenize_prompt(prompt)  # same tokenizer, same template
    x, y = hf_backend.logits_at(ids)[0], llama_backend.logits_at(ids)[0]
    assert x.shape == y.shape == (llama_backend.vocab_size,) and x.dtype == np.float32
    assert int(x.argmax()) == int(y.argmax())
    assert 0.5 * np.abs(_probs(x) - _probs(y)).sum() <= TV_MAX
    top = np.argsort(-y)[:50]
    gap = np.abs(F.log_softmax(x)[0, top] - F.log_softmax(y)[0, top]).max()
    assert gap <= LOGPROB_GAP
    for params in (
        SamplingParams(temperature=0.8),
        SamplingParams(temperature=0.7, top_k=5),
        SamplingParams(temperature=0.8, top_p=0.9),
    ):
        qa, qb = (np.exp(pipeline.process(v, params)[0]) for v in (x, y))
        assert 0.5 * np.abs(qa / qa.sum() - qb / qb.sum()).sum() <= TV_MAX


@pytest.mark.llama
@pytest.mark.slow
@pytest.mark.parametrize("prompt", PROMPTS, ids=["chat-7+5", "chat-23+48", "text"])
def test_greedy_agrees_with_llamacpp_up_to_near_ties(hf_backend, llama_backend, prompt):
    greedy = SamplingParams(temperature=0, max_tokens=24)
    a = hf_backend.generate(prompt, greedy).samples[0]
    b = llama_backend.generate(prompt, greedy).samples[0]
    assert a.token_ids[:4] == b.token_ids[:4]  # measured: the first 5, 15 and 15+ agree
    ids = hf_backend.tokenize_prompt(prompt)
    k = a.num_tokens
    # llama.cpp's logits before each transformers token: row i after the prompt + i tokens
    rows = llama_backend.logits_at(ids + list(a.token_ids[: k - 1]), last=k)
    for pos in range(k):
        first_diff = a.token_ids[pos] != b.token_ids[pos] if pos < b.num_tokens else True
        assert rows[pos].max() - rows[pos][a.token_ids[pos]] <= NEAR_TIE, pos
        if first_diff:
            break  # after the first near-tie the two continuations are different texts


@pytest.mark.llama
def test_end_tokens_and_token_bytes_match_llamacpp(hf_backend, llama_backend):
    v = llama_backend.vocab_size
    assert hf_backend.vocab_size == v
    assert [t for t in range(v) if hf_backend.is_end(t)] == [
        t for t in range(v) if llama_backend.is_end(t)
    ]
    assert all(hf_backend.piece(t) == llama_backend.piece(t) for t in range(v))


def test_greedy_is_argmax_and_logprobs_are_the_models(hf_backend):
    prompt = PROMPTS[0]
    s = hf_backend.generate(prompt, SamplingParams(temperature=0, max_tokens=6)).samples[0]
    logits = hf_backend.next_token_logits(prompt)
    assert s.token_ids[0] == int(np.argmax(logits))
    assert s.logprobs[0] == pytest.approx(float(F.log_softmax(logits)[0, s.token_ids[0]]), abs=1e-4)
    second = hf_backend.next_token_logits(prompt, s.token_ids[:1])
    assert s.token_ids[1] == int(np.argmax(second))
    assert s.sampling_logprobs == (0.0,) * s.num_tokens


def test_n_samples_in_one_call_are_seeded_and_follow_the_processed_distribution(hf_backend):
    prompt = PROMPTS[0]
    params = SamplingParams(n=8, temperature=0.7, top_k=5, max_tokens=6, seed=0)
    g = hf_backend.generate(prompt, params)
    assert len(g.samples) == 8 and g.usage.model_calls == 1
    assert g.usage.prompt_tokens == len(hf_backend.tokenize_prompt(prompt))
    assert g.usage.completion_tokens == sum(s.num_tokens for s in g.samples)
    assert [s.token_ids for s in hf_backend.generate(prompt, params).samples] == [
        s.token_ids for s in g.samples
    ]
    assert len({s.token_ids for s in g.samples}) > 1
    logits = hf_backend.next_token_logits(prompt)
    kept = set(np.flatnonzero(np.isfinite(F.top_k(logits, 5)[0])))
    expect = F.log_softmax(F.temperature(F.top_k(logits, 5), 0.7))[0]
    for s in g.samples:
        assert s.token_ids[0] in kept
        assert s.sampling_logprobs[0] == pytest.approx(float(expect[s.token_ids[0]]), abs=1e-4)
        assert len(s.logprobs) == len(s.sampling_logprobs) == s.num_tokens


def test_rounds_stop_strings_and_streaming(hf_backend, monkeypatch):
    params = SamplingParams(n=7, temperature=1.0, max_tokens=8, seed=2)
    whole = hf_backend.generate(PROMPTS[1], params)
    monkeypatch.setattr(hf_backend, "max_batch", 3)  # rounds of 3, 3 and 1 samples
    g = hf_backend.generate(PROMPTS[1], params)
    assert len(g.samples) == 7 and all(s.status == "ok" for s in g.samples)
    # each sample has its own seeded stream: the same samples however they are batched
    # (up to a float32 near-tie flipped by the batch size, which these seeds do not meet)
    assert [s.token_ids for s in g.samples] == [s.token_ids for s in whole.samples]
    monkeypatch.undo()
    stop = hf_backend.generate(
        PROMPTS[0], SamplingParams(temperature=0, max_tokens=24, stop=("\n",))
    )
    assert "\n" not in stop.samples[0].text and stop.samples[0].finish_reason == "stop"
    deltas: dict[int, str] = {}
    final = collect(
        hf_backend.stream(PROMPTS[0], SamplingParams(n=3, max_tokens=10, seed=4)),
        on_delta=lambda d: deltas.__setitem__(d.index, deltas.get(d.index, "") + d.text),
    )
    assert [deltas.get(i, "") for i in range(3)] == [s.text for s in final.samples]


def test_prefix_continues_the_reply(hf_backend):
    base = hf_backend.tokenize_prompt(PROMPTS[0])
    cont = hf_backend.tokenize_prompt(PROMPTS[0].continued("The answer is"))
    assert cont[: len(base)] == base and len(cont) > len(base)
    g = hf_backend.generate(
        PROMPTS[0].continued("The answer is"), SamplingParams(temperature=0, max_tokens=3)
    )
    assert g.samples[0].token_ids[0] == int(hf_backend.logits_at(cont)[0].argmax())


def test_logits_at_reuses_the_cache_and_matches_a_full_pass(hf_backend):
    ids = hf_backend.tokenize_prompt(PROMPTS[1])
    full = hf_backend.logits_at(ids, last=4)
    hf_backend.logits_at(ids[:-4])  # cache a shorter prefix, then extend it
    ext = hf_backend.logits_at(ids, last=4)
    assert full.shape == (4, hf_backend.vocab_size)
    np.testing.assert_allclose(ext, full, atol=1e-3)
    branch = hf_backend.logits_at(ids[:-1] + [ids[-2]])  # a sibling of the cached sequence
    fresh = hf_backend.logits_at([ids[0]])  # nothing shared but the first token
    assert branch.shape == fresh.shape == (1, hf_backend.vocab_size)
    np.testing.assert_allclose(hf_backend.logits_at(ids[:-1] + [ids[-2]]), branch, atol=1e-3)


def test_bad_inputs(hf_backend, tmp_path):
    from samplescale.backends.transformers import TransformersBackend

    with pytest.raises(ModelNotFoundError, match="config.json, or a .gguf file"):
        TransformersBackend(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"max_batch must be an integer in \[1, 256\], got 0"):
        TransformersBackend(max_batch=0)
    with pytest.raises(ConfigError, match=r"dtype must be"):
        TransformersBackend(dtype="int8")
    with pytest.raises(ConfigError, match=r"token ids must be integers in \[0, 49151\]"):
        hf_backend.logits_at([1, 49152])
    with pytest.raises(ConfigError, match=r"last must be in \[1, 2\], got 3"):
        hf_backend.logits_at([1, 2], last=3)
    with pytest.raises(ConfigError, match="exceeds the model's context of 8192 tokens"):
        hf_backend.generate(PROMPTS[0], SamplingParams(max_tokens=8190))
    with pytest.raises(ConfigError, match="decoders.generate"):
        hf_backend.generate(PROMPTS[0], SamplingParams(decoding="priority"))


# ------------------------------------------------------- what needs logits runs on it
def test_priority_and_arithmetic_decoding(hf_backend):
    from samplescale.decoders import generate
    from samplescale.decoders.priority import priority_generate

    prompt = Prompt.user("What is 2 + 2? Answer with the number.")
    out = priority_generate(hf_backend, prompt, SamplingParams(max_tokens=5, n=3))
    ids = [s.token_ids for s in out.samples]
    assert len(ids) == 3 and len(set(ids)) == 3
    greedy = hf_backend.generate(prompt, SamplingParams(temperature=0, max_tokens=5)).samples[0]
    assert ids[0] == greedy.token_ids
    g = generate(
        hf_backend, prompt, SamplingParams(n=4, max_tokens=4, seed=0, decoding="arithmetic")
    )
    assert len(g.samples) == 4 and g.usage.model_calls == 1


def test_token_smc_weights(hf_backend):
    import math

    from samplescale.smc.token import token_smc

    params = SamplingParams(temperature=1.5, top_k=50, max_tokens=4, seed=1)
    r = token_smc(hf_backend, Prompt.user("Say hi."), params, 3, ess_threshold=0.0)
    ratios = np.array([math.fsum(s.logprobs) - math.fsum(s.sampling_logprobs) for s in r.samples])
    w = np.exp(ratios - ratios.max())
    assert r.weights == pytest.approx(tuple(w / w.sum()), rel=1e-9)
    assert r.log_evidence == pytest.approx(math.log(np.mean(np.exp(ratios))), rel=1e-9)


@pytest.mark.slow
def test_speculative_drafting_for_itself(hf_backend):
    from samplescale.decoders.speculative import SpeculativeBackend

    prompt = Prompt.user("Name three colours.")
    spec = SpeculativeBackend(hf_backend, hf_backend, k=4)
    gen, stats = spec.generate_with_stats(
        prompt, SamplingParams(temperature=0.8, max_tokens=12, n=2, seed=3)
    )
    assert stats.acceptance_rate >= 0.95 and stats.tokens_per_target_call > 3.0
    assert all(s.status == "ok" and s.num_tokens > 0 for s in gen.samples)


@pytest.mark.slow
def test_step_level_search_with_the_default_p_true_scorer(hf_backend):
    from samplescale.strategies import get_strategy

    strategy = get_strategy(
        "beam-search", max_steps=2, token_budget=32, scorer_budget=4, beam_width=2, expansions=2
    )
    r = strategy.run(
        hf_backend,
        "What is 12 + 30? Think step by step.",
        SamplingParams(temperature=0.8, max_tokens=12, seed=1),
    )
    assert r.score_scale == "probability" and r.samples
    assert all(s is not None and 0.0 <= s <= 1.0 for s in r.scores)
    assert 0 < r.usage.scorer_calls <= 4
