"""A run's usage and accuracy per model (model-switch) and per prompt (div-sampling), read
from the strategies' traces in the records, against hand-computed totals."""

from __future__ import annotations

from samplescale.backends.fake import ScriptedBackend
from samplescale.config import SamplingParams
from samplescale.evaluate import evaluate
from samplescale.strategies import DivSampling, ModelSwitch
from samplescale.summary import summarize_strategy
from samplescale.summary_parts import by_part
from samplescale.tasks.base import Problem, Task

TASK = Task(name="toy", problems=(Problem(id="a", question="What is 1 + 1?", gold="2"),
                                  Problem(id="b", question="What is 2 + 2?", gold="4")))


def _named(name, reply):
    backend = ScriptedBackend(reply)
    backend.name = name
    return backend


def test_usage_and_samples_right_per_model():
    # small: problem a always 2 (unanimous: stops, 2 samples right); problem b alternates
    # 4, 5 after its greedy call (4): samples 5, 4, so it switches. big: always "4".
    # ScriptedBackend counts one token per character: "The answer is 2" = 15 tokens.
    turn = iter(range(100))

    def small(prompt, i):
        if "1 + 1" in prompt.messages[-1].content:
            return "The answer is 2"
        return f"The answer is {4 + next(turn) % 2}"

    big = _named("big", lambda prompt, i: "The answer is 4")
    records = list(evaluate(TASK, _named("small", small), SamplingParams(n=4),
                            strategy=ModelSwitch(models=[big])))
    assert [len(r["samples"]) for r in records] == [2, 4]
    parts = by_part(records)
    assert set(parts) == {"by_model"}
    clock = {m: parts["by_model"][m].pop("wall_time_s") for m in ("small", "big")}
    assert parts["by_model"] == {
        "small": {"problems": 2, "samples": 4, "samples_right": 3, "completion_tokens": 60},
        "big": {"problems": 1, "samples": 2, "samples_right": 2, "completion_tokens": 30},
    }
    assert all(t >= 0 for t in clock.values())
    assert summarize_strategy(records)["by_model"]["big"]["samples"] == 2
    # records without a trace (written before records kept it) add nothing
    assert by_part([{k: v for k, v in r.items() if k != "trace"} for r in records]) == {}


def test_usage_and_samples_right_per_prompt():
    # the role prompt (a system message) answers right, the original prompt wrong
    def reply(prompt, i):
        right = prompt.messages[0].role == "system"
        gold = "2" if "1 + 1" in prompt.messages[-1].content else "4"
        return f"The answer is {gold if right else 9}"

    records = list(evaluate(TASK, ScriptedBackend(reply), SamplingParams(n=4),
                            strategy=DivSampling(perturbations=("original", "role"))))
    prompts = by_part(records)["by_prompt"]
    assert set(prompts) == {"original", "role"}
    assert [(p["problems"], p["samples"], p["samples_right"], p["completion_tokens"],
             p["model_calls"]) for p in prompts.values()] == [(2, 4, 0, 60, 2), (2, 4, 4, 60, 2)]
    assert prompts["role"]["prompt_tokens"] > prompts["original"]["prompt_tokens"] > 0
    assert "by_model" not in summarize_strategy(records)


def test_two_models_with_one_file_name_are_not_merged_into_one_part():
    # model-switch over two different GGUF files that share a file name (a/m.gguf, b/m.gguf):
    # the trace labels both "m.gguf", and by_model merged them: 2 problems counted for 1.
    first = _named("m.gguf", lambda prompt, i: f"The answer is {2 + i % 2}")
    second = _named("m.gguf", lambda prompt, i: "The answer is 2")
    task = Task(name="toy", problems=TASK.problems[:1])
    records = list(evaluate(task, first, SamplingParams(n=4),
                            strategy=ModelSwitch(models=[second])))
    assert [t["decision"] for t in records[0]["trace"]] == ["switch", "stop"]
    parts = by_part(records)["by_model"]
    assert len(parts) == 2
    assert all(p["problems"] <= len(records) for p in parts.values())
