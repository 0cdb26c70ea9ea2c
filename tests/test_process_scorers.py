"""Process scorers: hand-computed label probabilities, judge parsing, counting, aggregation."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from samplescale.backends.fake import ScriptedBackend, ToyLM
from samplescale.errors import ConfigError, UnknownNameError
from samplescale.types import Generation, Prompt, Sample, Usage
from samplescale.verifiers.process import (
    PROCESS_SCORERS,
    CallableScorer,
    InContextLabelScorer,
    JudgeScorer,
    LabelTokenScorer,
    ScorerError,
    aggregate_step_scores,
    from_outcome,
    question_of,
    self_evaluation,
)
from samplescale.verifiers.scorers import oracle

Q = Prompt.user("What is 2 + 3?", system="Be brief.")
STEPS = ("Add the numbers.\n\n", "2 + 3 = 5. The answer is 5.")


# ---------------------------------------------------------------- aggregation (C20)
def test_c20_product_prefers_the_short_path():
    a, b = [0.9, 0.9, 0.9, 0.9], [0.8]
    table = {
        how: (aggregate_step_scores(a, how), aggregate_step_scores(b, how))
        for how in ("last", "min", "mean", "product")
    }
    assert table["product"] == (pytest.approx(0.6561), 0.8)  # prod -> B
    for how in ("last", "min", "mean"):
        assert table[how] == (pytest.approx(0.9), 0.8)  # -> A


def test_aggregation_table():
    s = [0.5, 0.25, 1.0]
    assert aggregate_step_scores(s, "last") == 1.0
    assert aggregate_step_scores(s, "min") == 0.25
    assert aggregate_step_scores(s, "mean") == pytest.approx(1.75 / 3)
    assert aggregate_step_scores(s, "product") == 0.125
    assert aggregate_step_scores([-1.0, 3.0], "mean", "reward") == 1.0


@given(
    st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=8),
    st.sampled_from(["last", "min", "mean", "product"]),
)
def test_log_scale_aggregate_is_the_log_of_the_probability_aggregate(probs, how):
    logs = [math.log(p) for p in probs]
    got = aggregate_step_scores(logs, how, "log-probability")
    assert got == pytest.approx(math.log(aggregate_step_scores(probs, how)), abs=1e-9)


def test_aggregation_errors_name_the_problem():
    with pytest.raises(ConfigError, match="how must be one of last, min, mean, product"):
        aggregate_step_scores([0.5], "median")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least one"):
        aggregate_step_scores([], "last")
    with pytest.raises(ConfigError, match="rewards >= 0"):
        aggregate_step_scores([2.0, -1.0], "product", "reward")
    assert aggregate_step_scores([-math.inf, -math.inf], "mean", "log-probability") == -math.inf


# ---------------------------------------------------------------- callable and outcome
def test_callable_scorer_counts_calls_and_checks_its_scale():
    seen = []

    def fn(prompt, steps):
        seen.append(steps)
        return {1: 0.25, 2: 1.5}.get(len(steps), math.nan)

    scorer = CallableScorer(fn, "probability", name="lengthy")
    assert scorer.score(Q, STEPS[:1]) == 0.25 and seen == [STEPS[:1]]
    with pytest.raises(ScorerError, match=r"1.5, outside its probability range \[0.0, 1.0\]"):
        scorer.score(Q, STEPS)
    with pytest.raises(ScorerError, match="nan"):
        scorer.score(Q, ())
    assert scorer.usage.calls == 3  # failed calls count
    with pytest.raises(ConfigError, match="scale"):
        CallableScorer(fn, "logprob")  # type: ignore[arg-type]
    assert CallableScorer(fn, "log-probability").bounds == (-math.inf, 0.0)
    for value in (math.inf, -math.inf):  # an infinite reward would win every comparison
        with pytest.raises(ScorerError, match=r"outside its reward range \[-inf, inf\] \(finite\)"):
            CallableScorer(lambda p, s, v=value: v, "reward").score(Q, STEPS)


@pytest.mark.parametrize(
    "scale, value, ok",
    [
        ("probability", 0.0, True),
        ("probability", 1.0, True),
        ("probability", 1.0000001, False),
        ("probability", -0.1, False),
        ("log-probability", 0.0, True),
        ("log-probability", -math.inf, True),  # probability 0
        ("log-probability", 0.5, False),
        ("reward", -3e9, True),
        ("reward", math.inf, False),
        ("reward", -math.inf, False),
        ("reward", math.nan, False),
        ("probability", "high", False),
        ("probability", "0.5", False),  # strings are refused, not parsed
        ("probability", True, False),
        ("reward", 10**400, False),  # beyond float range
        ("reward", 2**900, True),  # a big int within float range, exactly
        ("probability", np.float32(0.25), True),
    ],
)
def test_outcome_scorers_check_their_scale(scale, value, ok):
    from samplescale.types import Sample
    from samplescale.verifiers.scorers import Scorer

    scorer = Scorer(name="custom", scale=scale, fn=lambda s, a: value)
    sample = Sample(text="The answer is 4.")
    if ok:
        assert scorer(sample, "4") == value
    else:
        with pytest.raises(ScorerError, match="scorer 'custom' returned"):
            scorer(sample, "4")
    assert scorer(Sample(text="", status="error", error="x"), None) is None  # never called


def test_counters_are_exact_under_threads():
    scorer = CallableScorer(lambda p, s: 0.5, "probability")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: scorer.score(Q, STEPS), range(400)))
    assert scorer.usage.calls == 400


def test_outcome_scorer_wrapped_as_a_process_scorer():
    scorer = from_outcome(oracle(lambda a: a == "5"))
    assert (scorer.name, scorer.scale) == ("oracle", "probability")
    assert scorer.score(Q, STEPS) == 1.0
    assert scorer.score(Q, ("The answer is 6.",)) == 0.0


def test_question_of():
    assert question_of(Q) == "What is 2 + 3?"
    assert question_of(Prompt(text="raw q")) == "raw q"


# ---------------------------------------------------------------- label-token PRM
TABLE = np.array(
    [
        [0.10, 0.50, 0.30, 0.10],
        [0.25, 0.25, 0.25, 0.25],
        [0.25, 0.25, 0.25, 0.25],
        [0.25, 0.25, 0.25, 0.25],
    ]
)


def test_label_token_on_a_logits_model_is_exact():
    toy = ToyLM(TABLE)  # after BOS: p("1") = .5, p("2") = .3
    two = LabelTokenScorer(toy, "{question}{solution}", "1", "2", chat=False)
    assert two.score(Q, STEPS) == pytest.approx(0.5 / 0.8)
    one = LabelTokenScorer(toy, "{question}{solution}", "1", None, chat=False)
    assert one.score(Q, STEPS) == pytest.approx(0.5)
    assert two.usage.calls == 1 and two.scale == "probability"


def test_label_that_is_not_one_token_is_refused():
    scorer = LabelTokenScorer(ToyLM(), "{question}{solution}", "12", "2", chat=False)
    with pytest.raises(ConfigError, match="'12' is not a single token"):
        scorer.score(Q, STEPS)


def test_label_token_options_are_checked():
    toy = ToyLM()
    with pytest.raises(ConfigError, match="differ"):
        LabelTokenScorer(toy, "{question}{solution}", "1", "1")
    with pytest.raises(ConfigError, match="{solution}"):
        LabelTokenScorer(toy, "{question}")
    with pytest.raises(ConfigError, match="negative label"):
        LabelTokenScorer(toy, "{question}{solution}", "1", " ")


def test_label_token_on_a_plain_backend_reads_the_greedy_token():
    lp = -0.2
    plus = LabelTokenScorer(
        ScriptedBackend(["+"], token_logprob=lp), "{question}{solution}", "+", "-"
    )
    assert plus.score(Q, STEPS) == pytest.approx(math.exp(lp))
    minus = LabelTokenScorer(
        ScriptedBackend(["-"], token_logprob=lp), "{question}{solution}", "+", "-"
    )
    assert minus.score(Q, STEPS) == pytest.approx(1 - math.exp(lp))
    other = LabelTokenScorer(ScriptedBackend(["?"]), "{question}{solution}", "+", "-")
    with pytest.raises(ScorerError, match="neither"):
        other.score(Q, STEPS)
    assert other.usage.calls == 1 and other.usage.usage.completion_tokens == 1
    sent = plus.backend.calls[0]
    assert sent[1].temperature == 0.0 and sent[1].max_tokens == 1


class NoLogprobBackend:
    name = "nolp"
    capabilities = ScriptedBackend.capabilities

    def generate(self, prompt, params, rng=None):
        return Generation(samples=(Sample(text="+"),), usage=Usage(model_calls=1))


def test_plain_backend_without_logprobs_is_a_clear_error():
    scorer = LabelTokenScorer(NoLogprobBackend(), "{question}{solution}", "+", "-")
    with pytest.raises(ScorerError, match="no token logprobs"):
        scorer.score(Q, STEPS)


# ---------------------------------------------------------------- LLM judge
def test_judge_parses_the_score():
    backend = ScriptedBackend(["Score: 7", "score=9.5 because", "I like it", "Score: 12"])
    judge = JudgeScorer(backend)
    assert judge.score(Q, STEPS) == 7.0
    assert judge.score(Q, STEPS) == 9.5
    with pytest.raises(ScorerError, match="no score in the judge's reply 'I like it'"):
        judge.score(Q, STEPS)
    with pytest.raises(ScorerError, match=r"outside its reward range \[0.0, 10.0\]"):
        judge.score(Q, STEPS)
    assert judge.usage.calls == 4
    assert judge.usage.usage.completion_tokens == 8 + 16 + 9 + 9  # failed calls count too
    text = backend.calls[0][0].messages[0].content
    assert "What is 2 + 3?" in text and "2 + 3 = 5" in text and "from 0.0" in text


def test_judge_options_are_checked():
    with pytest.raises(ConfigError, match="low < high"):
        JudgeScorer(ScriptedBackend(["x"]), low=5, high=5)
    with pytest.raises(ConfigError, match="group"):
        JudgeScorer(ScriptedBackend(["x"]), pattern=r"\d+")


def test_registry_builds_scorers_on_a_backend():
    assert PROCESS_SCORERS.names() == ["judge", "p-true", "p-true-in-context"]
    assert PROCESS_SCORERS.get("p_true")(ToyLM()).name == "p-true"
    with pytest.raises(UnknownNameError, match="judge, p-true, p-true-in-context"):
        PROCESS_SCORERS.get("prm")


def test_p_true_in_context_continues_the_policy_conversation():
    scorer = PROCESS_SCORERS.get("p-true-in-context")(ToyLM())
    assert isinstance(scorer, InContextLabelScorer) and scorer.scale == "probability"
    judge = scorer.judging_prompt(Q.continued("Let me see. "), STEPS)
    assert [(m.role, m.content) for m in judge.messages] == [
        ("system", "Be brief."),
        ("user", "What is 2 + 3?"),
        ("assistant", "Let me see. Add the numbers.\n\n2 + 3 = 5. The answer is 5."),
        ("user", "Is every step of your solution so far correct? Answer Yes or No."),
    ]
    assert judge.prefix == ""
    grounded = Prompt.user("Sum them.").model_copy(update={"grounding": "2 and 3"})
    assert scorer.judging_prompt(grounded, ()).messages[0].content == "2 and 3\n\nSum them."


def test_p_true_in_context_refuses_raw_text_and_an_empty_question():
    scorer = InContextLabelScorer(ToyLM())
    with pytest.raises(ConfigError, match="needs a chat prompt.*use 'p-true'"):
        scorer.judging_prompt(Prompt(text="2 + 3 ="), STEPS)
    with pytest.raises(ConfigError, match="question must be a non-empty string"):
        InContextLabelScorer(ToyLM(), question="  ")


# ---------------------------------------------------------------- real model
@pytest.mark.llama
def test_p_true_in_context_decodes_only_the_question_after_the_policy_steps(llama_backend):
    """In a prefix session the judging prompt shares the policy's cached prompt and steps:
    a score decodes only the chat markup and the question, and gives the probability
    computed from an empty cache (within 0.05: llama.cpp's logits depend slightly on how a
    prompt is batched)."""
    from samplescale.config import SamplingParams
    from samplescale.steps import generate_steps

    b = llama_backend
    scorer = InContextLabelScorer(b)
    params = SamplingParams(temperature=0.8, max_tokens=24, seed=3)
    with b.prefix_session():
        steps = [next(iter(generate_steps(b, Q, (), params, 1))).text]
        value, usage = scorer.measure(Q, steps)
    judge = b.tokenize_prompt(scorer.judging_prompt(Q, steps))
    question = b.tokenize_text(scorer.question)
    assert usage.prompt_tokens == len(judge)
    assert usage.prompt_tokens - usage.cached_prompt_tokens <= len(question) + 12
    with b.prefix_session():
        fresh, cold = scorer.measure(Q, steps)
    assert cold.cached_prompt_tokens == 0
    assert abs(value - fresh) < 0.05 and 0.0 < value < 1.0


@pytest.mark.llama
def test_p_true_in_context_names_a_chat_template_that_refuses_its_judging_prompt(
    llama_backend, monkeypatch
):
    """A template that allows no turn after the assistant's (it raises, as Mistral's does
    on roles that do not alternate) is a ConfigError naming the roles, not the template's
    bare ValueError escaping from a search."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from samplescale.config import SamplingParams
    from samplescale.strategies import get_strategy

    b = llama_backend
    template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
        "{{ raise_exception('an assistant turn must be the last') }}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    monkeypatch.setattr(b._gguf, "_formatter", Jinja2ChatFormatter(
        template=template, bos_token="", eos_token="", add_generation_prompt=True))
    match = ("cannot render messages with the roles system, user, assistant, user: "
             "an assistant turn must be the last")
    with pytest.raises(ConfigError, match=match):
        InContextLabelScorer(b).score(Q, STEPS)
    search = get_strategy("beam-search", scorer="p-true-in-context", beam_width=1,
                          expansions=1, max_steps=1)
    with pytest.raises(ConfigError, match=match):
        search.run(b, Q, SamplingParams(temperature=0.0, max_tokens=4))
    assert b.cache_usage() == (0, 0) and b._live.held == (0, 0)


# ---------------------------------------------------------------- real model (p-true)
@pytest.mark.llama
def test_p_true_on_the_embedded_model_matches_its_next_token_logits(llama_backend):
    # Both reads below find the judging prompt in the KV cache (the first score puts it
    # there) and decode its last token alone: llama.cpp's logits depend slightly on how a
    # prompt is batched (measured here: 0.384 from a cold cache, 0.408 from a warm one).
    scorer = self_evaluation(llama_backend)
    cold = scorer.score(Q, STEPS)
    p = scorer.score(Q, STEPS)
    assert abs(p - cold) < 0.1
    judge = scorer.judging_prompt(Q, STEPS)
    logits = np.asarray(llama_backend.next_token_logits(judge), dtype=np.float64)
    ids = [llama_backend.tokenize_prompt(judge.continued(label))[-1] for label in ("Yes", "No")]
    yes, no = logits[ids[0]], logits[ids[1]]
    assert p == pytest.approx(1 / (1 + math.exp(no - yes)), rel=1e-5)
    assert 0.0 < p < 1.0
    assert scorer.usage.calls == 2 and scorer.usage.usage.prompt_tokens > 60


@pytest.mark.parametrize("name", ["particle-filtering", "beam-search", "refine"])
def test_a_scorer_that_cannot_read_the_prompt_is_refused_before_any_model_call(name):
    from samplescale.config import SamplingParams
    from samplescale.strategies import get_strategy

    class Counting(ToyLM):
        calls = 0

        def generate(self, prompt, params, rng=None):
            Counting.calls += 1
            return super().generate(prompt, params, rng)

    strategy = get_strategy(name, scorer="p-true-in-context")
    with pytest.raises(ConfigError, match="needs a chat prompt"):
        strategy.run(Counting(), Prompt(text="2 + 3 ="), SamplingParams(n=2, max_tokens=4, seed=0))
    assert Counting.calls == 0
