"""Request bodies of the OpenAI-compatible endpoints, and the OpenAI error object.

Requests are validated by these pydantic models; sampling fields that are not declared
here (``temperature``, ``top_p``, ``top_k``, ``min_p`` and every other
:class:`~samplescale.config.SamplingParams` field) are collected as extra fields and
validated by ``SamplingParams`` itself, so a field added there is accepted here without
a change. Standard OpenAI fields that the server does not implement are accepted only with
values that change nothing (:mod:`samplescale.server.conformance`); any other field or
value is refused by name (never silently ignored). As in OpenAI's API,
an optional field sent as ``null`` takes its default (the official clients send ``n=None``
as ``"n": null``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from samplescale.config import SamplingParams, valid_range

STRICT = ConfigDict(extra="forbid", frozen=True)


class NullIsDefault(BaseModel):
    """A body whose optional fields may be sent as ``null`` and then take their defaults
    (OpenAI's optional fields are "type or null"); a required field stays required."""

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            k: v for k, v in data.items()
            if v is not None or (k in fields and fields[k].is_required())
        }


class APIError(Exception):
    """An error answered as an OpenAI error object.

    Parameters
    ----------
    status : int
        HTTP status (400 bad field, 401 auth, 404 unknown model, 429 queue full, 5xx).
    message : str
        Names the field and the valid range where one applies.
    param : str, optional
        The offending field, dotted (``samplescale.n``, ``messages.0.role``).
    code : str, optional
        A machine-readable code (``model_not_found``, ``queue_full``, ...).
    """

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    @property
    def type(self) -> str:
        """The OpenAI error type for the status."""
        if self.status == 401:
            return "authentication_error"
        if self.status == 429:
            return "rate_limit_error"
        if self.status >= 500:
            return "server_error"
        return "invalid_request_error"

    def body(self) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def from_validation_error(exc: ValidationError, prefix: str = "") -> APIError:
    """A 400 naming the first invalid field, its problem, the value and the valid range."""
    err = exc.errors()[0]
    loc = [str(x) for x in err["loc"]]
    field = ".".join(([prefix] if prefix else []) + loc) or "body"
    allowed = valid_range(SamplingParams, loc[0]) if len(loc) == 1 else None
    where = f"; valid range {allowed}" if allowed else ""
    got = "" if err["type"] == "missing" else f" (got {err.get('input')!r:.80})"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return APIError(400, f"{field}: {msg}{got}{where}", param=field)


class TextPart(BaseModel):
    """A text content part of a chat message."""

    model_config = STRICT
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    """A chat message. ``developer`` is OpenAI's successor name of ``system`` and is
    treated as a system message; content parts must be text and are concatenated."""

    model_config = STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    @property
    def text(self) -> str:
        """The message text."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class JSONSchemaFormat(NullIsDefault):
    """``response_format.json_schema``: OpenAI's structured-output schema record."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = Field(default=None, strict=True)


class ResponseFormat(NullIsDefault):
    """``response_format`` of a chat completion: ``text`` (no constraint), ``json_object``
    (any JSON object) or ``json_schema`` (a JSON value valid under ``json_schema.schema``;
    :mod:`samplescale.server.structured`)."""

    model_config = STRICT
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(NullIsDefault):
    """``stream_options``: ``include_usage`` adds a last chunk with empty ``choices``."""

    model_config = STRICT
    include_usage: bool = Field(default=False, strict=True)


class SamplescaleOptions(NullIsDefault):
    """The ``samplescale`` extension field of a request body.

    Attributes
    ----------
    strategy : str, optional
        A registered strategy name (``samplescale list``); also settable through the model
        name (``self-consistency@8/<model>``).
    n : int, optional
        Samples the strategy draws (N), >= 1 (the server caps it).
    options : dict
        Keyword options of the strategy (its dataclass fields, JSON values).
    max_total_tokens : int, optional
        Token budget of the whole request (prompt + completion tokens over every model
        call), >= 1; sampling stops when it is spent and the response says so.
    candidates : bool
        Include every candidate in the response's ``samplescale`` field (default true).
    grounding : str, optional
        A source document the answer should be grounded in (``Prompt.grounding``); needed
        by ``kl_sigma`` (KL-guided temperature), which compares the next-token
        distributions with and without it.
    """

    model_config = STRICT
    strategy: str | None = None
    n: int | None = Field(default=None, strict=True, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    max_total_tokens: int | None = Field(default=None, strict=True, ge=1)
    candidates: bool = Field(default=True, strict=True)
    grounding: str | None = None


class _Request(NullIsDefault):
    """Fields shared by chat and text completions."""

    model_config = ConfigDict(extra="allow", frozen=True)
    model: str = Field(min_length=1)
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, strict=True, ge=1)
    max_tokens: int | None = Field(default=None, strict=True, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, strict=True, ge=0)
    user: str | None = None
    logit_bias: dict[str, float] | None = None
    return_tokens_as_token_ids: bool = Field(default=False, strict=True)
    samplescale: SamplescaleOptions | None = None

    def extra_fields(self) -> dict[str, Any]:
        """The extra fields: SamplingParams fields, or standard OpenAI fields with a value
        that changes nothing (:mod:`samplescale.server.conformance`); others are refused."""
        return dict(self.model_extra or {})


class ChatCompletionRequest(_Request):
    """Body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessageIn] = Field(min_length=1)
    response_format: ResponseFormat | None = None
    max_completion_tokens: int | None = Field(default=None, strict=True, ge=1)
    logprobs: bool = Field(default=False, strict=True)
    top_logprobs: int | None = Field(default=None, strict=True, ge=0, le=20)

    @property
    def wants_logprobs(self) -> bool:
        """Whether the choices carry token log-probabilities."""
        return self.logprobs


class CompletionRequest(_Request):
    """Body of ``POST /v1/completions``: one prompt string or a list of them (``n``
    choices per prompt, numbered prompt by prompt as OpenAI does: choice ``i * n + j`` is
    prompt ``i``'s ``j``-th). ``echo`` puts the prompt before each choice's text;
    ``logprobs: k`` (0-5) returns token log-probabilities with the ``k`` most likely
    alternatives at each position (``k > 0`` and ``echo`` need a backend with logits)."""

    prompt: str | list[str] = Field(union_mode="left_to_right")
    logprobs: int | None = Field(default=None, strict=True, ge=0, le=5)
    echo: bool = Field(default=False, strict=True)
    suffix: None = None
    best_of: Literal[1] | None = None

    @property
    def wants_logprobs(self) -> bool:
        """Whether the choices carry token log-probabilities (``logprobs`` given)."""
        return self.logprobs is not None

    @field_validator("prompt", mode="before")
    @classmethod
    def _text_prompts(cls, prompt: Any) -> Any:
        if isinstance(prompt, list):
            if not prompt:
                raise ValueError("an empty list; give a string or a list of strings")
            if any(isinstance(x, (int, list)) for x in prompt):
                raise ValueError(
                    "token-id prompts are not supported; send the text "
                    "(lm-evaluation-harness: tokenized_requests=False)"
                )
        return prompt

    @property
    def prompts(self) -> list[str]:
        """The prompts, as a list."""
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
