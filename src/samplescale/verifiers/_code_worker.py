"""The code-sandbox supervisor: a worker of the pool that runs each program sandboxed.

Started by :mod:`samplescale.verifiers._workers` (kind ``code-sandbox``) as
``python -m samplescale.verifiers._code_worker``; it speaks the protocol of
:mod:`samplescale.verifiers._verify_worker` (same plumbing: private protocol streams,
exit when orphaned, the parent's ``sys.path``):

* worker -> parent, once: ``{"ready": true, "pid": 123, "namespaces": bool}``;
* parent -> worker: ``{"id": 7, "program": str, "test": str, "timeout": float,
  "limits": {...}}`` (the fields of :class:`samplescale.verifiers.sandbox.SandboxLimits`);
* worker -> parent: ``{"id": 7, "result": {...}}`` (see
  :func:`samplescale.verifiers.sandbox.run_sandboxed`) or ``{"id": 7, "error": "..."}``.

The supervisor itself runs no untrusted code: each program runs in a fresh sandboxed
process that the supervisor starts, times and kills.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from samplescale.verifiers._verify_worker import (
    _adopt_parent_sys_path,
    _exit_when_orphaned,
    _private_streams,
    _send,
    serve,
)


def handle_line(line: bytes) -> dict[str, Any]:
    """The reply to one request line; an exception becomes an ``error`` reply."""
    from samplescale.verifiers.sandbox import run_sandboxed

    request_id = None
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise TypeError(f"a request must be a JSON object, got {type(request).__name__}")
        request_id = request.get("id")
        result = run_sandboxed(
            str(request["program"]),
            str(request["test"]),
            float(request["timeout"]),
            dict(request.get("limits") or {}),
        )
        return {"id": request_id, "result": result}
    except Exception as exc:
        return {"id": request_id, "error": f"{type(exc).__name__}: {exc}"[:2000]}


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_in, proto_out = _private_streams()
    if os.name == "posix":
        _exit_when_orphaned()
    _adopt_parent_sys_path()
    try:
        from samplescale.verifiers.sandbox import namespaces_available

        namespaces = namespaces_available()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        _send(proto_out, {"ready": False, "missing": isinstance(exc, ImportError), "error": error})
        return 1
    ready = {"ready": True, "pid": os.getpid(), "namespaces": namespaces}
    return serve(proto_in, proto_out, handle_line, ready)


if __name__ == "__main__":
    sys.exit(main())
