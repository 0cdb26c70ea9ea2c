"""Helpers for the server tests: uvicorn in a thread on a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn


@contextlib.contextmanager
def serve(app, timeout_s: float = 10.0) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) in a thread; yield its ``/v1`` base URL.

    On exit the server shuts down gracefully (requests in flight finish first).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()


def run_load(
    url: str, clients: int, per_client: int, body, timeout_s: float = 120.0,
    path: str = "/chat/completions",
):
    """``clients`` concurrent clients, each sending ``per_client`` requests in turn to ``path``.

    ``body(c, k)`` gives the JSON body of client ``c``'s ``k``-th request. Every request
    carries a unique ``X-Request-ID`` (``c<c>-r<k>``). The loop is bounded in count and
    in time (``timeout_s`` per request). Returns one record per request:
    ``(request_id, status, latency_s, json_body)``.
    """
    import asyncio

    import httpx

    async def client(c: int, http: httpx.AsyncClient, out: list) -> None:
        for k in range(per_client):
            rid = f"c{c}-r{k}"
            start = time.perf_counter()
            r = await http.post(
                url + path, json=body(c, k), headers={"X-Request-ID": rid}
            )
            assert r.headers["x-request-id"] == rid  # the client's id comes back
            out.append((rid, r.status_code, time.perf_counter() - start, r.json()))

    async def main() -> list:
        out: list = []
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as http:
            await asyncio.gather(*(client(c, http, out) for c in range(clients)))
        return out

    return asyncio.run(main())


def percentile(values, q: float) -> float:
    """The ``q``-quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, -(-int(q * len(ordered) * 1000) // 1000))  # ceil(q * n), at least 1
    return ordered[min(len(ordered), rank) - 1]


def in_threads(fn, args: list, timeout_s: float = 300.0) -> list:
    """``[fn(a) for a in args]``, each call in its own thread, all started at once."""
    out: list = [None] * len(args)

    def call(i: int) -> None:
        out[i] = fn(args[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return out
