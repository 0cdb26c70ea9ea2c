"""Gumbel-max counterfactuals: exact samples, posterior noise that reproduces the observation,
and the joint law of (observed, counterfactual) by both routes."""

from __future__ import annotations

import numpy as np
import pytest
from exact_law import chisquare_pvalue
from scipy.stats import chi2_contingency, kstest

from samplescale.backends.fake import ToyLM
from samplescale.config import SamplingParams
from samplescale.decoders.gumbel import (
    counterfactual,
    infer_noise,
    sample_with_noise,
    truncated_gumbel,
)
from samplescale.errors import ConfigError
from samplescale.types import Prompt

PROMPT = Prompt(text="x")
OTHER_TABLE = np.array(
    [
        [0.20, 0.20, 0.20, 0.40],
        [0.30, 0.10, 0.30, 0.30],
        [0.10, 0.60, 0.10, 0.20],
        [0.25, 0.25, 0.25, 0.25],
    ]
)
ALPHA = 1e-3  # statistical tests: fixed seeds, reject at p < 0.001


def test_truncated_gumbel_follows_the_conditional_law():
    """CDF exp(-exp(loc - x) + exp(loc - b)) on x <= b; Kolmogorov-Smirnov at alpha 0.001."""
    rng = np.random.default_rng(0)
    loc, bound = 0.3, 1.0
    x = truncated_gumbel(np.full(20_000, loc), bound, rng)
    assert x.max() <= bound
    cdf = lambda v: np.exp(-np.exp(loc - np.minimum(v, bound)) + np.exp(loc - bound))  # noqa: E731
    assert kstest(x, cdf).pvalue > ALPHA
    untruncated = loc + rng.gumbel(size=20_000)
    assert kstest(np.minimum(untruncated, bound), cdf).pvalue < 1e-6  # the test has power


@pytest.mark.parametrize(
    "params",
    [SamplingParams(max_tokens=3), SamplingParams(max_tokens=3, temperature=0.7, top_p=0.8)],
    ids=["plain", "T0.7_top_p0.8"],
)
def test_gumbel_max_samples_are_exact(params):
    toy, rng = ToyLM(), np.random.default_rng(1)
    draws = [sample_with_noise(toy, PROMPT, params, rng) for _ in range(8_000)]
    assert (
        chisquare_pvalue((d.sample.token_ids for d in draws), toy.exact_distribution(params))
        > ALPHA
    )
    d = draws[0]
    assert d.noise.shape == (d.sample.num_tokens, 4)


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_tokens=5),
        SamplingParams(max_tokens=5, temperature=0.5, top_k=3),
        SamplingParams(max_tokens=5, repetition_penalty=2.0, stop=("32",)),
    ],
    ids=["plain", "T0.5_top_k3", "penalty_stop"],
)
def test_inferred_noise_reproduces_the_observation(params):
    toy, rng = ToyLM(), np.random.default_rng(2)
    for _ in range(200):
        obs = sample_with_noise(toy, PROMPT, params, rng).sample
        noise = infer_noise(toy, PROMPT, obs.token_ids, params, rng)
        again = counterfactual(toy, PROMPT, params, noise)
        assert again.sample == obs
        np.testing.assert_array_equal(again.noise, noise)


def test_counterfactual_keeps_the_noise_and_extends_it():
    toy, rng = ToyLM(), np.random.default_rng(3)
    noise = rng.gumbel(size=(1, 4))
    noise[0] = [0.0, 0.0, 5.0, 0.0]  # token "2" wins the first step under any table here
    out = counterfactual(ToyLM(OTHER_TABLE), PROMPT, SamplingParams(max_tokens=4), noise, rng)
    assert out.sample.token_ids[0] == 2
    np.testing.assert_array_equal(out.noise[:1], noise)
    assert counterfactual(toy, PROMPT, SamplingParams(max_tokens=1), noise).sample.text == "2"


def test_counterfactual_at_temperature_zero_is_the_greedy_path():
    toy, rng = ToyLM(), np.random.default_rng(4)
    obs = sample_with_noise(toy, PROMPT, SamplingParams(max_tokens=4), rng)
    greedy = SamplingParams(max_tokens=4, temperature=0)
    cf = counterfactual(toy, PROMPT, greedy, obs.noise, rng)
    assert cf.sample.text == "1212"
    assert cf.sample.sampling_logprobs == (0.0, 0.0, 0.0, 0.0)


def joint_counts(pairs: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> dict:
    out: dict = {}
    for pair in pairs:
        out[pair] = out.get(pair, 0) + 1
    return out


def test_joint_law_prior_noise_equals_observe_then_infer():
    """(observed under A, counterfactual under B): shared prior noise vs inferred posterior
    noise. Chi-square homogeneity test of the two 2-D laws at alpha 0.001, fixed seeds."""
    a, b = ToyLM(), ToyLM(OTHER_TABLE)
    params = SamplingParams(max_tokens=2)
    n = 6_000
    rng = np.random.default_rng(5)
    prior = []
    for _ in range(n):
        noise = rng.gumbel(size=(2, 4))
        prior.append(
            (
                counterfactual(a, PROMPT, params, noise).sample.token_ids,
                counterfactual(b, PROMPT, params, noise).sample.token_ids,
            )
        )
    rng = np.random.default_rng(6)
    posterior, independent = [], []
    for _ in range(n):
        obs = sample_with_noise(a, PROMPT, params, rng).sample.token_ids
        noise = infer_noise(a, PROMPT, obs, params, rng)
        posterior.append((obs, counterfactual(b, PROMPT, params, noise, rng).sample.token_ids))
        independent.append((obs, sample_with_noise(b, PROMPT, params, rng).sample.token_ids))

    def pvalue(x: list, y: list) -> float:
        cx, cy = joint_counts(x), joint_counts(y)
        keys = sorted(set(cx) | set(cy))
        table = np.array([[cx.get(k, 0) for k in keys], [cy.get(k, 0) for k in keys]])
        small = table.sum(axis=0) < 10
        table = np.column_stack([table[:, ~small], table[:, small].sum(axis=1)])
        return float(chi2_contingency(table).pvalue)

    assert pvalue(prior, posterior) > ALPHA
    assert pvalue(prior, independent) < 1e-6  # coupling matters: the test has power
    same = sum(o == c for o, c in prior) / n
    assert same > sum(o == c for o, c in independent) / n + 0.05


def test_errors_name_the_problem():
    toy, rng = ToyLM(), np.random.default_rng(7)
    with pytest.raises(ConfigError, match="token_ids\\[0\\] = 2 has probability 0"):
        infer_noise(toy, PROMPT, [2], SamplingParams(top_k=1), rng)
    with pytest.raises(ConfigError, match="token_ids must be in \\[0, 3\\]"):
        infer_noise(toy, PROMPT, [4], SamplingParams(), rng)
    with pytest.raises(ConfigError, match="token_ids must be integers"):
        infer_noise(toy, PROMPT, [1.7, 2], SamplingParams(), rng)
    with pytest.raises(ConfigError, match=r"token_ids\[1\] = 0: generation stops there "
                       r"\(it is an end-of-sequence token\), so the 1 token ids after it"):
        infer_noise(toy, PROMPT, [1, 0, 2], SamplingParams(), rng)
    # a stop string, also one spread over tokens ("2" then "3"), ends generation there
    with pytest.raises(ConfigError, match=r"token_ids\[2\] = 3: generation stops there \(the "
                       r"text ends in a stop string of \['23'\]\), so the 2 token ids"):
        infer_noise(toy, PROMPT, [1, 2, 3, 1, 1], SamplingParams(stop=["23"]), rng)
    assert infer_noise(toy, PROMPT, [1, 2, 3], SamplingParams(stop=["23"]), rng).shape == (3, 4)
    assert infer_noise(toy, PROMPT, [2, 1, 3], SamplingParams(stop=["23"]), rng).shape == (3, 4)
    assert infer_noise(toy, PROMPT, [np.int64(1), 0], SamplingParams(), rng).shape == (2, 4)
    with pytest.raises(ConfigError, match="not bools"):
        infer_noise(toy, PROMPT, [True, 2], SamplingParams(), rng)
    with pytest.raises(ConfigError, match=r"token_ids\[2\] = 1: generation stops there "
                       r"\(max_tokens=3 is reached\), so the 3 token ids"):
        infer_noise(toy, PROMPT, [1, 2, 1, 2, 1, 2], SamplingParams(max_tokens=3), rng)
    assert infer_noise(toy, PROMPT, [1, 2, 1], SamplingParams(max_tokens=3), rng).shape == (3, 4)
    with pytest.raises(ConfigError, match="n must be 1"):
        infer_noise(toy, PROMPT, [1, 2], SamplingParams(n=2), rng)
    with pytest.raises(ConfigError, match=r"shape \(L, 4\)"):
        counterfactual(toy, PROMPT, SamplingParams(), np.zeros((2, 5)), rng)
    with pytest.raises(ConfigError, match="n must be 1, got 2"):
        sample_with_noise(toy, PROMPT, SamplingParams(n=2), rng)
    with pytest.raises(ConfigError, match="rng is required"):
        counterfactual(toy, PROMPT, SamplingParams(max_tokens=3, temperature=0), np.zeros((1, 4)))


@pytest.mark.llama
def test_smollm2_noise_inference_reproduces_a_sample(llama_backend):
    prompt = Prompt.user("Say a word.")
    params = SamplingParams(max_tokens=6, temperature=0.9, top_p=0.95)
    rng = np.random.default_rng(8)
    obs = sample_with_noise(llama_backend, prompt, params, rng)
    assert obs.noise.shape == (obs.sample.num_tokens, llama_backend.vocab_size)
    noise = infer_noise(llama_backend, prompt, obs.sample.token_ids, params, rng)
    assert counterfactual(llama_backend, prompt, params, noise).sample.token_ids == (
        obs.sample.token_ids
    )
    cooler = counterfactual(llama_backend, prompt, params.replace(temperature=0.3), noise, rng)
    assert cooler.sample.num_tokens >= 1
