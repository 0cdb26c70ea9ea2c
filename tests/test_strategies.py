"""Strategies and aggregation: hand-computed selections, and a contract over every strategy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from samplescale.aggregate import argmax, cluster, vote
from samplescale.backends.fake import ScriptedBackend, ToyLM
from samplescale.config import Constraint, SamplingParams
from samplescale.errors import ConfigError, UnknownNameError
from samplescale.strategies import (
    STRATEGIES,
    BestOfN,
    RepeatedSampling,
    SelfConsistency,
    WeightedVote,
    best_of_n,
    get_strategy,
    greedy,
    self_consistency,
)
from samplescale.types import Prompt, Result, Sample
from samplescale.verifiers.math import answers_equivalent, is_equivalent
from samplescale.verifiers.process import CallableScorer
from samplescale.verifiers.scorers import oracle

PARAMS = SamplingParams(n=5, temperature=0.8, seed=0)


def test_c18_equivalence_aware_vote():
    answers = ["0.5", "\\frac{1}{2}", "1/2", "3", "3"]
    v = vote(answers, equivalent=answers_equivalent)
    assert v.answer == "0.5" and v.winner == 0
    assert v.shares == pytest.approx({"0.5": 0.6, "3": 0.4})
    assert vote(answers).answer == "3"  # plain string voting would pick 3
    replies = [f"The answer is {a}." for a in answers]
    r = self_consistency(ScriptedBackend(replies), "q", PARAMS)
    assert r.answer == "0.5" and r.vote_shares == pytest.approx({"0.5": 0.6, "3": 0.4})


def test_c19_ties_go_to_the_earliest_first_seen_class():
    v = vote(["1.0", "2.0", "1.0", "2.0", "3.0"])
    assert (v.answer, v.winner) == ("1.0", 0)
    assert v.shares == pytest.approx({"1.0": 0.4, "2.0": 0.4, "3.0": 0.2})
    assert vote(["2.0", "1.0", "1.0", "2.0"]).answer == "2.0"


def test_cluster_none_and_first_seen_numbering():
    assert cluster(["a", None, "b", "a", None, "c"]) == [0, None, 1, 0, None, 2]


def test_weighted_vote_hand_computed():
    # answers 7 (w .5), 7 (w .5), 9 (w .9): weighted sum picks 7 (1.0 vs 0.9)
    v = vote(["7", "7", "9"], [0.5, 0.5, 0.9])
    assert v.answer == "7" and v.shares == pytest.approx({"7": 1.0 / 1.9, "9": 0.9 / 1.9})
    with pytest.raises(ConfigError, match="weights"):
        vote(["7"], [-1.0])
    with pytest.raises(ConfigError, match="length"):
        vote(["7", "8"], [1.0])


def test_argmax_ignores_none_and_nan():
    assert argmax([None, 0.2, float("nan"), 0.5, 0.5]) == 3
    assert argmax([None, None]) is None


def test_best_of_n_by_mean_logprob_and_by_oracle():
    backend = ScriptedBackend(
        ["The answer is 4", "The answer is 5", "The answer is 6"], token_logprob=[-0.9, -0.1, -0.5]
    )
    r = best_of_n(backend, "q", SamplingParams(n=3))
    assert r.answer == "5" and r.selected == 1 and r.score_scale == "log-probability"
    assert r.scores == pytest.approx((-0.9, -0.1, -0.5))
    r = BestOfN(scorer=oracle(lambda a: is_equivalent(a, "6"))).run(
        ScriptedBackend(["The answer is 4", "The answer is 5", "The answer is 6"]),
        "q",
        SamplingParams(n=3),
    )
    assert r.answer == "6" and r.scores == (0.0, 0.0, 1.0)
    r = best_of_n(
        ScriptedBackend(["The answer is 4", "The answer is 55"], token_logprob=-0.5),
        "q",
        SamplingParams(n=2),
        scorer="sum-logprob",
    )
    assert r.answer == "4" and r.scores == pytest.approx((-7.5, -8.0))
    with pytest.raises(UnknownNameError, match="valid: mean-logprob, sum-logprob"):
        BestOfN(scorer="prm")


def test_weighted_vote_by_sequence_probability():
    replies = ["The answer is 7", "The answer is 7", "The answer is 9"]
    # per-token logprobs: 7s are unlikely (-0.5/token), 9 is likely (-0.01/token); same lengths
    backend = ScriptedBackend(replies, token_logprob=[-0.5, -0.5, -0.01])
    r = WeightedVote(weight="mean-logprob").run(backend, "q", SamplingParams(n=3))
    w7, w9 = 2 * math.exp(-0.5), math.exp(-0.01)
    assert r.answer == "7" and r.vote_shares["7"] == pytest.approx(w7 / (w7 + w9))
    r = WeightedVote(weight="sum-logprob").run(
        ScriptedBackend(replies, token_logprob=[-0.5, -0.5, -0.01]), "q", SamplingParams(n=3)
    )
    assert r.answer == "9"  # 15 tokens: exp(-7.5) * 2 << exp(-0.15)
    assert sum(r.weights) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="weight"):
        WeightedVote(weight="bogus")


def test_repeated_sampling_coverage_with_oracle():
    backend = ScriptedBackend(["The answer is 4", "The answer is 5", "The answer is 6"])
    r = RepeatedSampling(oracle=lambda a: a == "5").run(backend, "q", SamplingParams(n=3))
    assert (r.selected, r.answer, r.scores) == (1, "5", (0.0, 1.0, 0.0))
    r = RepeatedSampling(oracle=lambda a: a == "8").run(backend, "q", SamplingParams(n=3))
    assert r.selected is None and r.answer is None


def test_error_samples_never_vote_or_win():
    backend = ScriptedBackend([RuntimeError("upstream 500"), "The answer is 3", RuntimeError("x")])
    r = self_consistency(backend, "q", SamplingParams(n=3))
    assert r.answer == "3" and r.vote_shares == {"3": 1.0}
    assert r.answers == (None, "3", None)
    r = best_of_n(ScriptedBackend([RuntimeError("x"), "The answer is 3"]), "q", SamplingParams(n=2))
    assert r.selected == 1 and r.scores[0] is None


def test_greedy_uses_temperature_zero_and_one_sample():
    toy = ToyLM()
    r = greedy(toy, Prompt(text="x"), SamplingParams(n=8, temperature=1.3, max_tokens=3))
    assert len(r.samples) == 1 and r.samples[0].text == "121"
    # cut by max_tokens: its last number is not a stated answer (sample_answer)
    assert r.samples[0].finish_reason == "length" and r.answer is None
    r = greedy(toy, Prompt(text="x"), SamplingParams(temperature=1.3, max_tokens=3, stop=("2",)))
    assert r.samples[0].text == "1" and r.samples[0].finish_reason == "stop" and r.answer == "1"


def test_registry_names_aliases_and_unknown():
    assert set(STRATEGIES.names()) >= {
        "greedy",
        "repeated-sampling",
        "best-of-n",
        "self-consistency",
        "weighted-vote",
        "esc",
        "adaptive-consistency",
        "semantic-entropy",
        "confidence-stop",
    }
    assert isinstance(get_strategy("self_consistency"), SelfConsistency)
    assert isinstance(get_strategy("Best_Of_N"), BestOfN)
    with pytest.raises(UnknownNameError) as exc:
        get_strategy("beam")
    assert "valid: ab-mcts, adaptive-consistency, aggregate, batch-prompting, beam-search, best-first, best-of-n, " in str(
        exc.value
    )


SAMPLING_STRATEGIES = {
    "greedy",
    "repeated-sampling",
    "best-of-n",
    "self-consistency",
    "weighted-vote",
}


def _configured(name: str):
    """The strategy with defaults, plus a deterministic process scorer where it takes one
    (the fake backends cannot serve the default P(True) scorer)."""
    cls = STRATEGIES.get(name)
    if name == "constrained-smc":  # the toy LM's strings "1", "22", "333"
        return get_strategy(name, constraint=Constraint(kind="regex", source="1|22|333"))
    if name == "fractured":  # the toy LM continues only prefixes of "1", "2", "3"
        return get_strategy(name, cue="")
    if name == "model-switch":  # it needs a second model
        return get_strategy(name, models=[ToyLM()])
    if name == "osca":  # it needs an allocation of the N = 4 samples
        return get_strategy(name, allocation={"0.5": 1, "1.0": 3})
    if name == "reprompting":  # it needs a recipe
        return get_strategy(name, recipe=[{"question": "1+1?", "solution": "The answer is 2"}])
    if name == "thinksum":  # labels the toy LM has ("Yes" is not in its vocabulary)
        return get_strategy(name, positive="1", negative="2")
    fields = {f.name for f in dataclasses.fields(cls)}
    if name in SAMPLING_STRATEGIES or "scorer" not in fields:
        return get_strategy(name)
    scorer = CallableScorer(lambda prompt, steps: 1.0 / (1.0 + len("".join(steps))), "probability")
    return get_strategy(name, scorer=scorer)


def test_result_json_keeps_non_finite_scores_apart_from_missing_ones():
    """``generate --json`` and stored results: -inf is "-Infinity" (strict JSON) and reads back
    as -inf; a missing score stays null."""
    r = Result(strategy="best-of-n", samples=(Sample(text="a"), Sample(text="b")),
               scores=(-math.inf, None), score_scale="log-probability", log_evidence=math.inf)
    text = r.model_dump_json()
    assert '"scores":["-Infinity",null]' in text and '"log_evidence":"Infinity"' in text
    back = Result.model_validate_json(text)
    assert back.scores == (-math.inf, None) and back.log_evidence == math.inf


@pytest.mark.parametrize("name", sorted(STRATEGIES.names()))
@pytest.mark.parametrize("backend_kind", ["scripted", "toy"])
def test_contract_every_strategy_every_fake_backend(name, backend_kind):
    """Result shape, usage accounting and seed reproducibility for every registered strategy;
    the sampling strategies also draw exactly N samples in one call."""

    def make():
        if backend_kind == "toy":
            return ToyLM()
        return ScriptedBackend(["The answer is 2", "so 3", RuntimeError("boom"), "The answer is 2"])

    params = SamplingParams(n=4, seed=5, max_tokens=6)
    if name == "constrained-smc" and backend_kind == "scripted":  # it needs logits
        with pytest.raises(ConfigError, match="constrained-smc needs a backend with logits"):
            _configured(name).run(make(), Prompt(text="q"), params)
        return
    r = _configured(name).run(make(), Prompt(text="q"), params)
    assert isinstance(r, Result) and r.strategy == name
    assert len(r.samples) >= 1 and len(r.answers) == len(r.samples)
    assert r.usage.model_calls >= 1 and r.usage.wall_time_s > 0 and len(r.trace) >= 1
    if r.selected is not None:
        assert r.samples[r.selected].status == "ok"
        assert r.answer == r.answers[r.selected]
    if r.vote_shares:
        assert sum(r.vote_shares.values()) == pytest.approx(1.0)
    if name in SAMPLING_STRATEGIES:
        n = 1 if name == "greedy" else 4
        assert len(r.samples) == n
        assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)
        assert r.usage.model_calls == 1
        assert len(r.trace) == 1 and r.trace[0]["samples"] == n
    again = _configured(name).run(make(), Prompt(text="q"), params)
    assert again.samples == r.samples and again.answer == r.answer


def test_strategy_steps_are_pure_over_immutable_state():
    s = SelfConsistency()
    state = s.init(Prompt(text="q"), SamplingParams(n=3, seed=1, max_tokens=4))
    new, info = s.step(np.random.default_rng(0), state, ToyLM())
    assert state.samples == () and len(new.samples) == 3 and info["samples"] == 3
    assert s.done(new) and not s.done(state)
    assert s.finalize(new) == s.finalize(new)


def test_a_sample_the_outcome_scorer_fails_on_scores_none_and_the_rest_are_kept():
    from samplescale.strategies import get_strategy
    from samplescale.verifiers.scorers import Scorer

    sc = Scorer(name="p", scale="probability", fn=lambda s, a: 1.5 if a == "2" else 0.25 * int(a))
    replies = ["The answer is 1", "The answer is 2", "The answer is 3", "The answer is 1"]
    params = SamplingParams(n=4, max_tokens=20, seed=0)
    r = get_strategy("best-of-n", scorer=sc).run(ScriptedBackend(replies), Prompt.user("q"), params)
    assert r.scores == (0.25, None, 0.75, 0.25) and r.selected == 2 and r.answer == "3"
    assert r.trace[-1]["event"] == "scorer_errors"
    assert r.trace[-1]["errors"] == ["sample 1: scorer 'p' returned 1.5, outside its probability range [0.0, 1.0]"]
    r = get_strategy("weighted-vote", weight=sc).run(ScriptedBackend(replies), Prompt.user("q"), params)
    assert r.vote_shares == {"1": 0.4, "2": 0.0, "3": 0.6} and r.answer == "3"
    assert len(r.trace[-1]["errors"]) == 1


@pytest.mark.parametrize("bad", [0.5, math.nan, [-0.1, math.nan], []])
def test_scripted_backend_refuses_logprobs_that_are_not_log_probabilities(bad):
    with pytest.raises(ConfigError, match="token_logprob values must be <= 0"):
        ScriptedBackend(["x"], token_logprob=bad)
