"""Token-level sampling: hand-computed tables (cases.md rows), properties, exact statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from samplescale.backends.decoding import SequenceBuilder
from samplescale.backends.fake import ToyLM
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.rng import sample_generators
from samplescale.sampling import functional as F
from samplescale.sampling import pipeline
from samplescale.types import Prompt


def probs_after(fn, probs, *args):
    return F.softmax(fn(np.log(np.array([probs], dtype=np.float64)), *args))[0]


# ---------------------------------------------------------------- table tests (cases.md)
def test_c01_top_p_exact_boundary_keeps_smallest_set():
    out = probs_after(F.top_p, [0.3, 0.1, 0.1, 0.5], 0.8)
    np.testing.assert_allclose(out, [0.375, 0, 0, 0.625], atol=1e-12)


def test_c03_top_p_degenerate_parameters():
    np.testing.assert_allclose(
        probs_after(F.top_p, [0.5, 0.3, 0.2], 1.0), [0.5, 0.3, 0.2], atol=1e-12
    )
    out = F.softmax(F.top_p(np.array([[1.0, 2.0, 3.0]]), 0.0))[0]
    np.testing.assert_array_equal(out, [0.0, 0.0, 1.0])
    with pytest.raises(ConfigError, match="finite"):
        F.top_p(np.full((1, 3), -np.inf), 0.5)
    with pytest.raises(ConfigError, match="finite"):
        pipeline.sample(np.full((1, 3), -np.inf), SamplingParams(), np.random.default_rng(0))


@pytest.mark.parametrize("k", [0, -1])
def test_c05_top_k_sentinels_disable(k):
    np.testing.assert_allclose(
        probs_after(F.top_k, [0.5, 0.3, 0.2], k), [0.5, 0.3, 0.2], atol=1e-12
    )


def test_top_k_tie_rule_keeps_lowest_ids():
    out = F.top_k(np.array([[1.0, 3.0, 3.0, 2.0, 3.0]]), 2)[0]
    np.testing.assert_array_equal(np.isfinite(out), [False, True, True, False, False])


def test_c06_order_is_temperature_last():
    params = SamplingParams(temperature=0.5, top_p=0.8)
    out = F.softmax(pipeline.process(np.array([3.0, 2.0, 1.0]), params))[0]
    # kept {0, 1} on the T=1 distribution [0.665, 0.245, 0.090]; then T=0.5: softmax([6, 4])
    expected = np.exp([6.0, 4.0]) / np.exp([6.0, 4.0]).sum()
    np.testing.assert_allclose(out, [expected[0], expected[1], 0.0], atol=1e-12)
    assert pipeline.ORDER[-1] == "temperature"
    assert pipeline.ORDER.index("top_p") < pipeline.ORDER.index("min_p")


def test_pipeline_applies_documented_order():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 50)) * 3
    params = SamplingParams(temperature=0.7, top_k=20, top_p=0.9, min_p=0.05)
    manual = F.temperature(F.min_p(F.top_p(F.top_k(logits, 20), 0.9), 0.05), 0.7)
    np.testing.assert_array_equal(pipeline.process(logits, params), manual)
    other = F.top_k(F.min_p(F.top_p(F.temperature(logits, 0.7), 0.9), 0.05), 20)
    assert not np.array_equal(np.isfinite(manual), np.isfinite(other))  # the order matters here


def test_c07_min_p_threshold_relative_to_top_probability():
    np.testing.assert_allclose(
        probs_after(F.min_p, [0.02, 0.80, 0.18], 0.2), [0, 0.81632653, 0.18367347], atol=1e-8
    )
    out = probs_after(F.min_p, [0.05, 0.55, 0.10, 0.30], 0.5)
    np.testing.assert_allclose(out, [0, 0.64705882, 0, 0.35294118], atol=1e-8)
    params = SamplingParams(min_p=0.5, seed=7)
    logits = np.log([[0.05, 0.55, 0.10, 0.30]])
    a = [pipeline.sample(logits, params, g).token_ids[0] for g in sample_generators(7, None, 50)]
    b = [pipeline.sample(logits, params, g).token_ids[0] for g in sample_generators(7, None, 50)]
    assert a == b and set(a) == {1, 3}


def test_c10_temperature_zero_and_tiny_temperature():
    params = SamplingParams(temperature=0)
    for _ in range(5):
        assert pipeline.sample(np.array([[1.0, 3.0, 2.0]]), params, None).token_ids[0] == 1
    tiny = SamplingParams(temperature=1e-4)
    logits = np.array([[10.0, 9.0]], dtype=np.float16)
    assert np.isfinite(pipeline.process(logits, tiny)).any()
    assert not np.isnan(F.softmax(pipeline.process(logits, tiny))).any()
    draws = [
        pipeline.sample(logits, tiny, np.random.default_rng(s)).token_ids[0] for s in range(200)
    ]
    assert set(draws) == {0}
    with pytest.raises(ConfigError, match="temperature"):
        F.temperature(logits, -1.0)
    # a temperature below float32's smallest number is still argmax-like, never NaN
    out = F.temperature(np.array([[1.0, 3.0, 2.0]], dtype=np.float32), 1e-46)
    assert not np.isnan(out).any() and out[0, 1] == 0.0
    draw = pipeline.sample(np.array([[1.0, 3.0, 2.0]], dtype=np.float32), SamplingParams(temperature=1e-46), np.random.default_rng(0))
    assert draw.token_ids[0] == 1 and draw.sampling_logprobs[0] == 0.0


def test_c11_sampled_logprobs_raw_and_processed():
    d = pipeline.sample(
        np.log([[0.5, 0.3, 0.2]]), SamplingParams(top_p=0.8), np.random.default_rng(1)
    )
    token = d.token_ids[0]
    assert token == 0
    assert d.sampling_logprobs[0] == pytest.approx(-0.470004, abs=1e-6)
    assert d.logprobs[0] == pytest.approx(-0.693147, abs=1e-6)
    assert math.exp(d.logprobs[0] - d.sampling_logprobs[0]) == pytest.approx(0.8)


def _run(pieces: list[str], stop: tuple[str, ...]) -> SequenceBuilder:
    table = {i: p.encode() for i, p in enumerate(pieces)}
    seq = SequenceBuilder(table.__getitem__, lambda t: False, stop, max_tokens=100)
    for i in range(len(pieces)):
        if seq.push(i, -1.0, -1.0):
            break
    return seq


def test_c12_stop_strings_inside_and_across_tokens():
    s = _run(["ABC", "DEF", "GHI"], ("DE",))
    assert (s.text, s.finish_reason, len(s.token_ids)) == ("ABC", "stop", 2)
    s = _run(["alpha", " beta", " gamma"], ("beta gamma",))
    assert (s.text, s.finish_reason) == ("alpha ", "stop")
    s = _run(["alpha", " beta"], ("zeta",))
    assert (s.text, s.finish_reason) == ("alpha beta", None)


def test_utf8_split_across_tokens_is_decoded_whole():
    pieces = {0: "é".encode()[:1], 1: "é".encode()[1:], 2: b"!"}
    seq = SequenceBuilder(pieces.__getitem__, lambda t: False, (), max_tokens=3)
    for t in range(3):
        seq.push(t, -1.0, -1.0)
    assert (seq.text, seq.finish_reason) == ("é!", "length")


def test_c13_seed_with_n_gives_iid_reproducible_samples():
    toy = ToyLM(np.full((1000, 1000), 1e-3))
    params = SamplingParams(n=8, seed=0, max_tokens=1)
    first = [s.token_ids for s in toy.generate(Prompt(text="x"), params).samples]
    again = [s.token_ids for s in toy.generate(Prompt(text="x"), params).samples]
    assert first == again
    assert len(set(first)) > 1


# ---------------------------------------------------------------- properties
logit_rows = st.lists(st.floats(-20, 20), min_size=1, max_size=12).map(lambda v: np.array([v]))


@settings(max_examples=200, deadline=None)
@given(logit_rows, st.floats(0, 1), st.integers(-1, 14), st.floats(0, 1))
def test_support_never_empty_and_input_not_mutated(x, p, k, m):
    before = x.copy()
    for out in (
        F.top_p(x, p),
        F.top_k(x, k),
        F.min_p(x, m),
        pipeline.process(x, SamplingParams(top_p=p, top_k=k, min_p=m)),
    ):
        assert np.isfinite(out).any()
        probs = F.softmax(out)
        assert probs.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(x, before)


@settings(max_examples=200, deadline=None)
@given(logit_rows, st.floats(0, 1), st.floats(0, 1))
def test_kept_set_monotone_in_parameter(x, a, b):
    lo, hi = sorted((a, b))
    assert set(np.flatnonzero(np.isfinite(F.top_p(x, lo)))) <= set(
        np.flatnonzero(np.isfinite(F.top_p(x, hi)))
    )
    # min-p keeps fewer tokens as its parameter grows
    assert set(np.flatnonzero(np.isfinite(F.min_p(x, hi)))) <= set(
        np.flatnonzero(np.isfinite(F.min_p(x, lo)))
    )


@settings(max_examples=100, deadline=None)
@given(logit_rows, st.integers(1, 12), st.integers(1, 12))
def test_top_k_keeps_exactly_min_k_vocab_and_is_monotone(x, a, b):
    lo, hi = sorted((a, b))
    assert np.isfinite(F.top_k(x, lo)).sum() == min(lo, x.shape[1])
    assert set(np.flatnonzero(np.isfinite(F.top_k(x, lo)))) <= set(
        np.flatnonzero(np.isfinite(F.top_k(x, hi)))
    )


# ---------------------------------------------------------------- exact statistics
@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_tokens=3),
        SamplingParams(max_tokens=3, temperature=0.6),
        SamplingParams(max_tokens=3, top_p=0.7),
        SamplingParams(max_tokens=3, top_k=2, temperature=1.5),
        SamplingParams(max_tokens=3, min_p=0.4),
    ],
    ids=["plain", "T0.6", "top_p0.7", "top_k2_T1.5", "min_p0.4"],
)
def test_toy_lm_sequences_follow_exact_distribution(params):
    """20,000 sequences vs the enumerated distribution; chi-square at alpha = 0.001, fixed seed."""
    toy = ToyLM()
    exact = toy.exact_distribution(params)
    draws = toy.generate(
        Prompt(text="x"), params.model_copy(update={"n": 20_000, "seed": 11})
    ).samples
    keys = list(exact)
    index = {k: i for i, k in enumerate(keys)}
    counts = np.zeros(len(keys))
    for s in draws:
        counts[index[s.token_ids]] += 1  # KeyError would mean an impossible sequence was drawn
    expected = np.array([exact[k] for k in keys]) * len(draws)
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    # sampled log-probabilities agree with the processed distribution
    s = draws[0]
    assert math.exp(math.fsum(s.sampling_logprobs)) == pytest.approx(exact[s.token_ids])


def test_toy_lm_greedy_is_the_argmax_path():
    toy = ToyLM()
    out = toy.generate(Prompt(text="x"), SamplingParams(temperature=0, max_tokens=5, n=3)).samples
    # BOS -> "1" (0.5) -> "2" (0.5) -> "1" (0.4) -> "2" -> "1"
    assert [s.text for s in out] == ["12121"] * 3
    assert out[0].finish_reason == "length"
    assert out[0].logprobs[0] == pytest.approx(math.log(0.5))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4), st.integers(1, 700), st.integers(0, 2**32 - 1))
def test_two_level_inverse_cdf_equals_full_cumsum(rows, vocab, seed):
    rng = np.random.default_rng(seed)
    w = rng.random((rows, vocab)) * (rng.random((rows, vocab)) < 0.3)
    w[:, rng.integers(vocab)] = 1.0  # at least one positive weight per row
    u = rng.random(rows)
    ids, total, before = pipeline._inverse_cdf(w, u)
    full = np.cumsum(w, axis=-1)
    expect = [
        min(int(np.searchsorted(c, x * c[-1], side="right")), vocab - 1) for c, x in zip(full, u)
    ]
    np.testing.assert_allclose(total, full[:, -1])
    assert list(ids) == expect
    # the mass before the chosen index is the full cumulative sum one index earlier
    np.testing.assert_allclose(before, [c[i - 1] if i else 0.0 for c, i in zip(full, ids)])
    assert (w[np.arange(rows), ids] > 0).all()
