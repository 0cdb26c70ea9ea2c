"""The Hugging Face transformers backend: a local causal LM directory or a GGUF file,
sampled by samplescale's own pipeline.

The model runs in PyTorch (CPU or one GPU). The prompt is encoded once; its KV cache is
repeated for the ``n`` samples of a request (``DynamicCache.batch_repeat_interleave``), and
each step feeds one token of every unfinished sample in ONE batch; finished samples leave
the batch (``batch_select_indices``), so every row of a step is at the same position and
no padding is needed. The next-token logits go through
:func:`samplescale.sampling.pipeline.sample` with each sample's own seeded stream, by the
same decode loop as the llama.cpp backend (:func:`samplescale.backends.decoding.decode_rows`).

GGUF files load through transformers' own GGUF support (``gguf_file=``, needs the ``gguf``
package): the weights are dequantized to float32, so the logits are close to, not equal
to, llama.cpp's on the same file (llama.cpp multiplies quantized weights with 8-bit
activations). Nothing is downloaded: loading is ``local_files_only``.

Prefix caching between calls (:class:`~samplescale.backends.base.PrefixCaching`, what
step-level search and SMC use): inside :meth:`TransformersBackend.prefix_session` every
call's prompt and every sample's sequence stay cached as ``DynamicCache`` entries
(:class:`~samplescale.backends.hf_prefix.PrefixStore`), and a later call prefills only the
tokens after the longest prefix it shares with one of them (``Usage.cached_prompt_tokens``).

Install with ``scripts/setup.sh --transformers`` (the ``transformers`` extra: torch,
transformers, gguf, accelerate; the script pins torch's CPU build).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samplescale.backends.base import Capabilities, StreamEvent, collect
from samplescale.backends.decoding import check_decoding, check_logits_request, decode_rows
from samplescale.backends.hf_load import INSTALL_HINT, model_source, modules
from samplescale.backends.hf_prefix import PrefixStore, RoundCache, share
from samplescale.backends.hf_tokens import end_token_ids, token_bytes
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, MissingDependencyError, ModelNotFoundError
from samplescale.rng import sample_generators
from samplescale.sampling.arithmetic import ArithmeticCodes
from samplescale.types import Generation, Prompt, Sample, Usage


class TransformersBackend:
    """A causal language model run in-process by Hugging Face transformers.

    Parameters
    ----------
    model_path : str or Path, optional
        A local model directory (``config.json``, weights, tokenizer files) or a ``.gguf``
        file; defaults to the embedded SmolLM2-135M-Instruct GGUF
        (:func:`samplescale.backends.llamacpp.default_model_path`).
    max_batch : int
        Most samples decoded in one batch, in [1, 256]; more are decoded in rounds that
        reuse the prompt's KV cache.
    n_threads : int, optional
        CPU threads for torch (``torch.set_num_threads``: process-wide); None leaves
        torch's default.
    device : str
        Torch device, e.g. ``"cpu"`` (default) or ``"cuda"``.
    dtype : {"float32", "bfloat16", "float16"}
        Weight and activation dtype (default float32; the logits are sampled in float32).
    cache_tokens : int
        Budget of a :meth:`prefix_session`'s cache, in tokens (each cached sequence counted
        at its full length), >= 1; least recently used sequences are dropped beyond it.
        Memory is about ``2 x layers x kv_heads x head_dim x 4`` bytes per token in float32
        (46 KB for SmolLM2-135M: 16384 tokens take about 750 MB).

    Raises
    ------
    ModelNotFoundError
        If the path is neither a model directory nor a GGUF file, or transformers cannot
        load it.
    MissingDependencyError
        If torch / transformers (or ``gguf`` for a GGUF file) are not installed.
    ConfigError
        If an argument is outside its range.
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        max_batch: int = 16,
        n_threads: int | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        cache_tokens: int = 16384,
    ) -> None:
        if (
            isinstance(max_batch, bool)
            or not isinstance(max_batch, int)
            or not 1 <= max_batch <= 256
        ):
            raise ConfigError(f"max_batch must be an integer in [1, 256], got {max_batch!r}")
        if n_threads is not None and (
            isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1
        ):
            raise ConfigError(
                f"n_threads must be an integer >= 1 (None: torch's default), got {n_threads!r}"
            )
        if isinstance(cache_tokens, bool) or not isinstance(cache_tokens, int) or cache_tokens < 1:
            raise ConfigError(f"cache_tokens must be an integer >= 1, got {cache_tokens!r}")
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {dtype!r}")
        if model_path is None:
            from samplescale.backends.llamacpp import default_model_path

            model_path = default_model_path()
        path = Path(model_path)
        source = model_source(path)
        torch, transformers = modules()
        if "gguf_file" in source:
            try:
                import gguf  # noqa: F401  (transformers reads GGUF files with it)
            except ImportError as exc:
                raise MissingDependencyError(
                    f"loading a GGUF file needs the gguf package; {INSTALL_HINT}"
                ) from exc
        if n_threads is not None:
            torch.set_num_threads(n_threads)
        try:
            self._tok = transformers.AutoTokenizer.from_pretrained(**source, local_files_only=True)
            self._model = transformers.AutoModelForCausalLM.from_pretrained(
                **source, local_files_only=True, dtype=getattr(torch, dtype)
            ).to(device)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelNotFoundError(f"transformers could not load {path}: {exc}") from exc
        self._model.eval()
        # transformers >= 5.25 names the KV cache argument ``cache`` (``past_key_values``
        # is deprecated there, removed in 5.40); earlier 5.x releases only know the old name
        params = inspect.signature(self._model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._torch = torch
        self.model_path = path
        self.device = device
        self.max_batch = max_batch
        self.vocab_size = int(self._model.get_output_embeddings().weight.shape[0])
        self.n_ctx_train = int(getattr(self._model.config, "max_position_embeddings", 0) or 1 << 20)
        self._pieces = token_bytes(self._tok, self.vocab_size)
        self._ends = end_token_ids(self._tok, self._model.generation_config)
        self._lock = threading.Lock()
        self._slot = PrefixStore(1, 1 << 30)  # logits_at's last sequence, outside sessions
        self.cache_tokens = cache_tokens
        self._local = threading.local()  # the prefix session of the calling thread
        self._stores: list[PrefixStore] = []  # open sessions' caches
        croppable = transformers.DynamicCache(config=self._model.config).is_croppable
        self.capabilities = Capabilities(
            logits=True,
            seeds=True,
            parallel_n=True,
            chat=bool(getattr(self._tok, "chat_template", None)),
            streaming=True,
            prefix_caching=bool(croppable),
        )

    # ----------------------------------------------------------------- tokens
    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of ``prompt``: chat messages rendered with the tokenizer's chat template
        (generation prompt added; its special tokens parsed, no BOS added on top), plain text
        with the tokenizer's own special tokens (BOS where the model uses one); then
        ``prompt.prefix`` (the start of the reply) appended as text.

        Raises
        ------
        ConfigError
            If the prompt has chat messages and the tokenizer has no chat template, or the
            prompt tokenizes to nothing.
        """
        prompt = prompt.resolved()
        if prompt.messages is not None:
            if not self.capabilities.chat:
                raise ConfigError(
                    f"{self.model_path.name} has no chat template; pass Prompt(text=...)"
                )
            messages = [{"role": m.role, "content": m.content} for m in prompt.messages]
            text = self._tok.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            special = False
        else:
            assert prompt.text is not None
            text, special = prompt.text, True
        ids = self._tok(text + prompt.prefix, add_special_tokens=special)["input_ids"]
        if not ids:
            raise ConfigError("prompt is empty after tokenisation")
        return [int(t) for t in ids]

    def piece(self, token: int) -> bytes:
        """The bytes of one token (``b""`` for special tokens; UTF-8 may split across tokens)."""
        return self._pieces[token]

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens (the tokenizer's and generation config's EOS)."""
        return token in self._ends

    # ----------------------------------------------------------------- decoding
    def _forward(self, ids: Any, cache: Any, start: int) -> Any:
        """One forward pass of ``ids`` (shape (batch, length)) at positions from ``start``."""
        torch = self._torch
        length = ids.shape[1]
        pos = torch.arange(start, start + length, device=self.device)
        return self._model(
            input_ids=ids,
            **{self._cache_arg: cache},
            position_ids=pos.expand(ids.shape[0], length),
            cache_position=pos,
            use_cache=True,
        )

    def _numpy(self, logits: Any) -> np.ndarray:
        return np.ascontiguousarray(logits.float().cpu().numpy())

    def _step(self, toks: list[int], cache: Any, start: int) -> np.ndarray:
        """One token per batch row at position ``start``; next-token logits (rows, V)."""
        ids = self._torch.tensor(toks, device=self.device)[:, None]
        return self._numpy(self._forward(ids, cache, start).logits[:, -1])

    def _select(self, cache: Any, keep: list[int]) -> None:
        cache.batch_select_indices(self._torch.tensor(keep, device=self.device))

    # ----------------------------------------------------------------- prefix sessions
    @contextlib.contextmanager
    def prefix_session(self) -> Iterator[None]:
        """Keep computed prefixes cached between this thread's calls until the block ends
        (:class:`~samplescale.backends.base.PrefixCaching`).

        Inside the block, :meth:`generate`, :meth:`stream` and :meth:`logits_at` serve the
        longest token prefix they share with a prompt, a sample (prompt plus its tokens) or
        a scored sequence of an earlier call of the session from its ``DynamicCache``, and
        run only the rest; ``Usage.cached_prompt_tokens`` says how many prompt tokens were
        served so. Budget: ``cache_tokens`` tokens, 4 x ``max_batch`` sequences (least
        recently used dropped first). The cache is freed when the block ends; nested
        blocks share the outer one. A model whose cache cannot be cropped back
        (``capabilities.prefix_caching`` False) caches nothing.

        Reproducibility: a session starts from an empty cache, so the same calls in a
        session give the same results on a fresh backend and after any other calls. A
        cached prefix changes the shapes of the matrix products, so its logits can differ
        from a full pass in their last float32 digits (measured below 1e-4 on SmolLM2,
        tests/test_transformers_prefix.py), enough to flip an exact near-tie.
        """
        if getattr(self._local, "store", None) is not None:
            yield
            return
        store = PrefixStore(4 * self.max_batch, self.cache_tokens)
        with self._lock:
            self._stores.append(store)
        self._local.store = store
        try:
            yield
        finally:
            self._local.store = None
            with self._lock:
                self._stores.remove(store)
                store.clear()

    def cache_usage(self) -> tuple[int, int]:
        """``(sequences, tokens)`` held by the open prefix sessions' caches now."""
        with self._lock:
            return sum(len(s) for s in self._stores), sum(s.tokens for s in self._stores)

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw ``params.n`` samples decoded together, sharing the prompt's KV cache.

        Raises
        ------
        ConfigError
            If ``prompt tokens + max_tokens`` exceeds the model's context, or
            ``params.decoding`` needs :func:`samplescale.decoders.generate`.
        """
        return collect(self.stream(prompt, params, rng))

    def stream(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Iterator[StreamEvent]:
        """:meth:`generate`, yielding each sample's text as it is decoded
        (:class:`~samplescale.backends.base.StreamingBackend`; the same decode loop).
        Arguments are checked at the call; the model's lock is held from the first ``next``
        until the iterator is exhausted or closed."""
        start = time.perf_counter()
        tokens = self.tokenize_prompt(prompt)
        if len(tokens) + params.max_tokens > self.n_ctx_train:
            raise ConfigError(
                f"prompt ({len(tokens)} tokens) + max_tokens ({params.max_tokens}) exceeds the "
                f"model's context of {self.n_ctx_train} tokens; shorten the prompt or lower max_tokens"
            )
        check_decoding(params)
        gens = sample_generators(params.seed, rng, params.n)
        return self._events(tokens, params, gens, start)

    def _events(
        self,
        tokens: list[int],
        params: SamplingParams,
        gens: list[np.random.Generator],
        start: float,
    ) -> Iterator[StreamEvent]:
        torch = self._torch
        codes = ArithmeticCodes(gens) if params.decoding == "arithmetic" else None
        samples: list[Sample] = []
        store: PrefixStore | None = getattr(self._local, "store", None)
        with self._lock, torch.inference_mode():
            cache, cached = (None, 0) if store is None else store.lookup(tokens, len(tokens) - 1)
            ids = torch.tensor([tokens[cached:]], device=self.device)
            out = self._forward(ids, cache, cached)
            prompt_cache, first = out.past_key_values, self._numpy(out.logits[0, -1])
            if store is not None:
                store.add(tokens, share(prompt_cache))
            for lo in range(0, params.n, self.max_batch):
                rows = list(range(lo, min(params.n, lo + self.max_batch)))
                last_round = rows[-1] == params.n - 1
                cache = prompt_cache if last_round else share(prompt_cache)
                cache.batch_repeat_interleave(len(rows))
                batch = RoundCache(cache, tokens, len(rows), store, self._step, self._select)
                samples.extend(
                    (
                        yield from decode_rows(
                            first, params, gens, rows, codes, self.piece, self.is_end,
                            batch.step,
                        )
                    )
                )
                batch.finish()
        usage = Usage(
            prompt_tokens=len(tokens),
            cached_prompt_tokens=cached,
            completion_tokens=sum(s.num_tokens for s in samples),
            model_calls=1,
            wall_time_s=time.perf_counter() - start,
        )
        yield Generation(samples=tuple(samples), usage=usage)

    # ----------------------------------------------------------------- LogitsModel
    def next_token_logits(self, prompt: Prompt, prefix: Sequence[int] = ()) -> np.ndarray:
        """Raw next-token logits after ``prompt`` + ``prefix`` token ids, shape (V,), float32."""
        return self.logits_at(self.tokenize_prompt(prompt) + list(prefix))[0]

    def logits_at(self, tokens: Sequence[int], last: int = 1) -> np.ndarray:
        """Raw next-token logits after each of the last ``last`` prefixes of ``tokens``
        (:class:`~samplescale.backends.base.LogitsModel`).

        The KV cache of the last sequence scored is kept: a call that extends it (or shares
        a prefix with it) runs only the tokens after the common prefix (at least ``last``);
        inside a :meth:`prefix_session` the session's cache serves it. As on llama.cpp,
        logits computed from a cached prefix can differ from a full pass in their last
        float32 digits.

        Parameters
        ----------
        tokens : sequence of int, length L >= 1, ids in [0, vocab_size)
        last : int in [1, L]

        Returns
        -------
        ndarray, shape (last, vocab_size), float32

        Raises
        ------
        ConfigError
            If ``tokens`` is empty, longer than the context, has an invalid id, or ``last``
            is out of range.
        """
        return self.cached_logits_at(tokens, last)[0]

    def cached_logits_at(self, tokens: Sequence[int], last: int = 1) -> tuple[np.ndarray, int]:
        """:meth:`logits_at` and the number of ``tokens`` served from the cache (not run
        through the model), in ``[0, L - last]``.

        Raises
        ------
        ConfigError
            As :meth:`logits_at`.
        """
        toks = check_logits_request(
            tokens, last, self.vocab_size, self.n_ctx_train, "the model's, in tokens"
        )
        torch = self._torch
        store = getattr(self._local, "store", None)
        store = self._slot if store is None else store
        with self._lock, torch.inference_mode():
            cache, keep = store.lookup(toks, len(toks) - last)
            out = self._forward(torch.tensor([toks[keep:]], device=self.device), cache, keep)
            store.add(toks, out.past_key_values)
            return self._numpy(out.logits[0, -last:]), keep
