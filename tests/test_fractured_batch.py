"""``fractured`` and ``batch-prompting``: exact cuts, prompts, splits and usage shares on the
scripted backend, batch prompting inside ``evaluate``, the four new strategies through the
server; one real run each (slow)."""

from __future__ import annotations

import re

import pytest

from samplescale.backends.base import Capabilities
from samplescale.backends.fake import ScriptedBackend, prompt_text
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.evaluate import evaluate
from samplescale.strategies import BatchPrompting, Fractured, get_strategy
from samplescale.strategies.batch_prompting import share_usage, split_answers
from samplescale.strategies.fractured import ANSWER_CUE, cut_positions
from samplescale.tasks.base import Problem, Task
from samplescale.types import Prompt, Usage

Q = Prompt.user("What is 2 + 2?")
TRACES = ["2+2=4\nThe answer is 4", "2+2=5\nThe answer is 5"]


def fractured_backend():
    def reply(prompt, i):
        if not prompt.prefix:
            return TRACES[i]
        cut = prompt.prefix[: -len(ANSWER_CUE)]
        return " 4." if len(cut) < 21 or "=4" in cut else " 5."

    return ScriptedBackend(reply)


# ---------------------------------------------------------------- fractured


def test_cut_positions():
    assert cut_positions(21, 2) == [10, 21]  # round half to even
    assert cut_positions(10, 4) == [2, 5, 8, 10]
    assert cut_positions(2, 3) == [1, 1, 2]
    assert cut_positions(0, 2) == [0, 0]


def test_fractured_cuts_every_trace_and_votes_over_the_cut_answers():
    backend = fractured_backend()
    r = Fractured(depths=2, answers_per_cut=2).run(
        backend, Q, SamplingParams(n=2, seed=4, max_tokens=64))
    prefixes = [(p.prefix, params.n, params.max_tokens) for p, params in backend.calls[1:]]
    assert prefixes == [
        ("2+2=4\nThe " + ANSWER_CUE, 2, 16), (TRACES[0] + ANSWER_CUE, 2, 16),
        ("2+2=5\nThe " + ANSWER_CUE, 2, 16), (TRACES[1] + ANSWER_CUE, 2, 16),
    ]
    assert backend.calls[0][1].n == 2 and backend.calls[0][1].max_tokens == 64
    assert r.answers == ("4", "5") + ("4",) * 6 + ("5", "5")
    assert r.vote_shares == {"4": 0.75, "5": 0.25} and r.answer == "4"
    assert r.selected == 0  # the first trace whose own answer won: a whole solution
    cuts = [t for t in r.trace if t.get("event") == "cut"]
    assert [(c["trace"], c["depth"], c["position"], c["length"]) for c in cuts] == [
        (0, 1, 10, 21), (0, 2, 21, 21), (1, 1, 10, 21), (1, 2, 21, 21)]
    assert cuts[3]["new"] == [8, 9] and cuts[3]["answers"] == ["5", "5"]
    assert r.usage.model_calls == 5
    assert r.usage.completion_tokens == 2 * 21 + 8 * 3


def test_fractured_by_steps_failed_traces_and_selection_without_a_winning_trace():
    backend = fractured_backend()
    r = Fractured(depths=2, unit="step").run(backend, Q, SamplingParams(n=2, max_tokens=64))
    assert [p.prefix for p, _ in backend.calls[1:]] == [
        "2+2=4\n" + ANSWER_CUE, TRACES[0] + ANSWER_CUE,
        "2+2=5\n" + ANSWER_CUE, TRACES[1] + ANSWER_CUE]
    # every cut answers " 4." here (step cuts are shorter than 21 characters but the last)
    assert r.answers[2:] == ("4", "4", "4", "5")
    backend = ScriptedBackend(lambda p, i: RuntimeError("x") if i == 0 else
                              ("no idea" if not p.prefix else " 7."))
    r = Fractured(depths=1).run(backend, Q, SamplingParams(n=2, max_tokens=8))
    assert [t.get("trace") for t in r.trace[1:]] == [1]  # the failed trace is not cut
    assert r.answer == "7" and r.selected == 2  # no trace says 7: the first cut answer


def test_fractured_options_and_capabilities():
    for options, message in [
        ({"depths": 0}, "depths must be an integer in [1, 16], got 0"),
        ({"answers_per_cut": 65}, "answers_per_cut must be an integer in [1, 64], got 65"),
        ({"answer_tokens": 0}, "answer_tokens must be an integer in [1, 256], got 0"),
        ({"unit": "char"}, "unit must be 'token' or 'step', got 'char'"),
        ({"delimiter": ""}, "delimiter"),
        ({"cue": 3}, "cue must be a str"),
    ]:
        with pytest.raises(ConfigError) as exc:
            get_strategy("fractured", **options)
        assert message in str(exc.value)

    class NoPrefix(ScriptedBackend):
        capabilities = Capabilities(logits=False, seeds=True, parallel_n=True, chat=True,
                                    prefix=False)

    with pytest.raises(ConfigError, match="prefix"):
        Fractured().run(NoPrefix(["a"]), Q, SamplingParams(n=2))
    with pytest.raises(ConfigError, match=re.escape("n (traces, params.n) must be an integer "
                                                    "in [1, 256], got 257")):
        Fractured().run(ScriptedBackend(["a"]), Q, SamplingParams(n=257))


@pytest.mark.slow
def test_fractured_on_the_real_model(llama_backend):
    params = SamplingParams(n=2, seed=0, max_tokens=16, temperature=0.8)
    r = Fractured(depths=2, answers_per_cut=1, answer_tokens=6).run(
        llama_backend, "What is 3 + 4?", params)
    assert len(r.samples) == 2 + 2 * 2 and r.usage.model_calls == 5
    cuts = [t for t in r.trace if t.get("event") == "cut"]
    for c in cuts:  # the half cut is half the trace's tokens; the last is all of it
        assert c["position"] == cut_positions(r.samples[c["trace"]].num_tokens, 2)[c["depth"] - 1]
    assert all(s.num_tokens <= 6 for s in r.samples[2:])
    assert r.usage.completion_tokens == sum(s.num_tokens for s in r.samples)


# ---------------------------------------------------------------- batch-prompting


@pytest.mark.parametrize(
    ("text", "count", "parts"),
    [
        ("A[1]: 7\nA[2]: The answer is 10", 2, ["7", "The answer is 10"]),
        ("A[2]: x\nA[1]: y", 2, ["y", "x"]),
        ("**A[1]:** 5\n- A[2]. 6\n  A [3] ) 9", 3, ["5", "6", "9"]),
        ("A[1]: 3\nA[1]: 4", 2, ["3", None]),
        ("A[1]: 3\nA[3]: 9", 2, ["3", None]),
        ("The answer is 3", 2, [None, None]),
        ("The answer is 3", 1, ["The answer is 3"]),
        ("see A[1]: inline only", 1, ["see A[1]: inline only"]),
        ("Q: What is 1 + 1?\nA: 2\n\nQ: What is 2 + 2?\nA: 4", 2, ["2", "4"]),
        ("A[1]: 7\nQ[2]: What is 5 + 5?\nA[2]: 10", 2, ["7", "10"]),
        ("A: 2\nA: 4\nA: 5", 2, [None, None]),  # bare answers must match the questions
        ("A: 2", 1, ["2"]),
    ],
)
def test_split_answers(text, count, parts):
    assert split_answers(text, count) == parts


def test_usage_shares_sum_to_the_batch():
    u = Usage(prompt_tokens=10, cached_prompt_tokens=4, completion_tokens=7, model_calls=1,
              wall_time_s=3.0)
    shares = [share_usage(u, 3, j) for j in range(3)]
    assert [s.prompt_tokens for s in shares] == [4, 3, 3]
    assert [s.completion_tokens for s in shares] == [3, 2, 2]
    assert [s.model_calls for s in shares] == [1, 0, 0]
    total = shares[0] + shares[1] + shares[2]
    assert total.model_dump(exclude={"wall_time_s"}) == u.model_dump(exclude={"wall_time_s"})
    # wall time is shared out as tokens are, evenly: 3.0 s over 3 problems, 1.0 s each
    assert [s.wall_time_s for s in shares] == [1.0, 1.0, 1.0]
    assert [share_usage(u, 4, j).wall_time_s for j in range(4)] == [0.75] * 4


class Timed(ScriptedBackend):
    def generate(self, prompt, params, *args, **kwargs):  # every call takes 6.0 s
        gen = super().generate(prompt, params, *args, **kwargs)
        return gen.model_copy(update={"usage": gen.usage.model_copy(update={"wall_time_s": 6.0})})


class Tokenizing(Timed):
    def tokenize_prompt(self, prompt):
        return list(prompt_text(prompt))  # one character, one token, as its usage counts


def test_run_batch_asks_once_and_splits_the_answers_back():
    replies = ["A[1]: The answer is 7\nA[2]: The answer is 10\nA[3]: The answer is 2",
               "A[1]: The answer is 7\nA[3]: The answer is 3"]
    backend = Tokenizing(replies)
    questions = ["What is 3 + 4?", "What is 5 + 5?", "What is 1 + 1?"]
    rs = BatchPrompting().run_batch(backend, questions, SamplingParams(n=2, seed=0),
                                    instruction="Answer briefly.")
    body = ("Answer briefly.\n\nAnswer each of the 3 questions below. Write the answers in "
            "order, each starting on a new line with its label: A[1]:, A[2]: and so on.\n\n"
            "Q[1]: What is 3 + 4?\nQ[2]: What is 5 + 5?\nQ[3]: What is 1 + 1?")
    assert [(p, params.n) for p, params in backend.calls] == [(Prompt.user(body), 2)]
    assert [r.answers for r in rs] == [("7", "7"), ("10", None), ("2", "3")]
    assert [r.answer for r in rs] == ["7", "10", "2"] and [r.selected for r in rs] == [0, 0, 0]
    assert [r.trace[0]["found"] for r in rs] == [2, 1, 2]
    # each problem's samples are its own parts; the whole replies are in the trace
    assert [[s.text for s in r.samples] for r in rs] == [
        ["The answer is 7", "The answer is 7"], ["The answer is 10", ""],
        ["The answer is 2", "The answer is 3"]]
    assert all(s.num_tokens == 0 and s.status == "ok" for r in rs for s in r.samples)
    assert [r.trace[0]["replies"] for r in rs] == [replies] * 3
    assert [r.usage.wall_time_s for r in rs] == [2.0, 2.0, 2.0]  # the call's 6.0 s / 3
    batch_prompt = len("user: " + body)
    assert sum(r.usage.prompt_tokens for r in rs) == batch_prompt
    assert sum(r.usage.completion_tokens for r in rs) == sum(map(len, replies))
    alone = [len(f"user: Answer briefly.\n\n{q}") for q in questions]
    assert [r.trace[0]["prompt_tokens_alone"] for r in rs] == alone
    shares = [batch_prompt // 3 + (j < batch_prompt % 3) for j in range(3)]
    assert [r.trace[0]["saved_prompt_tokens"] for r in rs] == [a - s for a, s in zip(alone, shares)]
    one = BatchPrompting().run(ScriptedBackend(["The answer is 4"]), Q, SamplingParams(n=1))
    assert one.answer == "4" and one.trace[0]["prompt_tokens_alone"] is None
    # a batch of one (run: generate, the server) shares nothing: the reply, with its tokens
    assert [(s.text, s.num_tokens) for s in one.samples] == [("The answer is 4", 15)]


def test_batch_prompting_refusals():
    for options, message in [
        ({"batch_size": 0}, "batch_size must be an integer in [1, 32], got 0"),
        ({"batch_size": 33}, "batch_size must be an integer in [1, 32], got 33"),
        ({"template": "{q}"}, "template may use only {instruction}, {count} and {questions}"),
    ]:
        with pytest.raises(ConfigError) as exc:
            get_strategy("batch-prompting", **options)
        assert message in str(exc.value)
    for questions in ([], "What?", ["a"] * 33, ["a", 3]):
        with pytest.raises(ConfigError, match=r"questions must be a list of 1 to 32 strings"):
            BatchPrompting().run_batch(ScriptedBackend(["a"]), questions)


def _batch_task():
    problems = tuple(Problem(id=f"p{i}", question=f"What is {i} + {i + 1}?", gold=str(2 * i + 1))
                     for i in range(5))
    return Task(name="toy", problems=problems, instruction="Add.")


def _adder(prompt, i):
    text = prompt.messages[-1].content
    if "Q[1]:" not in text:
        return "The answer is 0"  # the greedy call of each problem, alone
    pairs = re.findall(r"Q\[(\d+)\]: What is (\d+) \+ (\d+)\?", text)
    return "\n".join(f"A[{k}]: The answer is {int(a) + int(b) + (a == '3')}"  # p3 wrong
                     for k, a, b in pairs)


def test_evaluate_asks_the_task_batch_size_problems_at_a_time():
    backend = Timed(_adder)
    params = SamplingParams(n=2, max_tokens=200)
    records = list(evaluate(_batch_task(), backend, params, strategy=BatchPrompting(batch_size=2),
                            seed=3))
    batch_calls = [(p, q) for p, q in backend.calls if "Q[1]:" in p.messages[-1].content]
    assert len(batch_calls) == 3 and len(backend.calls) == 3 + 5  # 3 batches, 5 greedy calls
    assert [r["correct"] for r in records] == [True, True, True, False, True]
    assert [(r["batch"]["index"], r["batch"]["position"], r["batch"]["size"])
            for r in records] == [(0, 1, 2), (0, 2, 2), (1, 1, 2), (1, 2, 2), (2, 1, 1)]
    spent = sum(len(prompt_text(p)) for p, _ in batch_calls)
    assert sum(r["usage"]["prompt_tokens"] for r in records) == spent
    assert sum(r["usage"]["model_calls"] for r in records) == 3
    # each record's samples are its own parts, the whole replies are stored once per batch
    assert [[s["text"] for s in r["samples"]] for r in records] == [
        [f"The answer is {a}"] * 2 for a in (1, 3, 5, 8, 9)]
    assert [r["batch"].get("replies") for r in records] == [
        ["A[1]: The answer is 1\nA[2]: The answer is 3"] * 2, None,
        ["A[1]: The answer is 5\nA[2]: The answer is 8"] * 2, None, ["A[1]: The answer is 9"] * 2]
    # the trace is each problem's own (what was found), without the replies again
    assert [[sorted(e) for e in r["trace"]] for r in records] == [
        [sorted(set(records[0]["trace"][0]))]] * 5
    assert "replies" not in records[0]["trace"][0] and "found" in records[0]["trace"][0]
    # the batch call's 6.0 s shared out as its tokens are: 3.0 s each of 2, 6.0 s alone
    assert [r["usage"]["wall_time_s"] for r in records] == [3.0, 3.0, 3.0, 3.0, 6.0]
    for r in records:
        assert r["batch"]["saved_prompt_tokens"] == (
            r["greedy"]["usage"]["prompt_tokens"] - r["usage"]["prompt_tokens"])
    # a resume that starts inside a batch asks that batch again, with the same seed
    backend2 = ScriptedBackend(_adder)
    again = list(evaluate(_batch_task(), backend2, params,
                          strategy=BatchPrompting(batch_size=2), seed=3, skip={"p0", "p2"}))
    assert [r["id"] for r in again] == ["p1", "p3", "p4"]
    for a, b in zip(again, records[1::2] + records[4:]):
        assert a["samples"] == b["samples"] and a["answer"] == b["answer"]
    assert [q.seed for _, q in batch_calls] == [
        q.seed for p, q in backend2.calls if "Q[1]:" in p.messages[-1].content]


@pytest.mark.slow
def test_batch_prompting_on_the_real_model(llama_backend):
    params = SamplingParams(n=2, seed=0, max_tokens=28, temperature=0.8)
    rs = BatchPrompting().run_batch(llama_backend, ["What is 3 + 4?", "What is 2 + 2?"], params,
                                    instruction="Answer with a number.")
    replies = rs[0].trace[0]["replies"]
    assert len(rs) == 2 and rs[1].trace[0]["replies"] == replies and len(replies) == 2
    for j, r in enumerate(rs):
        parts = [split_answers(reply, 2)[j] for reply in replies]
        assert [s.text for s in r.samples] == [part or "" for part in parts]
        assert all(a is None for a, part in zip(r.answers, parts) if part is None)
        assert r.trace[0]["prompt_tokens_alone"] > 0
    total = rs[0].usage + rs[1].usage
    assert total.completion_tokens == rs[0].trace[0]["batch_usage"]["completion_tokens"] > 0
    assert total.model_calls == 1


# ---------------------------------------------------------------- the server


def test_the_four_strategies_through_the_server():
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from _server_helpers import serve

    from samplescale.server import create_app

    def reply(prompt, i):
        if prompt.prefix:
            return " 4."
        if prompt.messages[-1].content.startswith("Rewrite the following problem"):
            return "How much is two and two?"
        return "The answer is 4"

    user = [{"role": "user", "content": "What is 2 + 2?"}]
    out = {}
    with serve(create_app(ScriptedBackend(reply), "fake")) as url:
        for name in ("div-sampling@5", "progressive-hint@2", "fractured@2",
                     "batch-prompting@2"):
            out[name] = httpx.post(url + "/chat/completions", timeout=30, json={
                "model": f"{name}/fake", "messages": user, "max_tokens": 32, "seed": 1}).json()
    for name, body in out.items():
        assert body["choices"][0]["message"]["content"] == "The answer is 4", name
    assert len(out["div-sampling@5"]["samplescale"]["candidates"]) == 5
    assert len(out["progressive-hint@2"]["samplescale"]["candidates"]) == 6  # 3 rounds of 2
    assert len(out["fractured@2"]["samplescale"]["candidates"]) == 2 + 2 * 3
