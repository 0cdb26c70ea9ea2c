"""The FastAPI application: OpenAI-compatible endpoints over any samplescale backend.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /health``, and on a backend that can tokenize (the embedded model) vLLM's
``GET /tokenizer_info``, ``POST /tokenize``, ``POST /detokenize``
(:mod:`samplescale.server.tokenizer`). Behaviour:

- Each request is validated (400 with an OpenAI error object naming the field), planned
  (:mod:`samplescale.server.routing`) and run in a worker thread, so that blocking
  backends (llama.cpp decodes concurrent requests in shared batch steps) never block the event loop; at most
  ``max_concurrency`` requests run at once and at most ``max_queue`` are admitted (running
  or waiting); a request beyond that gets 429 at once.
- Every request runs with its own frozen parameters, its own strategy object and its own
  token budget wrapper; nothing is shared between requests but the backend.
- Streaming (``stream: true``, chat and text completions of one prompt;
  :mod:`samplescale.server.streaming`) sends the start chunks at once (chat: the role),
  then the text, a finish chunk per choice, the usage and the ``samplescale`` field, and
  ``data: [DONE]``; SSE comments keep the connection alive while nothing else is sent. A plain request on a
  backend that streams (``capabilities.streaming``: the embedded model, the fake backends)
  is streamed live: each choice's text as it is decoded (chunks carry the choice index;
  text that could still start a stop string is held back until it is known not to). A
  strategy knows its answer only after its samples are drawn (and a plain request on a
  backend that does not stream, such as ``openai_http`` without ``stream=True``, only after
  the call returns), so there the text arrives after the work, in word-sized chunks. If the client disconnects,
  decoding stops at the next token, streamed or not, on a streaming backend (every model
  call is drawn through the stream and checked per token: :class:`execution.Watched`);
  elsewhere the run stops at its next model call (the server checks a waiting client
  every 0.25 s). A request that
  fails ends its
  stream with an OpenAI error object instead of the finish chunks (in a live stream,
  possibly after some text). With ``logprobs``, a choice's token logprobs arrive on its
  finish chunk (see :mod:`samplescale.server.chunks`).
- Log-probabilities: as drawn (:mod:`samplescale.server.logprobs`), or scored by the model
  for ``echo``, legacy ``logprobs: k > 0`` and chat ``top_logprobs: k > 0``
  (:mod:`samplescale.server.echo`; backends with logits only, plain requests only).
- With ``api_key`` set, ``/v1/*`` needs ``Authorization: Bearer <api_key>`` (401 otherwise).
- Every response carries ``X-Request-ID`` (the client's own when it sent one); the body's
  ``id`` is always fresh and unique; log lines name both.
- A backend with ``check_prompt(prompt, max_tokens)`` (the embedded model) has the prompt
  checked against its context before any work starts, so an over-long prompt is the same
  400 whether the request streams or not.
- A body must arrive within ``Limits.body_timeout_s`` (408 otherwise); a client that
  disconnects while sending it is one log line and a 499, never a traceback
  (:mod:`samplescale.server.intake`).
- Graceful shutdown is uvicorn's: it stops accepting connections and waits for the
  requests in flight (their worker threads are never abandoned).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from samplescale.backends.base import Backend, LogitsModel, TextDelta
from samplescale.errors import ConfigError
from samplescale.server import echo, responses, streaming
from samplescale.server.adaptive_budget import TokenRate
from samplescale.server.execution import ClientGone, execute
from samplescale.server.intake import Intake
from samplescale.server.logprobs import chat_logprobs, completion_logprobs
from samplescale.server.request_id import RequestIdMiddleware
from samplescale.server.routing import DEFAULT_SAMPLES, Limits, Plan, plan
from samplescale.server.schemas import APIError, ChatCompletionRequest, CompletionRequest
from samplescale.server.tokenizer import add_tokenizer_routes, can_tokenize
from samplescale.strategies import STRATEGIES

log = logging.getLogger("samplescale.server")
DISCONNECT_POLL_S = 0.25


def create_app(
    backend: Backend,
    model_id: str,
    *,
    api_key: str | None = None,
    max_queue: int = 64,
    max_concurrency: int = 4,
    limits: Limits | None = None,
    adaptive_budget: int | None = None,
) -> FastAPI:
    """Build the OpenAI-compatible application over ``backend``.

    Parameters
    ----------
    backend : Backend
        Any samplescale backend (thread-safe, as the protocol requires).
    model_id : str
        The served model id (``GET /v1/models``; the ``<model>`` of the model-name
        grammar in :mod:`samplescale.server.routing`).
    api_key : str, optional
        Require ``Authorization: Bearer <api_key>`` on ``/v1/*``; must not be empty
        (None turns authentication off).
    max_queue : int
        Requests admitted at once (running + waiting), in [1, 100000]; beyond it, 429.
    max_concurrency : int
        Requests run at once in worker threads, in [1, 1024].
    limits : Limits, optional
        Per-request caps (samples, tokens).
    adaptive_budget : int, optional
        Tokens per minute shared by the strategy requests: adaptive strategies get more
        rounds where votes are split, fewer where settled
        (:mod:`samplescale.server.adaptive_budget`); None: no shared budget.

    Raises
    ------
    ConfigError
        If an argument is out of range.
    """
    for name, value, hi in (("max_queue", max_queue, 100_000), ("max_concurrency", max_concurrency, 1024)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise ConfigError(f"{name} must be an integer in [1, {hi}], got {value!r}")
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise ConfigError(
            "api_key must be a non-empty str (None: no authentication); an empty key would "
            "accept an empty Bearer token"
        )
    if not model_id or model_id.partition("/")[0].partition("@")[0] in STRATEGIES:
        raise ConfigError(f"model_id {model_id!r} must be non-empty and not name a strategy")
    lim = limits or Limits()
    rate = None if adaptive_budget is None else TokenRate(adaptive_budget)
    app = FastAPI(title="samplescale", version="1", docs_url=None, redoc_url=None)
    state = {"admitted": 0, "running": 0}
    limiter = anyio.CapacityLimiter(max_concurrency)  # requests running at once
    threads = anyio.CapacityLimiter(max_concurrency)  # their worker threads
    piece = getattr(backend, "piece", None)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        rid = getattr(request.state, "request_id", "-")
        log.info("%s %s %d %s", rid, request.url.path, exc.status, exc.message)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = APIError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.exception_handler(ClientGone)
    async def _client_gone(request: Request, exc: ClientGone) -> Response:
        rid = getattr(request.state, "request_id", "-")
        log.info("%s %s the client left: %s", rid, request.url.path, exc)
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it

    app.add_middleware(RequestIdMiddleware)
    intake = Intake(lim, api_key)

    async def run(
        p: Plan, on_delta: Callable[[TextDelta], None] | None, gone: threading.Event
    ) -> responses.Outcome:
        try:
            async with limiter:
                if gone.is_set():  # the client left while the request queued
                    raise ClientGone("the client disconnected")
                state["running"] += 1
                try:
                    return await anyio.to_thread.run_sync(
                        execute, backend, p, on_delta, gone, rate, limiter=threads
                    )
                finally:
                    state["running"] -= 1
        finally:
            state["admitted"] -= 1

    def start(
        p: Plan, gone: threading.Event, on_delta: Callable[[TextDelta], None] | None = None
    ) -> asyncio.Task[responses.Outcome]:
        """Admit the request (429 when full) and start its run; the run task releases
        the admission when it ends, whatever happens to the connection."""
        if state["admitted"] >= max_queue:
            raise APIError(
                429,
                f"server busy: {state['admitted']} requests admitted (max_queue={max_queue}); "
                "retry later",
                code="queue_full",
            )
        state["admitted"] += 1
        task = asyncio.ensure_future(run(p, on_delta, gone))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    def scored_field(req: Any, chat: bool) -> str | None:
        """The field that asks for log-probabilities scored by the model, if any (``echo``
        without ``logprobs`` only puts the prompt before the text: any backend can)."""
        if chat:
            return "top_logprobs" if (req.top_logprobs or 0) > 0 else None
        if req.logprobs is None:
            return None
        return "echo" if req.echo else "logprobs" if req.logprobs > 0 else None

    async def checked_plan(req: Any, chat: bool) -> Plan:
        """Plan one request and refuse, before any work starts, what this backend cannot
        do (so a request gets one status whether it streams or not)."""
        p = plan(req, model_id, lim)
        scored = scored_field(req, chat)
        if chat and scored and not req.logprobs:
            raise APIError(400, "top_logprobs: needs logprobs: true", param="top_logprobs")
        if p.params.constraint is not None and not backend.capabilities.constraints:
            what = "response_format" if getattr(req, "response_format", None) else "constraint"
            raise APIError(400, f"{what}: {model_id!r} cannot constrain generation (its backend "
                           "has no token mask and passes none upstream)", param=what)
        check_budget = getattr(p.strategy, "check_budget", None)
        if check_budget is not None:
            try:
                check_budget(p.params.n)
            except ConfigError as exc:
                raise APIError(400, f"samplescale.options: invalid for {p.strategy.name!r} "  # type: ignore[union-attr]
                               f"with {p.params.n} samples: {exc}",
                               param="samplescale.options") from exc
        for feature in getattr(p.strategy, "requires", ()):
            if not getattr(backend.capabilities, feature):
                raise APIError(400, f"model: strategy {p.strategy.name!r} needs {feature} "  # type: ignore[union-attr]
                               f"(Capabilities.{feature}); {model_id!r} has none",
                               param="model")
        if not backend.capabilities.logits:
            for field, value in (("decoding", p.params.decoding),
                                 ("kl_sigma", p.params.kl_sigma),
                                 (scored, getattr(req, scored or "", None))):
                wanted = value not in (None, "independent")
                if field is not None and wanted:
                    raise APIError(
                        400, f"{field}: {value!r} needs a backend with next-token logits "
                        f"(the embedded model); {model_id!r} has none", param=field)
        if scored is not None:
            if p.strategy is not None:
                raise APIError(400, f"{scored}: scores the drawn tokens of plain requests; "
                               "not with a strategy", param=scored)
            if p.token_ids:
                raise APIError(400, f"{scored}: not with return_tokens_as_token_ids",
                               param=scored)
        check = getattr(backend, "check_prompt", None)
        if check is not None:
            try:
                await anyio.to_thread.run_sync(check, p.prompt, p.params.max_tokens)
            except ConfigError as exc:
                raise APIError(400, str(exc), param="messages" if chat else "prompt") from exc
        return p

    async def logprobs_of(
        req: Any, p: Plan, outcome: responses.Outcome, chat: bool
    ) -> list[dict[str, Any] | None] | None:
        """Each choice's ``logprobs`` object: scored by the model when asked
        (:func:`scored_field`), else as drawn; None when not asked."""
        if not req.wants_logprobs:
            return None
        if scored_field(req, chat) is not None:
            top = req.top_logprobs if chat else req.logprobs
            return await anyio.to_thread.run_sync(partial(
                echo.score_choices, cast(LogitsModel, backend), p.prompt, outcome.choices,
                top or 0, echo=not chat and req.echo, chat=chat,
            ), limiter=threads)
        if chat:
            return [chat_logprobs(s, piece, p.token_ids) for s in outcome.choices]
        end_name = getattr(backend, "token_name", None)
        return [completion_logprobs(s, piece, p.token_ids, end_name) for s in outcome.choices]

    async def finish(request: Request, task: asyncio.Task[responses.Outcome],
                     gone: threading.Event, rid: str) -> responses.Outcome:
        """The outcome of a non-streamed run; a client that leaves stops it at its next
        model call (ClientGone)."""
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and not gone.is_set() and await request.is_disconnected():
                gone.set()  # once: the run stops at its next token or wait
                log.info("%s the client disconnected; stopping the run", rid)
        return task.result()

    async def complete(request: Request, schema: type[Any]) -> Any:
        rid = request.state.request_id
        req = await intake.read(request, schema)
        created = int(time.time())
        chat = schema is ChatCompletionRequest
        if not chat and len(req.prompts) * req.n > lim.max_samples:
            raise APIError(
                400, f"prompt: {len(req.prompts)} prompts x n={req.n} choices is beyond this "
                f"server's limit of {lim.max_samples} choices per request (--max-samples)",
                param="prompt",
            )
        if req.stream and not chat and len(req.prompts) > 1:
            raise APIError(400, "stream: streams one prompt; send a list of prompts "
                           "unstreamed or one request per prompt", param="stream")
        subs = [req] if chat else [req.model_copy(update={"prompt": t}) for t in req.prompts]
        plans = [await checked_plan(r, chat) for r in subs]
        p = plans[0]
        live = (
            req.stream and p.strategy is None and backend.capabilities.streaming
            and p.params.decoding == "independent" and p.params.kl_sigma is None
        )  # the other decoders draw token by token outside the backend's streaming loop
        deltas: asyncio.Queue[TextDelta] | None = asyncio.Queue() if live else None
        gone = threading.Event()
        on_delta = None
        if deltas is not None:
            loop = asyncio.get_running_loop()
            queue = deltas

            def on_delta(d: TextDelta) -> None:  # runs in the worker thread
                if gone.is_set():
                    raise ClientGone(f"{rid}: the client disconnected")
                loop.call_soon_threadsafe(queue.put_nowait, d)

        if req.stream:
            task = start(p, gone, on_delta)
            log.info("%s plan strategy=%s n=%d budget=%d live=%s", rid,
                     getattr(p.strategy, "name", None), p.params.n, p.max_total_tokens, live)
            return StreamingResponse(
                streaming.stream(
                    task, kind="chat" if chat else "text",
                    n_choices=1 if p.strategy is not None else p.params.n,
                    request_id=rid, created=created, model=req.model,
                    include_usage=bool(req.stream_options and req.stream_options.include_usage),
                    candidates=p.candidates, deltas=deltas, gone=gone,
                    logprobs=partial(logprobs_of, req, p, chat=chat),
                    echo=req.prompts[0] if not chat and req.echo else None,
                ),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        bodies = []
        left = p.max_total_tokens  # one token budget for the whole request
        for i, (sub, p) in enumerate(zip(subs, plans)):
            if i and await request.is_disconnected():  # checked between prompts too
                log.info("%s the client disconnected before prompt %d", rid, i + 1)
                return Response(status_code=499)
            p = dataclasses.replace(p, max_total_tokens=left)
            log.info("%s plan %d/%d strategy=%s n=%d budget=%d", rid, i + 1, len(plans),
                     getattr(p.strategy, "name", None), p.params.n, p.max_total_tokens)
            try:
                outcome = await finish(request, start(p, gone), gone, rid)
            except ClientGone:
                return Response(status_code=499)  # "client closed request": nobody reads it
            left = max(0, left - outcome.budget["spent"])
            common = dict(request_id=rid, created=created, model=req.model,
                          candidates=p.candidates,
                          logprobs=await logprobs_of(sub, p, outcome, chat))
            if chat:
                bodies.append(responses.chat_body(outcome, **common))
            else:
                bodies.append(responses.completion_body(
                    outcome, **common, echo_prompt=sub.prompt if sub.echo else None))
        return Response(responses.encode(responses.merge_bodies(bodies, rid)),
                        media_type="application/json")

    if can_tokenize(backend):
        add_tokenizer_routes(app, backend, intake.read, intake.authorize, threads)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await complete(request, ChatCompletionRequest)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await complete(request, CompletionRequest)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        intake.authorize(request)
        ids = [model_id] + [  # greedy draws one sample: no @N
            f"{s}/{model_id}" if s == "greedy" else f"{s}@{DEFAULT_SAMPLES}/{model_id}"
            for s in STRATEGIES.names()
        ]
        return {
            "object": "list",
            "data": [{"id": i, "object": "model", "created": 0, "owned_by": "samplescale"}
                     for i in ids],
        }

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": model_id,
            "backend": getattr(backend, "name", type(backend).__name__),
            "admitted": state["admitted"],
            "running": state["running"],
            "max_queue": max_queue,
            "max_concurrency": max_concurrency,
        }

    return app
