"""Reprompting (Xu et al. 2023): the Gibbs search (scripted backend, exact), the recipe
strategy's prompt and vote, recipe validation, and ``samplescale reprompt`` end to end."""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import pytest

from samplescale import cli_reprompt
from samplescale.backends.fake import ScriptedBackend
from samplescale.cli import main
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies import Reprompting, get_strategy
from samplescale.strategies.prompting import question_of, with_examples
from samplescale.strategies.reprompting_search import TrainingProblem, gibbs_search
from samplescale.types import Message, Prompt

RECIPE = [{"question": "What is 1 + 1?", "solution": "1 plus 1 is 2. The answer is 2"},
          {"question": "What is 2 + 5?", "solution": "2 plus 5 is 7. The answer is 7"}]


def test_with_examples_chat_and_raw_text_hand_checked():
    chat = Prompt(messages=(Message(role="system", content="Be brief."),
                            Message(role="user", content="What is 3 + 4?")), prefix="So")
    got = with_examples(chat, (("Q1", "Z1"), ("Q2", "Z2")))
    assert [(m.role, m.content) for m in got.messages] == [
        ("system", "Be brief."), ("user", "Q1"), ("assistant", "Z1"), ("user", "Q2"),
        ("assistant", "Z2"), ("user", "What is 3 + 4?")]
    assert got.prefix == "So" and chat.messages[1].content == "What is 3 + 4?"
    raw = with_examples(Prompt(text="Q: 3 + 4?\nA:"), (("Q: 1 + 1?\nA:", "2"),))
    assert raw.text == "Q: 1 + 1?\nA:\n2\n\nQ: 3 + 4?\nA:"
    assert with_examples(chat, ()) is chat


def test_strategy_prompt_is_the_recipe_then_the_question_and_votes_n_samples():
    backend = ScriptedBackend(["The answer is 9", "The answer is 8", "The answer is 9"])
    r = Reprompting(recipe=RECIPE).run(backend, Prompt.user("What is 4 + 5?"),
                                       SamplingParams(n=3, seed=1))
    (prompt, params), = backend.calls  # one call of N samples
    assert params.n == 3
    assert [(m.role, m.content) for m in prompt.messages] == [
        ("user", "What is 1 + 1?"), ("assistant", "1 plus 1 is 2. The answer is 2"),
        ("user", "What is 2 + 5?"), ("assistant", "2 plus 5 is 7. The answer is 7"),
        ("user", "What is 4 + 5?")]
    assert r.strategy == "reprompting" and r.answer == "9" and r.selected == 0
    assert r.vote_shares == {"9": pytest.approx(2 / 3), "8": pytest.approx(1 / 3)}
    assert r.usage.completion_tokens == len("The answer is 9") * 2 + len("The answer is 8")


def test_a_problem_the_recipe_was_learned_on_is_refused():
    backend = ScriptedBackend(["The answer is 7"])
    with pytest.raises(ConfigError, match=r"question is recipe\[1\]\.question: it was a training"):
        Reprompting(recipe=RECIPE).run(backend, Prompt.user(" What is 2 + 5?\n"),
                                       SamplingParams(n=2))
    assert backend.calls == []  # refused before any sample is drawn


@pytest.mark.parametrize(("recipe", "message"), [
    (None, "recipe must be a list of 1 to 16"),
    ("runs/recipe.json", "give the path of its recipe.json"),
    ([], "recipe must hold 1 to 16 examples, got 0"),
    ([RECIPE[0]] * 17, "recipe must hold 1 to 16 examples, got 17"),
    (["What is 1 + 1?"], r"recipe\[0\] must be a mapping with exactly the keys"),
    ([RECIPE[0], {"question": "q"}], r"recipe\[1\] must be a mapping .* got \['question'\]"),
    ([{**RECIPE[0], "answer": "2"}], r"recipe\[0\] must be a mapping"),
    ([{"question": "q", "solution": "  "}], r"recipe\[0\]\.solution must be a non-empty string"),
    ([{"question": 3, "solution": "z"}], r"recipe\[0\]\.question must be a non-empty string"),
])
def test_malformed_recipes_are_refused_naming_the_field(recipe, message):
    with pytest.raises(ConfigError, match=message):
        get_strategy("reprompting", recipe=recipe)


QUESTIONS = {"What is 1 + 1?": "2", "What is 2 + 3?": "5", "What is 4 + 4?": "8"}


def _problems(names=QUESTIONS):
    return [TrainingProblem(Prompt.user(q), gold) for q, gold in names.items()]


def _gold_of(prompt: Prompt) -> str:
    return QUESTIONS[question_of(prompt)]


def test_gibbs_loop_init_acceptance_and_replacement_exact():
    """Two problems, k = 1 (each prompt's one example is the other problem's solution).
    Init: problem 0 gets its second try (the first is wrong), problem 1 none correct so
    its first (wrong) try. Gibbs call t is correct iff t is even: accepted at t = 0, 2,
    rejected at t = 1, and each accepted reply replaces the solution of the problem asked."""
    probs = _problems({"What is 1 + 1?": "2", "What is 2 + 3?": "5"})
    init = ["w0 The answer is 3", "r0 The answer is 2", "w1 The answer is 4", "w1b The answer is 7"]

    def reply(prompt, i):
        if i < 4:
            return init[i]
        t = i - 4
        if t < 3:  # Gibbs proposals
            return f"g{t} The answer is " + (_gold_of(prompt) if t % 2 == 0 else "0")
        return "s The answer is " + _gold_of(prompt)  # scoring

    backend = ScriptedBackend(reply)
    s = gibbs_search(backend, probs, SamplingParams(seed=3), np.random.default_rng(7), k=1,
                     iterations=3, init_tries=2, candidates=1)
    init_rec = [r for r in s.trace if r["phase"] == "init"]
    assert init_rec == [
        {"phase": "init", "problem": 0, "tries": 2, "answer": "2", "correct": True},
        {"phase": "init", "problem": 1, "tries": 2, "answer": "4", "correct": False}]
    gibbs = [r for r in s.trace if r["phase"] == "gibbs"]
    assert [r["accepted"] for r in gibbs] == [True, False, True]
    assert [r["correct"] for r in gibbs] == [True, False, True]
    solutions = {0: "r0 The answer is 2", 1: "w1 The answer is 4"}
    for t, r in enumerate(gibbs):
        prompt = backend.calls[2 + t][0]
        j = r["problem"]
        assert question_of(prompt) == probs[j].prompt.messages[0].content
        assert r["examples"] == [1 - j]  # the other problem, with its current solution
        assert prompt.messages[1].content == solutions[1 - j]
        if r["accepted"]:
            solutions[j] = f"g{t} The answer is {probs[j].gold}"
    assert s.solutions == (solutions[0], solutions[1])
    assert (s.accepted, s.rejected) == (2, 1)
    assert s.correct == tuple(s.solutions[j].endswith(probs[j].gold) for j in (0, 1))
    # one candidate of k = 1 example, scored on the one other problem (correct)
    assert len(s.recipe) == 1 and s.train_accuracy == 1.0
    assert s.candidates[0]["scored"] == 1 and s.candidates[0]["correct"] == 1
    assert s.usage.model_calls == 2 + 3 + 1
    # every call counts: 4 init replies, 3 proposals and 1 scoring reply (one-digit answers)
    assert s.usage.completion_tokens == sum(map(len, init)) + 3 * len("g0 The answer is 2") + len(
        "s The answer is 2")


def test_incorrect_proposals_accepted_with_probability_accept_incorrect():
    def wrong(prompt, i):
        return "The answer is 0" if i >= 3 * 2 else "The answer is " + _gold_of(prompt)

    def run(p):
        return gibbs_search(ScriptedBackend(wrong), _problems(), SamplingParams(seed=0),
                            np.random.default_rng(1), k=1, iterations=40, init_tries=2,
                            accept_incorrect=p, candidates=1)

    assert run(0.0).accepted == 0 and run(0.0).rejected == 40
    assert run(1.0).accepted == 40
    half = run(0.5)
    # the acceptance draws are the rng's uniforms after each iteration's choices
    assert 10 <= half.accepted <= 30 and half.accepted == run(0.5).accepted


def test_search_is_reproducible_and_never_prompts_other_problems():
    seen: list[str] = []

    def reply(prompt, i):
        seen.extend(m.content for m in prompt.messages if m.role == "user")
        return "The answer is " + ("0" if i % 3 else _gold_of(prompt))

    def run(seed):
        return gibbs_search(ScriptedBackend(reply), _problems(), SamplingParams(seed=seed),
                            np.random.default_rng(seed), k=2, iterations=6, init_tries=3,
                            candidates=2)

    a, b = run(11), run(11)
    assert a.trace == b.trace and a.recipe == b.recipe and a.solutions == b.solutions
    assert set(seen) == set(QUESTIONS)  # only the training questions ever reach the model
    assert len({tuple(r["problem"] for r in run(s).trace if r["phase"] == "gibbs")
                for s in range(4)}) > 1  # the problem sequence depends on the seed


def test_search_arguments_are_checked():
    with pytest.raises(ConfigError, match=r"k must be an integer in \[1, 16\]"):
        gibbs_search(ScriptedBackend(["x"]), _problems(), SamplingParams(),
                     np.random.default_rng(0), k=0)
    with pytest.raises(ConfigError, match=r"accept_incorrect must be a number in \[0, 1\]"):
        gibbs_search(ScriptedBackend(["x"]), _problems(), SamplingParams(),
                     np.random.default_rng(0), accept_incorrect=1.5)
    with pytest.raises(ConfigError, match="at least k \\+ 1 = 4 training problems"):
        gibbs_search(ScriptedBackend(["x"]), _problems(), SamplingParams(),
                     np.random.default_rng(0), k=3)


def test_cli_trains_only_on_the_offset_problems_and_refuses_other_settings(
        tmp_path, capsys, monkeypatch):
    from samplescale.tasks import load_task

    asked: list[str] = []

    def reply(prompt, i):
        asked.extend(m.content for m in prompt.messages if m.role == "user")
        return "The answer is 1"

    monkeypatch.setattr(cli_reprompt, "backend_from_args",
                        lambda args: ScriptedBackend(reply))
    out = tmp_path / "r"
    args = ["reprompt", "--offset", "2", "--limit", "3", "--k", "1", "--iterations", "2",
            "--candidates", "1", "--init-tries", "2", "--output", str(out)]
    assert main(args) == 0
    task = load_task("arithmetic", limit=5)
    held = {task.prompt(p).messages[-1].content for p in task.problems[:2]}
    train = {task.prompt(p).messages[-1].content for p in task.problems[2:]}
    assert set(asked) == train and not held & set(asked)
    saved = json.loads((out / "recipe.json").read_text())
    assert saved["provenance"]["training_problems"] == [p.id for p in task.problems[2:]]
    assert len(saved["recipe"]) == 1 and saved["recipe"][0]["question"] in train
    assert (f"apply it: samplescale eval --task arithmetic --strategy reprompting "
            f"--option recipe={out / 'recipe.json'} --limit 2") in capsys.readouterr().out
    assert main(args) == 0  # same settings: printed again, nothing drawn
    assert "already holds the recipe" in capsys.readouterr().out
    assert main([*args[:-2], "--iterations", "3", "--output", str(out)]) == 2
    assert "reprompt.iterations: 2 -> 3" in capsys.readouterr().err


def test_reprompt_then_eval_with_the_real_model(llama_backend, tmp_path, capsys):
    model = str(llama_backend.model_path)
    out = tmp_path / "learn"
    common = ["--model", model, "--threads", "1", "--max-tokens", "48", "--level", "1"]
    assert main(["reprompt", "--offset", "2", "--limit", "4", "--k", "1", "--iterations", "2",
                 "--candidates", "1", "--init-tries", "2", "--output", str(out), *common]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "recipe.json").read_text())
    prov = saved["provenance"]
    assert prov["accepted"] + prov["rejected"] == 2 and len(saved["recipe"]) == 1
    assert prov["usage"]["model_calls"] == 4 + 2 + 3 and prov["usage"]["completion_tokens"] > 0
    option = re.search(r"--option (recipe=\S+)", printed).group(1)
    ev = tmp_path / "eval"
    assert main(["eval", "--strategy", "reprompting", "--option", option, "--limit", "2",
                 "--n", "2", "--output", str(ev), *common]) == 0
    run = json.loads((ev / "run.json").read_text())
    assert run["option_recipe"]["file"] == "recipe.json"
    records = [json.loads(x) for x in (ev / "results.jsonl").read_text().splitlines()]
    assert [r["strategy"] for r in records] == ["reprompting"] * 2
    assert all(len(r["samples"]) == 2 for r in records)


def test_eval_refuses_a_recipe_path_it_cannot_read(tmp_path, capsys):
    bad = tmp_path / "recipe.json"
    bad.write_text("{not json")
    for path, message in ((tmp_path / "none.json", "No such file"), (bad, "Expecting")):
        assert main(["eval", "--strategy", "reprompting", "--option", f"recipe={path}",
                     "--limit", "1"]) == 2
        err = capsys.readouterr().err
        assert f"--option recipe={path}: cannot read a recipe from it" in err and message in err
    bad.write_text(json.dumps({"recipe": [{"question": "q"}]}))
    assert main(["eval", "--strategy", "reprompting", "--option", f"recipe={bad}"]) == 2
    assert "recipe[0] must be a mapping with exactly the keys" in capsys.readouterr().err
    bad.write_text(json.dumps({"bad": 1}))
    assert main(["eval", "--strategy", "reprompting", "--option", f"recipe={bad}"]) == 2
    assert 'the JSON object has no "recipe" key (keys: bad)' in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "message"), [
    (["--init-tries", "0"], "--init-tries must be an integer >= 1"),
    (["--offset", "-1"], "--offset must be an integer >= 0, got -1"),
])
def test_reprompt_names_its_own_flags_in_errors(flags, message, tmp_path, capsys):
    assert main(["reprompt", "--limit", "2", "--output", str(tmp_path / "r"), *flags]) == 2
    assert message in capsys.readouterr().err


class _Interrupted(Exception):
    """The search's process stopped (raised by :class:`_CutOff`)."""


class _CutOff(ScriptedBackend):
    """A scripted backend that stops the run on its call ``after + 1``."""

    def __init__(self, replies, after):
        super().__init__(replies)
        self.after = after

    def generate(self, prompt, params, rng=None):
        if len(self.calls) == self.after:
            raise _Interrupted
        return super().generate(prompt, params, rng)


def _hashed_reply(prompt, i):
    """A reply that depends on the prompt only (not on the call's index), so that a rerun
    asks and is answered the same."""
    digest = zlib.crc32(json.dumps(prompt.model_dump(mode="json"), sort_keys=True).encode())
    return f"step {digest % 7}. The answer is {digest % 3}"


def _saved(out):
    saved = json.loads((out / "recipe.json").read_text())
    del saved["provenance"]["usage"]["wall_time_s"]  # measures the run
    return saved


def test_an_interrupted_search_resumes_from_calls_jsonl(tmp_path, capsys, monkeypatch):
    args = ["reprompt", "--limit", "4", "--k", "1", "--iterations", "4", "--candidates",
            "2", "--init-tries", "2"]
    whole, cut, rest = ScriptedBackend(_hashed_reply), _CutOff(_hashed_reply, 6), \
        ScriptedBackend(_hashed_reply)
    backends = iter([whole, cut, rest])
    monkeypatch.setattr(cli_reprompt, "backend_from_args", lambda args: next(backends))
    assert main([*args, "--output", str(tmp_path / "whole")]) == 0
    calls = len(whole.calls)
    assert calls == 4 + 4 + 2 * 3  # init, Gibbs, two candidates scored on 3 problems each
    with pytest.raises(_Interrupted):
        main([*args, "--output", str(tmp_path / "cut")])
    assert not (tmp_path / "cut" / "recipe.json").exists()
    assert len((tmp_path / "cut" / "calls.jsonl").read_text().splitlines()) == 1 + 6
    capsys.readouterr()
    assert main([*args, "--output", str(tmp_path / "cut")]) == 0
    assert f"resumed the search: 6 of {calls} model calls served" in capsys.readouterr().out
    assert rest.calls == whole.calls[6:]  # the first 6 calls were not asked again
    resumed, uninterrupted = _saved(tmp_path / "cut"), _saved(tmp_path / "whole")
    assert resumed["recipe"] == uninterrupted["recipe"]
    assert resumed["provenance"] == uninterrupted["provenance"]
    assert resumed["trace"] == uninterrupted["trace"]
    assert len((tmp_path / "cut" / "calls.jsonl").read_text().splitlines()) == 1 + calls
    monkeypatch.undo()  # the real backend choice: --replay the file, with no model
    replayed = tmp_path / "replayed"
    assert main([*args, "--replay", str(tmp_path / "cut" / "calls.jsonl"),
                 "--output", str(replayed)]) == 0
    assert _saved(replayed)["provenance"] == uninterrupted["provenance"]


def test_reprompt_refuses_record_logit_decoding_and_other_settings_on_its_calls(
        tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    args = ["reprompt", "--limit", "3", "--k", "1", "--iterations", "2", "--candidates", "1",
            "--output", str(out)]
    assert main([*args, "--record", str(tmp_path / "rec.jsonl")]) == 2
    assert "it takes no --record (replay calls.jsonl with --replay)" in capsys.readouterr().err
    assert main([*args, "--decoding", "priority"]) == 2
    assert "--decoding priority draws from next-token logits" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.setattr(cli_reprompt, "backend_from_args",
                        lambda args: _CutOff(_hashed_reply, 2))
    with pytest.raises(_Interrupted):
        main(args)
    assert main([*args[:-2], "--iterations", "3", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings (reprompt.iterations: 2 -> 3)" in err
