"""The FastAPI application: OpenAI-compatible endpoints over any samplescale backend.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /health``. Behaviour:

- Each request is validated (400 with an OpenAI error object naming the field), planned
  (:mod:`samplescale.server.routing`) and run in a worker thread, so that blocking
  backends (llama.cpp holds a lock while it decodes) never block the event loop; at most
  ``max_concurrency`` requests run at once and at most ``max_queue`` are admitted (running
  or waiting); a request beyond that gets 429 at once.
- Every request runs with its own frozen parameters, its own strategy object and its own
  token budget wrapper; nothing is shared between requests but the backend.
- Streaming (``stream: true``) sends the role chunk at once, then the text, a finish
  chunk per choice, the usage and the ``samplescale`` field, and ``data: [DONE]``; SSE
  comments keep the connection alive while nothing else is sent. A plain request on a
  backend that streams (``capabilities.streaming``: the embedded model, the fake backends)
  is streamed live: each choice's text as it is decoded (chunks carry the choice index;
  text that could still start a stop string is held back until it is known not to). A
  strategy knows its answer only after its samples are drawn (and a plain request on a
  backend that does not stream, such as ``openai_http`` without ``stream=True``, only after
  the call returns), so there the text arrives after the work, in word-sized chunks. If the client disconnects
  during a live stream, decoding stops at the next token; a strategy (streamed or not) stops
  at its next model call (the server checks a waiting client every 0.25 s). A request that
  fails ends its
  stream with an OpenAI error object instead of the finish chunks (in a live stream,
  possibly after some text). With ``logprobs``, a choice's token logprobs arrive on its
  finish chunk (see ``responses.chat_chunks``).
- With ``api_key`` set, ``/v1/*`` needs ``Authorization: Bearer <api_key>`` (401 otherwise).
- Every response carries ``X-Request-ID``; log lines name it.
- Graceful shutdown is uvicorn's: it stops accepting connections and waits for the
  requests in flight (their worker threads are never abandoned).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from samplescale import decoders
from samplescale.backends.base import Backend, TextDelta, collect
from samplescale.backends.budget import BudgetSpent, TokenBudgetBackend
from samplescale.backends.openai_http import UpstreamError
from samplescale.errors import BackendError, ConfigError
from samplescale.server import responses
from samplescale.server.request_id import RequestIdMiddleware
from samplescale.server.routing import DEFAULT_SAMPLES, Limits, Plan, plan
from samplescale.server.schemas import (
    APIError,
    ChatCompletionRequest,
    CompletionRequest,
    from_validation_error,
)
from samplescale.strategies import STRATEGIES
from samplescale.verifiers.scorers import ScorerError

log = logging.getLogger("samplescale.server")
KEEPALIVE_S = 10.0
DISCONNECT_POLL_S = 0.25


class ClientGone(Exception):
    """The client disconnected; decoding stops."""


class Watched:
    """``backend`` whose model calls (``generate``, ``stream``, ``logits_at``) raise
    :class:`ClientGone` once ``gone`` is set, so a strategy whose client left stops at its
    next model call. Every other attribute, and whether one exists, is the backend's."""

    def __init__(self, backend: Backend, gone: threading.Event) -> None:
        self._backend = backend
        self._gone = gone

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name not in ("generate", "stream", "logits_at"):
            return attr

        def checked(*args: Any, **kwargs: Any) -> Any:
            if self._gone.is_set():
                raise ClientGone("the client disconnected")
            return attr(*args, **kwargs)

        return checked


def execute(
    backend: Backend,
    p: Plan,
    on_delta: Callable[[TextDelta], None] | None = None,
    gone: threading.Event | None = None,
) -> responses.Outcome:
    """Run one plan on ``backend`` (blocking; called in a worker thread).

    Parameters
    ----------
    on_delta : callable, optional
        For a plain request on a streaming backend: called with each text delta while the
        backend decodes (it raises :class:`ClientGone` to stop decoding).
    gone : threading.Event, optional
        Set when the client disconnects: the run stops at its next model call
        (:class:`ClientGone`).

    Raises
    ------
    APIError
        502 (upstream) / 500 when every sample failed; 400 when the backend refused the
        input (e.g. prompt + max_tokens beyond the context).
    """
    budgeted = TokenBudgetBackend(
        backend if gone is None else Watched(backend, gone), p.max_total_tokens
    )
    try:
        if p.strategy is None:
            if on_delta is None:
                gen = decoders.generate(budgeted, p.prompt, p.params)
            else:
                gen = collect(budgeted.stream(p.prompt, p.params), on_delta)
            samples, usage, result, chosen = gen.samples, gen.usage, None, gen.samples
        else:
            result = p.strategy.run(budgeted, p.prompt, p.params)
            samples, usage = result.samples, result.usage
            ok = [i for i, s in enumerate(samples) if s.status == "ok"]
            pick = result.selected if result.selected is not None else (ok[0] if ok else None)
            chosen = () if pick is None else (samples[pick],)
    except BudgetSpent as exc:
        raise APIError(400, str(exc), param="samplescale.max_total_tokens") from exc
    except ConfigError as exc:
        raise APIError(400, str(exc)) from exc
    except UpstreamError as exc:
        raise APIError(502, f"upstream error: {exc}", code="upstream_error") from exc
    except BackendError as exc:
        raise APIError(500, f"backend error: {exc}", code="backend_error") from exc
    except ScorerError as exc:
        raise APIError(500, f"scorer error: {exc}", code="scorer_error") from exc
    except ClientGone:
        raise
    except Exception as exc:  # a user strategy, scorer or extractor failed: still an API error
        log.exception("request failed")
        raise APIError(
            500, f"internal error: {type(exc).__name__}: {exc}", code="internal_error"
        ) from exc
    if budgeted.exhausted and budgeted.spent == 0:  # not one sample fitted: the client's values
        raise APIError(
            400,
            f"samplescale.max_total_tokens: a budget of {p.max_total_tokens} tokens cannot "
            f"pay for the prompt plus max_tokens ({p.params.max_tokens}) of one sample; "
            "raise samplescale.max_total_tokens (up to this server's limit) or lower max_tokens",
            param="samplescale.max_total_tokens",
        )
    if not chosen or any(s.status == "error" for s in chosen):
        errors = [s.error for s in samples if s.status == "error"]
        failed = len(errors)
        for rec in result.trace if result else ():  # scorer failures of searches
            if isinstance(rec.get("errors"), list):
                errors += [str(e) for e in rec["errors"]]
        what = "the request" if p.strategy is None else f"strategy {p.strategy.name!r}"
        last = f"; last trace record: {result.trace[-1]}" if result and result.trace else ""
        raise APIError(
            502,
            f"{what} produced no usable sample: {failed} of {len(samples)} samples "
            f"failed{'; first error: ' + str(errors[0]) if errors else ''}{last}",
            code="samples_failed",
        )
    budget = {
        "max_total_tokens": p.max_total_tokens,
        "spent": budgeted.spent,
        "exhausted": budgeted.exhausted,
        "samples_not_drawn": budgeted.not_drawn,
    }
    equivalent = getattr(p.strategy, "equivalent", None)
    return responses.Outcome(tuple(chosen), usage, result, equivalent, budget)


def _sse(obj: dict[str, Any] | str) -> bytes:
    data = obj.encode() if isinstance(obj, str) else responses.encode(obj)
    return b"data: " + data + b"\n\n"


def create_app(
    backend: Backend,
    model_id: str,
    *,
    api_key: str | None = None,
    max_queue: int = 64,
    max_concurrency: int = 4,
    limits: Limits | None = None,
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

    app.add_middleware(RequestIdMiddleware)

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), api_key):
            raise APIError(401, "invalid or missing API key (Authorization: Bearer <key>)",
                           code="invalid_api_key")

    async def body(request: Request) -> bytes:
        """The request body, refused with a 413 as soon as it passes ``max_body_bytes``
        (whatever Content-Length claims)."""
        too_large = APIError(
            413, f"body: larger than this server's limit of {lim.max_body_bytes} bytes",
            param="body",
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > lim.max_body_bytes:
            raise too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > lim.max_body_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def read(request: Request, schema: type[Any]) -> Any:
        authorize(request)
        raw = await body(request)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise APIError(400, f"body: malformed JSON: {exc}", param="body") from exc
        except RecursionError as exc:
            raise APIError(400, "body: JSON nested too deeply", param="body") from exc
        try:  # JSON escapes can spell lone UTF-16 surrogates, which are not text
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise APIError(
                400,
                f"body: a string holds a lone UTF-16 surrogate "
                f"({exc.object[exc.start:exc.end]!r}), which is not valid Unicode text",
                param="body",
            ) from exc
        if not isinstance(data, dict):
            raise APIError(400, "body: must be a JSON object", param="body")
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            raise from_validation_error(exc) from exc

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
                        execute, backend, p, on_delta, gone, limiter=threads
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

    async def stream(
        task: asyncio.Task[responses.Outcome], p: Plan, rid: str, created: int, model: str,
        include_usage: bool, logprobs: bool, deltas: asyncio.Queue[TextDelta] | None,
        gone: threading.Event,
    ) -> AsyncIterator[bytes]:
        """The SSE body. ``deltas`` (live streams) receives the text as it is decoded."""
        n_choices = 1 if p.strategy is not None else p.params.n
        try:
            yield _sse(responses.role_chunk(rid, created, model, n_choices))
            while not task.done():
                waiting: set[asyncio.Future[Any]] = {task}
                if deltas is not None:
                    waiting.add(asyncio.ensure_future(deltas.get()))
                done, _ = await asyncio.wait(
                    waiting, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED
                )
                for f in waiting - {task}:
                    if f in done:
                        d = f.result()
                        yield _sse(responses.delta_chunk(rid, created, model, d.index, d.text))
                    else:
                        f.cancel()
                if not done:
                    yield b": keep-alive\n\n"
            while deltas is not None and not deltas.empty():  # sent before the run ended
                d = deltas.get_nowait()
                yield _sse(responses.delta_chunk(rid, created, model, d.index, d.text))
            try:
                outcome = task.result()
            except APIError as exc:
                log.info("%s stream error %d %s", rid, exc.status, exc.message)
                yield _sse(exc.body())
                yield _sse("[DONE]")
                return
            for chunk in responses.chat_chunks(
                outcome, request_id=rid, created=created, model=model,
                include_usage=include_usage, candidates=p.candidates, content=deltas is None,
                logprobs=logprobs, piece=piece, token_ids=p.token_ids,
            ):
                yield _sse(chunk)
            yield _sse("[DONE]")
        finally:
            gone.set()  # the client left (or the stream ended): stop decoding

    async def complete(request: Request, schema: type[Any]) -> Any:
        rid = request.state.request_id
        req = await read(request, schema)
        p = plan(req, model_id, lim)
        created = int(time.time())
        chat = schema is ChatCompletionRequest
        if req.stream and not chat:
            raise APIError(400, "stream: streaming is supported on /v1/chat/completions only",
                           param="stream")
        if not backend.capabilities.logits:  # refused before any stream starts
            for field, wanted in (("decoding", p.params.decoding != "independent"),
                                  ("kl_sigma", p.params.kl_sigma is not None)):
                if wanted:
                    raise APIError(
                        400, f"{field}: {getattr(p.params, field)!r} needs a backend with "
                        f"next-token logits (the embedded model); {model_id!r} has none",
                        param=field)
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

        task = start(p, gone, on_delta)
        log.info("%s plan strategy=%s n=%d budget=%d live=%s", rid,
                 getattr(p.strategy, "name", None), p.params.n, p.max_total_tokens, live)
        if req.stream:
            include = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(
                stream(task, p, rid, created, req.model, include, req.wants_logprobs, deltas,
                       gone),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Request-ID": rid},
            )
        while not task.done():  # a client that leaves stops the run at its next model call
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and await request.is_disconnected():
                gone.set()
                log.info("%s the client disconnected; stopping the run", rid)
        try:
            outcome = task.result()
        except ClientGone:
            return Response(status_code=499)  # nginx's "client closed request": nobody reads it
        body = responses.chat_body if chat else responses.completion_body
        return Response(responses.encode(body(
            outcome, request_id=rid, created=created, model=req.model,
            logprobs=req.wants_logprobs, piece=piece,
            token_ids=p.token_ids, candidates=p.candidates,
        )), media_type="application/json")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await complete(request, ChatCompletionRequest)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await complete(request, CompletionRequest)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request)
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
