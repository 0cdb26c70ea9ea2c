"""Steps: one backend call per batch of steps, delimiter vs end-of-sequence, splitting."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from samplescale.backends.fake import ScriptedBackend, ToyLM
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.steps import (
    Step,
    ended_on_delimiter,
    generate_rest,
    generate_steps,
    split_steps,
    trajectory_sample,
)
from samplescale.types import Generation, Prompt, Sample

Q = Prompt.user("What is 2 + 3?")


def test_delimiter_is_reappended_and_eos_length_error_are_told_apart():
    replies = ["First, add.\n\nThen more", "The answer is 5.", "a long step", RuntimeError("x")]
    backend = ScriptedBackend(replies)
    steps = generate_steps(backend, Q, [], SamplingParams(max_tokens=13), 4)
    assert [(s.text, s.end, s.done) for s in steps] == [
        # the delimiter completes at the 13th token: the stop wins over the length limit
        ("First, add.\n\n", "delimiter", False),
        ("The answer is", "length", True),
        ("a long step", "eos", True),
        ("", "error", True),
    ]
    assert steps[3].failed and steps[0].tokens == 13  # the delimiter's tokens count
    assert steps.usage.model_calls == 1 and steps.usage.completion_tokens == 13 + 13 + 11
    short = generate_steps(ScriptedBackend(["The answer is 5."]), Q, [], SamplingParams(), 1)
    assert (short[0].text, short[0].end) == ("The answer is 5.", "eos")


def test_one_call_continues_the_prefix_with_the_delimiter_as_stop():
    backend = ScriptedBackend(["Then 5.\n\n"])
    prompt = Q.continued("Sure. ")
    params = SamplingParams(max_tokens=32, stop=("###",), seed=3)
    steps = generate_steps(backend, prompt, ["Add.\n\n", "2+3.\n\n"], params, 3)
    assert len(steps) == 3 and len(backend.calls) == 1
    sent, used = backend.calls[0]
    assert sent.prefix == "Sure. Add.\n\n2+3.\n\n"
    assert used == params.replace(n=3, stop=("###", "\n\n"))


def test_a_user_stop_string_ends_the_solution():
    steps = generate_steps(
        ScriptedBackend(["So 5 ### extra"]), Q, [], SamplingParams(stop=("###",)), 1
    )
    assert (steps[0].text, steps[0].end) == ("So 5 ", "eos")


def test_custom_delimiter_and_bad_delimiter():
    steps = generate_steps(ScriptedBackend(["a; b"]), Q, [], SamplingParams(), 1, delimiter=";")
    assert steps[0].text == "a;"
    for bad in ("", None, 3):
        with pytest.raises(ConfigError, match="delimiter"):
            generate_steps(ScriptedBackend(["a"]), Q, [], SamplingParams(), 1, delimiter=bad)
    with pytest.raises(ValueError, match="n"):
        generate_steps(ScriptedBackend(["a"]), Q, [], SamplingParams(), 0)


class OpaqueBackend:
    """A backend that exposes no token pieces (like a remote API)."""

    name = "opaque"
    capabilities = ScriptedBackend.capabilities

    def __init__(self, texts):
        self.texts = texts

    def generate(self, prompt, params, rng=None):
        samples = tuple(Sample(text=t, finish_reason="stop") for t in self.texts[: params.n])
        return Generation(samples=samples, usage=ScriptedBackend(["x"]).generate(Q, params).usage)


def test_backend_without_pieces_counts_a_nonempty_stop_as_the_delimiter():
    steps = generate_steps(OpaqueBackend(["step", ""]), Q, [], SamplingParams(), 2)
    assert [(s.text, s.end) for s in steps] == [("step\n\n", "delimiter"), ("", "eos")]


@given(seed=st.integers(0, 2**32 - 1), max_tokens=st.integers(1, 6))
def test_toy_lm_step_ends_follow_the_last_token(seed, max_tokens):
    toy = ToyLM()
    params = SamplingParams(max_tokens=max_tokens, seed=seed)
    for step in generate_steps(toy, Prompt(text="q", prefix="1"), ["2"], params, 8, delimiter="3"):
        last = step.sample.token_ids[-1]
        expected = "delimiter" if last == 3 else "eos" if last == 0 else "length"
        assert step.end == expected
        assert step.text == step.sample.text + ("3" if expected == "delimiter" else "")
        assert "3" not in step.sample.text


def test_toy_lm_step_end_frequencies_match_the_exact_distribution():
    """4000 first steps (delimiter "3", max 4 tokens) vs the enumerated bigram model:
    chi-square goodness of fit, seed 11, alpha = 0.001."""
    toy = ToyLM()
    params = SamplingParams(max_tokens=4, seed=11)
    exact = {"delimiter": 0.0, "eos": 0.0, "length": 0.0}
    for seq, p in toy.exact_distribution(params).items():
        first = next((t for t in seq if t in (0, 3)), None)
        exact[{3: "delimiter", 0: "eos", None: "length"}[first]] += p
    steps = generate_steps(toy, Prompt(text="q"), [], params, 4000, delimiter="3")
    counts = [sum(s.end == k for s in steps) for k in exact]
    expected = [4000 * p for p in exact.values()]
    assert stats.chisquare(counts, expected).pvalue > 0.001
    assert sum(counts) == 4000


def test_generate_rest_has_no_delimiter():
    backend = ScriptedBackend(["a\n\nb\n\nanswer 5", RuntimeError("x")])
    steps = generate_rest(backend, Q, ["x\n\n"], SamplingParams(max_tokens=64), 2)
    assert [(s.text, s.end) for s in steps] == [("a\n\nb\n\nanswer 5", "eos"), ("", "error")]
    assert backend.calls[0][0].prefix == "x\n\n" and backend.calls[0][1].stop == ()


@given(st.text(alphabet="ab\n;", max_size=30), st.sampled_from(["\n\n", ";", "ab"]))
def test_split_steps_inverts_join(text, delimiter):
    steps = split_steps(text, delimiter)
    assert "".join(steps) == text
    assert all(s.endswith(delimiter) for s in steps[:-1])
    assert all(s != "" for s in steps)


def test_split_steps_table():
    assert split_steps("a\n\nb\n\nc") == ["a\n\n", "b\n\n", "c"]
    assert split_steps("a\n\n") == ["a\n\n"]
    assert split_steps("") == []


def test_trajectory_sample_concatenates_steps():
    backend = ScriptedBackend(["ab\n\n", "cd"], token_logprob=[-0.5, -0.25])
    a = generate_steps(backend, Q, [], SamplingParams(), 1)[0]
    b = generate_steps(backend, Q, [a.text], SamplingParams(), 1)[0]
    s = trajectory_sample([a, b], complete=True)
    assert s.text == "ab\n\ncd" and s.finish_reason == "stop"
    assert s.token_ids == tuple(map(ord, "ab\n\ncd"))
    assert s.sum_logprob == pytest.approx(4 * -0.5 + 2 * -0.25)
    assert trajectory_sample([a], complete=False).finish_reason == "length"
    failed = Step(text="", end="error", sample=Sample.failed("boom"))
    with pytest.raises(ConfigError, match="failed"):
        trajectory_sample([a, failed], complete=True)


def test_ended_on_delimiter_needs_the_delimiter_right_after_the_text():
    backend = ScriptedBackend(["x"])
    s = Sample(text="ab", token_ids=tuple(map(ord, "ab;;")), finish_reason="stop")
    assert ended_on_delimiter(backend, s, ";;") and not ended_on_delimiter(backend, s, "##")
    assert not ended_on_delimiter(backend, s.model_copy(update={"finish_reason": "length"}), ";;")


@pytest.mark.llama
def test_llama_steps_end_on_the_delimiter_or_an_end_token(llama_backend):
    prompt = Prompt.user("Solve step by step, one step per paragraph: what is 12 + 30?")
    params = SamplingParams(temperature=0.8, max_tokens=40, seed=5)
    steps = generate_steps(llama_backend, prompt, [], params, 3)
    for step in steps:
        assert step.sample.status == "ok"
        if step.end == "delimiter":
            assert step.text.endswith("\n\n") and "\n\n" not in step.sample.text
        elif step.end == "eos":
            assert llama_backend.is_end(step.sample.token_ids[-1])
        else:
            assert step.tokens == 40
    first = next(s for s in itertools.chain(steps, [None]) if s is None or not s.done)
    if first is not None:  # continue the first unfinished step: the prompt grows by it
        nxt = generate_steps(llama_backend, prompt, [first.text], params, 1)
        grown = llama_backend.tokenize_prompt(prompt.continued(first.text))
        assert nxt.usage.prompt_tokens == len(grown)
    assert np.isfinite([s.sample.sum_logprob for s in steps]).all()


def test_steps_are_drawn_with_the_params_decoding():
    """Steps go through samplescale.decoders.generate: priority decoding gives distinct
    steps, the first one the greedy step (toy LM, delimiter "3")."""
    toy = ToyLM()
    params = SamplingParams(max_tokens=3, decoding="priority")
    steps = generate_steps(toy, Prompt(text="q"), [], params, 3, delimiter="3")
    texts = [s.text for s in steps]
    assert len(set(texts)) == 3
    greedy = generate_steps(
        toy,
        Prompt(text="q"),
        [],
        params.replace(temperature=0.0, decoding="independent"),
        1,
        delimiter="3",
    )
    assert texts[0] == greedy[0].text == "121"
    arith = generate_steps(
        toy, Prompt(text="q"), [], params.replace(decoding="arithmetic", seed=0), 4, delimiter="3"
    )
    assert len(arith) == 4
