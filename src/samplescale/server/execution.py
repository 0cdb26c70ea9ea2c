"""Running one planned request on a backend (blocking; the app calls it in a worker
thread): the token budget, stopping when the client leaves, and errors as API errors."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from samplescale import decoders
from samplescale.backends.base import Backend, TextDelta, collect
from samplescale.backends.budget import BudgetSpent, TokenBudgetBackend
from samplescale.backends.openai_http import UpstreamError
from samplescale.errors import BackendError, ConfigError
from samplescale.server import responses
from samplescale.server.adaptive_budget import RateGated, TokenRate
from samplescale.server.routing import Plan
from samplescale.server.schemas import APIError
from samplescale.types import Sample
from samplescale.verifiers.scorers import ScorerError

log = logging.getLogger("samplescale.server")


_END = object()


class ClientGone(Exception):
    """The client disconnected; decoding stops."""


class Watched:
    """``backend`` whose model calls (``generate``, ``stream``, ``logits_at``) raise
    :class:`ClientGone` once ``gone`` is set, so a run whose client left stops at its next
    model call (``generate_first`` included). On a streaming backend ``generate`` is drawn through ``stream`` and checked
    at every decoded token, so even one long call (a plain request, a strategy's pool)
    stops at the next token. On a backend with ``abort_when`` (the embedded model) a call
    that waits for room or for its turn is checked while it waits too, and its prompt is
    not decoded once the client is gone. Every other attribute, and whether one exists,
    is the backend's."""

    def __init__(self, backend: Backend, gone: threading.Event) -> None:
        self._backend = backend
        self._gone = gone

    def _check(self, _: Any = None) -> None:
        if self._gone.is_set():
            raise ClientGone("the client disconnected")

    def _watching(self) -> contextlib.AbstractContextManager[Any]:
        abort_when = getattr(self._backend, "abort_when", None)
        return contextlib.nullcontext() if abort_when is None else abort_when(self._check)

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self._check()
        events = self._backend.stream(*args, **kwargs)  # type: ignore[attr-defined]
        with contextlib.closing(events):
            while True:
                with self._watching():  # only while the backend runs in this thread
                    ev = next(events, _END)
                if ev is _END:
                    return
                self._check()
                yield ev

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name not in ("generate", "stream", "logits_at", "generate_first"):
            return attr
        if name == "stream":
            return self._stream
        if name == "generate" and self._backend.capabilities.streaming:
            return lambda *args, **kwargs: collect(self._stream(*args, **kwargs))

        def checked(*args: Any, **kwargs: Any) -> Any:
            self._check()
            with self._watching():
                return attr(*args, **kwargs)

        return checked


def execute(
    backend: Backend,
    p: Plan,
    on_delta: Callable[[TextDelta], None] | None = None,
    gone: threading.Event | None = None,
    rate: TokenRate | None = None,
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
    rate : TokenRate, optional
        The server-wide token rate a strategy request is charged to and, when adaptive,
        gated by (:mod:`samplescale.server.adaptive_budget`).

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
            strategy = p.strategy if rate is None else RateGated(inner=p.strategy, rate=rate)
            result = strategy.run(budgeted, p.prompt, p.params)
            samples, usage = result.samples, result.usage
            if result.selected is None and result.answer is not None:
                # an answer that is no one sample's (thinksum's items): the choice says it
                chosen = (Sample(text=str(result.answer), finish_reason="stop"),)
            else:
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
    failed_plain = p.strategy is None and any(s.status == "error" for s in samples)
    if failed_plain and budgeted.exhausted:  # the n choices asked for: not all paid for
        paid = sum(s.status == "ok" for s in samples)
        raise APIError(
            400,
            f"samplescale.max_total_tokens: a budget of {p.max_total_tokens} tokens paid for "
            f"{paid} of the {len(samples)} choices asked for (n); raise "
            "samplescale.max_total_tokens (up to this server's limit) or lower n or max_tokens",
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
