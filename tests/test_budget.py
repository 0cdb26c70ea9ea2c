"""The per-run token budget wrapper (samplescale.backends.budget)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samplescale import Prompt, SamplingParams, ScriptedBackend, ToyLM
from samplescale.backends.base import TextDelta
from samplescale.backends.budget import BudgetSpent, TokenBudgetBackend
from samplescale.backends.fake import prompt_text
from samplescale.errors import ConfigError
from samplescale.strategies import self_consistency
from samplescale.types import Generation

PROMPT = Prompt(text="count")  # 5 prompt tokens for the scripted backends (characters)


def test_an_ample_budget_changes_nothing():
    params = SamplingParams(n=8, max_tokens=4, seed=3)
    plain = ToyLM().generate(PROMPT, params)
    wrapped = TokenBudgetBackend(ToyLM(), 10_000)
    gen = wrapped.generate(PROMPT, params)
    assert gen.samples == plain.samples and gen.usage.model_calls == 1
    assert wrapped.spent == plain.usage.total_tokens and not wrapped.exhausted


class CountingBackend(ScriptedBackend):
    """Scripted replies, with a tokenizer that counts what its usage reports (characters)."""

    def tokenize_prompt(self, prompt):
        return list(range(len(prompt_text(prompt))))


REPLY = "The answer is 4."  # 16 tokens (characters)


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(1, 120), n=st.integers(1, 8), max_tokens=st.integers(1, 20))
def test_never_spends_more_than_the_budget_when_prompt_tokens_are_countable(budget, n, max_tokens):
    wrapped = TokenBudgetBackend(CountingBackend([REPLY]), budget)
    gen = wrapped.generate(PROMPT, SamplingParams(n=n, max_tokens=max_tokens))
    assert len(gen.samples) == n
    assert gen.usage.total_tokens == wrapped.spent <= budget
    drawn = [s for s in gen.samples if s.status == "ok"]
    refused = [s for s in gen.samples if s.status == "error"]
    assert drawn == list(gen.samples[: len(drawn)])  # drawn first, then the refused ones
    assert len(refused) == wrapped.not_drawn
    assert all("max_total_tokens budget" in s.error for s in refused)
    if refused:  # it stopped only when one more worst-case sample could not be paid for
        assert budget - wrapped.spent < len("count") + max_tokens
    if 5 + n * max_tokens <= budget:
        assert not refused and gen.usage.model_calls == 1


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(1, 120), n=st.integers(1, 8), max_tokens=st.integers(1, 20))
def test_without_a_tokenizer_only_the_first_call_can_overrun_by_its_prompt(budget, n, max_tokens):
    wrapped = TokenBudgetBackend(ScriptedBackend([REPLY]), budget)
    gen = wrapped.generate(PROMPT, SamplingParams(n=n, max_tokens=max_tokens))
    assert gen.usage.total_tokens == wrapped.spent <= budget + len("count")
    assert len(gen.samples) == n


def test_unknown_prompt_cost_draws_one_sample_first_then_fills_the_budget():
    backend = ScriptedBackend(["abcdefghij"])  # 10 tokens a sample; prompt = 5 characters
    wrapped = TokenBudgetBackend(backend, 60)
    gen = wrapped.generate(PROMPT, SamplingParams(n=8, max_tokens=10))
    # first call: 1 sample (5 + 10 = 15); then (60 - 15 - 5) // 10 = 4 samples (5 + 40)
    assert [p.n for _, p in backend.calls] == [1, 4]
    assert wrapped.spent == 60 and wrapped.not_drawn == 3
    assert [s.status for s in gen.samples] == ["ok"] * 5 + ["error"] * 3


def test_a_strategy_under_a_budget_votes_only_on_drawn_samples():
    wrapped = TokenBudgetBackend(ScriptedBackend(["The answer is 4."]), 100)
    r = self_consistency(wrapped, Prompt.user("2+2?"), SamplingParams(n=16, max_tokens=16))
    assert r.answer == "4" and r.vote_shares == {"4": 1.0}
    assert sum(s.status == "ok" for s in r.samples) < 16 and wrapped.exhausted
    assert r.usage.total_tokens == wrapped.spent


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_bad_budget(bad):
    with pytest.raises(ConfigError, match="max_total_tokens must be an integer >= 1"):
        TokenBudgetBackend(ToyLM(), bad)


def test_a_stream_that_fits_goes_through_token_by_token_and_is_charged():
    params = SamplingParams(n=3, max_tokens=16)
    wrapped = TokenBudgetBackend(CountingBackend([REPLY]), 5 + 3 * 16)  # exactly fits
    events = list(wrapped.stream(PROMPT, params))
    gen = events[-1]
    assert isinstance(gen, Generation) and [s.text for s in gen.samples] == [REPLY] * 3
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 3 * len(REPLY)  # one character per token, as decoded
    assert wrapped.spent == gen.usage.total_tokens == 5 + 3 * 16 and not wrapped.exhausted


def test_a_stream_that_does_not_fit_draws_what_fits_like_generate():
    params = SamplingParams(n=4, max_tokens=16)
    budget = 5 + 2 * 16 + 5  # two samples in the first call, then no room for a third
    wrapped = TokenBudgetBackend(CountingBackend([REPLY]), budget)
    events = list(wrapped.stream(PROMPT, params))
    reference = TokenBudgetBackend(CountingBackend([REPLY]), budget).generate(PROMPT, params)
    assert events[-1] == reference.model_copy(
        update={"usage": reference.usage.model_copy(
            update={"wall_time_s": events[-1].usage.wall_time_s})}
    )
    assert [s.status for s in events[-1].samples] == ["ok", "ok", "error", "error"]
    # the drawn samples arrive whole, after the call
    assert events[:-1] == [TextDelta(index=0, text=REPLY), TextDelta(index=1, text=REPLY)]
    assert wrapped.not_drawn == 2


@pytest.mark.parametrize("extra", [{"decoding": "priority"}, {"kl_sigma": 1.0}])
def test_token_by_token_decoders_are_charged_and_refused_beyond_the_budget(extra):
    prompt = Prompt(text="x", grounding="doc")
    ample = TokenBudgetBackend(ToyLM(), 10_000)
    r = self_consistency(ample, prompt, SamplingParams(n=4, max_tokens=5, seed=0, **extra))
    # every logits_at call is charged: at least what the decoder reports it used
    assert ample.spent >= r.usage.total_tokens > 0 and ample.exhausted is False
    tight = TokenBudgetBackend(ToyLM(), 5)
    with pytest.raises(BudgetSpent, match="max_total_tokens: the budget of 5 tokens is spent"):
        self_consistency(tight, prompt, SamplingParams(n=64, max_tokens=5, seed=0, **extra))
    assert tight.spent <= 5 and tight.exhausted is True and tight.refused_logits == 1


def test_a_lone_surrogate_in_the_prompt_does_not_break_the_prompt_bound():
    b = TokenBudgetBackend(ScriptedBackend(["ok"]), 1000)
    g = b.generate(Prompt.user("hi \ud800"), SamplingParams(n=1, max_tokens=4))
    assert g.samples[0].text == "ok" and b.spent == g.usage.total_tokens
