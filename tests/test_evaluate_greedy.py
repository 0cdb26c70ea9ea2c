"""The eval loop's greedy row decoded beside the pool (samplescale.evaluate_greedy)."""

from __future__ import annotations

import threading

import pytest

from samplescale.backends.fake import ScriptedBackend
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.errors import BackendError, PromptError
from samplescale.evaluate import pool_record, problem_seed
from samplescale.evaluate_greedy import batches_greedy, greedy_and
from samplescale.strategies import Greedy
from samplescale.tasks import load_task
from samplescale.types import Prompt

TOKENS = ("prompt_tokens", "cached_prompt_tokens", "completion_tokens", "model_calls")


class Batching(ScriptedBackend):
    """Scripted replies, declared as batching concurrent calls; records each call's thread
    and temperature, and can fail the greedy or the pool call."""

    capabilities = ScriptedBackend.capabilities.model_copy(update={"batching": True})

    def __init__(self, n_seq_max: int, fail: dict[float, Exception] | None = None):
        super().__init__(["7"], token_delay_s=0.01)
        self.n_seq_max = n_seq_max
        self.fail = fail or {}
        self.seen: list[tuple[float, int]] = []

    def generate(self, prompt, params, rng=None):  # type: ignore[no-untyped-def]
        self.seen.append((params.temperature, threading.get_ident()))
        if params.temperature in self.fail:
            raise self.fail[params.temperature]
        return super().generate(prompt, params, rng)


P = SamplingParams(n=4, temperature=0.8, max_tokens=8, seed=3)


@pytest.mark.parametrize(
    ("n_seq_max", "params", "want"),
    [
        (5, P, True),  # 4 pool rows + the greedy row fit
        (4, P, False),  # they do not: the pool would decode in rounds
        (5, P.replace(decoding="priority"), False),  # scores prefixes with logits_at
        (5, P.replace(kl_sigma=1.0), False),
        (5, P.replace(decoding="arithmetic"), True),  # the backend's own loop
    ],
)
def test_batches_greedy_conditions(n_seq_max, params, want):
    assert batches_greedy(Batching(n_seq_max), params) is want


def test_no_batching_capability_keeps_the_sequential_order():
    b = ScriptedBackend(["7"])
    assert not b.capabilities.batching
    assert not batches_greedy(b, P)
    prompt = Prompt(text="1+6=")
    g, gen = greedy_and(b, prompt, P, lambda: b.generate(prompt, P))
    assert [p.temperature for _, p in b.calls] == [0.0, 0.8]  # greedy first, then the pool
    assert g.samples[0].text == "7" and len(gen.samples) == 4


def test_batched_greedy_runs_in_another_thread():
    b = Batching(5)
    prompt = Prompt(text="1+6=")
    g, gen = greedy_and(b, prompt, P, lambda: b.generate(prompt, P))
    threads = dict(b.seen)
    assert threads[0.0] != threading.get_ident() and threads[0.8] == threading.get_ident()
    assert g.samples[0].text == "7" and [s.text for s in gen.samples] == ["7"] * 4


@pytest.mark.parametrize(
    ("fail", "raised"),
    [
        ({0.0: PromptError("greedy"), 0.8: BackendError("pool")}, PromptError),  # greedy's wins
        ({0.8: BackendError("pool")}, BackendError),
        ({0.0: PromptError("greedy")}, PromptError),
    ],
)
def test_batched_errors_are_raised_after_both_calls_end(fail, raised):
    b = Batching(5, fail)
    prompt = Prompt(text="1+6=")
    with pytest.raises(raised):
        greedy_and(b, prompt, P, lambda: b.generate(prompt, P))
    assert sorted(t for t, _ in b.seen) == [0.0, 0.8]


@pytest.mark.slow  # ~10 s alone; on a busy 2-core machine up to a minute
def test_real_model_greedy_row_beside_the_pool_equals_the_calls_alone(llama_backend):
    """On llama.cpp the batched record holds exactly what the two calls give alone (the
    old sequential order): the greedy text of a lone temperature-0 call, every pool sample
    token for token, the usage's token counts; and the batch steps are shared (fewer
    steps, the same rows)."""
    b = llama_backend
    params = SamplingParams(n=4, temperature=0.8, max_tokens=40)
    assert batches_greedy(b, params)
    task = load_task("arithmetic", level=2, limit=2)
    batcher = b._live.batcher
    for problem in task.problems:
        prompt = task.prompt(problem)
        steps, rows = batcher.steps, batcher.rows
        rec = pool_record(problem, prompt, b, params, seed=0)
        batched = (batcher.steps - steps, batcher.rows - rows)
        steps, rows = batcher.steps, batcher.rows
        g = Greedy().run(b, prompt, params)
        gen = generate(b, prompt, params.replace(seed=problem_seed(0, problem.id)))
        alone = (batcher.steps - steps, batcher.rows - rows)
        assert rec["greedy"]["text"] == g.samples[0].text
        assert [s["text"] for s in rec["samples"]] == [s.text for s in gen.samples]
        assert [s["tokens"] for s in rec["samples"]] == [s.num_tokens for s in gen.samples]
        for k in TOKENS:
            assert rec["greedy"]["usage"][k] == g.usage.model_dump()[k]
            assert rec["usage"][k] == gen.usage.model_dump()[k]
        assert batched[1] == alone[1]  # the same rows decoded
        assert batched[0] < alone[0], (batched, alone)  # fewer steps: the greedy row shared them
