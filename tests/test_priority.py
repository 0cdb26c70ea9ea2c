"""Priority sampling: hand-computed expansion order, exact top-N against enumeration of the
toy LM, uniqueness, the regular-expression constraint, and SmolLM2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from samplescale.backends.fake import ToyLM
from samplescale.config import SamplingParams
from samplescale.decoders.priority import priority_generate
from samplescale.errors import ConfigError
from samplescale.types import Prompt

PROMPT = Prompt(text="x")
# a table without near-ties among the first expansions (worked below)
HAND = np.array(
    [
        [0.07, 0.60, 0.30, 0.03],  # after BOS
        [0.30, 0.12, 0.45, 0.13],  # after "1"
        [0.25, 0.45, 0.10, 0.20],  # after "2"
        [0.40, 0.20, 0.20, 0.20],  # after "3"
    ]
)


def top(exact: dict, n: int, keep=lambda seq: True) -> list[tuple[float, tuple[int, ...]]]:
    return sorted(((p, s) for s, p in exact.items() if keep(s)), reverse=True)[:n]


def prob(sample) -> float:
    return math.exp(math.fsum(sample.sampling_logprobs))


def test_paper_order_hand_computed():
    """max_tokens=3. E1 greedy: 1 (.6), 2 (.45), 1 (.45) -> (1,2,1) = .1215. Queue: root->2 .3,
    (1)->0 .18, (1,2)->0 .0675. E2 pops root->2: greedy 1, 2 -> (2,1,2) = .06075. E3 pops
    (1)->0 = .18 -> (1,0). E4 pops (1)->3 = .078 (vs .075, .072, .07) -> greedy 0: (1,3,0) =
    .0312. E5 pops (2)->0 = .075 -> (2,0)."""
    out = priority_generate(ToyLM(HAND), PROMPT, SamplingParams(max_tokens=3, n=5))
    assert [s.token_ids for s in out.samples] == [(1, 2, 1), (2, 1, 2), (1, 0), (1, 3, 0), (2, 0)]
    assert [prob(s) for s in out.samples] == pytest.approx([0.1215, 0.06075, 0.18, 0.0312, 0.075])
    # calls: root, (1), (1,2), (2), (2,1), (1,3)
    assert out.usage.model_calls == 6 and out.usage.completion_tokens == 5


def test_exact_order_is_the_enumerated_top_n():
    toy = ToyLM(HAND)
    params = SamplingParams(max_tokens=3, n=8)
    out = priority_generate(toy, PROMPT, params, exact=True)
    expected = top(toy.exact_distribution(params), 8)
    assert [s.token_ids for s in out.samples] == [s for _, s in expected]
    assert [prob(s) for s in out.samples] == pytest.approx([p for p, _ in expected])


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(max_tokens=4, n=30),
        SamplingParams(max_tokens=4, n=30, temperature=0.6, top_p=0.9),
        SamplingParams(max_tokens=4, n=30, repetition_penalty=1.8, min_p=0.1),
        SamplingParams(max_tokens=3, n=1000),  # more than the support: every sequence, once
    ],
    ids=["plain", "T0.6_top_p0.9", "penalty_min_p", "whole_support"],
)
def test_exact_mode_matches_enumeration_of_the_default_toy(params):
    toy = ToyLM()
    exact = toy.exact_distribution(params)
    out = priority_generate(toy, PROMPT, params, exact=True).samples
    expected = top(exact, params.n)
    assert len(out) == len(expected)
    assert [prob(s) for s in out] == pytest.approx([p for p, _ in expected], rel=1e-9)
    assert all(prob(s) == pytest.approx(exact[s.token_ids]) for s in out)  # (ties in any order)
    assert len({s.token_ids for s in out}) == len(out)


@settings(max_examples=25, deadline=None)
@given(
    table=st.lists(st.lists(st.floats(0.01, 1.0), min_size=4, max_size=4), min_size=4, max_size=4),
    n=st.integers(1, 40),
)
def test_exact_top_n_property_on_random_tables(table, n):
    t = np.array(table)
    toy = ToyLM(t / t.sum(axis=1, keepdims=True))
    params = SamplingParams(max_tokens=3, n=n)
    out = priority_generate(toy, PROMPT, params, exact=True).samples
    expected = top(toy.exact_distribution(params), n)
    assert [prob(s) for s in out] == pytest.approx([p for p, _ in expected], rel=1e-9)
    # the paper's mode: distinct sequences, the first one greedy
    paper = priority_generate(toy, PROMPT, params).samples
    assert len({s.token_ids for s in paper}) == len(paper) == len(expected)
    greedy = toy.generate(PROMPT, params.replace(n=1, temperature=0)).samples[0]
    assert paper[0].token_ids == greedy.token_ids


def test_logprobs_are_raw_and_sampling_logprobs_processed():
    toy = ToyLM()
    params = SamplingParams(max_tokens=3, n=5, temperature=0.5)
    raw = toy.exact_distribution(SamplingParams(max_tokens=3))
    processed = toy.exact_distribution(params)
    for s in priority_generate(toy, PROMPT, params).samples:
        assert math.exp(math.fsum(s.logprobs)) == pytest.approx(raw[s.token_ids])
        assert prob(s) == pytest.approx(processed[s.token_ids])


def test_fewer_samples_when_the_support_is_smaller():
    toy = ToyLM()
    greedy = priority_generate(toy, PROMPT, SamplingParams(max_tokens=5, n=4, temperature=0))
    assert [s.text for s in greedy.samples] == ["12121"]
    assert greedy.samples[0].sampling_logprobs == (0.0,) * 5
    top2 = priority_generate(toy, PROMPT, SamplingParams(max_tokens=2, n=100, top_k=2))
    assert len(top2.samples) == len(toy.exact_distribution(SamplingParams(max_tokens=2, top_k=2)))


def text_of(seq: tuple[int, ...]) -> str:
    return "".join(str(t) for t in seq if t != 0)


@pytest.mark.parametrize("pattern", [r"2+", r"1[23]?1?", r"(12)+"])
def test_pattern_constraint_gives_the_top_matching_sequences(pattern):
    toy = ToyLM()
    params = SamplingParams(max_tokens=4, n=6)
    out = priority_generate(toy, PROMPT, params, pattern=pattern, exact=True).samples
    compiled = regex.compile(pattern)
    expected = top(
        toy.exact_distribution(params), 6, lambda s: compiled.fullmatch(text_of(s)) is not None
    )
    assert [prob(s) for s in out] == pytest.approx([p for p, _ in expected], rel=1e-9)
    assert len({s.token_ids for s in out}) == len(out)  # ties (.02 twice) in either order
    assert all(compiled.fullmatch(s.text) and compiled.fullmatch(text_of(s.token_ids)) for s in out)


def test_pattern_with_a_stop_string_that_spans_tokens():
    """Pattern '1+', stop '23': '12' is no prefix of a match, but the stop may still cut it
    back to '1'; (1, 2, 3) then ends with text '1'."""
    toy = ToyLM()
    out = priority_generate(
        toy, PROMPT, SamplingParams(max_tokens=4, n=200, stop=("23",)), pattern="1+", exact=True
    ).samples
    assert all(regex.fullmatch("1+", s.text) for s in out)
    cut = next(s for s in out if s.token_ids == (1, 2, 3))
    assert cut.text == "1" and cut.finish_reason == "stop"


def test_no_matching_sequence_gives_no_samples():
    out = priority_generate(ToyLM(), PROMPT, SamplingParams(max_tokens=3, n=3), pattern="4")
    assert out.samples == ()


def test_budget_and_bad_arguments():
    toy = ToyLM()
    params = SamplingParams(max_tokens=4, n=20)
    assert len(priority_generate(toy, PROMPT, params, max_expansions=3).samples) == 3
    certified = priority_generate(toy, PROMPT, params, exact=True, max_expansions=3).samples
    full = priority_generate(toy, PROMPT, params, exact=True).samples
    assert [s.token_ids for s in certified] == [s.token_ids for s in full[: len(certified)]]
    with pytest.raises(ConfigError, match=r"max_expansions must be an integer in \[1, 1000000\]"):
        priority_generate(toy, PROMPT, params, max_expansions=0)
    with pytest.raises(ConfigError, match="pattern is not a valid regular expression"):
        priority_generate(toy, PROMPT, params, pattern="(")


@pytest.mark.llama
def test_smollm2_unique_samples_and_pattern(llama_backend):
    prompt = Prompt.user("What is 2 + 2? Answer with the number.")
    params = SamplingParams(max_tokens=5, n=3)
    out = priority_generate(llama_backend, prompt, params)
    ids = [s.token_ids for s in out.samples]
    assert len(ids) == 3 and len(set(ids)) == 3
    greedy = llama_backend.generate(prompt, params.replace(n=1, temperature=0)).samples[0]
    assert ids[0] == greedy.token_ids
    digits = priority_generate(llama_backend, prompt, params.replace(n=2), pattern=r" ?[0-9]{1,3}")
    assert len(digits.samples) == 2
    assert all(regex.fullmatch(r" ?[0-9]{1,3}", s.text) for s in digits.samples)
