"""The full sampler set: typical, epsilon, eta, top-n-sigma, penalties, FIRE, arithmetic.

Hand-computed tables, hypothesis properties, and seeded chi-square tests against the exact
processed distributions (alpha = 0.001 with fixed seeds: a correct sampler fails with
probability 0.001 for a given seed, and the seeds are fixed, so the tests are deterministic).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from samplescale.backends.fake import ToyLM
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.sampling import functional as F
from samplescale.sampling import penalties as P
from samplescale.sampling import pipeline
from samplescale.sampling import truncation as T
from samplescale.types import Prompt

ALPHA = 1e-3


def probs_after(fn, probs, *args):
    return F.softmax(fn(np.log(np.array([probs], dtype=np.float64)), *args))[0]


def kept(x):
    return set(np.flatnonzero(np.isfinite(x[0])))


# ---------------------------------------------------------------- hand-computed tables
def test_typical_p_orders_by_distance_from_entropy():
    # p = [0.5, 0.3, 0.2]: H = 1.02965 nats; |surprisal - H| = [0.3365, 0.1743, 0.5798]
    # so the typical order is token 1, token 0, token 2.
    np.testing.assert_allclose(
        probs_after(T.typical_p, [0.5, 0.3, 0.2], 0.5), [0.625, 0.375, 0.0], atol=1e-12
    )
    # mass 0.3 is reached by token 1 alone: the MOST likely token is removed
    np.testing.assert_allclose(
        probs_after(T.typical_p, [0.5, 0.3, 0.2], 0.3), [0.0, 1.0, 0.0], atol=1e-12
    )
    np.testing.assert_allclose(
        probs_after(T.typical_p, [0.5, 0.3, 0.2], 1.0), [0.5, 0.3, 0.2], atol=1e-12
    )


def test_epsilon_keeps_tokens_above_absolute_threshold():
    out = probs_after(T.epsilon_cutoff, [0.5, 0.3, 0.15, 0.05], 0.1)
    np.testing.assert_allclose(out, np.array([0.5, 0.3, 0.15, 0]) / 0.95, atol=1e-12)
    # nothing reaches 0.6: the argmax alone is kept
    np.testing.assert_allclose(
        probs_after(T.epsilon_cutoff, [0.5, 0.3, 0.2], 0.6), [1, 0, 0], atol=1e-12
    )


def test_eta_threshold_is_min_of_eta_and_entropy_term():
    # p = [0.5, 0.3, 0.15, 0.05]: H = 1.142120 nats, exp(-H) = 0.319142
    logits = np.log([[0.5, 0.3, 0.15, 0.05]])
    np.testing.assert_allclose(T.entropy(logits), [1.1421200429883351], rtol=1e-12)
    np.testing.assert_allclose(T.eta_threshold(logits, 0.1), [0.1], rtol=1e-12)
    np.testing.assert_allclose(T.eta_threshold(logits, 0.2), [0.14272451158538527], rtol=1e-9)
    np.testing.assert_allclose(T.eta_threshold(logits, 0.3), [0.17480111358607], rtol=1e-9)
    assert kept(T.eta_cutoff(logits, 0.2)) == {0, 1, 2}  # 0.15 >= 0.1427
    assert kept(T.eta_cutoff(logits, 0.3)) == {0, 1}  # 0.15 < 0.1748


def test_top_n_sigma_table_and_temperature_invariance():
    # logits [3, 2, 1, -1]: population std 1.479020; n=1 keeps >= 1.521, n=2 keeps >= 0.042
    x = np.array([[3.0, 2.0, 1.0, -1.0]])
    assert kept(T.top_n_sigma(x, 1.0)) == {0, 1}
    assert kept(T.top_n_sigma(x, 2.0)) == {0, 1, 2}
    assert kept(T.top_n_sigma(x, 0.0)) == {0}
    for t in (0.3, 1.7, 25.0):
        assert kept(T.top_n_sigma(x / t, 1.0)) == {0, 1}
    # tokens removed earlier (-inf) do not enter the statistics: std of [3, 2] is 0.5
    assert kept(T.top_n_sigma(np.array([[3.0, 2.0, -np.inf, -np.inf]]), 1.0)) == {0}


def test_c09_repetition_penalty_never_favours_a_repeated_token():
    out = P.repetition_penalty(np.array([[-2.0, 1.0]]), [[0]], 1.5)
    np.testing.assert_allclose(out, [[-3.0, 1.0]])
    assert F.softmax(out)[0, 0] == pytest.approx(0.01798620996209156, abs=1e-12)
    out = P.repetition_penalty(np.array([[2.0, 1.0]]), [[0, 0]], 1.5)
    np.testing.assert_allclose(out, [[2.0 / 1.5, 1.0]])
    # through the pipeline, greedy decoding sees the penalty too
    params = SamplingParams(temperature=0, repetition_penalty=3.0)
    assert pipeline.sample(np.array([2.0, 1.0]), params, None, history=[[0]]).token_ids[0] == 1


def test_presence_and_frequency_penalties():
    out = P.frequency_presence_penalty(np.array([[1.0, 1.0, 1.0]]), [[0, 0, 1]], 0.5, 0.25)
    np.testing.assert_allclose(out, [[0.0, 0.25, 1.0]])
    np.testing.assert_allclose(
        P.frequency_presence_penalty(np.array([[1.0, 1.0]]), [[]], 2.0, 2.0), [[1.0, 1.0]]
    )


@pytest.mark.parametrize(
    "fn, arg, match",
    [
        (T.typical_p, 1.5, r"typical_p must be in \[0, 1\]"),
        (T.epsilon_cutoff, 1.0, r"epsilon must be in \[0, 1\)"),
        (T.eta_cutoff, -0.1, r"eta must be in \[0, 1\)"),
        (T.top_n_sigma, -1.0, "top_n_sigma must be a finite number >= 0"),
        (T.top_n_sigma, math.inf, "top_n_sigma must be a finite number >= 0"),
    ],
)
def test_bad_parameters_name_the_valid_range(fn, arg, match):
    with pytest.raises(ConfigError, match=match):
        fn(np.zeros((1, 3)), arg)


def test_bad_penalty_inputs():
    with pytest.raises(ConfigError, match=r"repetition_penalty must be in \(0, 100\]"):
        P.repetition_penalty(np.zeros((1, 3)), [[0]], 0.0)
    with pytest.raises(ConfigError, match=r"presence_penalty must be in \[-2, 2\]"):
        P.frequency_presence_penalty(np.zeros((1, 3)), [[0]], presence=3.0)
    with pytest.raises(ConfigError, match="one token list per row"):
        P.repetition_penalty(np.zeros((2, 3)), [[0]], 1.2)
    with pytest.raises(ConfigError, match=r"history token ids must be in \[0, 2\]"):
        P.repetition_penalty(np.zeros((1, 3)), [[3]], 1.2)
    with pytest.raises(ValueError, match="repetition_penalty"):
        SamplingParams(repetition_penalty=0.0)
    with pytest.raises(ValueError, match="fire_tokens"):
        SamplingParams(fire_temperature=1.0, fire_tokens=0)


def test_pipeline_order_is_the_documented_one():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 40)) * 3
    hist = [[0, 1, 1], [], [5]]
    params = SamplingParams(
        temperature=0.7,
        repetition_penalty=1.3,
        presence_penalty=0.2,
        frequency_penalty=0.1,
        top_k=30,
        top_n_sigma=2.0,
        typical_p=0.95,
        top_p=0.9,
        min_p=0.02,
        epsilon=0.001,
        eta=0.002,
    )
    allowed = rng.random(x.shape) < 0.8  # a constraint's mask, applied first
    allowed[:, 0] = True
    manual = np.where(allowed, x, -np.inf)
    manual = P.apply_penalties(manual, hist, 1.3, 0.2, 0.1)
    manual = F.top_k(manual, 30)
    manual = T.top_n_sigma(manual, 2.0)
    manual = T.typical_p(manual, 0.95)
    manual = F.top_p(manual, 0.9)
    manual = F.min_p(manual, 0.02)
    manual = T.epsilon_cutoff(manual, 0.001)
    manual = T.eta_cutoff(manual, 0.002)
    manual = F.temperature(manual, 0.7)
    np.testing.assert_array_equal(pipeline.process(x, params, hist, 0, allowed), manual)
    assert pipeline.ORDER == (
        "constraint",
        "penalties",
        "top_k",
        "top_n_sigma",
        "typical_p",
        "top_p",
        "min_p",
        "epsilon",
        "eta",
        "temperature",
    )


def test_fire_schedule_hot_prefix_then_regular_temperature():
    params = SamplingParams(temperature=0.0, fire_temperature=1.5, fire_tokens=2)
    assert [params.temperature_at(i) for i in range(4)] == [1.5, 1.5, 0.0, 0.0]
    assert not params.greedy
    x = np.log([[0.6, 0.3, 0.1]])
    np.testing.assert_allclose(
        F.softmax(pipeline.process(x, params, position=0)),
        F.softmax(np.log([[0.6, 0.3, 0.1]]) / 1.5),
    )
    np.testing.assert_array_equal(F.softmax(pipeline.process(x, params, position=2)), [[1, 0, 0]])


# ---------------------------------------------------------------- properties
logit_rows = st.lists(st.floats(-20, 20), min_size=1, max_size=12).map(lambda v: np.array([v]))
histories = st.lists(st.integers(0, 11), max_size=6)


@settings(max_examples=200, deadline=None)
@given(logit_rows, st.floats(0, 1), st.floats(0, 0.99), st.floats(0, 0.99), st.floats(0, 5))
def test_new_samplers_keep_support_sum_to_one_and_do_not_mutate(x, tp, eps, eta, n):
    before = x.copy()
    for out in (
        T.typical_p(x, tp),
        T.epsilon_cutoff(x, eps),
        T.eta_cutoff(x, eta),
        T.top_n_sigma(x, n),
        pipeline.process(x, SamplingParams(typical_p=tp, epsilon=eps, eta=eta, top_n_sigma=n)),
    ):
        assert np.isfinite(out).any()
        assert F.softmax(out).sum() == pytest.approx(1.0)
    # the threshold samplers always keep the most likely token (typical may drop it)
    for out in (T.epsilon_cutoff(x, eps), T.eta_cutoff(x, eta), T.top_n_sigma(x, n)):
        assert int(x.argmax()) in kept(out)
    np.testing.assert_array_equal(x, before)


@settings(max_examples=200, deadline=None)
@given(logit_rows, st.floats(0, 0.99), st.floats(0, 0.99))
def test_new_kept_sets_monotone_in_parameter(x, a, b):
    lo, hi = sorted((a, b))
    assert kept(T.typical_p(x, lo)) <= kept(T.typical_p(x, hi))
    assert kept(T.epsilon_cutoff(x, hi)) <= kept(T.epsilon_cutoff(x, lo))
    assert kept(T.eta_cutoff(x, hi)) <= kept(T.eta_cutoff(x, lo))
    assert kept(T.top_n_sigma(x, 10 * lo)) <= kept(T.top_n_sigma(x, 10 * hi))


@settings(max_examples=200, deadline=None)
@given(logit_rows, st.floats(0, 4), st.floats(0.05, 20))
def test_top_n_sigma_kept_set_invariant_to_temperature(x, n, t):
    assert kept(T.top_n_sigma(x, n)) == kept(T.top_n_sigma(x / t, n))
    params = SamplingParams(top_n_sigma=n, temperature=t)
    assert kept(pipeline.process(x, params)) == kept(T.top_n_sigma(x, n))


@settings(max_examples=200, deadline=None)
@given(logit_rows, histories, st.floats(1.0, 5.0))
def test_repetition_penalty_never_raises_a_repeated_token(x, hist, penalty):
    hist = [t for t in hist if t < x.shape[1]]
    before = F.softmax(x)[0]
    after = F.softmax(P.repetition_penalty(x, [hist], penalty))[0]
    for t in set(hist):
        # the repeated token's logit never increases, the others never decrease
        assert P.repetition_penalty(x, [hist], penalty)[0, t] <= x[0, t]
    if len(set(hist)) == 1:
        assert after[hist[0]] <= before[hist[0]] + 1e-12


# ---------------------------------------------------------------- exact statistics
def _chisquare_tokens(params, probs, *, history=None, position=0, draws=100_000, seed=0):
    logits = np.log(np.array(probs))
    exact = F.softmax(pipeline.process(logits, params, history, position))[0]
    rng = np.random.default_rng(seed)
    rows = np.broadcast_to(logits, (draws, len(probs)))
    hist = None if history is None else history * draws
    ids = pipeline.sample(rows, params, rng, history=hist, position=position).token_ids
    counts = np.bincount(ids, minlength=len(probs))
    support = exact > 0
    assert counts[~support].sum() == 0  # a removed token was never drawn
    return stats.chisquare(counts[support], exact[support] * draws).pvalue


def pooled_chisquare(counts: np.ndarray, expected: np.ndarray) -> float:
    """Chi-square p-value with the cells of expected count < 5 pooled into one."""
    small = expected < 5
    c, e = counts[~small], expected[~small]
    if small.any():
        c, e = np.append(c, counts[small].sum()), np.append(e, expected[small].sum())
    return float(stats.chisquare(c, e).pvalue)


BASE = [0.35, 0.25, 0.15, 0.12, 0.08, 0.05]


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(typical_p=0.6),
        SamplingParams(epsilon=0.07),
        SamplingParams(eta=0.1),
        SamplingParams(top_n_sigma=1.0, temperature=0.7),
        SamplingParams(repetition_penalty=1.8),
        SamplingParams(presence_penalty=0.5, frequency_penalty=0.3),
        SamplingParams(temperature=0.0, fire_temperature=1.3),
        SamplingParams(top_k=4, top_p=0.8, min_p=0.1, temperature=1.4),
    ],
    ids=["typical", "epsilon", "eta", "top_n_sigma", "repetition", "presence", "fire", "mixed"],
)
def test_100k_draws_match_processed_distribution(params):
    """100,000 single-token draws per sampler vs the exact processed distribution."""
    assert _chisquare_tokens(params, BASE, history=[[0, 0, 2]]) > ALPHA


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_tokens=4, typical_p=0.7),
        SamplingParams(max_tokens=4, eta=0.15),
        SamplingParams(max_tokens=4, epsilon=0.15),
        SamplingParams(max_tokens=4, top_n_sigma=1.0),
        SamplingParams(max_tokens=4, repetition_penalty=2.0),
        SamplingParams(max_tokens=4, frequency_penalty=0.7),
        SamplingParams(max_tokens=4, temperature=0.0, fire_temperature=1.0, fire_tokens=2),
        SamplingParams(max_tokens=4, decoding="arithmetic", n=8),
    ],
    ids=["typical", "eta", "epsilon", "top_n_sigma", "repetition", "frequency", "fire", "arith"],
)
def test_toy_lm_sequences_match_exact_distribution(params):
    """20,000 ToyLM sequences vs the enumerated law (history- and position-dependent)."""
    toy = ToyLM()
    exact = toy.exact_distribution(params)
    keys = list(exact)
    index = {k: i for i, k in enumerate(keys)}
    counts = np.zeros(len(keys))
    per_call = params.n
    for seed in range(20_000 // per_call):
        for s in toy.generate(Prompt(text="x"), params.replace(seed=seed)).samples:
            counts[index[s.token_ids]] += 1  # KeyError: an impossible sequence was drawn
    expected = np.array([exact[k] for k in keys]) * counts.sum()
    assert pooled_chisquare(counts, expected) > ALPHA


def test_arithmetic_sampling_each_code_point_is_marginally_exact():
    """Sample i of every set (fixed i) follows the exact law: 4,000 sets of 4."""
    toy = ToyLM()
    params = SamplingParams(max_tokens=3, decoding="arithmetic", n=4)
    exact = toy.exact_distribution(params)
    keys = list(exact)
    index = {k: i for i, k in enumerate(keys)}
    counts = np.zeros((4, len(keys)))
    for seed in range(4_000):
        for i, s in enumerate(toy.generate(Prompt(text="x"), params.replace(seed=seed)).samples):
            counts[i, index[s.token_ids]] += 1
    expected = np.array([exact[k] for k in keys]) * 4_000
    for i in range(4):
        assert pooled_chisquare(counts[i], expected) > ALPHA / 4  # Bonferroni over 4 positions


def test_arithmetic_sets_are_more_diverse_than_iid_sets():
    """Mean distinct sequences per set of 8: arithmetic vs the exact i.i.d. expectation."""
    toy = ToyLM()
    params = SamplingParams(max_tokens=3, n=8)
    exact = toy.exact_distribution(params)
    iid_expected = sum(1 - (1 - p) ** 8 for p in exact.values())
    distinct = [
        len(
            {
                s.token_ids
                for s in toy.generate(
                    Prompt(text="x"), params.replace(seed=seed, decoding="arithmetic")
                ).samples
            }
        )
        for seed in range(500)
    ]
    mean, sem = np.mean(distinct), np.std(distinct, ddof=1) / math.sqrt(len(distinct))
    assert mean > iid_expected + 5 * sem
    # and the arithmetic sets are reproducible under a seed
    a = toy.generate(Prompt(text="x"), params.replace(seed=3, decoding="arithmetic"))
    b = toy.generate(Prompt(text="x"), params.replace(seed=3, decoding="arithmetic"))
    assert [s.token_ids for s in a.samples] == [s.token_ids for s in b.samples]


def test_arithmetic_codes_rescale_into_the_chosen_interval():
    # probs [0.5, 0.3, 0.2]: code 0.6 lands in token 1's interval [0.5, 0.8) -> (0.6-0.5)/0.3
    draw = pipeline.sample(np.log([[0.5, 0.3, 0.2]]), SamplingParams(), None, codes=np.array([0.6]))
    assert draw.token_ids[0] == 1
    assert draw.next_codes[0] == pytest.approx(1 / 3)
    with pytest.raises(ConfigError, match=r"codes must have shape \(1,\) with values in \[0, 1\)"):
        pipeline.sample(np.zeros((1, 3)), SamplingParams(), None, codes=np.array([1.0]))


def test_priority_decoding_is_refused_by_a_backend_directly():
    with pytest.raises(ConfigError, match="samplescale.decoders.generate"):
        ToyLM().generate(Prompt(text="x"), SamplingParams(decoding="priority"))


@settings(max_examples=60, deadline=None)
@given(st.integers(1025, 1600), st.integers(0, 2**32 - 1), st.floats(0.0, 0.999), st.booleans())
def test_prefix_fast_path_equals_a_full_stable_sort(vocab, seed, p, peaked):
    """The candidate shortcut (partition to 1024) keeps exactly what a full sort keeps,
    also with many ties at the candidate boundary (logits rounded to a coarse grid)."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(2, vocab)) * (6.0 if peaked else 1.0), 1)
    probs = F.softmax(x)
    fast = F.smallest_prefix_with_mass(-probs, probs, p)
    for r in range(2):
        order = np.argsort(-probs[r], kind="stable")
        sorted_p = probs[r, order].astype(np.float64)
        kept = np.cumsum(sorted_p) - sorted_p < p
        kept[0] = True
        assert set(order[kept]) == set(np.flatnonzero(fast[r]))


def test_contradictory_params_are_refused():
    with pytest.raises(ValueError, match="fire_tokens needs fire_temperature"):
        SamplingParams(fire_tokens=3)
    with pytest.raises(ValueError, match="kl_sigma works with decoding='independent'"):
        SamplingParams(kl_sigma=1.0, decoding="priority")
    assert SamplingParams(fire_temperature=1.5, fire_tokens=3).fire_tokens == 3
