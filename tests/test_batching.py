"""Continuous batching: StepBatcher on an exact toy step, then on the embedded model."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _server_helpers import in_threads

from samplescale.backends.batching import StepBatcher
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.types import Prompt

V = 5


class ToyStep:
    """logits[i] = one-hot-ish rows that encode (key, token); records each step's rows."""

    def __init__(self, delay_s: float = 0.01) -> None:
        self.delay_s = delay_s
        self.sizes: list[int] = []

    def __call__(self, keys: list, tokens: list[int]) -> np.ndarray:
        self.sizes.append(len(keys))
        time.sleep(self.delay_s)
        out = np.zeros((len(keys), V), np.float32)
        out[:, 0] = keys
        out[:, 1] = tokens
        return out


def _callers(batcher: StepBatcher, n: int, steps: list[int], rows: int = 1) -> list[list]:
    """``n`` threads; thread c submits ``steps[c]`` steps of ``rows`` rows keyed 100c+r."""
    got: list[list] = [[] for _ in range(n)]

    def work(c: int) -> None:
        with batcher.member():
            for k in range(steps[c]):
                keys = [100 * c + r for r in range(rows)]
                got[c].append(batcher.step(keys, [k] * rows))

    threads = [threading.Thread(target=work, args=(c,)) for c in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return got


def test_concurrent_steps_are_merged_and_each_caller_gets_its_own_rows():
    run = ToyStep()
    b = StepBatcher(run, max_rows=64, wait_s=0.05)
    got = _callers(b, 4, [6, 6, 3, 1], rows=2)
    for c, results in enumerate(got):
        assert len(results) == [6, 6, 3, 1][c]
        for k, logits in enumerate(results):
            assert logits.shape == (2, V)
            assert logits[:, 0].tolist() == [100 * c, 100 * c + 1]  # its own sequences
            assert logits[:, 1].tolist() == [k, k]  # its own k-th step
    assert sum(run.sizes) == 2 * 16 == b.rows
    assert b.max_rows_seen == 8  # all four callers shared a step
    assert b.steps == len(run.sizes) < 16  # fewer steps than submissions: they were merged


def test_the_row_cap_is_respected_and_a_caller_leaves_between_steps():
    run = ToyStep()
    b = StepBatcher(run, max_rows=3, wait_s=0.05)
    got = _callers(b, 5, [4, 1, 4, 2, 4])
    assert [len(g) for g in got] == [4, 1, 4, 2, 4]
    assert max(run.sizes) <= 3 and sum(run.sizes) == 15
    assert b.members == 0


def test_a_lone_caller_does_not_wait_for_anyone():
    run = ToyStep(delay_s=0.0)
    b = StepBatcher(run, max_rows=8, wait_s=0.5)
    start = time.monotonic()
    _callers(b, 1, [10])
    assert time.monotonic() - start < 0.5  # 10 steps; a wait of 0.5 s would show at once
    assert run.sizes == [1] * 10


def test_a_failed_step_raises_in_every_caller_of_that_step():
    def bad(keys: list, tokens: list[int]) -> np.ndarray:
        time.sleep(0.05)
        raise RuntimeError("decode failed")

    b = StepBatcher(bad, max_rows=8, wait_s=0.2)
    errors: list[str] = []

    def work(c: int) -> None:
        with b.member():
            try:
                b.step([c], [0])
            except RuntimeError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=work, args=(c,)) for c in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == ["decode failed"] * 3


@pytest.mark.parametrize("kwargs, field", [
    ({"max_rows": 0}, "max_rows"), ({"max_rows": True}, "max_rows"),
    ({"max_rows": 4, "wait_s": -1.0}, "wait_s"), ({"max_rows": 4, "wait_s": 2.0}, "wait_s"),
])
def test_bad_settings_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        StepBatcher(ToyStep(), **kwargs)


def test_a_step_needs_one_token_per_sequence():
    b = StepBatcher(ToyStep(), max_rows=4)
    with pytest.raises(ConfigError, match="one token per sequence"):
        b.step([1, 2], [0])


# ----------------------------------------------------------------- the embedded model
PROMPTS = ["The capital of France is", "Once upon a time", "def fib(n):", "A list of fruits:"]


def _requests() -> list[tuple[Prompt, SamplingParams]]:
    lengths, ns = (24, 8, 16, 12), (1, 2, 1, 3)
    return [
        (Prompt(text=t), SamplingParams(max_tokens=m, temperature=1.0, seed=40 + i, n=n))
        for i, (t, m, n) in enumerate(zip(PROMPTS, lengths, ns))
    ]


def _concurrently(backend, reqs):
    return in_threads(lambda r: backend.generate(*r), reqs, 120)


@pytest.mark.llama
def test_seeded_requests_give_the_same_tokens_alone_or_batched(llama_backend):
    """Rows of a llama.cpp batch are computed independently on this CPU build: the
    logits, hence the tokens and their log-probabilities, are bit-identical alone and
    beside other requests (with different prompts, lengths and n, joining and leaving)."""
    reqs = _requests()
    alone = [llama_backend.generate(*r) for r in reqs]
    batcher = llama_backend._live.batcher
    steps, rows = batcher.steps, batcher.rows
    together = _concurrently(llama_backend, reqs)
    shared = (batcher.rows - rows) / (batcher.steps - steps)
    assert shared > 1.5, f"the requests were not batched (mean {shared:.2f} rows a step)"
    for a, b in zip(alone, together):
        assert [s.token_ids for s in a.samples] == [s.token_ids for s in b.samples]
        assert [s.text for s in a.samples] == [s.text for s in b.samples]
        assert [s.logprobs for s in a.samples] == [s.logprobs for s in b.samples]
    assert llama_backend._live.held == (0, 0)


@pytest.mark.llama
@pytest.mark.slow
def test_a_stream_keeps_going_while_others_join_and_leave(llama_backend):
    long = (Prompt(text="Once upon a time"), SamplingParams(max_tokens=30, seed=3))
    short = (Prompt(text="1, 2, 3,"), SamplingParams(max_tokens=4, seed=4, n=2))
    want_long, want_short = llama_backend.generate(*long), llama_backend.generate(*short)
    batcher = llama_backend._live.batcher
    it = llama_backend.stream(*long)
    first = [next(it) for _ in range(3)]  # the stream is live: no lock is held meanwhile
    seen_before = batcher.max_rows_seen
    got_short = _concurrently(llama_backend, [short] * 2)  # join, finish, leave mid-stream
    rest = list(it)
    final = rest[-1]
    assert final.samples[0].token_ids == want_long.samples[0].token_ids
    assert "".join(d.text for d in first + rest[:-1]) == want_long.samples[0].text
    for g in got_short:
        assert [s.token_ids for s in g.samples] == [s.token_ids for s in want_short.samples]
    assert seen_before >= 1 and llama_backend._live.held == (0, 0)


@pytest.mark.llama
def test_live_sequences_stay_within_the_cap():
    pytest.importorskip("llama_cpp")
    from samplescale.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(n_ctx=1024, n_seq_max=4)
    live = backend._live
    peak = {"seqs": 0, "held": 0}
    run = live.batcher._run

    def watched(entries, tokens):
        peak["seqs"] = max(peak["seqs"], live.pool.live_sequences)
        peak["held"] = max(peak["held"], live._seqs)
        return run(entries, tokens)

    live.batcher._run = watched
    reqs = [(Prompt(text=t), SamplingParams(max_tokens=6, seed=i, n=3))
            for i, t in enumerate(PROMPTS)]  # 12 samples asked for at once, 4 sequences
    together = _concurrently(backend, reqs)
    assert peak["seqs"] <= 4 and peak["held"] <= 4
    assert live.batcher.max_rows_seen <= 4 and live.batcher.max_rows_seen >= 2
    for g in together:  # every sample drawn in full; requests that waited for room too
        assert len(g.samples) == 3 and g.usage.completion_tokens == sum(
            len(s.token_ids) for s in g.samples)
        for s in g.samples:
            assert s.status == "ok" and (len(s.token_ids) == 6 or s.finish_reason == "stop")
    assert live.held == (0, 0) and live.pool.live_sequences == 0


@pytest.mark.llama
def test_a_sequences_logits_do_not_depend_on_its_batch_neighbours(llama_backend):
    """What the identity above rests on, at the llama.cpp level: a sequence stepped alone
    and stepped in the same batches as 10 others (their cells interleaved with its own,
    in position order) gets bit-identical logits."""
    tok = llama_backend.tokenize_text
    ours = tok("The capital of France is")
    follow = tok(" Paris, the country's main cultural hub.")
    others = [tok(f"Story {j}: once upon a time there was a king.")[: 8 + j] for j in range(10)]
    live = llama_backend._live
    with live.lock:
        cx = live.pool.cx
        try:
            runs = []
            for k in (0, 10):
                live.pool.clear()
                cx.extend(0, ours, 0)
                for j in range(k):
                    cx.extend(j + 1, others[j], 0)
                got = []
                for i, t in enumerate(follow):
                    rows = [(t, len(ours) + i, 0, True)] + [
                        (others[j][-1], len(others[j]) + i, j + 1, True) for j in range(k)
                    ]
                    cx.decode(rows)
                    got.append(cx.logits(len(rows))[0])
                runs.append(np.array(got))
        finally:
            live.pool.clear()
    assert runs[0].shape == (len(follow), llama_backend.vocab_size)
    assert np.array_equal(runs[0], runs[1])
