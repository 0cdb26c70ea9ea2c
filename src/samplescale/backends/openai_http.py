"""A backend for any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, hosted APIs).

Requests go out through one async ``httpx`` client running on a private event loop thread
(:mod:`samplescale.backends.http_transport`), with at most ``max_in_flight`` requests in
flight; ``generate`` is synchronous and safe to call from many threads at once (each call
waits for its own requests only).

``n`` samples: the backend asks for ``n`` choices in one request when the server honours
``n``; a server that returns fewer choices than asked (llama-cpp-python's server ignores
``n``) is detected on the first such reply, the missing samples are drawn as parallel
single-choice requests, and every later call goes straight to single requests. Each single
request gets its own seed, drawn from the sample's own random stream
(:func:`samplescale.rng.sample_generators`), so the samples are never copies of one seed
and a fixed ``params.seed`` reproduces them on servers that honour ``seed``.

Failures: connection errors, HTTP 429 and 5xx are retried with exponential backoff (the
server's ``Retry-After`` is honoured up to ``backoff_max_s``); anything else raises
:class:`UpstreamError` at once. A sample whose request still fails after the retries
becomes an explicit error sample (``Sample(status="error")``) when other samples of the
call succeeded, and the call raises when every sample failed. An error is never turned into
sample text.

Log-probabilities: the server's per-token values fill ``Sample.logprobs`` (or
``sampling_logprobs``, see ``reported_logprobs``), with the token strings in
``Sample.token_texts`` when the server reports no token ids (llama-cpp-python's server),
so best-of-N and weighted voting score samples over HTTP.

Streaming is opt-in (``stream=True``): ``stream`` and ``generate_first`` come from
the base class :class:`~samplescale.backends.openai_streaming.OpenAIStreaming`, whose module
docstring says which servers can stream (they must report usage in streams).
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping
from typing import Any, Literal

import httpx
import numpy as np

from samplescale.backends.base import Capabilities
from samplescale.backends.http_transport import RetryingTransport, all_or_none
from samplescale.backends.openai_request import DEFAULT_EXTRA_FIELDS, request_body, request_seeds
from samplescale.backends.openai_stream import Emit
from samplescale.backends.openai_streaming import OpenAIStreaming
from samplescale.backends.openai_wire import (
    LogprobsField,
    UpstreamError,
    parse_reply,
)
from samplescale.config import SamplingParams
from samplescale.errors import ConfigError
from samplescale.types import Generation, Prompt, Sample, Usage

__all__ = ["OpenAIHTTPBackend", "UpstreamError"]


def _check(name: str, value: Any, lo: float, hi: float, kind: type = int) -> None:
    ok = isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if not ok or not lo <= value <= hi or (kind is float and not math.isfinite(value)):
        raise ConfigError(f"{name} must be a {kind.__name__} in [{lo}, {hi}], got {value!r}")


class OpenAIHTTPBackend(OpenAIStreaming):
    """Samples from an OpenAI-compatible HTTP server.

    Chat prompts (``Prompt.messages``) go to ``/chat/completions``, text prompts to
    ``/completions``. Sampling fields: ``temperature`` and ``top_p`` always;
    ``max_tokens``, ``stop``, ``seed``, ``n`` by their OpenAI names; ``presence_penalty``,
    ``frequency_penalty`` and the fields in ``extra_fields`` when they differ from the
    ``SamplingParams`` default (or always, with ``send_defaults``). Any other
    ``SamplingParams`` field with a non-default value raises ``ConfigError`` instead of
    being dropped, because the server would not apply it.

    Parameters
    ----------
    base_url : str
        The API root, e.g. ``http://127.0.0.1:8080/v1``.
    model : str
        The ``model`` field of every request.
    api_key : str, optional
        Sent as ``Authorization: Bearer <api_key>``.
    max_in_flight : int
        Most HTTP requests in flight at once over all calls, in [1, 1024].
    timeout_s : float
        Seconds to wait for a response (read, write, pool), in (0, 86400]. A timeout is
        not retried (the generation may still be running upstream).
    connect_timeout_s : float
        Seconds to wait for a connection, in (0, 3600].
    max_retries : int
        Retries after a retryable failure (connection error, 429, 5xx), in [0, 100].
    backoff_s, backoff_max_s : float
        The ``k``-th retry waits ``min(backoff_max_s, backoff_s * 2**k)`` seconds (or the
        server's ``Retry-After``, capped at ``backoff_max_s``).
    n_mode : {"auto", "native", "split"}
        ``auto``: ask for ``n`` choices and fall back to single requests when the server
        returns fewer; ``native``: fewer choices than asked raises ``UpstreamError``;
        ``split``: always one request per sample.
    logprobs : bool
        Ask for per-token log-probabilities (natural log; chat requests send
        ``logprobs: true, top_logprobs: 0``, text requests ``logprobs: 0``). They fill the
        Sample field named by ``reported_logprobs``, with the tokens they belong to in
        ``Sample.token_ids`` (see ``token_ids``) or else ``Sample.token_texts`` (the token
        strings the server reports). The other log-probability field stays empty: a server
        reports one distribution only, and it is never guessed.
    reported_logprobs : {"logprobs", "sampling_logprobs"}
        Which distribution the server's log-probabilities come from. ``"logprobs"``
        (default): the model's raw next-token distribution, as llama-cpp-python's server,
        vLLM (default ``--logprobs-mode raw_logprobs``) and samplescale's own server report
        it; best-of-N and weighted voting then score by it. ``"sampling_logprobs"``: the
        distribution after the sampling transforms (vLLM ``--logprobs-mode
        processed_logprobs``).
    token_ids : bool
        Ask the server to report tokens as ``"token_id:<id>"`` (vLLM's and samplescale's
        ``return_tokens_as_token_ids``), which fills ``Sample.token_ids`` (servers that
        ignore it leave ``Sample.token_texts``).
    send_defaults : bool
        Send ``extra_fields`` and the optional OpenAI fields even at their default values,
        so that a server with other defaults (llama-cpp-python: ``top_k=40``,
        ``min_p=0.05``) samples as the parameters say. Off by default because some servers
        (the OpenAI API itself) reject fields they do not know.
    extra_fields : collection of str
        ``SamplingParams`` fields the server understands under the same name beyond the
        OpenAI ones (default ``top_k``, ``min_p``, ``typical_p``, which vLLM, SGLang and
        llama.cpp servers accept).
    extra_body : mapping, optional
        Extra JSON fields merged into every request body (e.g. ``{"repeat_penalty": 1.0}``).
    stream : bool
        Offer :meth:`stream` (``capabilities.streaming``): text as the server sends it. Only
        for servers that report usage in streams (see
        :mod:`samplescale.backends.openai_streaming`).

    Raises
    ------
    ConfigError
        If an argument is outside its range.
    """

    name = "openai-http"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_in_flight: int = 8,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        n_mode: Literal["auto", "native", "split"] = "auto",
        logprobs: bool = True,
        reported_logprobs: LogprobsField = "logprobs",
        token_ids: bool = False,
        send_defaults: bool = False,
        extra_fields: Collection[str] = DEFAULT_EXTRA_FIELDS,
        extra_body: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not isinstance(model, str) or not model:
            raise ConfigError("model must be a non-empty string")
        _check("max_in_flight", max_in_flight, 1, 1024)
        _check("timeout_s", timeout_s, 1e-3, 86400.0, float)
        _check("connect_timeout_s", connect_timeout_s, 1e-3, 3600.0, float)
        _check("max_retries", max_retries, 0, 100)
        _check("backoff_s", backoff_s, 0.0, 3600.0, float)
        _check("backoff_max_s", backoff_max_s, 0.0, 3600.0, float)
        if n_mode not in ("auto", "native", "split"):
            raise ConfigError(f"n_mode must be 'auto', 'native' or 'split', got {n_mode!r}")
        if reported_logprobs not in ("logprobs", "sampling_logprobs"):
            raise ConfigError(
                "reported_logprobs must be 'logprobs' or 'sampling_logprobs', "
                f"got {reported_logprobs!r}"
            )
        if not isinstance(stream, bool):
            raise ConfigError(f"stream must be True or False, got {stream!r}")
        unknown = sorted(set(extra_fields) - set(SamplingParams.model_fields))
        if unknown:
            raise ConfigError(f"extra_fields {unknown} are not SamplingParams fields")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_in_flight = max_in_flight
        self.n_mode = n_mode
        self.logprobs = logprobs
        self.reported_logprobs: LogprobsField = reported_logprobs
        self.token_ids = token_ids
        self.send_defaults = send_defaults
        self.extra_fields = tuple(extra_fields)
        self.extra_body = dict(extra_body or {})
        self._transport = RetryingTransport(
            self.base_url,
            {"Authorization": f"Bearer {api_key}"} if api_key else {},
            httpx.Timeout(timeout_s, connect=connect_timeout_s),
            max_in_flight, max_retries, float(backoff_s), float(backoff_max_s),
        )
        self._native_n = n_mode != "split"
        self.capabilities = Capabilities(
            logits=False, seeds=True, parallel_n=self._native_n, chat=True, streaming=stream,
            logprobs=logprobs, prefix=False, constraints=True, early_exit=stream,
        )

    def close(self) -> None:
        """Close the connections and stop the event loop thread (idempotent)."""
        self._transport.close()

    def __enter__(self) -> OpenAIHTTPBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- requests
    def check_params(self, params: SamplingParams) -> None:
        """Raise ``ConfigError`` if ``params`` sets a field this server is not known to
        apply (the check :meth:`request_body` makes, before any request)."""
        self.request_body(Prompt(text="."), params)

    def request_body(self, prompt: Prompt, params: SamplingParams) -> dict[str, Any]:
        """The JSON body for ``prompt`` and ``params`` (without ``n`` and ``seed``; see
        :func:`samplescale.backends.openai_request.request_body`).

        Raises
        ------
        ConfigError
            If ``params`` sets a field this server is not known to apply, or the prompt
            continues a chat reply (``Prompt.prefix`` with messages), which the OpenAI chat
            API cannot express.
        """
        return request_body(
            prompt, params, model=self.model, base_url=self.base_url,
            extra_fields=self.extra_fields, send_defaults=self.send_defaults,
            logprobs=self.logprobs, token_ids=self.token_ids, extra_body=self.extra_body,
        )

    async def _request(
        self, prompt: Prompt, body: dict[str, Any], n: int, seed: int | None,
        offset: int = 0, emit: Emit | None = None,
    ) -> tuple[list[Sample], Usage]:
        """One request for ``n`` choices; streamed to ``emit`` (as samples ``offset``,
        ``offset + 1``, ...) when given."""
        chat = prompt.messages is not None
        req = dict(body)
        if n > 1:
            req["n"] = n
        if seed is not None:
            req["seed"] = seed
        path = "/chat/completions" if chat else "/completions"
        if emit is None:
            data = await self._transport.post_json(path, req)
        else:
            data = await self._post_stream(path, req, chat, n, offset, emit)
        return parse_reply(data, chat, self.token_ids, self.base_url, self.reported_logprobs)

    async def _single(
        self, prompt: Prompt, body: dict[str, Any], seed: int, index: int, emit: Emit | None
    ) -> tuple[Sample, Usage] | UpstreamError:
        try:
            samples, usage = await self._request(prompt, body, 1, seed, index, emit)
        except UpstreamError as exc:
            if exc.retryable:
                return exc
            raise
        if len(samples) != 1:
            raise UpstreamError(f"{self.base_url}: asked for 1 choice, got {len(samples)}")
        return samples[0], usage

    async def _agenerate(
        self, prompt: Prompt, params: SamplingParams, seeds: list[int], emit: Emit | None = None
    ) -> Generation:
        start = time.perf_counter()
        body = self.request_body(prompt, params)
        n = params.n
        samples: list[Sample] = []
        usage = Usage()
        if self._native_n and n > 1:
            got, usage = await self._request(prompt, body, n, seeds[0], 0, emit)
            if len(got) > n:
                raise UpstreamError(f"{self.base_url}: asked for {n} choices, got {len(got)}")
            if len(got) < n:
                if self.n_mode == "native":
                    raise UpstreamError(
                        f"{self.base_url} returned {len(got)} choices for n={n} "
                        "(it ignores n; use n_mode='auto' or 'split')"
                    )
                self._native_n = False
                self.capabilities = self.capabilities.model_copy(update={"parallel_n": False})
            samples = list(got)
        first_error: UpstreamError | None = None
        if len(samples) < n:
            outs = await all_or_none(
                [self._single(prompt, body, seeds[i], i, emit) for i in range(len(samples), n)]
            )
            for out in outs:
                if isinstance(out, UpstreamError):
                    first_error = first_error or out
                    samples.append(Sample.failed(str(out)))
                else:
                    samples.append(out[0])
                    usage = usage + out[1]
        if first_error is not None and all(s.status == "error" for s in samples):
            raise first_error
        usage = usage.model_copy(update={"wall_time_s": time.perf_counter() - start})
        return Generation(samples=tuple(samples), usage=usage)

    def generate(
        self, prompt: Prompt, params: SamplingParams, rng: np.random.Generator | None = None
    ) -> Generation:
        """Draw ``params.n`` samples from the server (see the module docstring).

        Parameters
        ----------
        prompt : Prompt
        params : SamplingParams
        rng : numpy.random.Generator, optional
            Source of the per-request seeds when ``params.seed`` is None.

        Returns
        -------
        Generation
            ``params.n`` samples in order; usage summed over the HTTP requests that
            answered (``model_calls`` counts them), as the server reported it.

        Raises
        ------
        ConfigError
            If ``params`` or ``prompt`` cannot be expressed to the server (see
            :meth:`request_body`).
        UpstreamError
            If the server refuses the request (4xx other than 429), times out, returns a
            malformed reply, or every sample failed after the retries.
        """
        self.request_body(prompt, params)  # validate before any I/O
        return self._transport.submit(self._agenerate(prompt, params, request_seeds(params, rng))).result()
