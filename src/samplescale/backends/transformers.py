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
step-level search uses on llama.cpp) is not implemented here yet: every call prefills its
whole prompt, and :func:`~samplescale.backends.base.prefix_session` does nothing. The seam:
a ``prefix_session`` that keeps each call's ``DynamicCache`` (cropped with ``crop``, copied
per branch) keyed by token prefix, and a ``cached_logits_at``.

Install with ``scripts/setup.sh --transformers`` (the ``transformers`` extra: torch,
transformers, gguf, accelerate; the script pins torch's CPU build).
"""

from __future__ import annotations

import copy
import inspect
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samplescale.backends.base import Capabilities, StreamEvent, collect
from samplescale.backends.decoding import check_decoding, check_token_ids, decode_rows
from samplescale.backends.hf_tokens import end_token_ids, token_bytes
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError, MissingDependencyError, ModelNotFoundError
from samplescale.rng import sample_generators
from samplescale.sampling.arithmetic import ArithmeticCodes
from samplescale.types import Generation, Prompt, Sample, Usage

INSTALL_HINT = "install the 'transformers' extra: scripts/setup.sh --transformers"


def _modules() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"the transformers backend needs torch and transformers; {INSTALL_HINT}"
        ) from exc
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return torch, transformers


def _source(path: Path) -> dict[str, str]:
    """``from_pretrained`` arguments for a model directory or a GGUF file."""
    if path.is_file() and path.suffix == ".gguf":
        return {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
    if path.is_dir() and (path / "config.json").is_file():
        return {"pretrained_model_name_or_path": str(path)}
    raise ModelNotFoundError(
        f"model not found: {path} (the transformers backend takes a local Hugging Face model "
        "directory with config.json, or a .gguf file; on the command line: --model PATH)"
    )


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
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be 'float32', 'bfloat16' or 'float16', got {dtype!r}")
        if model_path is None:
            from samplescale.backends.llamacpp import default_model_path

            model_path = default_model_path()
        path = Path(model_path)
        source = _source(path)
        torch, transformers = _modules()
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
        self._slot: tuple[list[int], Any] | None = None  # logits_at's cached sequence
        self.capabilities = Capabilities(
            logits=True,
            seeds=True,
            parallel_n=True,
            chat=bool(getattr(self._tok, "chat_template", None)),
            streaming=True,
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
        with self._lock, torch.inference_mode():
            out = self._forward(torch.tensor([tokens], device=self.device), None, 0)
            prompt_cache, first = out.past_key_values, self._numpy(out.logits[0, -1])
            for lo in range(0, params.n, self.max_batch):
                rows = list(range(lo, min(params.n, lo + self.max_batch)))
                last_round = rows[-1] == params.n - 1
                cache = prompt_cache if last_round else copy.deepcopy(prompt_cache)
                cache.batch_repeat_interleave(len(rows))
                current = list(range(len(rows)))

                def step(
                    active: list[int], toks: list[int], k: int, cache: Any = cache
                ) -> np.ndarray:
                    nonlocal current
                    if active != current:  # finished rows leave the batch
                        keep = [current.index(i) for i in active]
                        cache.batch_select_indices(torch.tensor(keep, device=self.device))
                        current = list(active)
                    ids = torch.tensor(toks, device=self.device)[:, None]
                    return self._numpy(self._forward(ids, cache, len(tokens) + k).logits[:, -1])

                samples.extend(
                    (
                        yield from decode_rows(
                            first, params, gens, rows, codes, self.piece, self.is_end, step
                        )
                    )
                )
        usage = Usage(
            prompt_tokens=len(tokens),
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
        a prefix with it) runs only the tokens after the common prefix (at least ``last``).
        As on llama.cpp, logits computed from a cached prefix can differ from a full pass in
        their last float32 digits.

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
        toks = check_token_ids(tokens, self.vocab_size, "logits_at")
        if not toks:
            raise ConfigError("logits_at needs at least one token")
        if not 1 <= last <= len(toks):
            raise ConfigError(f"last must be in [1, {len(toks)}], got {last}")
        if len(toks) > self.n_ctx_train:
            raise ConfigError(
                f"{len(toks)} tokens exceed the model's context of {self.n_ctx_train}"
            )
        torch = self._torch
        with self._lock, torch.inference_mode():
            keep, cache = 0, None
            if self._slot is not None:
                cached, cache = self._slot
                while keep < min(len(cached), len(toks) - last) and cached[keep] == toks[keep]:
                    keep += 1
                if keep == 0:
                    cache = None
                elif keep < len(cached):  # a negative count removes that many positions
                    cache.crop(keep - len(cached))
            self._slot = None  # a failed pass leaves no half-updated cache behind
            out = self._forward(torch.tensor([toks[keep:]], device=self.device), cache, keep)
            self._slot = (toks, out.past_key_values)
            return self._numpy(out.logits[0, -last:])
