"""Request ids: every request gets a fresh, unique one (``request.state.request_id``): it
names the request in the log lines and in the response body's ``id``. The response's
``X-Request-ID`` header returns the client's own ``X-Request-ID`` when it sent a safe token
(kept in ``request.state.client_request_id`` and logged beside the server's id), else the
server's id. Two clients sending the same ``X-Request-ID`` thus never share a response id.

A pure ASGI middleware, not Starlette's ``BaseHTTPMiddleware``: that one hides the client's
disconnect from the endpoint (``request.is_disconnected()`` stays false), and the server
needs it to stop the runs of clients that left.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders

log = logging.getLogger("samplescale.server")
SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """ASGI middleware that assigns, returns and logs request ids (see the module)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1")
        rid = uuid.uuid4().hex[:24]
        client = given if SAFE_ID.match(given) else None
        scope.setdefault("state", {}).update(request_id=rid, client_request_id=client)
        header = client or rid
        start = time.perf_counter()
        status = 500  # unless a response starts

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = header
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s%s %s %s -> %d (%.3f s)",
                rid, f" (client id {client})" if client else "", scope["method"], scope["path"],
                status, time.perf_counter() - start,
            )
