"""``div-sampling`` and ``progressive-hint``: exact prompts, round robin, hints and votes on
the scripted backend; one real run each (slow)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from samplescale.backends.fake import ScriptedBackend
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies import DivSampling, ProgressiveHint, get_strategy
from samplescale.strategies.div_sampling import PERTURBATIONS, REPHRASE_TEMPLATE, new_numbers
from samplescale.strategies.progressive_hint import draw_hints
from samplescale.types import Message, Prompt
from samplescale.verifiers.extract import extract_answer

Q = Prompt.user("What is 2 + 2?")
ROLE = PERTURBATIONS["role"][1]
INSTRUCTION = PERTURBATIONS["instruction"][1]
STYLE = PERTURBATIONS["style"][1]


def user(text):
    return Prompt(messages=(Message(role="user", content=text),))


# ---------------------------------------------------------------- div-sampling


def test_div_sampling_round_robin_over_the_documented_prompts_and_one_vote():
    rephrasing = "How much is two plus two?"
    answer = {  # which perturbation says what
        "original": "The answer is 4", "role": "The answer is 5",
        "instruction": "The answer is 4", "style": "The answer is 5",
        "rephrase": "The answer is 5",
    }
    prompts = {
        "original": Q,
        "role": Prompt(messages=(Message(role="system", content=ROLE),
                                 Message(role="user", content="What is 2 + 2?"))),
        "instruction": user(f"What is 2 + 2?\n\n{INSTRUCTION}"),
        "style": user(f"What is 2 + 2?\n\n{STYLE}"),
        "rephrase": user(f"What is 2 + 2?\n\nThe same problem in other words: {rephrasing}"),
    }
    ask = user(REPHRASE_TEMPLATE.format(question="What is 2 + 2?"))
    by_prompt = {p: k for k, p in prompts.items()}

    def reply(prompt, i):
        return rephrasing if prompt == ask else answer[by_prompt[prompt]]

    backend = ScriptedBackend(reply)
    r = DivSampling().run(backend, Q, SamplingParams(n=7, seed=2, max_tokens=40))
    sent = [(by_prompt.get(p, "ask"), params.n) for p, params in backend.calls]
    # the rewording first (greedy, one sample), then 7 samples: 2, 2, 1, 1, 1
    assert sent == [("ask", 1), ("original", 2), ("role", 2), ("instruction", 1),
                    ("style", 1), ("rephrase", 1)]
    assert backend.calls[0][1].temperature == 0.0
    seeds = [params.seed for _, params in backend.calls]
    assert len(set(seeds)) == 6  # each call its own stream
    order = ["original", "role", "instruction", "style", "rephrase", "original", "role"]
    assert r.trace[-1]["prompt_of"] == order
    assert r.answers == ("4", "5", "4", "5", "5", "4", "5")
    assert r.answer == "5" and r.selected == 1
    assert r.vote_shares == {"4": 3 / 7, "5": 4 / 7}
    assert r.trace[0]["event"] == "rephrase" and r.trace[0]["text"] == rephrasing
    rows = {row["name"]: row for row in r.trace[-1]["prompts"]}
    assert [rows[k]["samples"] for k in order[:5]] == [2, 2, 1, 1, 1]
    assert rows["original"]["completion_tokens"] == 2 * 15
    assert rows["rephrase (rewording call)"]["completion_tokens"] == len(rephrasing)
    assert sum(row["prompt_tokens"] for row in rows.values()) == r.usage.prompt_tokens
    assert r.usage.model_calls == 6
    assert r.usage.completion_tokens == 7 * 15 + len(rephrasing)


def test_div_sampling_without_a_rewording_and_on_text_prompts():
    backend = ScriptedBackend([RuntimeError("down"), "The answer is 4"])
    r = DivSampling(perturbations=["original", "rephrase"]).run(
        backend, Q, SamplingParams(n=3, max_tokens=30))
    assert r.trace[0]["status"] == "error" and r.trace[0]["text"] is None
    assert r.trace[-1]["prompt_of"] == ["original"] * 3  # its samples went to the others
    assert r.trace[-1]["left_out"] == {"rephrase": "the rephrasing call failed"}
    assert r.answer == "4" and len(r.samples) == 3
    seen = []
    backend = ScriptedBackend(lambda p, i: seen.append(p) or "The answer is 1")
    DivSampling(perturbations=("role", "style")).run(
        backend, Prompt(text="Q: 1 + 0?\nA:"), SamplingParams(n=2, max_tokens=20))
    assert [p.text for p in seen] == [f"{ROLE}\n\nQ: 1 + 0?\nA:", f"{STYLE}\n\nQ: 1 + 0?\nA:"]
    backend = ScriptedBackend(["The answer is 4"])  # n = 2: nothing falls to rephrase (5th)
    r = DivSampling().run(backend, Q, SamplingParams(n=2, max_tokens=30))
    assert len(backend.calls) == 2 and r.trace[-1]["prompt_of"] == ["original", "role"]
    assert r.trace[-1]["left_out"] == {"rephrase": "no sample falls to it (n = 2, it is prompt 5)"}


@pytest.mark.parametrize(("rewording", "status", "text", "why"), [
    ("", "empty", None, "the rephrasing was empty"),
    # the call stops at "The answer is": a reply that starts by answering is empty
    ("The answer is 14.", "empty", None, "the rephrasing was empty"),
    ("How many is 7 + 7? \\boxed{14}", "answered", "How many is 7 + 7? \\boxed{14}",
     "the rephrasing states an answer"),
    ("How many is 7 + 7? Answer: 14", "answered", "How many is 7 + 7? Answer: 14",
     "the rephrasing states an answer"),
    # no answer phrase the extractor reads, but a number the question does not have
    ("The answer to this problem is 15.", "new-number", "The answer to this problem is 15.",
     "the rephrasing has a number the question does not"),
])
def test_div_sampling_leaves_out_a_rewording_that_is_empty_or_states_an_answer(
        rewording, status, text, why):
    # a rewording that already answers would hand its answer to every sample of its prompt
    backend = ScriptedBackend([rewording, "The answer is 4"])
    r = DivSampling(perturbations=["rephrase", "original"]).run(
        backend, Q, SamplingParams(n=2, max_tokens=60))
    assert r.trace[0]["status"] == status and r.trace[0]["text"] == text
    assert r.trace[-1]["prompt_of"] == ["original"] * 2
    assert r.trace[-1]["left_out"]["rephrase"].startswith(why)
    # a rewording that names numbers of the problem but states no answer is kept
    backend = ScriptedBackend(["If 2 apples and 2 more, how many?", "The answer is 4"])
    r = DivSampling(perturbations=["rephrase", "original"]).run(
        backend, Q, SamplingParams(n=2, max_tokens=30))
    assert r.trace[0]["status"] == "ok" and r.trace[-1]["prompt_of"] == ["rephrase", "original"]


@pytest.mark.parametrize(("rephrasing", "question", "new"), [
    ("Janet has 16 eggs and eats 3.", "Janet's ducks lay 16 eggs; she eats 3.", []),
    ("He paid $80,000 plus 50000 in repairs.", "He buys it for $80,000 and puts in $50,000.", []),
    ("The answer to this question is 10.", "What is 8 + 6?", ["10"]),
    ("A 2.5 m rope and 3 more.", "A 2.5 m rope and three more.", ["3"]),  # words: new
    ("Seattle has 20 sheep.", "Toulouse has 2 times ... Seattle has 20 sheep.", []),
    ("", "What is 2 + 2?", []),
])
def test_new_numbers_table(rephrasing, question, new):
    assert new_numbers(rephrasing, question) == new


def test_div_sampling_cuts_the_rewording_before_an_answer_and_keeps_the_rest():
    # Qwen2.5-Coder-0.5B restates GSM8K problems and then answers them, as the task's
    # instruction (inside the question) asks: the rewording call stops at "The answer is"
    q = "Seattle has 20 sheep and Toulouse 4 times as many. How many in all?"
    backend = ScriptedBackend(["Seattle: 20 sheep, Toulouse: 4 times that; total? The answer is 100.",
                               "The answer is 100"])
    r = DivSampling(perturbations=["rephrase", "original"]).run(
        backend, user(q), SamplingParams(n=2, max_tokens=90, stop=("Q:",)))
    assert r.trace[0]["status"] == "ok"
    assert r.trace[0]["text"] == "Seattle: 20 sheep, Toulouse: 4 times that; total?"
    assert backend.calls[0][1].stop == ("Q:", "The answer is", "the answer is")
    assert backend.calls[0][1].temperature == 0.0 and backend.calls[0][1].n == 1
    assert backend.calls[1][0] == user(
        f"{q}\n\nThe same problem in other words: Seattle: 20 sheep, Toulouse: 4 times that; total?")
    assert backend.calls[1][1].stop == ("Q:",)  # the samples keep the run's own stops


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"perturbations": []}, "perturbations must be a non-empty list of names from original"),
        ({"perturbations": "role"}, "perturbations must be a non-empty list"),
        ({"perturbations": ["role", "jabber"]}, "perturbations: each must be one of original, "
                                                "role, instruction, style, rephrase, got 'jabber'"),
        ({"perturbations": ["role", "role"]}, "perturbations must not repeat a name"),
    ],
)
def test_div_sampling_hostile_options(options, message):
    with pytest.raises(ConfigError) as exc:
        get_strategy("div-sampling", **options)
    assert message in str(exc.value)
    with pytest.raises(ConfigError, match=r"n \(params.n\) must be an integer in \[1, 1024\]"):
        DivSampling().run(ScriptedBackend(["a"]), Q, SamplingParams(n=1025))


@pytest.mark.slow
def test_div_sampling_on_the_real_model(llama_backend):
    params = SamplingParams(n=2, seed=0, max_tokens=12, temperature=0.8)
    strategy = DivSampling(perturbations=("role", "rephrase"))
    r = strategy.run(llama_backend, "What is 3 + 4?", params)
    # SmolLM2 tends to "reword" by answering ("The answer to this problem is 15."): such a
    # rewording is left out and both samples go to the role prompt
    rephrase = r.trace[0]
    assert rephrase["event"] == "rephrase" and rephrase["text"]
    assert rephrase.get("new_numbers", []) == new_numbers(rephrase["text"], "What is 3 + 4?")
    used = rephrase["status"] == "ok"
    assert used == (not rephrase.get("new_numbers")
                    and extract_answer(rephrase["text"], last_number=False) is None)
    assert len(r.samples) == 2 and r.usage.model_calls == (3 if used else 2)
    assert r.trace[-1]["prompt_of"] == (["role", "rephrase"] if used else ["role", "role"])
    assert ("rephrase" in r.trace[-1].get("left_out", {})) == (not used)
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples) + sum(
        row["completion_tokens"] for row in r.trace[-1]["prompts"]
        if row["name"].startswith("rephrase ("))
    again = strategy.run(llama_backend, "What is 3 + 4?", params)
    assert again.samples == r.samples and again.answer == r.answer


# ---------------------------------------------------------------- progressive-hint


def hinted(hints):
    return user(f"What is 2 + 2?\n\n(Hint: The answer is near to {hints}.)")


def test_progressive_hint_rounds_hint_with_earlier_answers_and_vote_the_last():
    def reply(prompt, i):
        text = prompt.messages[-1].content
        return "The answer is 5" if "near to 4" in text else "The answer is 4"

    backend = ScriptedBackend(reply)
    r = ProgressiveHint(rounds=1).run(backend, Q, SamplingParams(n=4, seed=1, max_tokens=30))
    assert [(p, params.n) for p, params in backend.calls] == [(Q, 4), (hinted("4"), 4)]
    assert r.trace[1]["distribution"] == [{"answer": "4", "votes": 4}]
    hint_text = "What is 2 + 2?\n\n(Hint: The answer is near to 4.)"
    assert r.trace[1]["calls"] == [{"hints": ["4"], "samples": 4,  # fake: 1 char = 1 token
                                    "prompt_tokens": len("user: " + hint_text),
                                    "completion_tokens": 60}]
    assert r.answers == ("4",) * 4 + ("5",) * 4
    assert r.answer == "5" and r.selected == 4 and r.vote_shares == {"5": 1.0}
    pooled = ProgressiveHint(rounds=1, vote_over="all").run(
        ScriptedBackend(reply), Q, SamplingParams(n=4, seed=1, max_tokens=30))
    assert pooled.answer == "4" and pooled.vote_shares == {"4": 0.5, "5": 0.5}  # ties: first
    assert r.usage.model_calls == 2 and r.usage.completion_tokens == 8 * 15


def test_progressive_hint_php_hint_names_two_answers_and_stops_without_answers():
    replies = ["The answer is 4", "The answer is 6", "The answer is 6", "The answer is 6"]
    backend = ScriptedBackend(replies)
    r = ProgressiveHint(rounds=1, per_round=2, hints=2).run(
        backend, Q, SamplingParams(n=9, seed=0, max_tokens=30))
    # both earlier answers are hinted, in first-seen order: one call of 2 samples
    assert backend.calls[1][0] == hinted("4, 6") and backend.calls[1][1].n == 2
    assert len(r.samples) == 4 and r.answer == "6"
    r = ProgressiveHint(rounds=3, per_round=2).run(
        ScriptedBackend(["no idea"]), Q, SamplingParams(max_tokens=30))
    assert r.answer is None and len(r.samples) == 2
    assert r.trace[-1] == {"event": "stop", "round": 1,
                           "reason": "the previous round gave no answer to hint with"}


def test_progressive_hint_an_echoed_hint_is_no_answer():
    # replies that echo the hint: "near to 4" is neither an answer class of its own (it
    # split the vote 2 : 2 with "5" and won the tie) nor a vote for the hinted 4
    def reply(prompt, i):
        if "near to" not in prompt.messages[-1].content:
            return "2 + 2 = 4. The answer is 4"
        if i % 2:
            return "(Hint: The answer is near to 4.) 2 + 2 = 5. The answer is 5."
        return "The answer is near to 4."

    r = ProgressiveHint(rounds=1).run(ScriptedBackend(reply), Q,
                                      SamplingParams(n=4, seed=1, max_tokens=80))
    assert r.answers == ("4",) * 4 + (None, "5", None, "5")
    assert r.answer == "5" and r.selected == 5 and r.vote_shares == {"5": 1.0}


def test_hints_are_drawn_in_proportion_to_the_votes():
    rng = np.random.default_rng(7)
    draws = [draw_hints(rng, [("a", 3), ("b", 1)], 1) for _ in range(20000)]
    share = draws.count(("a",)) / len(draws)
    assert abs(share - 0.75) < 0.015  # 5 standard errors (0.003)
    assert draw_hints(rng, [("a", 3), ("b", 1)], 5) == ("a", "b")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rounds": -1}, "rounds must be an integer in [0, 16], got -1"),
        ({"rounds": 17}, "rounds must be an integer in [0, 16], got 17"),
        ({"per_round": 0}, "per_round must be an integer in [1, 256], got 0"),
        ({"hints": 0}, "hints must be an integer in [1, 8], got 0"),
        ({"hints": True}, "hints must be an integer in [1, 8], got True"),
        ({"vote_over": "first"}, "vote_over must be 'last' or 'all', got 'first'"),
        ({"template": "{x}"}, "template may use only {hints}"),
    ],
)
def test_progressive_hint_hostile_options(options, message):
    with pytest.raises(ConfigError) as exc:
        get_strategy("progressive-hint", **options)
    assert message in str(exc.value)


def test_progressive_hint_checks_n_when_per_round_is_none():
    with pytest.raises(ConfigError, match=re.escape("per_round (params.n) must be an integer "
                                                    "in [1, 256], got 300")):
        ProgressiveHint().run(ScriptedBackend(["a"]), Q, SamplingParams(n=300))


@pytest.mark.slow
def test_progressive_hint_on_the_real_model(llama_backend):
    params = SamplingParams(n=3, seed=0, max_tokens=16, temperature=0.8)
    r = ProgressiveHint(rounds=1).run(llama_backend, "What is 3 + 4?", params)
    assert len(r.samples) == 6 and [t["round"] for t in r.trace] == [0, 1]
    hints = [h for c in r.trace[1]["calls"] for h in c["hints"]]
    assert set(hints) <= {a for a in r.answers[:3] if a is not None}
    assert sum(c["samples"] for c in r.trace[1]["calls"]) == 3
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)
    assert r.selected is None or r.selected >= 3
