"""The eval loop's greedy row in the pool's call (samplescale.evaluate_greedy) and
generate_groups (per-row parameters) on llama.cpp."""

from __future__ import annotations

import pytest

from samplescale.backends.budget import TokenBudgetBackend
from samplescale.backends.fake import ScriptedBackend
from samplescale.backends.row_groups import check_groups
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import ConfigError
from samplescale.evaluate_greedy import batches_greedy, greedy_and_pool
from samplescale.evaluate_records import pool_record, problem_seed
from samplescale.strategies import Greedy
from samplescale.tasks import load_task
from samplescale.types import Prompt

TOKENS = ("prompt_tokens", "cached_prompt_tokens", "completion_tokens", "model_calls")


class Grouping(ScriptedBackend):
    """Scripted replies with a generate_groups that calls generate per group, recording
    the groups it was given."""

    capabilities = ScriptedBackend.capabilities.model_copy(update={"groups": True})

    def __init__(self) -> None:
        super().__init__(["7"])
        self.grouped: list[list[SamplingParams]] = []

    def generate_groups(self, prompt, groups, rng=None):  # type: ignore[no-untyped-def]
        self.grouped.append(list(groups))
        return [self.generate(prompt, g, rng) for g in groups]


P = SamplingParams(n=4, temperature=0.8, max_tokens=8, seed=3)


@pytest.mark.parametrize(
    ("params", "want"),
    [
        (P, True),
        (P.replace(decoding="priority"), False),  # a decoder scores prefixes itself
        (P.replace(decoding="arithmetic"), False),  # codes span the pool's rows only
        (P.replace(kl_sigma=1.0), False),
        (P.replace(constraint={"kind": "regex", "source": "[0-9]+"}), False),
    ],
)
def test_batches_greedy_conditions(params, want):
    assert batches_greedy(Grouping(), params) is want


def test_no_groups_keeps_the_sequential_order():
    b = ScriptedBackend(["7"])
    assert not b.capabilities.groups and not batches_greedy(b, P)
    assert not batches_greedy(TokenBudgetBackend(Grouping(), 1000), P)  # forwards attributes
    g, gen = greedy_and_pool(b, Prompt(text="1+6="), P.replace(seed=None), P)
    assert [(p.temperature, p.n) for _, p in b.calls] == [(0.0, 1), (0.8, 4)]  # greedy first
    assert g.strategy == "greedy" and g.samples[0].text == "7" and len(gen.samples) == 4


def test_grouped_greedy_result_matches_greedy_run():
    b = Grouping()
    prompt = Prompt(text="1+6=")
    g, gen = greedy_and_pool(b, prompt, P.replace(seed=None), P)
    assert [[(p.temperature, p.n, p.seed) for p in gs] for gs in b.grouped] == [
        [(0.8, 4, 3), (0.0, 1, None)]
    ]
    alone = Greedy().run(ScriptedBackend(["7"]), prompt, P)
    keep = {"strategy", "samples", "answers", "selected", "answer"}
    assert g.model_dump(include=keep) == alone.model_dump(include=keep)
    assert g.answer == "7" and len(gen.samples) == 4


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        ([], "at least one group"),
        ([P, P.replace(decoding="arithmetic")], r"groups\[1\]: generate_groups decodes independent"),
        (["x"], r"groups\[0\] must be a SamplingParams"),
    ],
)
def test_check_groups_refuses(groups, match):
    with pytest.raises(ConfigError, match=match):
        check_groups(groups)


@pytest.mark.slow  # ~15 s alone; on a busy 2-core machine up to a minute
def test_real_model_greedy_row_in_the_pool_call_equals_the_calls_alone(llama_backend):
    """On llama.cpp the one-call record holds what the two sequential calls give: the
    greedy text of a lone temperature-0 call, every pool sample, the token counts (the
    greedy prompt counted as cached); in max(tokens) - 1 batch steps instead of the sum."""
    b = llama_backend
    params = SamplingParams(n=4, temperature=0.8, max_tokens=32)
    assert batches_greedy(b, params)
    task = load_task("arithmetic", level=2, limit=2)
    batcher = b._live.batcher
    for problem in task.problems:
        prompt = task.prompt(problem)
        steps, rows = batcher.steps, batcher.rows
        rec = pool_record(problem, prompt, b, params, seed=0)
        one_call = (batcher.steps - steps, batcher.rows - rows)
        steps, rows = batcher.steps, batcher.rows
        g = Greedy().run(b, prompt, params)
        gen = generate(b, prompt, params.replace(seed=problem_seed(0, problem.id)))
        alone = (batcher.steps - steps, batcher.rows - rows)
        assert rec["greedy"]["text"] == g.samples[0].text
        assert rec["greedy"]["answer"] == g.answer
        assert [s["text"] for s in rec["samples"]] == [s.text for s in gen.samples]
        assert [s["tokens"] for s in rec["samples"]] == [s.num_tokens for s in gen.samples]
        for k in TOKENS:
            assert rec["usage"][k] == gen.usage.model_dump()[k]
        gu = g.usage.model_dump()
        assert rec["greedy"]["usage"]["cached_prompt_tokens"] == gu["prompt_tokens"]
        for k in ("prompt_tokens", "completion_tokens", "model_calls"):
            assert rec["greedy"]["usage"][k] == gu[k]
        longest = [g.samples[0].num_tokens] + [s.num_tokens for s in gen.samples]
        assert one_call[1] == alone[1] == sum(longest) - len(longest)  # every token fed once
        assert one_call[0] == max(longest) - 1
        assert alone[0] == (longest[0] - 1) + (max(longest[1:]) - 1)


@pytest.mark.slow
def test_real_model_generate_groups_equals_each_group_alone(llama_backend):
    """Two sampled groups with different temperatures and seeds beside a greedy row: each
    group gets what generate gives it alone (measured identical; see evaluate_greedy)."""
    b = llama_backend
    prompt = Prompt.user("Name three colours.")
    groups = [
        SamplingParams(n=2, temperature=0.9, max_tokens=16, seed=11),
        SamplingParams(n=1, temperature=0.0, max_tokens=16),
        SamplingParams(n=2, temperature=0.5, top_k=20, max_tokens=12, seed=12),
    ]
    out = b.generate_groups(prompt, groups)
    assert [len(g.samples) for g in out] == [2, 1, 2]
    for g, got in zip(groups, out):
        alone = b.generate(prompt, g)
        assert got.samples == alone.samples
        assert got.usage.completion_tokens == alone.usage.completion_tokens
        assert got.usage.prompt_tokens == alone.usage.prompt_tokens
    assert [g.usage.cached_prompt_tokens for g in out] == [0] + [out[0].usage.prompt_tokens] * 2
