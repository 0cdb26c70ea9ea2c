"""MUR (momentum-uncertainty guided reasoning): which steps are scaled, what is kept, and
what it costs, on scripted steps with known log-probabilities; and the embedded model."""

from __future__ import annotations

import math

import pytest

from samplescale.backends.base import Capabilities
from samplescale.backends.fake import ScriptedBackend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies import MUR, mur


def score(prompt, steps):  # the scorer prefers the step that says "good"
    return 0.9 if "good" in steps[-1] else 0.1


def run(replies, logprobs, **options):
    backend = ScriptedBackend(replies, token_logprob=logprobs)
    r = mur(backend, "q", SamplingParams(n=2, seed=1, max_tokens=40), scorer=score,
            scorer_scale="probability", **options)
    return r, backend, [t for t in r.trace if t.get("event") == "mur"]


STEPS = ["Step one.\n\n", "Step two.\n\n", "bad pick \\boxed{4}", "good pick \\boxed{5}"]


def test_an_uncertain_step_is_redrawn_and_the_best_candidate_kept():
    # step 1: u = 0.1 starts the momentum; step 2: u = 2.0 > 0.1 + ln(1/0.9) = 0.2054
    r, backend, recs = run(STEPS, [-0.1, -2.0, -0.3, -0.5])
    assert [(rec["uncertainty"], rec["scaled"]) for rec in recs] == [
        (pytest.approx(0.1), False), (pytest.approx(2.0), True)]
    assert recs[1]["threshold"] == pytest.approx(0.1 + math.log(1 / 0.9))
    assert recs[1]["momentum"] == pytest.approx(0.9 * 0.1 + 0.1 * 0.5)  # the kept step's u
    assert r.answer == "5" and r.samples[0].text == "Step one.\n\ngood pick \\boxed{5}"
    assert [p.n for _, p in backend.calls] == [1, 1, 2]  # width = n = 2 candidates
    assert r.usage.model_calls == 3 and r.trace[-1]["scorer_calls"] == 2


def test_a_small_gamma_scales_nothing():
    # ln(1/0.1) = 2.303: u = 2.0 stays under 0.1 + 2.303; step two is kept as drawn
    r, backend, recs = run(STEPS, [-0.1, -2.0, -0.3, -0.5], gamma=0.1)
    assert [rec["scaled"] for rec in recs] == [False, False, False]
    assert r.answer == "4" and [p.n for _, p in backend.calls] == [1, 1, 1]
    assert r.trace[-1]["scorer_calls"] == 0


def test_width_and_bad_options():
    _, backend, _ = run(STEPS + ["good \\boxed{6}"], [-0.1, -2.0, -0.3, -0.5, -0.1], width=3)
    assert [p.n for _, p in backend.calls] == [1, 1, 3]
    for options, message in (({"gamma": 0}, r"gamma must be a number in \(0, 1\]"),
                             ({"gamma": 1.5}, r"gamma must be a number in \(0, 1\]"),
                             ({"alpha": 1}, r"alpha must be a number in \[0, 1\)"),
                             ({"width": 0}, r"width must be an integer >= 1")):
        with pytest.raises(ConfigError, match=message):
            MUR(**options)


def test_a_backend_without_logprobs_is_refused():
    class NoLogprobs(ScriptedBackend):
        capabilities = Capabilities(logits=False, logprobs=False, seeds=True, parallel_n=True,
                                    chat=True)

    with pytest.raises(ConfigError, match="strategy 'mur' needs per-token log-probabilities"):
        mur(NoLogprobs(STEPS), "q", SamplingParams(n=2), scorer=score, scorer_scale="probability")


@pytest.mark.slow
def test_mur_on_the_embedded_model(llama_backend):
    r = mur(llama_backend, "What is 12 + 30?", SamplingParams(n=2, seed=4, max_tokens=24),
            max_steps=3, gamma=1.0)
    recs = [t for t in r.trace if t.get("event") == "mur"]
    assert 1 <= len(recs) <= 3 and len(r.samples) == 1
    assert all(rec["uncertainty"] >= 0 for rec in recs) and not recs[0]["scaled"]
    scaled = sum(rec["scaled"] for rec in recs)
    assert r.trace[-1]["scorer_calls"] == 2 * scaled  # P(True) on each candidate
    assert r.usage.completion_tokens == r.trace[-1]["policy_tokens"] > 0
