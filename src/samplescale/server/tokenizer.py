"""The tokenizer endpoints of vLLM's server, on a backend that can tokenize.

``GET /tokenizer_info``, ``POST /tokenize`` (``{"prompt", "add_special_tokens"}`` ->
``{"tokens", "count"}``) and ``POST /detokenize`` (``{"tokens"}`` -> ``{"prompt"}``), at
the server's root as vLLM serves them. lm-evaluation-harness's ``local-completions``
model uses them (``tokenizer_backend=remote``, and by default when ``/tokenizer_info``
answers) to count the tokens of a context, so its log-likelihood requests need no local
copy of the tokenizer and count exactly the tokens the server scores. The routes exist
only for backends with ``tokenize_text``, ``piece``, ``token_name`` and
``tokenizer_info`` (the embedded llama.cpp model).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from samplescale.errors import ConfigError
from samplescale.server.schemas import APIError


class TokenizeRequest(BaseModel):
    """Body of ``POST /tokenize``."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # vLLM's clients send model
    prompt: str
    add_special_tokens: bool = Field(default=True, strict=True)


class DetokenizeRequest(BaseModel):
    """Body of ``POST /detokenize``."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    tokens: list[StrictInt] = Field(max_length=1_000_000)


def can_tokenize(backend: Any) -> bool:
    """Whether ``backend`` offers what the tokenizer endpoints need."""
    return all(
        callable(getattr(backend, name, None))
        for name in ("tokenize_text", "piece", "token_name", "tokenizer_info")
    )


def add_tokenizer_routes(
    app: FastAPI,
    backend: Any,
    read: Callable[[Request, type[Any]], Awaitable[Any]],
    authorize: Callable[[Request], None],
    limiter: anyio.CapacityLimiter,
) -> None:
    """Add the three routes to ``app`` (``read`` parses and validates a body; the work runs
    in worker threads under ``limiter``, the one the completions run under)."""
    vocab = int(backend.vocab_size)

    @app.get("/tokenizer_info")
    async def tokenizer_info(request: Request) -> dict[str, Any]:
        authorize(request)
        return dict(backend.tokenizer_info())

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict[str, Any]:
        req = await read(request, TokenizeRequest)
        try:
            tokens = await anyio.to_thread.run_sync(
                backend.tokenize_text, req.prompt, req.add_special_tokens, limiter=limiter
            )
        except ConfigError as exc:
            raise APIError(400, f"prompt: {exc}", param="prompt") from exc
        return {"tokens": tokens, "count": len(tokens)}

    @app.post("/detokenize")
    async def detokenize(request: Request) -> dict[str, Any]:
        req = await read(request, DetokenizeRequest)
        bad = next((t for t in req.tokens if not 0 <= t < vocab), None)
        if bad is not None:
            raise APIError(400, f"tokens: id {bad} is outside [0, {vocab})", param="tokens")
        def join() -> str:
            text = b"".join(
                backend.piece(t) or backend.token_name(t).encode("utf-8") for t in req.tokens
            )
            return text.decode("utf-8", errors="replace")

        return {"prompt": await anyio.to_thread.run_sync(join, limiter=limiter)}
