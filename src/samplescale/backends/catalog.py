"""The backends a user can pick by name (``--backend``), what each can do at best, and
which extra installs it.

The capabilities here are known before a model loads, so a command can refuse a strategy
or sampler that needs something a backend lacks before spending minutes loading it. The
loaded backend's own ``capabilities`` may be narrower (an upstream that ignores ``n``, a
model without a chat template); the backends check those at their calls.
"""

from __future__ import annotations

from typing import NamedTuple

from samplescale.backends.base import Capabilities
from samplescale.errors import ConfigError

__all__ = ["BACKENDS", "BackendInfo", "having", "require"]


class BackendInfo(NamedTuple):
    """One selectable backend.

    Attributes
    ----------
    capabilities : Capabilities
        What it can do at best.
    extra : str
        The optional-dependency extra that installs it (``pip install -e '.[EXTRA]'``).
    what : str
        One line for ``--help`` and the README.
    """

    capabilities: Capabilities
    extra: str
    what: str


_LOCAL = Capabilities(logits=True, seeds=True, parallel_n=True, chat=True, streaming=True)

BACKENDS: dict[str, BackendInfo] = {
    "llamacpp": BackendInfo(
        _LOCAL.model_copy(update={"prefix_caching": True, "groups": True}),
        "llama", "a GGUF file run in-process by llama.cpp (default)",
    ),
    "openai": BackendInfo(
        Capabilities(
            logits=False, seeds=True, parallel_n=True, chat=True, streaming=True, prefix=False,
            constraints=True,
        ),
        "(none)",
        "an OpenAI-compatible server (vLLM, SGLang, llama.cpp, samplescale serve) over HTTP",
    ),
    "transformers": BackendInfo(
        _LOCAL.model_copy(update={"prefix_caching": True}), "transformers", "a Hugging Face model directory or GGUF file run by transformers"
    ),
    "vllm": BackendInfo(
        Capabilities(
            logits=False,
            seeds=True,
            parallel_n=True,
            chat=True,
            streaming=False,
            prefix_caching=True,
        ),
        "vllm",
        "a model run in-process by vLLM on a GPU (samplers vLLM computes exactly only)",
    ),
}

FEATURE_NAMES = {
    "logits": "next-token logits (samplescale's own samplers, logits_at)",
    "prefix": "continuing a partial chat reply (Prompt.prefix)",
    "logprobs": "per-token log-probabilities",
    "streaming": "streaming",
    "constraints": "constrained generation (a grammar or JSON-schema mask)",
}


def having(feature: str) -> list[str]:
    """Names of the backends whose capabilities have ``feature`` (a ``Capabilities`` field)."""
    return [n for n, info in BACKENDS.items() if getattr(info.capabilities, feature)]


def require(backend: str, caps: Capabilities, feature: str, needed_by: str) -> None:
    """Raise a one-line ``ConfigError`` if ``caps`` lacks ``feature``.

    Parameters
    ----------
    backend : str
        The backend's name, for the message.
    caps : Capabilities
        What it can do.
    feature : str
        A boolean ``Capabilities`` field, e.g. ``"logits"``.
    needed_by : str
        What needs it, e.g. ``"--decoding priority"``.

    Raises
    ------
    ConfigError
        ``"<needed_by> needs <feature>; backend <name> has none (backends with it: ...)"``.
    """
    if not getattr(caps, feature):
        raise ConfigError(
            f"{needed_by} needs {FEATURE_NAMES.get(feature, feature)}; backend {backend!r} "
            f"has none (backends with it: {', '.join(having(feature))})"
        )
