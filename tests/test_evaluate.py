"""Evaluation records and summaries on scripted replies with hand-computed estimates."""

from __future__ import annotations

from fractions import Fraction

import pytest

from samplescale.backends.fake import ScriptedBackend
from samplescale.config import SamplingParams
from samplescale.evaluate import evaluate
from samplescale.evaluate_records import problem_seed
from samplescale.strategies import SelfConsistency
from samplescale.summary import k_values, summarize_pool, summarize_strategy
from samplescale.tasks.base import Problem, Task

TASK = Task(
    name="toy",
    problems=(
        Problem(id="a", question="What is 1 + 1?", gold="2"),
        Problem(id="b", question="What is 2 + 2?", gold="4"),
    ),
)
# per problem: greedy reply first, then the pool of 4
REPLIES = {
    "1 + 1": [
        "The answer is 2",
        "The answer is 2",
        "The answer is 3",
        "The answer is 2.00",
        "The answer is 5",
    ],
    "2 + 2": [
        "The answer is 5",
        "I do not know",
        RuntimeError("boom"),
        "The answer is 4",
        "The answer is 7",
    ],
}


def make_backend() -> ScriptedBackend:
    seen: dict[str, int] = {}

    def reply(prompt, i):
        key = next(k for k in REPLIES if k in prompt.messages[-1].content)
        j = seen.get(key, 0)
        seen[key] = j + 1
        return REPLIES[key][j]

    return ScriptedBackend(reply)


def test_pool_records_hold_classes_and_correctness():
    recs = list(evaluate(TASK, make_backend(), SamplingParams(n=4)))
    a, b = recs
    assert a["greedy"]["correct"] is True and b["greedy"]["correct"] is False
    assert (a["n"], a["c"]) == (4, 2)
    assert a["labels"] == [0, 1, 0, 2] and a["correct_label"] == 0  # "2" and "2.00" are one class
    assert [s["answer"] for s in b["samples"]] == [None, None, "4", "7"]
    assert [s["status"] for s in b["samples"]] == ["ok", "error", "ok", "ok"]
    assert (b["n"], b["c"], b["labels"], b["correct_label"]) == (4, 1, [None, None, 0, 1], 0)


def test_pool_summary_matches_hand_computation():
    recs = list(evaluate(TASK, make_backend(), SamplingParams(n=4)))
    s = summarize_pool(recs)
    curve = {c["k"]: c for c in s["curve"]}
    assert [c["k"] for c in s["curve"]] == [1, 2, 4]
    # problem a: c=2 of 4; problem b: c=1 of 4
    pass2 = (1 - Fraction(1, 6) + 1 - Fraction(3, 6)) / 2
    assert curve[1]["pass"]["mean"] == pytest.approx((0.5 + 0.25) / 2)
    assert curve[2]["pass"]["mean"] == pytest.approx(float(pass2))
    assert curve[4]["pass"]["mean"] == pytest.approx(1.0)
    # maj@2, a: {2,2} wins, 4 mixed pairs tie -> 1/2, {3,5} loses: (1 + 2)/6 = 1/2
    # maj@2, b: labels [None, None, 4, 7]: {N,N} none, {N,4} x2 win, {N,7} x2 lose, {4,7} tie -> 1/2: 2.5/6
    assert curve[2]["maj"]["mean"] == pytest.approx((0.5 + 2.5 / 6) / 2)
    # maj@4: a wins 2-1-1; b ties 4 vs 7 -> 1/2
    assert curve[4]["maj"]["mean"] == pytest.approx((1.0 + 0.5) / 2)
    assert s["greedy"]["mean"] == 0.5 and s["sample_errors"] == 1 and s["problem_errors"] == []
    assert curve[4]["tokens"] == pytest.approx(4 * s["curve"][0]["tokens"])
    for c in s["curve"]:
        for key in ("pass", "maj"):
            assert c[key]["lo"] <= c[key]["mean"] <= c[key]["hi"]


def test_summaries_do_not_depend_on_the_order_records_were_written_in():
    # a Ray run writes records as problems finish; its summary.json (and a later report)
    # must equal a local run's, bootstrap bounds included
    task = Task(name="toy", problems=tuple(
        Problem(id=f"p{i}", question=f"What is {i} + 1?", gold=str(i + 1)) for i in range(12)
    ))
    backend = ScriptedBackend(
        lambda prompt, i: f"The answer is {(i * 7 + len(prompt.messages[-1].content)) % 4 + 1}"
    )
    recs = list(evaluate(task, backend, SamplingParams(n=4)))
    shuffled = [recs[i] for i in (5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6)]
    assert summarize_pool(shuffled) == summarize_pool(recs)
    strat = list(evaluate(task, backend, SamplingParams(n=4), strategy=SelfConsistency()))
    assert summarize_strategy(strat[::-1]) == summarize_strategy(strat)
    curve = summarize_pool(recs)["curve"]
    assert any(0 < c["pass"]["boot_lo"] < c["pass"]["boot_hi"] < 1 for c in curve)


def test_resume_skips_done_problems_and_seeds_do_not_depend_on_order():
    recs = list(evaluate(TASK, make_backend(), SamplingParams(n=4), skip={"a"}))
    assert [r["id"] for r in recs] == ["b"]
    assert problem_seed(0, "b") == problem_seed(0, "b") != problem_seed(1, "b")
    assert problem_seed(0, "a") != problem_seed(0, "b")


def test_strategy_records_and_summary():
    recs = list(evaluate(TASK, make_backend(), SamplingParams(n=4), strategy=SelfConsistency()))
    assert [r["answer"] for r in recs] == ["2", "4"]  # b: 4 and 7 tie, 4 seen first
    assert [r["correct"] for r in recs] == [True, True]
    s = summarize_strategy(recs)
    assert s["accuracy"]["mean"] == 1.0 and s["greedy"]["mean"] == 0.5
    assert s["strategy"] == "self-consistency" and s["samples"] == 4.0


def test_a_strategy_record_keeps_the_strategys_trace():
    # ESC with windows of 2: problem a always answers 2, so its first window agrees and it
    # stops after 2 samples; problem b alternates 4, 5: no window agrees, 4 samples (budget)
    from samplescale.strategies import ESC

    count = iter(range(100))

    def reply(prompt, i):
        if "1 + 1" in prompt.messages[-1].content:
            return "The answer is 2"
        return f"The answer is {4 + next(count) % 2}"

    recs = list(evaluate(TASK, ScriptedBackend(reply), SamplingParams(n=4),
                         strategy=ESC(window=2)))
    stops = [[(e["decision"], e["drawn"]) for e in r["trace"] if e["event"] == "stopping"]
             for r in recs]
    assert stops == [[("stop", 2)], [("continue", 2), ("budget", 4)]]
    assert [len(r["samples"]) for r in recs] == [2, 4]


@pytest.mark.parametrize("n,expected", [(1, [1]), (5, [1, 2, 4, 5]), (16, [1, 2, 4, 8, 16])])
def test_k_values(n, expected):
    assert k_values(n) == expected


def test_repeated_sampling_in_eval_reports_coverage_with_gold_oracle():
    from samplescale.strategies import RepeatedSampling

    recs = list(evaluate(TASK, make_backend(), SamplingParams(n=4), strategy=RepeatedSampling()))
    assert [r["answer"] for r in recs] == ["2", "4"] and [r["correct"] for r in recs] == [
        True,
        True,
    ]


def test_a_backend_spec_is_built_once_when_the_first_problem_starts():
    from samplescale.backends.fake import ToyLM
    from samplescale.errors import ConfigError
    from samplescale.executors import LocalExecutor

    built = []

    def spec():
        built.append(1)
        return ToyLM()

    params = SamplingParams(n=3, max_tokens=6)
    records = evaluate(TASK, spec, params, seed=2, executor=LocalExecutor())
    assert built == []  # nothing runs before iteration

    def drop(r):  # wall times differ between runs
        return {**{k: v for k, v in r.items() if k != "usage"},
                "greedy": {k: v for k, v in r["greedy"].items() if k != "usage"}}

    assert [drop(r) for r in records] == [drop(r) for r in evaluate(TASK, ToyLM(), params, seed=2)]
    assert built == [1]
    assert list(evaluate(TASK, spec, params, skip={"a", "b"})) == [] and built == [1]
    with pytest.raises(ConfigError, match="the backend spec's result must be"):
        list(evaluate(TASK, lambda: "not a backend", params))
    with pytest.raises(ConfigError, match="backend must be"):
        evaluate(TASK, 42, params)
