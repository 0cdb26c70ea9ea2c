"""The OpenAI wire format: parsing chat / text completion replies and HTTP error replies."""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import httpx

from samplescale.config import Constraint
from samplescale.errors import BackendError, ConfigError
from samplescale.types import FinishReason, Sample, Usage

LOGPROB_TOLERANCE = 1e-6  # float noise above 0 that servers report for certain tokens
LogprobsField = Literal["logprobs", "sampling_logprobs"]


class UpstreamError(BackendError):
    """An OpenAI-compatible server refused or failed a request.

    Attributes
    ----------
    status_code : int or None
        The HTTP status, or None for connection-level failures and timeouts.
    retryable : bool
        True for connection errors, 429 and 5xx (already retried ``max_retries`` times
        when raised by the backend).
    """

    def __init__(self, message: str, status_code: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable


def parse_reply(
    data: dict[str, Any],
    chat: bool,
    token_ids: bool,
    base_url: str,
    logprobs_field: LogprobsField = "logprobs",
) -> tuple[list[Sample], Usage]:
    """Samples and usage of one chat / text completion reply, in choice order.

    Per-token log-probabilities the server reports (natural log) go to the Sample field
    ``logprobs_field``, unchanged. The tokens they belong to are ``Sample.token_ids``
    when ``token_ids`` is set and every token is reported as ``"token_id:<id>"``, else
    ``Sample.token_texts`` (the token strings as reported). A choice without
    log-probabilities (or with a null or NaN one) gets neither.

    Raises
    ------
    UpstreamError
        If the reply lacks ``choices`` or ``usage``, or is malformed.
    """
    choices = data.get("choices")
    usage = data.get("usage")
    if not isinstance(choices, list) or not isinstance(usage, dict):
        raise UpstreamError(
            f"{base_url}: reply lacks 'choices' or 'usage' (got keys {sorted(data)})"
        )
    details = usage.get("prompt_tokens_details")
    try:
        u = Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            cached_prompt_tokens=int(
                (details.get("cached_tokens") if isinstance(details, dict) else 0) or 0
            ),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model_calls=1,
        )
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: int(inf)
        raise UpstreamError(f"{base_url}: malformed usage {usage!r}") from exc
    try:
        ordered = sorted(choices, key=lambda c: choice_index(c, base_url))
        return [_sample(c, chat, token_ids, base_url, logprobs_field) for c in ordered], u
    except (TypeError, AttributeError, ValueError, KeyError) as exc:  # a field of a wrong type
        raise UpstreamError(f"{base_url}: malformed reply: {type(exc).__name__}: {exc}") from exc


def choice_index(choice: Any, base_url: str) -> int:
    """The ``index`` of a choice (an integer; 0 when absent).

    Raises
    ------
    UpstreamError
        If the choice is not an object or its index is not an integer.
    """
    if not isinstance(choice, dict):
        raise UpstreamError(f"{base_url}: malformed choice {choice!r:.80}")
    index = choice.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise UpstreamError(f"{base_url}: choice index must be an integer, got {index!r:.40}")
    return index


def _sample(
    choice: Any, chat: bool, token_ids: bool, base_url: str, logprobs_field: LogprobsField
) -> Sample:
    if not isinstance(choice, dict):
        raise UpstreamError(f"{base_url}: malformed choice {choice!r}")
    reason = choice.get("finish_reason")
    text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
    if reason == "content_filter":
        return Sample.failed("the server's content filter stopped the completion")
    if not isinstance(text, str):
        return Sample.failed(f"the server returned no text (finish_reason={reason!r})")
    finish: FinishReason = "length" if reason == "length" else "stop"
    tokens, lps = _token_logprobs(choice.get("logprobs"), chat)
    if not lps:
        return Sample(text=text, finish_reason=finish)
    ids = _ids(tokens) if token_ids else None
    per_token: dict[str, Any] = (
        {"token_ids": tuple(ids)} if ids is not None else {"token_texts": tuple(tokens)}
    )
    per_token[logprobs_field] = tuple(lps)
    return Sample(text=text, finish_reason=finish, **per_token)


def error_message(r: httpx.Response) -> str:
    """The message of an error reply (OpenAI error object, FastAPI detail, or text)."""
    try:
        data = r.json()
    except ValueError:
        return r.text[:300]
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and "message" in err:
        return str(err["message"])[:300]
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])[:300]
    return str(data)[:300]


def retry_after(r: httpx.Response, default: float, cap: float) -> float:
    """Seconds to wait before a retry: ``Retry-After`` (capped at ``cap``) or ``default``."""
    value = r.headers.get("retry-after")
    try:
        return min(cap, max(0.0, float(value))) if value is not None else default
    except ValueError:
        return default


def _token_logprobs(logprobs: Any, chat: bool) -> tuple[list[str], list[float]]:
    """Token strings and natural-log probabilities from a choice's ``logprobs`` field."""
    if not isinstance(logprobs, dict):
        return [], []
    if chat:
        content = logprobs.get("content") or []
        tokens = [str(c.get("token", "")) for c in content]
        values = [c.get("logprob") for c in content]
    else:
        tokens = [str(t) for t in logprobs.get("tokens") or []]
        values = list(logprobs.get("token_logprobs") or [])
    if any(not isinstance(v, (int, float)) or math.isnan(v) for v in values):
        return [], []
    if any(v > LOGPROB_TOLERANCE for v in values):
        raise UpstreamError(f"server returned a log-probability > 0: {max(values)}")
    return tokens, [min(0.0, float(v)) for v in values]


def _ids(tokens: list[str]) -> list[int] | None:
    """Token ids from ``"token_id:<id>"`` strings, or None if any token is not one."""
    ids = []
    for t in tokens:
        head, _, tail = t.partition(":")
        if head != "token_id" or not (tail.isascii() and tail.isdigit()):
            return None
        ids.append(int(tail))
    return ids


def response_format(constraint: Constraint) -> dict[str, Any]:
    """OpenAI's ``response_format`` for a JSON constraint (chat completions).

    Servers that take it: OpenAI (``strict`` honoured), vLLM and SGLang (guided decoding),
    llama.cpp's ``llama-server``, and ``samplescale serve``; tested here against
    ``samplescale serve``.

    Raises
    ------
    ConfigError
        For regex and grammar constraints (no OpenAI field carries them).
    """
    if constraint.kind == "json_object":
        return {"type": "json_object"}
    if constraint.kind == "json_schema":
        schema = json.loads(constraint.source)
        return {"type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": constraint.strict}}
    raise ConfigError(
        f"a {constraint.kind} constraint cannot be sent over the OpenAI API (only JSON "
        "schemas and JSON objects, as response_format); use a backend with logits "
        "(llama.cpp, transformers)"
    )
