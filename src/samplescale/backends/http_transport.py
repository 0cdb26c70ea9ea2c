"""POSTs to one HTTP server from a private event-loop thread, bounded and retried.

One ``httpx.AsyncClient`` runs on an event loop in a daemon thread, started on first use,
so synchronous callers on many threads share its connection pool; at most
``max_in_flight`` requests are in flight at once. Connection errors, HTTP 429 and 5xx are
retried with exponential backoff (the server's ``Retry-After`` is honoured up to
``backoff_max_s``); a timeout or any other status raises
:class:`~samplescale.backends.openai_wire.UpstreamError` at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx

from samplescale.backends.openai_wire import UpstreamError, error_message, retry_after

T = TypeVar("T")


def _run_until_stopped(loop: asyncio.AbstractEventLoop) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()


class RetryingTransport:
    """The HTTP side of a backend: a client on its own event loop, with retries.

    Parameters
    ----------
    base_url : str
        The root every request path is joined to.
    headers : mapping of str to str
        Sent with every request.
    timeout : httpx.Timeout
        Connect / read / write / pool timeouts (seconds).
    max_in_flight : int
        Most requests in flight at once, over all callers.
    max_retries : int
        Retries after a retryable failure.
    backoff_s, backoff_max_s : float
        The ``k``-th retry waits ``min(backoff_max_s, backoff_s * 2**k)`` seconds.
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout: httpx.Timeout,
        max_in_flight: int,
        max_retries: int,
        backoff_s: float,
        backoff_max_s: float,
    ) -> None:
        self.base_url = base_url
        self.headers = headers
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None
        self._start_lock = threading.Lock()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the transport's event loop (started on first use).

        Parameters
        ----------
        coro : coroutine

        Returns
        -------
        concurrent.futures.Future
            Its result; ``cancel()`` cancels the coroutine.
        """
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=_run_until_stopped, args=(loop,), name="openai-http-loop", daemon=True
                ).start()
                limits = httpx.Limits(max_connections=self.max_in_flight)

                async def setup() -> None:
                    self._client = httpx.AsyncClient(
                        base_url=self.base_url,
                        headers=self.headers,
                        timeout=self.timeout,
                        limits=limits,
                    )
                    self._sem = asyncio.Semaphore(self.max_in_flight)

                asyncio.run_coroutine_threadsafe(setup(), loop).result()
                self._loop = loop
            return self._loop

    def close(self) -> None:
        """Cancel the requests still running (their callers get ``CancelledError``), close
        the connections and stop the event loop thread (idempotent)."""
        with self._start_lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        client = self._client

        async def shutdown() -> None:
            running = asyncio.all_tasks() - {asyncio.current_task()}
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            if client is not None:
                await client.aclose()
            await asyncio.get_running_loop().shutdown_asyncgens()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result()
        loop.call_soon_threadsafe(loop.stop)

    async def send(
        self, path: str, body: dict[str, Any], read: Callable[[httpx.Response], Awaitable[T]]
    ) -> T:
        """POST ``body`` as JSON with retries; ``read`` turns a successful (< 400) reply
        into the result (inside the request, so it may consume a stream).

        Parameters
        ----------
        path : str
            Joined to ``base_url`` (``"/chat/completions"``).
        body : dict
            The JSON body.
        read : async callable httpx.Response -> T
            Reads a reply with status < 400.

        Returns
        -------
        T
            What ``read`` returned.

        Raises
        ------
        UpstreamError
            On a timeout, a status that is not retried, or retries used up. Connection
            errors are retried also while ``read`` reads the body (a non-streamed reply);
            ``read`` itself raises ``UpstreamError`` for what it must not retry (a stream
            that broke off after handing out text).
        """
        assert self._client is not None and self._sem is not None
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            wait = min(self.backoff_max_s, self.backoff_s * 2**attempt)
            try:
                async with self._sem, self._client.stream("POST", path, json=body) as r:
                    if r.status_code < 400:
                        return await read(r)
                    await r.aread()
            except (httpx.ConnectTimeout, httpx.PoolTimeout, httpx.NetworkError) as exc:
                error = UpstreamError(
                    f"{url}: {type(exc).__name__}: {exc}", retryable=True
                )
            except httpx.TimeoutException as exc:
                raise UpstreamError(
                    f"{url}: no response within {self.timeout.read} s ({type(exc).__name__})"
                ) from exc
            except httpx.RemoteProtocolError as exc:
                error = UpstreamError(f"{url}: connection dropped: {exc}", retryable=True)
            except httpx.DecodingError as exc:
                raise UpstreamError(f"{url}: the reply could not be decoded: {exc}") from exc
            else:
                error = UpstreamError(
                    f"{url} answered HTTP {r.status_code}: {error_message(r)}",
                    r.status_code,
                    retryable=r.status_code == 429 or r.status_code >= 500,
                )
                if not error.retryable:
                    raise error
                wait = retry_after(r, wait, self.backoff_max_s)
            if attempt == self.max_retries:
                break
            await asyncio.sleep(wait)
        raise UpstreamError(
            f"{error} (gave up after {self.max_retries + 1} attempts)",
            error.status_code,
            retryable=True,
        )

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries; the reply's JSON object.

        Parameters
        ----------
        path : str
        body : dict

        Returns
        -------
        dict
            The parsed reply.

        Raises
        ------
        UpstreamError
            As :meth:`send`; also when the reply is not a JSON object.
        """
        url = self.base_url + path

        async def read(r: httpx.Response) -> dict[str, Any]:
            await r.aread()
            try:
                data = r.json()
            except ValueError as exc:
                raise UpstreamError(
                    f"{url}: reply is not JSON ({r.text[:200]!r})", r.status_code
                ) from exc
            if not isinstance(data, dict):
                raise UpstreamError(f"{url}: reply is not a JSON object", r.status_code)
            return data

        return await self.send(path, body, read)


async def all_or_none(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """The results of ``coros`` run concurrently; when one raises, the others are
    cancelled (their requests closed) before the error propagates."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
