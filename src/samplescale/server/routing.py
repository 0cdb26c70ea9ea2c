"""From a validated request to a plan: which strategy, how many samples, which parameters.

Model-name grammar (``model`` field of a request)::

    model      := served | spec "/" served | spec
    spec       := strategy [ "@" N ]

``served`` is the model id the server serves (``GET /v1/models``), ``strategy`` a
registered strategy name (kebab- or snake_case) and ``N`` the number of samples, an
integer >= 1. Examples: ``smollm2`` (plain), ``self-consistency@16/smollm2``,
``best-of-n/smollm2`` (N = 8), ``self-consistency@8`` (the served model).

The ``samplescale`` body field can set the strategy, N, strategy options and a token
budget instead; when both name a strategy or N they must agree. Without a strategy the
request passes through: ``n`` choices drawn by the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from samplescale.backends.openai_request import OPENAI_MAPPED_FIELDS as _MAPPED
from samplescale.config import SamplingParams
from samplescale.constraints.compiler import check_constraint
from samplescale.errors import ConfigError, SamplescaleError
from samplescale.server import structured
from samplescale.server.conformance import check_neutral_fields
from samplescale.server.schemas import (
    APIError,
    ChatCompletionRequest,
    CompletionRequest,
    from_validation_error,
)
from samplescale.strategies import STRATEGIES, Strategy, get_strategy
from samplescale.types import Message, Prompt

DEFAULT_SAMPLES = 8


@dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes
    ----------
    max_samples : int
        Most samples (N, or ``n`` choices) per request.
    max_request_tokens : int
        Most tokens (prompt + completion, all calls) one request may spend; also the
        budget of a request that sets none.
    max_option_count : int
        Largest integer strategy option (``samplescale.options``: ``iterations``,
        ``expansions``, ``max_steps``, ``scorer_budget``, ...: counts of rounds, calls or
        steps); ``token_budget`` is bounded by ``max_request_tokens`` instead.
    max_body_bytes : int
        Largest request body in bytes (default 8 MiB); a larger one is answered 413 before
        it is read to the end.
    body_timeout_s : float
        Seconds a client may take to send its whole body, in (0, 3600] (default 30); a
        client that sends headers and stalls is answered 408 and its connection closed.
    """

    max_samples: int = 64
    max_request_tokens: int = 200_000
    max_option_count: int = 1024
    max_body_bytes: int = 8 * 2**20
    body_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_samples", "max_request_tokens", "max_option_count", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Limits.{name} must be an integer >= 1, got {value!r}")
        t = self.body_timeout_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= 3600:
            raise ConfigError(f"Limits.body_timeout_s must be in (0, 3600] seconds, got {t!r}")


@dataclass(frozen=True)
class Plan:
    """What to run for one request (immutable; nothing is shared between requests).

    Attributes
    ----------
    prompt : Prompt
    params : SamplingParams
        ``n`` is N for a strategy, the number of choices otherwise.
    strategy : Strategy or None
        None: plain pass-through.
    max_total_tokens : int
        Token budget of the request.
    candidates : bool
        Whether the response lists every candidate.
    token_ids : bool
        Report tokens as ``"token_id:<id>"`` in logprobs.
    """

    prompt: Prompt
    params: SamplingParams
    strategy: Strategy | None
    max_total_tokens: int
    candidates: bool = True
    token_ids: bool = False


def parse_model(model: str, served: str) -> tuple[str | None, int | None]:
    """Split a model name into ``(strategy, N)`` by the grammar of the module docstring.

    Raises
    ------
    APIError
        400 (param ``model``) for an unknown strategy or a bad ``@N``; 404
        (``model_not_found``) when the name is neither the served model nor a strategy
        spec.
    """
    if model == served:
        return None, None
    head, slash, tail = model.partition("/")
    if slash and tail != served:
        raise APIError(
            404,
            f"model: {model!r} is not served; use {served!r}, optionally prefixed by "
            f"'<strategy>[@N]/' (strategies: {', '.join(STRATEGIES.names())})",
            param="model",
            code="model_not_found",
        )
    name, at, count = head.partition("@")
    if name not in STRATEGIES:
        if not slash and not at:
            raise APIError(
                404,
                f"model: {model!r} is not served; use {served!r}, optionally prefixed by "
                f"'<strategy>[@N]/' (strategies: {', '.join(STRATEGIES.names())})",
                param="model",
                code="model_not_found",
            )
        raise APIError(
            400,
            f"model: unknown strategy {name!r} in {model!r}; valid: "
            f"{', '.join(STRATEGIES.names())}",
            param="model",
            code="unknown_strategy",
        )
    n = None
    if at:
        # ASCII digits only (str.isdigit also accepts '²' and other scripts' digits), and
        # few enough of them that int() is cheap; the server's limit is checked later.
        if not (count.isascii() and count.isdigit()) or len(count) > 9 or int(count) < 1:
            raise APIError(
                400,
                "model: the sample count after '@' must be an integer >= 1 (in [1, 999999999]) "
                f"written in ASCII digits, got {count!r:.40}",
                param="model",
            )
        n = int(count)
    return name, n


def _prompt(req: ChatCompletionRequest | CompletionRequest) -> Prompt:
    if isinstance(req, ChatCompletionRequest):
        msgs = tuple(
            Message(role="system" if m.role == "developer" else m.role, content=m.text)
            for m in req.messages
        )
        return Prompt(messages=msgs)
    prompts = req.prompts
    if len(prompts) != 1:  # the app plans a list prompt by prompt
        raise APIError(400, f"prompt: plan one prompt at a time, got {len(prompts)}",
                       param="prompt")
    return Prompt(text=prompts[0])


def _check_neutral(req: ChatCompletionRequest | CompletionRequest) -> None:
    if req.logit_bias:
        raise APIError(400, "logit_bias: not supported by this server", param="logit_bias")
    check_neutral_fields(req.extra_fields(), set(SamplingParams.model_fields) - _MAPPED)


def _strategy(
    req: ChatCompletionRequest | CompletionRequest, served: str, limits: Limits
) -> tuple[Strategy | None, int | None]:
    name, n = parse_model(req.model, served)
    ext = req.samplescale
    if ext is not None and ext.strategy is not None:
        if ext.strategy not in STRATEGIES:
            raise APIError(
                400,
                f"samplescale.strategy: unknown strategy {ext.strategy!r}; valid: "
                f"{', '.join(STRATEGIES.names())}",
                param="samplescale.strategy",
                code="unknown_strategy",
            )
        if name is not None and STRATEGIES.get(name) is not STRATEGIES.get(ext.strategy):
            raise APIError(
                400,
                f"samplescale.strategy: {ext.strategy!r} contradicts the model name's "
                f"strategy {name!r}",
                param="samplescale.strategy",
            )
        name = ext.strategy
    if ext is not None and ext.n is not None:
        if n is not None and n != ext.n:
            raise APIError(
                400,
                f"samplescale.n: {ext.n} contradicts the model name's @{n}",
                param="samplescale.n",
            )
        n = ext.n
    if name is None:
        if n is not None:
            raise APIError(400, "samplescale.n: needs a strategy", param="samplescale.n")
        if ext is not None and ext.options:
            raise APIError(
                400, "samplescale.options: needs a strategy", param="samplescale.options"
            )
        return None, None
    if req.n != 1:
        raise APIError(
            400,
            f"n: must be 1 with a strategy (choices[0] is the selected answer), got {req.n}; "
            "set the number of samples with '<strategy>@N/<model>' or samplescale.n",
            param="n",
        )
    n = DEFAULT_SAMPLES if n is None else n
    if n > limits.max_samples:
        field = "samplescale.n" if ext is not None and ext.n is not None else "model"
        raise APIError(
            400,
            f"{field}: {n} samples requested; valid range [1, {limits.max_samples}]",
            param=field,
        )
    options = ext.options if ext is not None else {}
    _check_option_counts(options, limits)
    try:
        strategy = get_strategy(name, **options)
    except (TypeError, ValueError, SamplescaleError) as exc:
        raise APIError(
            400, f"samplescale.options: invalid for {name!r}: {exc}", param="samplescale.options"
        ) from exc
    return strategy, n


def _check_option_counts(options: dict[str, Any], limits: Limits) -> None:
    """400 for an integer strategy option beyond this server's limit (see :class:`Limits`)."""
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        top = limits.max_request_tokens if key == "token_budget" else limits.max_option_count
        if value > top:
            field = f"samplescale.options.{key}"
            raise APIError(
                400,
                f"{field}: {value} is beyond this server's limit; valid range [1, {top}]",
                param=field,
            )


def plan(
    req: ChatCompletionRequest | CompletionRequest, served: str, limits: Limits
) -> Plan:
    """The plan of a validated request.

    Raises
    ------
    APIError
        400 naming the field for every invalid or contradictory value, 404 for an unknown
        model.
    """
    _check_neutral(req)
    strategy, n = _strategy(req, served, limits)
    if strategy is None and req.n > limits.max_samples:
        raise APIError(
            400, f"n: {req.n} choices requested; valid range [1, {limits.max_samples}]", param="n"
        )
    fields: dict[str, Any] = {
        k: v for k, v in req.extra_fields().items() if k in SamplingParams.model_fields
    }
    max_tokens = req.max_tokens
    if isinstance(req, ChatCompletionRequest) and req.max_completion_tokens is not None:
        if max_tokens is not None and max_tokens != req.max_completion_tokens:
            raise APIError(
                400,
                "max_completion_tokens: contradicts max_tokens; give one of them",
                param="max_completion_tokens",
            )
        max_tokens = req.max_completion_tokens
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    if req.stop is not None:
        fields["stop"] = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop)
    fields["seed"] = req.seed
    fields["n"] = req.n if n is None else n
    try:
        params = SamplingParams.model_validate(fields)
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    fmt = getattr(req, "response_format", None)
    constraint = None if fmt is None else structured.constraint_of(fmt)
    if constraint is not None:
        if params.constraint is not None:
            raise APIError(400, "constraint: give response_format or constraint, not both",
                           param="constraint")
        params = params.replace(constraint=constraint)
    elif params.constraint is not None:
        try:
            check_constraint(params.constraint)
        except SamplescaleError as exc:
            raise APIError(400, f"constraint: {exc}", param="constraint") from exc
    if strategy is not None and params.constraint is not None:
        strategy = structured.for_constraint(strategy, params.constraint)
    ext = req.samplescale
    budget = limits.max_request_tokens
    if params.max_tokens > budget:
        raise APIError(
            400,
            f"max_tokens: {params.max_tokens} is beyond this server's per-request limit; "
            f"valid range [1, {budget}]",
            param="max_tokens",
        )
    if ext is not None and ext.max_total_tokens is not None:
        budget = ext.max_total_tokens
        if not params.max_tokens <= budget <= limits.max_request_tokens:
            raise APIError(
                400,
                f"samplescale.max_total_tokens: {budget} is outside the valid range "
                f"[{params.max_tokens} (max_tokens: one sample must fit), "
                f"{limits.max_request_tokens} (this server's per-request limit)]",
                param="samplescale.max_total_tokens",
            )
    grounding = ext.grounding if ext is not None else None
    if params.kl_sigma is not None and grounding is None:
        raise APIError(
            400,
            "samplescale.grounding: kl_sigma (KL-guided temperature) needs the source "
            "document the answer is grounded in, as a string",
            param="samplescale.grounding",
        )
    prompt = _prompt(req).model_copy(update={"grounding": grounding})
    if strategy is not None:
        try:  # the checks of options against N (e.g. osca's allocation, esc's window)
            strategy.init(prompt, params)
        except SamplescaleError as exc:
            raise APIError(
                400, f"samplescale.options: invalid for {strategy.name!r} with N = "
                f"{params.n} samples: {exc}", param="samplescale.options"
            ) from exc
    return Plan(
        prompt=prompt,
        params=params,
        strategy=strategy,
        max_total_tokens=budget,
        candidates=True if ext is None else ext.candidates,
        token_ids=req.return_tokens_as_token_ids,
    )
