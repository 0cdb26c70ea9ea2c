"""ThinkSum: the Sum stage by hand, exact posteriors on a model with known label
probabilities, the greedy-token fallback, the three item sources, option checks, seeding,
and a real run of the embedded model through ``samplescale generate``."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from samplescale.backends.fake import ScriptedBackend, ToyLM, prompt_text
from samplescale.cli import main
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies import ThinkSum, get_strategy, thinksum
from samplescale.strategies.thinksum import parse_items, sum_posterior
from samplescale.types import Prompt

# p("Yes"), p("No") after the sub-query about each item; the rest of the mass on token 0.
# p_yes = p(Yes) / (p(Yes) + p(No)): "5" 0.25, "7" 0.5, "9" 0.9.
LABELS = {"5": (0.2, 0.6), "7": (0.3, 0.3), "9": (0.72, 0.08)}
ITEMS = tuple(LABELS)


class ItemLM(ScriptedBackend):
    """Scripted samples, and exact next-token logits after a ThinkSum sub-query: token 1 is
    "Yes", 2 "No", 0 the rest, and ``3 + k`` stands for the sub-query about ``ITEMS[k]``."""

    vocab_size = 3 + len(ITEMS)

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        assert prompt.messages is not None
        item = re.search(r"Proposed answer: (\S+)", prompt.messages[-1].content).group(1)
        return [3 + ITEMS.index(item)] + {"": [], "Yes": [1], "No": [2]}[prompt.prefix]

    def logits_at(self, tokens, last=1):
        yes, no = LABELS[ITEMS[tokens[-1] - 3]]
        row = np.full(self.vocab_size, -np.inf)
        row[:3] = np.log([1 - yes - no, yes, no])
        return row[None, :]

    def is_end(self, token: int) -> bool:
        return token == 0


SAMPLES = ["The answer is 5", "The answer is 7", "The answer is 5", "The answer is 9", "no idea"]
PARAMS = SamplingParams(n=5, seed=0, max_tokens=32)


def test_sum_stage_by_hand():
    """posterior(i) = prior(i)^alpha * L(i), normalised; L = p_yes (max) or 1 - p_yes (min)."""
    items, priors, p = ["A", "B", "C"], [0.5, 0.3, 0.2], [0.2, 0.9, 0.5]
    v = sum_posterior(items, priors, p)  # weights .1, .27, .1 of .47
    assert v.winner == 1 and v.answer == "B"
    assert v.shares == pytest.approx({"A": 0.1 / 0.47, "B": 0.27 / 0.47, "C": 0.1 / 0.47})
    v = sum_posterior(items, priors, p, alpha=2.0)  # .05, .081, .02 of .151
    assert v.shares == pytest.approx({"A": 0.05 / 0.151, "B": 0.081 / 0.151, "C": 0.02 / 0.151})
    v = sum_posterior(items, priors, p, select="min")  # .4, .03, .1 of .53
    assert v.answer == "A"
    assert v.shares == pytest.approx({"A": 0.4 / 0.53, "B": 0.03 / 0.53, "C": 0.1 / 0.53})
    v = sum_posterior(items, priors, p, alpha=0.0)  # the prior ignored: .2, .9, .5 of 1.6
    assert v.shares == pytest.approx({"A": 0.125, "B": 0.5625, "C": 0.3125})


def test_sum_stage_ties_failures_and_zero_mass():
    assert sum_posterior(["a", "b"], [1, 1], [0.5, 0.5]).winner == 0  # tie: the earlier
    v = sum_posterior(["a", "b", "c"], [1, 1, 1], [None, 0.3, 0.6])  # "a" failed: no mass
    assert v.answer == "c" and v.shares == pytest.approx({"b": 1 / 3, "c": 2 / 3})
    v = sum_posterior(["a", "b"], [1, 1], [0.0, 0.0])  # every likelihood 0: uniform
    assert v.winner == 0 and v.shares == {"a": 0.5, "b": 0.5}
    v = sum_posterior(["a"], [1], [None])
    assert v.winner is None and v.answer is None and v.shares == {}


def test_samples_exact_posterior_overturns_the_vote():
    """Answers 5, 7, 5, 9, none: priors .5, .25, .25; p_yes .25, .5, .9; weights .125,
    .125, .225 of .475: "9" wins although the vote says "5"."""
    backend = ItemLM(SAMPLES)
    r = ThinkSum().run(backend, "What is 2 + 3?", PARAMS)
    assert r.answers == ("5", "7", "5", "9", None)
    assert r.answer == "9" and r.selected == 3
    assert r.vote_shares == pytest.approx({"5": 0.125 / 0.475, "7": 0.125 / 0.475,
                                           "9": 0.225 / 0.475})
    items, think = r.trace
    assert items["items"] == ["5", "7", "9"] and items["counts"] == [2, 1, 1]
    assert think["reads"] == "logits" and think["scorer_errors"] == []
    rows = think["rows"]
    assert [row["prior"] for row in rows] == [0.5, 0.25, 0.25]
    assert [row["p_yes"] for row in rows] == pytest.approx([0.25, 0.5, 0.9])
    assert [row["posterior"] for row in rows] == pytest.approx(list(r.vote_shares.values()))
    assert all(row["prompt_tokens"] == 1 for row in rows)
    # one draw of 5 samples and 3 sub-queries, each a model call and a scorer call
    assert r.usage.model_calls == 4 and r.usage.scorer_calls == 3
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)
    # alpha = 3 leans on the vote: weights .03125, .0078125, .0140625 of .053125
    r = ThinkSum(alpha=3.0).run(ItemLM(SAMPLES), "What is 2 + 3?", PARAMS)
    assert r.answer == "5" and r.selected == 0
    assert r.vote_shares["5"] == pytest.approx(0.03125 / 0.053125)


def test_given_items_uniform_prior_and_odd_one_out():
    r = thinksum(ItemLM(["unused"]), "Which?", PARAMS, items=["9", "5", "7"])
    assert r.samples == () and r.selected is None and r.answer == "9"  # .9, .25, .5 of 1.65
    assert r.vote_shares == pytest.approx({"9": 0.9 / 1.65, "5": 0.25 / 1.65, "7": 0.5 / 1.65})
    assert r.trace[0]["source"] == "given" and r.usage.model_calls == 3
    r = thinksum(ItemLM(["unused"]), "Which?", PARAMS, items=["9", "5", "7"], select="min")
    assert r.answer == "5"  # 1 - p_yes: .1, .75, .5 of 1.35
    assert r.vote_shares == pytest.approx({"9": 0.1 / 1.35, "5": 0.75 / 1.35, "7": 0.5 / 1.35})


def _judge(yes_item: str, listing: str = "", other: str = "N"):
    """Scripted replies: "Y" to the sub-query about ``yes_item``, ``other`` to the rest,
    ``listing`` to a listing prompt, and the answers 5, 7, 5, 7 to the question."""

    def reply(prompt: Prompt, i: int) -> str:
        text = prompt_text(prompt)
        if "Proposed answer:" in text:
            return "Y" if f"Proposed answer: {yes_item}\n" in text else other
        if "List up to" in text:
            return listing
        return f"The answer is {5 if i % 2 == 0 else 7}"

    return reply


def test_without_logits_the_greedy_token_is_read():
    backend = ScriptedBackend(_judge("5"), token_logprob=math.log(0.8))
    r = thinksum(backend, "What is 2 + 3?", PARAMS.replace(n=4), positive="Y", negative="N")
    rows = r.trace[1]["rows"]
    assert r.trace[1]["reads"] == "greedy-token"
    assert [row["p_yes"] for row in rows] == pytest.approx([0.8, 0.2])  # "Y": .8, "N": 1 - .8
    assert r.answer == "5" and r.vote_shares == pytest.approx({"5": 0.8, "7": 0.2})
    assert [row["completion_tokens"] for row in rows] == [1, 1]


def test_a_failed_sub_query_gets_no_posterior_and_all_failed_no_answer():
    backend = ScriptedBackend(_judge("5", other="?"), token_logprob=math.log(0.8))
    r = thinksum(backend, "q", PARAMS.replace(n=4), positive="Y", negative="N")
    assert r.answer == "5" and r.vote_shares == {"5": 1.0}
    row = r.trace[1]["rows"][1]
    assert row["p_yes"] is None and row["posterior"] == 0.0 and "neither" in row["error"]
    assert len(r.trace[1]["scorer_errors"]) == 1 and r.usage.scorer_calls == 2
    r = thinksum(ScriptedBackend(_judge("none", other="?")), "q", PARAMS.replace(n=4),
                 positive="Y", negative="N")
    assert r.answer is None and r.selected is None and r.vote_shares == {}


def test_extract_lists_parses_and_caps():
    assert parse_items("1. 5\n2) 7\n- 5.0\n\n* seven\n(b) Paris\n3.5", lambda t: None,
                       lambda a, b: a == b) == ["5", "7", "5.0", "seven", "Paris", "3.5"]
    listing = "1. 5\n2) 7\n- 5.0\n\n* seven\n"
    backend = ScriptedBackend(_judge("7", listing), token_logprob=math.log(0.8))
    r = thinksum(backend, "What is 3 + 4?", PARAMS, items="extract", positive="Y", negative="N")
    prompt, params = backend.calls[0]
    assert "List up to 32 different" in prompt_text(prompt) and params.temperature == 0.0
    assert len(r.samples) == 1 and r.answers == (None,) and r.selected is None
    assert r.trace[0]["items"] == ["5", "7", "seven"]  # "5.0" is "5" (math equivalence)
    assert r.answer == "7"  # p_yes .2, .8, .2 of 1.2
    assert r.vote_shares == pytest.approx({"5": 0.2 / 1.2, "7": 0.8 / 1.2, "seven": 0.2 / 1.2})
    backend = ScriptedBackend(_judge("7", listing), token_logprob=math.log(0.8))
    r = thinksum(backend, "q", PARAMS, items="extract", max_items=2, positive="Y", negative="N")
    assert r.trace[0]["items"] == ["5", "7"] and r.trace[0]["dropped"] == 1


def test_samples_keep_the_most_voted_items():
    backend = ItemLM(["The answer is 5", "The answer is 7", "The answer is 7",
                      "The answer is 9", "The answer is 9"])
    r = ThinkSum(max_items=2).run(backend, "q", PARAMS)
    items = r.trace[0]
    assert items["items"] == ["7", "9"] and items["first"] == [1, 3] and items["dropped"] == 1
    assert r.answer == "9" and r.selected == 3  # .5 * .5 against .5 * .9
    assert r.vote_shares == pytest.approx({"7": 0.25 / 0.7, "9": 0.45 / 0.7})


@pytest.mark.parametrize("options, match", [
    ({"items": []}, r"items must be .* 1 to max_items \(32\)"),
    ({"items": ["a", "a"]}, r"items must be .* distinct"),
    ({"items": ["a", 3]}, r"items must be"),
    ({"items": ["x"] * 3, "max_items": 2}, r"1 to max_items \(2\)"),
    ({"items": [str(i) for i in range(33)]}, r"1 to max_items \(32\)"),
    ({"items": "options"}, r"items must be 'samples', 'extract'"),
    ({"alpha": -0.5}, r"alpha must be a number in \[0, 10\]"),
    ({"alpha": 11}, r"alpha must be a number in \[0, 10\]"),
    ({"alpha": True}, r"alpha must be a number in \[0, 10\]"),
    ({"select": "median"}, r"select must be 'max' or 'min'"),
    ({"max_items": 0}, r"max_items must be an integer in \[1, 32\]"),
    ({"max_items": 33}, r"max_items must be an integer in \[1, 32\]"),
    ({"template": "{question} only"}, r"template must contain the field \{item\}"),
    ({"template": "{question} {item} {x}"}, r"template may use only the fields"),
    ({"positive": "No"}, r"positive and negative labels must differ"),
    ({"positive": " "}, r"positive label must be a non-empty string"),
    ({"extract_template": "List them"}, r"extract_template must be a str with the field"),
    ({"extract_template": "{question} {n}"}, r"extract_template may use only the fields"),
])
def test_options_are_checked_when_built(options, match):
    with pytest.raises(ConfigError, match=match):
        get_strategy("thinksum", **options)


def test_seeded_runs_repeat_and_seeds_differ():
    def run(seed):
        return thinksum(ToyLM(), "q", SamplingParams(n=6, seed=seed, max_tokens=6),
                        positive="1", negative="2")

    a, b, c = run(3), run(3), run(4)
    assert a.samples == b.samples and a.vote_shares == b.vote_shares and a.answer == b.answer
    assert a.trace[1]["rows"] == b.trace[1]["rows"] and a.samples != c.samples
    # the toy LM reads no prompt: every p_yes is p("1") / (p("1") + p("2")) after BOS, so
    # the posterior is the vote share
    assert a.vote_shares == pytest.approx({row["item"]: row["prior"] for row in a.trace[1]["rows"]})


def test_generate_cli_on_the_embedded_model(llama_backend, capsys):
    """The real model: items from 4 samples, a sub-query per item read from the logits."""
    code = main(["generate", "What is 7 + 5? End with 'The answer is N'.", "--strategy",
                 "thinksum", "-n", "4", "--max-tokens", "64", "--threads", "1", "--seed", "0",
                 "--model", str(llama_backend.model_path), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and r["strategy"] == "thinksum"
    items, think = r["trace"]
    assert items["event"] == "items" and len(items["items"]) >= 1
    assert think["reads"] == "logits" and think["scorer_errors"] == []
    rows = think["rows"]
    assert [row["item"] for row in rows] == items["items"]
    assert all(0 < row["p_yes"] < 1 and row["prompt_tokens"] > 0 for row in rows)
    assert sum(r["vote_shares"].values()) == pytest.approx(1.0)
    assert r["answer"] in items["items"] and r["answers"][r["selected"]] == r["answer"]
    u = r["usage"]
    assert u["scorer_calls"] == len(rows) and u["model_calls"] == 1 + len(rows)
    assert u["completion_tokens"] > 0 and u["prompt_tokens"] > sum(
        row["prompt_tokens"] for row in rows)


def test_server_returns_the_answer_of_given_items_as_the_choice():
    import httpx
    from _server_helpers import serve

    from samplescale.server.app import create_app

    app = create_app(ItemLM(["unused"]), "m")
    body = {"model": "thinksum@4/m", "messages": [{"role": "user", "content": "Which?"}],
            "samplescale": {"options": {"items": ["5", "9", "7"]}}}
    with serve(app) as url:
        r = httpx.post(url + "/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["choices"][0]["message"]["content"] == "9"  # p_yes .25, .9, .5
    assert out["choices"][0]["finish_reason"] == "stop"
