"""model-switch (ModelSwitch, Chen et al. 2025): when it switches, the weighted vote across
models, usage per model, bad options, and the command line with two model files."""

from __future__ import annotations

import json

import pytest

from samplescale.backends.fake import ScriptedBackend
from samplescale.cli import main
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.strategies import ModelSwitch, model_switch


def boxed(*answers):
    return [f"so \\boxed{{{a}}}" for a in answers]


def test_a_unanimous_first_model_stops_before_the_second_is_called():
    first, second = ScriptedBackend(boxed(4, 4)), ScriptedBackend(boxed(9))
    r = model_switch(first, "q", SamplingParams(n=4), models=[second])
    assert r.answer == "4" and len(r.samples) == 2  # N // 2 models = 2 per model
    assert [(t["decision"], t["consistency"]) for t in r.trace] == [("stop", 1.0)]
    assert second.calls == [] and r.usage.model_calls == 1


def test_a_split_first_model_switches_and_the_vote_is_weighted_by_consistency():
    # model 1: 4, 5, 6 (consistency 1/3); model 2: 7, 7, 5 (2/3): class 7 gets 2 x 2/3,
    # class 5 1/3 + 2/3 = 1; unweighted, 7 and 5 would tie at 2 votes each
    first, second = ScriptedBackend(boxed(4, 5, 6)), ScriptedBackend(boxed(7, 7, 5))
    r = model_switch(first, "q", SamplingParams(n=6, seed=2), models=[second])
    assert [t["decision"] for t in r.trace] == ["switch", "budget"]
    assert [t["consistency"] for t in r.trace] == pytest.approx([1 / 3, 2 / 3])
    assert r.answer == "7" and r.weights == pytest.approx((1 / 9,) * 3 + (2 / 9,) * 3)
    assert r.vote_shares["7"] == pytest.approx((4 / 3) / 3)
    assert [t["completion_tokens"] for t in r.trace] == [36, 36]  # usage per model
    assert r.usage.completion_tokens == 72 and r.usage.model_calls == 2
    assert second.calls[0][1].seed != 2  # the second model draws its own stream


def test_no_answer_from_any_model_is_a_result_without_answer_or_weights():
    first, second = ScriptedBackend(["I am not sure."] * 2), ScriptedBackend(["Hmm."] * 2)
    r = model_switch(first, "q", SamplingParams(n=4), models=[second])
    assert [(t["decision"], t["consistency"]) for t in r.trace] == [("switch", 0.0),
                                                                   ("budget", 0.0)]
    assert r.answer is None and r.selected is None and r.weights == ()
    assert len(r.samples) == 4


def test_an_exact_tie_goes_to_the_model_switched_to():
    # model 1: 4, 5 (consistency 1/2); model 2: 7, 8 (1/2): four classes of weight 1/2 each;
    # the tie goes to the latest model's first-seen class, 7 (not model 1's first sample, 4)
    first, second = ScriptedBackend(boxed(4, 5)), ScriptedBackend(boxed(7, 8))
    r = model_switch(first, "q", SamplingParams(n=4), models=[second])
    assert [t["consistency"] for t in r.trace] == [0.5, 0.5]
    assert r.answer == "7" and r.selected == 2
    assert list(r.vote_shares) == ["4", "5", "7", "8"]  # shares in the order answers came
    assert r.vote_shares == pytest.approx(dict.fromkeys(["4", "5", "7", "8"], 0.25))


def test_priors_scale_each_models_votes():
    # model 1: 4, 4, 5 (consistency 2/3), model 2: 5, 6, 7 (1/3). Equal priors: class 4 has
    # 2 x 2/3 = 4/3, class 5 2/3 + 1/3 = 1: 4 wins. Priors (1, 3): class 4 still 4/3, class
    # 5 2/3 + 3 x 1/3 = 5/3: 5 wins; weights are prior x consistency, normalized.
    def run(priors):
        first, second = ScriptedBackend(boxed(4, 4, 5)), ScriptedBackend(boxed(5, 6, 7))
        return model_switch(first, "q", SamplingParams(n=6), models=[second], priors=priors)
    assert run(None).answer == "4"
    r = run([1, 3])
    assert r.answer == "5" and r.selected == 3  # the latest model's sample of the class
    assert r.weights == pytest.approx((2 / 15,) * 3 + (1 / 5,) * 3)  # 2/3 and 1 over 5
    assert r.vote_shares["5"] == pytest.approx((5 / 3) / 5)


def test_per_model_threshold_and_budget():
    models = [ScriptedBackend(boxed(1, 2)), ScriptedBackend(boxed(3, 3, 3))]
    r = model_switch(ScriptedBackend(boxed(5, 6)), "q", SamplingParams(n=5), models=models,
                     per_model=2, threshold=0.5)
    # consistency 1/2 >= 0.5 stops at the first model
    assert [t["decision"] for t in r.trace] == ["stop"] and len(r.samples) == 2
    r = model_switch(ScriptedBackend(boxed(5, 6)), "q", SamplingParams(n=5), models=models,
                     per_model=2)
    assert [t["samples"] for t in r.trace] == [2, 2, 1]  # never more than N = 5
    assert r.trace[-1]["decision"] == "stop"  # the last model's one sample is unanimous


@pytest.mark.parametrize(("options", "message"), [
    ({}, "models must list at least one more model"),
    ({"models": "other.gguf"}, "models must list at least one more model"),
    ({"models": [ScriptedBackend(["x"])], "threshold": 0}, r"threshold must be a number in \(0, 1\]"),
    ({"models": [ScriptedBackend(["x"])], "per_model": 0}, "per_model must be an integer >= 1"),
    ({"models": [ScriptedBackend(["x"])], "priors": [1]}, "priors must list 2 weights"),
    ({"models": [ScriptedBackend(["x"])], "priors": "12"}, "priors must list 2 weights"),
    ({"models": [ScriptedBackend(["x"])], "priors": [1, 0]},
     r"priors\[1\] must be a number in \(0, inf\)"),
    ({"models": [ScriptedBackend(["x"])], "priors": [float("nan"), 1]},
     r"priors\[0\] must be a number in \(0, inf\)"),
])
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        ModelSwitch(**options)


@pytest.mark.parametrize(("n", "per_model"), [(3, None), (2, None), (4, 1), (4, 4), (4, 5)])
def test_a_budget_that_cannot_switch_is_refused_before_sampling(n, per_model):
    # N = 3 over 2 models is 1 sample each (one sample always agrees with itself); a
    # per_model of N or more leaves nothing for the next model
    first = ScriptedBackend(boxed(1, 2, 3, 4, 5))
    with pytest.raises(ConfigError, match="cannot switch: each model needs at least 2"):
        model_switch(first, "q", SamplingParams(n=n), models=[ScriptedBackend(boxed(7))],
                     per_model=per_model)
    assert first.calls == []


def test_paths_must_be_loaded_first():
    with pytest.raises(ConfigError, match="are paths; the command line loads them"):
        model_switch(ScriptedBackend(["x"]), "q", SamplingParams(n=2), models=["b.gguf"])


@pytest.mark.slow
def test_generate_and_eval_with_a_second_model_file(llama_backend, tmp_path, capsys):
    model = str(llama_backend.model_path)
    copy = tmp_path / "second.gguf"
    copy.write_bytes(llama_backend.model_path.read_bytes())
    code = main(["generate", "What is 2 + 3?", "-n", "4", "--max-tokens", "16", "--seed", "1",
                 "--threads", "1", "--strategy", "model-switch", "--option",
                 f'models=["{copy}"]', "--json", "--model", model])
    body = json.loads(capsys.readouterr().out)
    assert code == 0 and body["strategy"] == "model-switch"
    models = [t["model"] for t in body["trace"]]
    assert models in ([llama_backend.model_path.name],
                      [llama_backend.model_path.name, "second.gguf"])
    out = tmp_path / "run"
    argv = ["eval", "--limit", "1", "--n", "4", "--max-tokens", "12", "--threads", "1",
            "--strategy", "model-switch", "--option", f'models=["{copy}"]', "--output", str(out),
            "--model", model]
    assert main(argv) == 0
    settings = json.loads((out / "run.json").read_text())
    assert settings["option_models"][0]["file"] == "second.gguf"
    copy.write_bytes(copy.read_bytes()[:-1] + b"\0")  # another second model: not resumed onto
    assert main(argv) == 2 and "option_models" in capsys.readouterr().err


def test_huge_priors_in_the_documented_range_do_not_break_the_vote():
    # priors (1e308, 1e308) pass the check "(0, inf)" but prior x consistency summed over
    # the samples overflows to inf, and the normalised weights became nan: the run failed
    # after sampling with "weights must be >= 0 and sum to 1". Only the ratio matters.
    first, second = ScriptedBackend(boxed(4, 5)), ScriptedBackend(boxed(7, 7))
    r = model_switch(first, "q", SamplingParams(n=4), models=[second], priors=[1e308, 1e308])
    # equal priors: consistency 1/2 (4, 5) and 1 (7, 7), normalised over 3
    assert r.answer == "7" and r.weights == pytest.approx((1 / 6, 1 / 6, 1 / 3, 1 / 3))


@pytest.mark.parametrize("entry", [1, None, True, {"a": 1}, "", "  "])
def test_a_model_that_is_neither_a_backend_nor_a_path_is_refused(entry):
    # --option 'models=[1]' (or null, true, an object) got past the checks and ended in
    # AttributeError: 'int' object has no attribute 'generate' after the first model sampled
    with pytest.raises(ConfigError, match=r"models\[0\]"):
        ModelSwitch(models=[entry])
