"""Several requests decoded in shared batch steps on the embedded llama.cpp model: groups
of samples of one prompt with their own parameters (``generate_groups``,
:class:`~samplescale.backends.base.GroupGenerating`) and the samples of several prompts
(``generate_prompts``, :class:`~samplescale.backends.base.PromptBatching`); a base of
:class:`~samplescale.backends.llamacpp.LlamaCppBackend`, split from it by size.

Step-level search and SMC extend partial solutions that differ (particles after
resampling, the beams of a round): one ``generate`` call per partial solution decodes its
samples alone, one row per batch step, while a CPU decodes a batch of a few rows in about
the time of one. :meth:`PromptBatch.generate_prompts` decodes every request's prompt (only
its tokens after the longest cached prefix, inside a prefix session), then every step
decodes one token of every unfinished sample of every request in ONE batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from samplescale.backends.base import StreamEvent, collect
from samplescale.backends.decoding import FinishQuota, decode_rows
from samplescale.backends.llama_kv import Entry
from samplescale.backends.llama_sched import LiveSequences
from samplescale.backends.row_groups import check_groups, group_rows, split
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.rng import sample_generators
from samplescale.types import Generation, Prompt, Sample, Usage


class PromptBatch:
    """``generate_groups`` and ``generate_prompts`` over the backend's
    :class:`LiveSequences` (a base of ``LlamaCppBackend``, which sets the attributes and
    defines the methods named here)."""

    _live: LiveSequences
    _local: threading.local
    piece: Callable[[int], bytes]
    is_end: Callable[[int], bool]

    def check_prompt(self, prompt: Prompt, max_tokens: int) -> list[int]:
        """The checked token ids of ``prompt`` (``LlamaCppBackend`` defines it)."""
        raise NotImplementedError

    def _events(
        self, tokens: list[int], params: SamplingParams, gens: list[np.random.Generator],
        start: float, quota: FinishQuota | None = None,
        row_params: list[SamplingParams] | None = None,
    ) -> Iterator[StreamEvent]:
        """One request's decode loop (``LlamaCppBackend`` defines it)."""
        raise NotImplementedError

    def generate_groups(
        self,
        prompt: Prompt,
        groups: Sequence[SamplingParams],
        rng: np.random.Generator | None = None,
    ) -> list[Generation]:
        """:meth:`generate` for several groups of samples of ``prompt`` in one call
        (:class:`~samplescale.backends.base.GroupGenerating`): one prompt prefill, then
        every group's rows in the same batch steps, each drawn with its group's parameters.

        Reproducibility: deterministic given the groups (one thread, one sequence of
        batches). A group's samples are not always bit-identical to a call of its own:
        llama.cpp computes a wider batch with other float sums, so logits differ in their
        last digits and a token at a near-tie can flip (identical on SmolLM2 in
        tests/test_evaluate_greedy.py; on Qwen2.5-Coder-0.5B some samples differ:
        :mod:`samplescale.evaluate_greedy`).

        Raises
        ------
        ConfigError
            As :meth:`generate`, or if a group needs more than independent sampling
            (:func:`~samplescale.backends.row_groups.check_groups`).
        """
        check_groups(groups)
        start = time.perf_counter()
        tokens = self.check_prompt(prompt, max(g.max_tokens for g in groups))
        row_params, gens = group_rows(groups, rng)
        head = groups[0].replace(max_tokens=max(g.max_tokens for g in groups))
        gen = collect(self._events(tokens, head, gens, start, row_params=row_params))
        return split(gen, groups)

    def generate_prompts(
        self,
        requests: Sequence[tuple[Prompt, SamplingParams]],
        rngs: Sequence[np.random.Generator | None] | None = None,
    ) -> list[Generation]:
        """``generate(prompt, params, rng)`` for each request, decoded in one call.

        Each request's prompt is decoded first (inside a prefix session only its tokens
        after the longest cached prefix), one request after the other; then every step
        decodes one token of every unfinished sample of every request in one batch, each
        row drawn with its request's parameters and seeded stream (the streams
        ``generate`` would give it alone). The call holds the sequences and cells of all
        its rows at once (waiting for running calls to release room, as ``generate``
        does); when they exceed the whole KV cache (``n_seq_max`` sequences, ``n_ctx``
        cells), the requests are decoded one call after the other instead, with the same
        streams.

        Reproducibility: deterministic given the requests (one thread, one sequence of
        batches). A request's samples are not always bit-identical to a call of its own:
        its prompt may be served from another cached prefix, and llama.cpp may compute a
        wider batch with other float sums, so a token at a near-tie can flip
        (:meth:`generate_groups` measures the same effect).

        Parameters
        ----------
        requests : sequence of (Prompt, SamplingParams)
            At least one; each ``params.n`` samples of its prompt, independent sampling
            only (no ``decoding`` other than ``"independent"``, ``kl_sigma`` or
            ``constraint``).
        rngs : sequence of numpy.random.Generator or None, optional
            One per request (used when that request's ``params.seed`` is None), as
            ``generate``'s ``rng``.

        Returns
        -------
        list of Generation
            One per request, in order, with ``params.n`` samples each. Usage per request:
            its prompt tokens and the part served from the cache, its completion tokens,
            one model call, and the call's wall time shared out in proportion to the
            requests' completion tokens (equally when none generated a token).

        Raises
        ------
        ConfigError
            If ``requests`` is empty, a request is not a (Prompt, SamplingParams) pair,
            ``rngs`` is not one per request (a single Generator included), or a request
            needs more than independent sampling; as :meth:`generate` for a bad prompt.
        """
        if not requests:
            raise ConfigError("generate_prompts needs at least one (prompt, params) request")
        for i, request in enumerate(requests):
            if not (isinstance(request, (tuple, list)) and len(request) == 2
                    and isinstance(request[0], Prompt)):
                raise ConfigError(f"requests[{i}] must be a (Prompt, SamplingParams) pair, "
                                  f"got {type(request).__name__}")
        if isinstance(rngs, np.random.Generator):
            raise ConfigError("rngs must hold one generator (or None) per request, got one "
                              "Generator (samplescale.rng.spawn gives one per request)")
        rng_list = [None] * len(requests) if rngs is None else list(rngs)
        if len(rng_list) != len(requests):
            raise ConfigError(
                f"rngs must hold one generator (or None) per request: {len(requests)} "
                f"requests, got {len(rng_list)}"
            )
        check_groups([p for _, p in requests], "generate_prompts", "requests")
        start = time.perf_counter()
        tokens = [self.check_prompt(prompt, p.max_tokens) for prompt, p in requests]
        gens = [sample_generators(p.seed, g, p.n) for (_, p), g in zip(requests, rng_list)]
        if len(requests) == 1:
            return [collect(self._events(tokens[0], requests[0][1], gens[0], start))]
        live = self._live
        rows = sum(p.n for _, p in requests)
        cells = sum(len(t) + p.n * p.max_tokens for t, (_, p) in zip(tokens, requests))
        pool = live.pool
        if rows > pool.max_sequences or cells > pool.max_cells:  # never fits at once
            return [collect(self._events(toks, p, g, time.perf_counter()))
                    for toks, (_, p), g in zip(tokens, requests, gens)]
        with live.call(), live.room(rows, cells):
            samples, cached = self._joint(requests, tokens, gens)
        wall = time.perf_counter() - start
        done = [sum(s.num_tokens for s in group) for group in samples]
        total = sum(done)
        out = []
        for toks, k_cached, group, k in zip(tokens, cached, samples, done):
            share = k / total if total else 1 / len(samples)
            usage = Usage(
                prompt_tokens=len(toks), cached_prompt_tokens=k_cached,
                completion_tokens=k, model_calls=1, wall_time_s=wall * share,
            )
            out.append(Generation(samples=tuple(group), usage=usage))
        return out

    def _joint(
        self,
        requests: Sequence[tuple[Prompt, SamplingParams]],
        tokens: list[list[int]],
        gens: list[list[np.random.Generator]],
    ) -> tuple[list[list[Sample]], list[int]]:
        """Decode every prompt, then every request's rows in shared batch steps, in room
        the caller holds. Returns the samples of each request and the prompt tokens of
        each served from the cache."""
        live = self._live
        outer: int | None = getattr(self._local, "scope", None)
        session = outer
        heads: list[tuple[int, Entry, np.ndarray, int]] = []
        forks: list[Entry] = []
        try:
            for toks in tokens:
                heads.append(live.prefix(session, toks, 0, hold=False))
                session = heads[0][0]  # one scope for every request of the call
            seqs = live.fork_rows([h[1] for h in heads], [p.n for _, p in requests],
                                  [p.max_tokens for _, p in requests])
            forks = [e for group in seqs for e in group[1:]]
            with live.batcher.member():
                samples = self._decode(requests, gens, heads, seqs)
        finally:
            live.unpin(forks)
            for i, (_, entry, _, _) in enumerate(heads):
                retire = outer is None and i == len(heads) - 1
                live.done(entry, 0, heads[0][0] if retire else None, hold=False)
        return samples, [h[3] for h in heads]

    def _decode(
        self,
        requests: Sequence[tuple[Prompt, SamplingParams]],
        gens: list[list[np.random.Generator]],
        heads: list[tuple[int, Entry, np.ndarray, int]],
        seqs: list[list[Entry]],
    ) -> list[list[Sample]]:
        """Every request's rows in shared batch steps; the samples of each request."""
        row_params = [p for _, p in requests for _ in range(p.n)]
        row_gens = [g for group in gens for g in group]
        row_seqs = [e for group in seqs for e in group]
        first = np.stack([h[2][0] for (_, p), h in zip(requests, heads) for _ in range(p.n)])
        live = self._live
        loop = decode_rows(
            first, requests[0][1], row_gens, list(range(len(row_gens))), None,
            self.piece, self.is_end,
            lambda active, toks, k: live.step([row_seqs[i] for i in active], toks),
            row_params=row_params,
        )
        while True:
            try:
                next(loop)
            except StopIteration as stop:
                samples: list[Sample] = stop.value
                break
        out, lo = [], 0
        for _, p in requests:
            out.append(samples[lo : lo + p.n])
            lo += p.n
        return out
