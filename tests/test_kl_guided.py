"""KL-guided dynamic temperature: formulas and the exact law of the first token."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from samplescale.backends.fake import ToyLM
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.decoders.kl_guided import kl_divergence, kl_guided_generate, kl_temperature
from samplescale.errors import ConfigError
from samplescale.sampling import functional as F
from samplescale.types import Prompt


class GroundedToy(ToyLM):
    """The toy LM where a grounding source acts as a context token "3" before the reply."""

    def tokenize_prompt(self, prompt):
        return (
            [3] if prompt.grounding is None and prompt.text and "SRC" in prompt.text else []
        ) + (super().tokenize_prompt(prompt))


def grounded_prompt():
    return Prompt(text="q", grounding="SRC")


def test_kl_divergence_and_temperature_tables():
    # KL([.5,.5] || [.9,.1]) = .5 ln(.5/.9) + .5 ln(.5/.1) = 0.5108256
    assert kl_divergence(np.log([0.5, 0.5]), np.log([0.9, 0.1])) == pytest.approx(
        0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5.0)
    )
    assert kl_divergence(np.log([0.2, 0.8]), np.log([0.2, 0.8])) == 0.0
    assert kl_divergence(np.array([0.0, -np.inf]), np.log([0.5, 0.5])) == pytest.approx(
        math.log(2.0)
    )
    assert kl_temperature(1.0, 2.0, 1.0) == 0.25
    assert kl_temperature(0.8, 0.0, 3.0) == 0.8


def test_first_token_follows_the_tempered_grounded_distribution():
    """20,000 first tokens vs softmax(log p / T0), T0 = T * 2^(-KL(p||q)/sigma)."""
    toy = GroundedToy()
    p = toy.next_token_logits([3])  # after "3": ln [.6, .1, .1, .2]
    q = toy.next_token_logits([])  # after BOS: ln [.1, .5, .3, .1]
    params = SamplingParams(n=20_000, max_tokens=1, temperature=1.2, kl_sigma=0.4, seed=2)
    out = kl_guided_generate(toy, grounded_prompt(), params)
    kl = kl_divergence(p, q)
    t0 = 1.2 * 2.0 ** (-kl / 0.4)
    assert out.temperatures[0][0] == pytest.approx(t0)
    exact = F.softmax(p / t0)[0]
    counts = np.bincount([s.token_ids[0] for s in out.generation.samples], minlength=4)
    assert stats.chisquare(counts, exact * 20_000).pvalue > 1e-3


def test_later_tokens_use_the_base_temperature_when_contexts_agree():
    toy = GroundedToy()
    out = kl_guided_generate(
        toy, grounded_prompt(), SamplingParams(n=20, max_tokens=4, kl_sigma=1.0, seed=0)
    )
    for temps, kls in zip(out.temperatures, out.kl):
        assert kls[0] > 0
        assert all(k == 0.0 for k in kls[1:])  # bigram: both contexts end in the same token
        assert all(t == 1.0 for t in temps[1:])


def test_kl_guided_runs_through_the_dispatch_and_refuses_bad_setups():
    toy = GroundedToy()
    g = generate(toy, grounded_prompt(), SamplingParams(n=3, max_tokens=3, kl_sigma=1.0, seed=1))
    assert len(g.samples) == 3 and g.usage.model_calls == 2 * sum(s.num_tokens for s in g.samples)
    with pytest.raises(ConfigError, match="grounding"):
        generate(toy, Prompt(text="q"), SamplingParams(kl_sigma=1.0))
    with pytest.raises(ConfigError, match="decoders.generate"):
        toy.generate(grounded_prompt(), SamplingParams(kl_sigma=1.0))
    # the contradiction is refused when the params are built
    with pytest.raises(ValueError, match="kl_sigma works with decoding='independent'"):
        SamplingParams(kl_sigma=1.0, decoding="arithmetic")
    with pytest.raises(ValueError, match="kl_sigma"):
        SamplingParams(kl_sigma=0.0)
