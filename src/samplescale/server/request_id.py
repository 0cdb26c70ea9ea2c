"""Request ids: every request gets one (the client's ``X-Request-ID`` when it is a safe
token, else a fresh one); it is in ``request.state.request_id``, in the response's
``X-Request-ID`` header and in the log line of the request.

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
        rid = given if SAFE_ID.match(given) else uuid.uuid4().hex[:24]
        scope.setdefault("state", {})["request_id"] = rid
        start = time.perf_counter()
        status = 500  # unless a response starts

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "%s %s %s -> %d (%.3f s)",
                rid, scope["method"], scope["path"], status, time.perf_counter() - start,
            )
