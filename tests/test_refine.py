"""The ``refine`` strategy: exact prompts and trace on the scripted backend, one real run."""

from __future__ import annotations

import re

import pytest

from samplescale.backends.fake import ScriptedBackend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, UnknownNameError
from samplescale.strategies import Refine, get_strategy
from samplescale.types import Message, Prompt
from samplescale.verifiers.process import CallableScorer

SCORES = {"5": 0.3, "3": 0.1, "4": 0.9, "6": 0.05}
Q = Prompt.user("What is 2 + 2?")


def scorer():
    return CallableScorer(lambda prompt, steps: SCORES[steps[0][-1]], "probability")


def scripted(replies):
    seen: list[Prompt] = []

    def reply(prompt, i):
        seen.append(prompt)
        return replies[i]

    return ScriptedBackend(reply), seen


def feedback(score):
    return (
        f"A verifier scored your answer {score:.3f} (the probability that it is correct, "
        "from 0 to 1; higher is better).\nCheck your answer step by step, correct any mistake "
        "and write the complete improved answer in the same format as asked before."
    )


def test_rounds_revise_the_best_unrevised_candidate_with_its_score():
    replies = ["The answer is 5", "The answer is 3", "The answer is 4", "The answer is 6",
               "The answer is 4", "The answer is 4"]
    backend, seen = scripted(replies)
    r = Refine(rounds=2, scorer=scorer()).run(backend, Q, SamplingParams(n=2, seed=3, max_tokens=30))
    # round 0 asks the question; round 1 revises sample 0 (0.3, the best); round 2 revises
    # sample 2 (0.9: the best not yet revised)
    assert seen[0] == seen[1] == Q
    assert seen[2] == seen[3] == Prompt(messages=(
        Message(role="user", content="What is 2 + 2?"),
        Message(role="assistant", content="The answer is 5"),
        Message(role="user", content=feedback(0.3)),
    ))
    assert seen[4].messages[-2:] == (
        Message(role="assistant", content="The answer is 4"),
        Message(role="user", content=feedback(0.9)),
    )
    assert r.scores == (0.3, 0.1, 0.9, 0.05, 0.9, 0.9) and r.score_scale == "probability"
    assert r.selected == 2 and r.answer == "4"  # ties: the earliest
    assert [t["round"] for t in r.trace] == [0, 1, 2]
    assert r.trace[0]["shown"] == [] and r.trace[0]["parents"] == [None, None]
    assert r.trace[1]["shown"] == [{"index": 0, "score": 0.3}]
    assert r.trace[1]["new"] == [2, 3] and r.trace[1]["parents"] == [0, 0]
    assert r.trace[2]["shown"] == [{"index": 2, "score": 0.9}] and r.trace[2]["parents"] == [2, 2]
    assert r.trace[1]["scores"] == [0.9, 0.05] and r.trace[1]["completion_tokens"] == 30
    assert r.usage.model_calls == 3 and r.usage.scorer_calls == 6
    assert r.usage.completion_tokens == 15 * 6


def test_width_spreads_revisions_and_feedback_text_is_added():
    replies = ["The answer is 5", "The answer is 3", "The answer is 6"] + ["The answer is 4"] * 3
    backend, seen = scripted(replies)
    strategy = Refine(rounds=1, candidates=3, width=2, scorer=scorer(),
                      feedback=lambda prompt, text: f"Test failed on {text[-1]}.")
    r = strategy.run(backend, Q, SamplingParams(n=8, max_tokens=30))
    assert len(r.samples) == 6  # candidates, not n, per round
    # the best (5: 0.3) gets 2 revisions, the next (3: 0.1) 1
    assert r.trace[1]["shown"] == [{"index": 0, "score": 0.3}, {"index": 1, "score": 0.1}]
    assert r.trace[1]["parents"] == [0, 0, 1]
    assert seen[3].messages[-1].content.startswith(
        "A verifier scored your answer 0.300 (the probability that it is correct, from 0 to 1; "
        "higher is better). Test failed on 5.\n")
    assert seen[5].messages[-1].content.startswith("A verifier scored your answer 0.100")
    assert r.usage.model_calls == 3  # one call per shown candidate, one in round 0


def test_text_prompts_and_a_round_without_scored_candidates():
    backend, seen = scripted(["The answer is 5", "The answer is 4"])
    r = Refine(rounds=1, candidates=1, scorer=scorer()).run(
        backend, Prompt(text="Q: 2+2?\nA:"), SamplingParams(max_tokens=30))
    assert seen[1].text == "Q: 2+2?\nA:The answer is 5\n\n" + feedback(0.3) + "\n\n"
    bad = CallableScorer(lambda p, s: 2.0, "probability")  # outside its scale: fails
    r = Refine(rounds=3, candidates=2, scorer=bad).run(
        ScriptedBackend(["The answer is 1"]), Q, SamplingParams(max_tokens=30))
    assert r.scores == (None, None) and r.selected is None and r.answer is None
    assert len(r.trace[0]["scorer_errors"]) == 2
    assert r.trace[-1] == {"event": "stop", "round": 1,
                           "reason": "no scored candidate is left to revise"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rounds": -1}, "rounds must be an integer in [0, 16], got -1"),
        ({"rounds": 17}, "rounds must be an integer in [0, 16], got 17"),
        ({"rounds": True}, "rounds must be an integer in [0, 16], got True"),
        ({"rounds": 1.5}, "rounds must be an integer in [0, 16], got 1.5"),
        ({"candidates": 0}, r"candidates must be an integer in \[1, 256\], got 0"),
        ({"candidates": 10**9}, r"candidates must be an integer in \[1, 256\]"),
        ({"candidates": 2, "width": 3}, r"width must be an integer in \[1, 2\], got 3"),
        ({"width": 0}, r"width must be an integer in \[1, 256\], got 0"),
        ({"template": "{x}"}, "template may use only"),
        ({"template": 3}, "template must be a str"),
        ({"feedback": 5}, "feedback must be a callable"),
        ({"scorer": lambda p, s: 1.0}, "a callable scorer needs scorer_scale"),
        ({"scorer_scale": "percent"}, "scorer_scale must be one of"),
    ],
)
def test_hostile_options_name_the_field_and_range(options, message):
    with pytest.raises(ConfigError) as exc:
        get_strategy("refine", **options)
    assert re.search(message, str(exc.value)) or message in str(exc.value), exc.value


def test_run_time_refusals():
    with pytest.raises(UnknownNameError):
        get_strategy("refine", scorer="nope")
    with pytest.raises(ConfigError, match=r"width must be an integer in \[1, 2\]"):
        Refine(width=3, scorer=scorer()).run(ScriptedBackend(["a"]), Q, SamplingParams(n=2))
    with pytest.raises(ConfigError, match="needs a process scorer.*no next-token logits"):
        Refine().run(ScriptedBackend(["a"]), Q, SamplingParams(n=2))


@pytest.mark.slow
def test_refine_on_the_real_model_with_its_own_p_true(llama_backend):
    params = SamplingParams(n=2, seed=0, max_tokens=16, temperature=0.8)
    r = Refine(rounds=1).run(llama_backend, "What is 3 + 4?", params)
    assert len(r.samples) == 4 and r.score_scale == "probability"
    assert all(s is not None and 0.0 <= s <= 1.0 for s in r.scores)
    assert r.selected == max(range(4), key=lambda i: (r.scores[i], -i))
    assert r.trace[1]["shown"][0]["score"] == max(r.scores[:2])
    # 2 generation calls + 4 P(True) calls, each one model call
    assert r.usage.scorer_calls == 4 and r.usage.model_calls == 6
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)


# ---------------------------------------------------------------- aggregate


def test_aggregate_shows_the_candidates_in_one_prompt_and_answers_from_the_reply():
    from samplescale.strategies import Aggregate

    replies = ["The answer is 5", RuntimeError("boom"), "The answer is 3 ", "The answer is 4"]
    backend, seen = scripted(replies)
    system = Prompt(messages=(Message(role="system", content="Be brief."),
                              Message(role="user", content="What is 2 + 2?")))
    r = Aggregate().run(backend, system, SamplingParams(n=3, seed=1, max_tokens=30))
    assert seen[:3] == [system] * 3
    assert seen[3] == Prompt(messages=(
        Message(role="system", content="Be brief."),
        Message(role="user", content=(
            "What is 2 + 2?\n\nHere are 2 candidate solutions to this problem; some of them "
            "may be wrong.\n\nSolution 1:\nThe answer is 5\n\nSolution 2:\nThe answer is 3\n\n"
            "Compare them, find any mistake, and write one final correct solution (it may "
            "differ from every candidate) in the format asked above.")),
    ))
    assert backend.calls[-1][1].temperature == 0.0 and backend.calls[-1][1].n == 1
    assert r.selected == 3 and r.answer == "4" and r.answers == ("5", None, "3", "4")
    assert r.trace[-1]["event"] == "aggregate" and r.trace[-1]["shown"] == [0, 2]
    assert r.usage.model_calls == 2 and r.usage.completion_tokens == 15 + 16 + 15


def test_aggregate_when_every_candidate_fails_and_hostile_options():
    from samplescale.strategies import Aggregate

    r = Aggregate(candidates=2).run(ScriptedBackend([RuntimeError("x")]), Q, SamplingParams(n=9))
    assert len(r.samples) == 2 and r.selected is None and r.answer is None
    assert r.trace[-1] == {"event": "stop", "reason": "every candidate failed"}
    for options, message in [
        ({"candidates": 0}, "candidates must be an integer in [1, 64] or None, got 0"),
        ({"candidates": 65}, "candidates must be an integer in [1, 64] or None, got 65"),
        ({"temperature": -1.0}, "temperature must be a number in [0, 100] or None, got -1.0"),
        ({"temperature": "hot"}, "temperature must be a number in [0, 100] or None"),
        ({"template": "{answer}"}, "template may use only {question}, {n} and {candidates}"),
    ]:
        with pytest.raises(ConfigError) as exc:
            get_strategy("aggregate", **options)
        assert message in str(exc.value)
    with pytest.raises(ConfigError, match=r"candidates \(params.n\) must be an integer in"):
        Aggregate().run(ScriptedBackend(["a"]), Q, SamplingParams(n=65))


@pytest.mark.slow
def test_aggregate_on_the_real_model(llama_backend):
    from samplescale.strategies import aggregate

    params = SamplingParams(n=2, seed=0, max_tokens=16, temperature=0.8)
    r = aggregate(llama_backend, "What is 3 + 4?", params)
    assert len(r.samples) == 3 and r.selected == 2 and r.usage.model_calls == 2
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)
    again = aggregate(llama_backend, "What is 3 + 4?", params)
    assert again.samples == r.samples  # seeded: the same candidates and the same reply


def test_refine_and_aggregate_through_the_server():
    """``refine@2`` (with the judge scorer, which the scripted backend can serve) and
    ``aggregate@2`` answer through the OpenAI-compatible server."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from _server_helpers import serve

    from samplescale.server import create_app

    def reply(prompt, i):
        text = prompt.messages[-1].content
        if text.startswith("Question:"):  # the judge: "4" is right
            return "Score: 9" if "is 4" in text else "Score: 2"
        if text.startswith("A verifier scored") or "candidate solutions" in text:
            return "The answer is 4"
        return "The answer is 5"

    user = [{"role": "user", "content": "What is 2 + 2?"}]
    with serve(create_app(ScriptedBackend(reply), "fake")) as url:
        refine = httpx.post(url + "/chat/completions", timeout=30, json={
            "model": "refine@2/fake", "messages": user, "max_tokens": 32, "seed": 1,
            "samplescale": {"options": {"scorer": "judge", "rounds": 1}}}).json()
        agg = httpx.post(url + "/chat/completions", timeout=30, json={
            "model": "aggregate@2/fake", "messages": user, "max_tokens": 32}).json()
    assert refine["choices"][0]["message"]["content"] == "The answer is 4"
    cands = refine["samplescale"]["candidates"]
    assert [c["score"] for c in cands] == [2.0, 2.0, 9.0, 9.0]
    assert refine["samplescale"]["selected"] == 2
    assert agg["choices"][0]["message"]["content"] == "The answer is 4"
    assert agg["samplescale"]["selected"] == 2
