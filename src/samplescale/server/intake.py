"""Request intake: authentication, the body read under size and time limits, JSON parsing
and schema validation, each failure an OpenAI error object naming the field."""

from __future__ import annotations

import json
import secrets
from typing import Any

import anyio
from fastapi import Request
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from samplescale.server.execution import ClientGone
from samplescale.server.routing import Limits
from samplescale.server.schemas import APIError, from_validation_error


class Intake:
    """Reads requests for one application.

    Parameters
    ----------
    limits : Limits
        ``max_body_bytes`` (413 beyond it, whatever Content-Length claims) and
        ``body_timeout_s`` (408 when the body has not arrived in time).
    api_key : str or None
        The Bearer token ``/v1/*`` needs (None: no authentication).
    """

    def __init__(self, limits: Limits, api_key: str | None) -> None:
        self.limits = limits
        self.api_key = api_key

    def authorize(self, request: Request) -> None:
        """Raise a 401 :class:`APIError` unless the request carries the API key."""
        if self.api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), self.api_key):
            raise APIError(401, "invalid or missing API key (Authorization: Bearer <key>)",
                           code="invalid_api_key")

    async def body(self, request: Request) -> bytes:
        """The request body; 413 as soon as it passes ``max_body_bytes``, 408 when it has
        not arrived within ``body_timeout_s``, :class:`ClientGone` when the client
        disconnects while sending it."""
        lim = self.limits
        too_large = APIError(
            413, f"body: larger than this server's limit of {lim.max_body_bytes} bytes",
            param="body",
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > lim.max_body_bytes:
            raise too_large
        chunks, size = [], 0
        try:
            with anyio.fail_after(lim.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > lim.max_body_bytes:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise APIError(
                408, f"body: not received within {lim.body_timeout_s:g} s "
                f"({size} bytes arrived)", param="body", code="body_timeout",
            ) from exc
        except ClientDisconnect as exc:
            raise ClientGone(f"the client disconnected after sending {size} bytes") from exc
        return b"".join(chunks)

    async def read(self, request: Request, schema: type[Any]) -> Any:
        """Authorize, read and validate a body against ``schema`` (a pydantic model);
        400 naming the field on malformed or invalid input."""
        self.authorize(request)
        raw = await self.body(request)
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
