"""phi-decoding (foresight sampling): pruning, the joint distribution, early stop and
cost, on scripted steps with known log-probabilities; and the embedded model."""

from __future__ import annotations

import pytest

from samplescale.backends.fake import ScriptedBackend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies import PhiDecoding, phi_decoding

CANDIDATES = ["Add them.\n\n", "Sum it.\n\n", "Hmm.\n\n"]


def run(replies, logprobs, seed=3, **options):
    backend = ScriptedBackend(replies, token_logprob=logprobs)
    r = phi_decoding(backend, "q", SamplingParams(n=3, seed=seed, max_tokens=40), **options)
    return r, backend, [t for t in r.trace if t.get("event") == "phi"]


def test_clusters_and_values_form_the_joint_and_a_settled_vote_stops():
    replies = [*CANDIDATES, "so \\boxed{5}", "so \\boxed{5}", "so \\boxed{7}"]
    r, backend, recs = run(replies, -0.1, depth_threshold=0.6)
    (rec,) = recs
    assert rec["kept"] == rec["candidates"] == [1, 2, 3]  # equal log-probabilities: none pruned
    assert rec["foresight"] == pytest.approx([-0.1] * 3)
    # value part 1/3 each; cluster part 2/5, 2/5, 1/5 (sizes 2, 2, 1); the mean of the two
    assert rec["probabilities"] == pytest.approx([11 / 30, 11 / 30, 8 / 30])
    assert rec["early_stop"] is True  # 2 of 3 rollouts agree: 0.667 >= 0.6
    assert [p.n for _, p in backend.calls] == [3, 1, 1, 1]
    pick = rec["kept"].index(rec["chosen"] - 3)  # the chosen rollout's candidate
    assert r.samples[0].text == CANDIDATES[pick] + replies[3 + pick]
    assert r.answer == ("7" if pick == 2 else "5") and r.trace[-1]["stop_reason"] == "done"
    again, _, _ = run(replies, -0.1, depth_threshold=0.6)
    assert again.samples[0].text == r.samples[0].text  # seeded choice


def test_an_unlikely_candidate_is_pruned_before_its_rollout():
    # mean -1.067, std 1.367: the cut -2.43 drops the candidate at -3.0 (no rollout for it)
    replies = [*CANDIDATES, "so \\boxed{5}", "so \\boxed{5}"]
    r, backend, recs = run(replies, [-0.1, -0.1, -3.0, -0.2, -0.2])
    assert recs[0]["kept"] == [1, 2] and recs[0]["early_stop"] is True  # 2 of 2 agree
    assert [p.n for _, p in backend.calls] == [3, 1, 1]
    assert r.answer == "5"
    assert recs[0]["foresight"][0] == pytest.approx(
        -(0.1 * len("Add them.\n\n") + 0.2 * len("so \\boxed{5}"))
        / (len("Add them.\n\n") + len("so \\boxed{5}")))


def test_without_agreement_the_search_goes_on_step_by_step():
    replies = [*CANDIDATES, "so \\boxed{5}", "so \\boxed{6}", "so \\boxed{7}"]
    r, backend, recs = run(replies, -0.1, max_steps=2)
    assert [rec["early_stop"] for rec in recs] == [False, False]
    # step 2's candidates reach max_steps: they end the solution and need no rollout
    assert [p.n for _, p in backend.calls] == [3, 1, 1, 1, 3]
    assert len(r.samples) == 1 and r.samples[0].text.count("\n\n") >= 1


@pytest.mark.parametrize(("options", "message"), [
    ({"tau": 0}, r"tau must be a number in \(0, inf\)"),
    ({"tau": float("nan")}, r"tau must be a number in \(0, inf\)"),
    ({"prune_sigma": -1}, r"prune_sigma must be a number in \[0, inf\)"),
    ({"depth_threshold": 0}, r"depth_threshold must be a number in \(0, 1\]"),
    ({"depth_threshold": 1.5}, r"depth_threshold must be a number in \(0, 1\]"),
    ({"width": 0}, r"width must be an integer >= 1"),
])
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        PhiDecoding(**options)


@pytest.mark.slow
def test_phi_decoding_on_the_embedded_model(llama_backend):
    r = phi_decoding(llama_backend, "What is 12 + 30?", SamplingParams(n=2, seed=4,
                     max_tokens=24), max_steps=2)
    recs = [t for t in r.trace if t.get("event") == "phi"]
    assert 1 <= len(recs) <= 2 and len(r.samples) == 1
    assert all(abs(sum(rec["probabilities"]) - 1) < 1e-9 for rec in recs)
    assert r.usage.completion_tokens == r.trace[-1]["policy_tokens"] > 0
