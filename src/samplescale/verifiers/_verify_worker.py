"""The math-verify worker process of :mod:`samplescale.verifiers.math`.

This is the child side of the worker pool in :mod:`samplescale.verifiers._workers`.
Started by the parent as ``python -m samplescale.verifiers._verify_worker`` (never
through :mod:`multiprocessing`, so the user's ``__main__`` is never re-imported). The
protocol is one JSON object per line, ASCII only:

* worker -> parent, once at start-up: ``{"ready": true, "pid": 123}``, or
  ``{"ready": false, "missing": true|false, "error": "..."}`` if math-verify cannot be
  imported (``missing`` is true for an ``ImportError``), after which the worker exits;
* parent -> worker, per request: ``{"id": 7, "pairs": [["gold", "pred"], ...]}``;
* worker -> parent, per request: ``{"id": 7, "result": true}``, or
  ``{"id": 7, "error": "..."}`` if the request was malformed or verification raised
  (the parent reads that as "not equivalent"). The worker survives bad input.

The worker exits at end of input (the parent closed the pipe or died). It has no time
limit of its own: the parent kills it when a request runs too long. Output written by
math-verify or sympy cannot corrupt the protocol: the protocol uses private copies of
the standard streams, and file descriptors 0 and 1 point to ``/dev/null``; after a
successful start-up fd 2 does too, so nothing reaches the user's terminal.

The parent may pass its ``sys.path`` in the environment variable
:data:`SYS_PATH_ENV` (a JSON list), so the worker finds the same packages as the parent
(as ``multiprocessing``'s ``spawn`` does).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, BinaryIO

#: Environment variable carrying the parent's ``sys.path`` (a JSON list of strings).
SYS_PATH_ENV = "SAMPLESCALE_VERIFY_SYS_PATH"

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Verification (the worker's job)
# --------------------------------------------------------------------------------------


def verify_pairs(pairs: Any) -> bool:
    """True if any ``(a, b)`` pair of LaTeX answers denotes the same math object.

    Each pair is compared by :func:`samplescale.verifiers._compare.equivalent`
    (math-verify's parser and comparison, symmetric, no absolute tolerance). Raises
    ``TypeError`` if ``pairs`` is not a list of two-string pairs.
    """
    from samplescale.verifiers._compare import equivalent

    if not isinstance(pairs, (list, tuple)):
        raise TypeError(f"pairs must be a list, got {type(pairs).__name__}")
    checked = []
    for pair in pairs:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(s, str) for s in pair)
        ):
            raise TypeError(f"each pair must be two strings, got {pair!r:.200}")
        checked.append((pair[0], pair[1]))
    return any(equivalent(a, b) for a, b in checked)


def handle_line(line: bytes) -> dict[str, Any]:
    """The reply to one request line; an exception becomes an ``error`` reply."""
    request_id = None
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise TypeError(f"a request must be a JSON object, got {type(request).__name__}")
        request_id = request.get("id")
        return {"id": request_id, "result": bool(verify_pairs(request.get("pairs")))}
    except Exception as exc:  # RecursionError and MemoryError included
        return {"id": request_id, "error": f"{type(exc).__name__}: {exc}"[:2000]}


# --------------------------------------------------------------------------------------
# Process plumbing
# --------------------------------------------------------------------------------------


def _private_streams() -> tuple[BinaryIO, BinaryIO]:
    """Private copies of stdin/stdout for the protocol; fds 0 and 1 become /dev/null."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdin = open(os.devnull, encoding="utf-8")
    sys.stdout = open(os.devnull, "w", encoding="utf-8")
    return proto_in, proto_out


def _silence_stderr() -> None:
    """Point fd 2 (and ``sys.stderr``) to /dev/null: warnings must not reach the user."""
    try:
        sys.stderr.flush()
    except Exception:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = open(os.devnull, "w", encoding="utf-8")


def _exit_when_orphaned(interval: float = 0.5) -> None:
    """Exit as soon as the parent process is gone (best effort, needs the GIL)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _adopt_parent_sys_path() -> None:
    raw = os.environ.get(SYS_PATH_ENV)
    if not raw:
        return
    try:
        parent_path = [p for p in json.loads(raw) if isinstance(p, str)]
    except ValueError:
        return
    sys.path[:] = parent_path + [p for p in sys.path if p not in parent_path]


def _send(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message).encode("ascii") + b"\n")
    out.flush()


def main() -> int:
    # Ctrl-C in the terminal reaches the whole process group: the parent decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_in, proto_out = _private_streams()
    if os.name == "posix":
        _exit_when_orphaned()
    _adopt_parent_sys_path()
    try:
        from samplescale.verifiers._compare import equivalent, install

        install()  # math-verify's number comparison without an absolute tolerance
        for name in ("math_verify", "latex2sympy2_extended"):
            logging.getLogger(name).setLevel(logging.ERROR)
        # load the LaTeX grammar and sympy's lazy parts now, outside any time limit
        equivalent("x+1", "1+x")
    except Exception as exc:
        _send(
            proto_out,
            {
                "ready": False,
                "missing": isinstance(exc, ImportError),
                "error": f"{type(exc).__name__}: {exc}"[:2000],
            },
        )
        return 1
    return serve(proto_in, proto_out, handle_line, {"ready": True, "pid": os.getpid()})


def serve(
    proto_in: Any, proto_out: BinaryIO, handle: Any, ready: dict[str, Any]
) -> int:
    """Announce ``ready``, then answer each request line with ``handle(line)`` until the
    parent closes the pipe (or is gone); the worker's exit status."""
    _silence_stderr()
    _send(proto_out, ready)
    for line in proto_in:
        if not line.strip():
            continue
        try:
            _send(proto_out, handle(line))
        except (BrokenPipeError, OSError):  # the parent is gone
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
