"""Pools of killable worker processes, with a hard time limit per call.

This is the ONE mechanism for work that may hang or is untrusted (DESIGN.md): one pool per
:class:`WorkerKind`. Two kinds exist: :data:`MATH_VERIFY` (math-verify calls, below) and
:data:`CODE_SANDBOX` (the supervisor of :mod:`samplescale.verifiers._code_worker`, which runs
each generated program in a fresh sandboxed process). Everything said below about the
math-verify workers holds for every kind; a kind names its worker module, pool size and
what to install when its worker cannot import what it needs.

math-verify can run for ever on some inputs (``2003^{2002^{2001}}``) and its own timeout
uses ``signal.alarm``, which only works on the main thread. Every math-verify call of
:mod:`samplescale.verifiers.math` therefore runs, through :func:`_run_in_worker`, in a
worker process: ``python -m samplescale.verifiers._verify_worker`` (the child side, which
documents the protocol), started with :mod:`subprocess` and spoken to through one JSON
line per request and per reply on its stdin/stdout. A daemon thread per worker reads its
replies into a queue, so the caller can wait for a reply with a timeout from any thread.

There are at most :data:`_POOL_SIZE` workers, each in a slot used by one thread at a
time, created lazily; :func:`_run_in_worker` is safe to call from any thread. The caller
waits ``timeout`` seconds for the reply; when the limit passes the call returns None (the
caller reads it as "not equivalent"), the stuck worker is killed (so it stops using CPU)
and a fresh worker is started in the background. The one-off start of a worker (about a
second: importing sympy) and any wait for a free worker when more threads than workers
verify at once are not counted against ``timeout``. An error inside math-verify gives
False; the worker survives it.

Workers are not started through :mod:`multiprocessing`, so the program's main module is
never re-imported: a script needs no ``if __name__ == "__main__":`` guard. A worker finds
packages on the same ``sys.path`` as its parent, writes nothing to the terminal, and is
killed when its parent exits (also inside a ``multiprocessing`` child, through a
``multiprocessing`` finalizer as well as :mod:`atexit`); a worker whose parent died
without killing it exits by itself. A forked child starts its own workers instead of
using its parent's.
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import multiprocessing.util
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from samplescale.errors import MissingDependencyError, SamplescaleError
from samplescale.verifiers._worker_kinds import (  # re-exported: one place to look
    _POOL_SIZE as _POOL_SIZE,
)
from samplescale.verifiers._worker_kinds import (
    _WORKER_MODULE,
    MATH_VERIFY,
    WorkerKind,
)
from samplescale.verifiers._worker_kinds import CODE_SANDBOX as CODE_SANDBOX

logger = logging.getLogger(__name__)

#: Seconds allowed for a worker process to start and import math-verify.
_STARTUP_TIMEOUT_S = 120.0


_TIMED_OUT = object()  # request() outcomes other than a reply
_DIED = object()
_NOT_SENT = object()


def _worker_command(module: str = _WORKER_MODULE) -> list[str]:
    """The command line of a worker process running ``module``."""
    return [sys.executable, "-m", module]


def _package_root() -> str:
    """The directory holding the ``samplescale`` package that is running now."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _worker_env() -> dict[str, str]:
    """The environment of a worker: ours, plus where to find samplescale and our sys.path."""
    from samplescale.verifiers._verify_worker import SYS_PATH_ENV

    env = dict(os.environ)
    root = _package_root()
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    paths = [os.path.abspath(os.fspath(p)) for p in sys.path if isinstance(p, (str, os.PathLike))]
    env[SYS_PATH_ENV] = json.dumps(paths)
    return env


def _close_quietly(stream: Any) -> None:
    try:
        if stream is not None:
            stream.close()
    except Exception:  # e.g. a broken pipe
        pass


class _Worker:
    """One running worker process, its reply queue and the thread that fills it."""

    def __init__(self, kind: WorkerKind = MATH_VERIFY) -> None:
        self.kind = kind
        if not sys.executable:
            raise SamplescaleError(
                f"cannot start the {kind.name} worker process: sys.executable is unknown"
            )
        root = _package_root()
        self._stderr: Any = None  # start-up errors only: see _verify_worker
        try:
            self._stderr = tempfile.TemporaryFile()
        except OSError:  # no writable temporary directory: no diagnostics
            pass
        try:
            self.process = subprocess.Popen(
                _worker_command(kind.module),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL if self._stderr is None else self._stderr,
                bufsize=0,  # nothing buffered in this process that a fork could copy
                env=_worker_env(),
                cwd=root if os.path.isdir(root) else None,  # the user's cwd shadows nothing
                close_fds=True,
            )
        except OSError as exc:
            _close_quietly(self._stderr)
            raise SamplescaleError(
                f"could not start the {kind.name} worker process ({exc!r})"
            ) from exc
        self.ready = False
        self._next_id = 0
        self.replies: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        reader = threading.Thread(
            target=self._read_replies,
            args=(self.process.stdout, self.replies),
            name=f"samplescale-{kind.name}-reader-{self.process.pid}",
            daemon=True,
        )
        try:
            reader.start()
        except BaseException:  # e.g. at interpreter exit
            self.kill()
            raise

    @staticmethod
    def _read_replies(stream: Any, replies: queue.SimpleQueue[dict[str, Any] | None]) -> None:
        """Reader thread: one dict per JSON line, then None at end of output."""
        stream = io.BufferedReader(stream)  # the pipe itself is unbuffered
        try:
            for line in stream:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    replies.put(message)
        except (OSError, ValueError):  # closed under us
            pass
        finally:
            replies.put(None)
            _close_quietly(stream)

    def _stderr_tail(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace").strip()
        except Exception:
            return ""
        return text[-2000:]

    def wait_ready(self) -> None:
        """Wait for the ready line (not counted against any verification timeout)."""
        if self.ready:
            return
        try:
            message = self.replies.get(timeout=_STARTUP_TIMEOUT_S)
        except queue.Empty:
            message = None
            detail = f"no ready signal within {_STARTUP_TIMEOUT_S:.0f} s"
        else:
            detail = "it exited during start-up"
        if message is not None and message.get("ready") is True:
            self.ready = True
            _close_quietly(self._stderr)  # the worker now writes nothing to stderr
            return
        self.kill()
        if message is not None:
            detail = str(message.get("error", message))
            if message.get("missing"):
                raise MissingDependencyError(
                    f"{self.kind.name} is not importable in its worker process; "
                    f"install it with {self.kind.install_hint} ({detail})"
                )
        code = self.process.returncode
        tail = self._stderr_tail()
        _close_quietly(self._stderr)
        raise SamplescaleError(
            f"could not start the {self.kind.name} worker process ({detail}; exit code "
            f"{code}; command {_worker_command(self.kind.module)!r})"
            + (f":\n{tail}" if tail else "")
        )

    def request(self, payload: dict[str, Any], timeout: float) -> Any:
        """Send one request; its reply dict, or _NOT_SENT, _TIMED_OUT or _DIED."""
        if self.process.poll() is not None:  # died while idle
            return _NOT_SENT
        self._next_id += 1
        request_id = self._next_id
        data = json.dumps({**payload, "id": request_id}).encode("ascii") + b"\n"
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        stdin = self.process.stdin
        assert stdin is not None
        try:
            while view:  # an unbuffered pipe may take a long line in several writes
                written = stdin.write(view)
                view = view[written or 0 :]
        except (OSError, ValueError):  # broken pipe: the worker is gone
            return _NOT_SENT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _TIMED_OUT
            try:
                message = self.replies.get(timeout=remaining)
            except queue.Empty:
                return _TIMED_OUT
            if message is None:
                return _DIED
            if message.get("id") == request_id:
                return message

    def kill(self) -> None:
        """Kill the process (it may be stuck), reap it and close our ends of its pipes."""
        try:
            self.process.kill()
        except OSError:  # already gone
            pass
        try:
            self.process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not delivered yet
            logger.debug("%s worker %s did not exit after kill", self.kind.name, self.process.pid)
        _close_quietly(self.process.stdin)  # stdout is closed by the reader thread


class _Slot:
    """A place for one worker process of one kind, used by one thread at a time."""

    def __init__(self, kind: WorkerKind = MATH_VERIFY) -> None:
        self.kind = kind
        self._worker: _Worker | None = None

    def _start(self) -> None:
        if _exiting:
            raise SamplescaleError(f"the interpreter is exiting; no new {self.kind.name} worker")
        self._worker = _Worker(self.kind)  # the process warms up in the background

    def _stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()

    def _ready_worker(self) -> _Worker:
        if self._worker is None:
            self._start()
        worker = self._worker
        assert worker is not None
        try:
            worker.wait_ready()
        except BaseException:
            self._worker = None  # wait_ready killed it
            raise
        return worker

    def pids(self) -> list[int]:
        worker = self._worker
        return [] if worker is None else [worker.process.pid]

    def call(self, payload: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """Send ``payload`` to the worker; its reply, or None if it timed out or died.

        A worker that timed out or died is killed and a replacement is started in the
        background.
        """
        for _ in range(2):  # a worker that died while idle is replaced once
            reply = self._ready_worker().request(payload, timeout)
            if reply is not _NOT_SENT:
                break
            self._stop()
        else:
            return None
        if reply is _TIMED_OUT:
            logger.warning(
                "%s exceeded %.3g s; killing its worker process", self.kind.name, timeout
            )
        elif reply is _DIED:
            logger.warning("the %s worker process died; replacing it", self.kind.name)
        else:
            return dict(reply)
        self._stop()
        try:
            self._start()  # warm a replacement in the background
        except Exception:  # e.g. at interpreter exit; the next call starts one lazily
            logger.debug("could not start a replacement worker", exc_info=True)
        return None

    def run(self, pairs: tuple[tuple[str, str], ...], timeout: float) -> bool | None:
        """math-verify ``pairs`` in the worker; None if it timed out or the worker died."""
        reply = self.call({"pairs": pairs}, timeout)
        if reply is None:
            return None
        if "error" in reply:
            logger.debug("math-verify raised in the worker: %s", reply["error"])
            return False
        return bool(reply.get("result"))


_pool_lock = threading.Lock()
_free_slots: dict[str, queue.LifoQueue[_Slot]] = {}
_all_slots: list[_Slot] = []
_exiting = False
_inherited_slots: list[_Slot] = []  # a forked child's copy of its parent's slots


def _slots(kind: WorkerKind = MATH_VERIFY) -> queue.LifoQueue[_Slot]:
    with _pool_lock:
        free = _free_slots.get(kind.name)
        if free is None:
            if not _free_slots:
                # A multiprocessing child ends with os._exit(), skipping atexit, but runs
                # multiprocessing's finalizers first.
                multiprocessing.util.Finalize(None, _shutdown_workers, exitpriority=100)
            free = queue.LifoQueue()
            for _ in range(kind.size):
                slot = _Slot(kind)
                _all_slots.append(slot)
                free.put(slot)
            _free_slots[kind.name] = free
        return free


def _shutdown_workers() -> None:
    """Kill every worker process of this process (at exit)."""
    global _exiting
    _exiting = True
    for slot in list(_all_slots):
        slot._stop()


atexit.register(_shutdown_workers)


def _forget_workers_after_fork() -> None:
    """In a forked child, drop the parent's workers (they belong to the parent).

    The parent's objects are kept referenced, never closed or collected, so the child
    never touches the parent's pipes or processes.
    """
    global _pool_lock, _free_slots, _all_slots, _exiting
    _inherited_slots.extend(_all_slots)
    _pool_lock = threading.Lock()
    _free_slots = {}
    _all_slots = []
    _exiting = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


def _run_in_worker(pairs: tuple[tuple[str, str], ...], timeout: float) -> bool | None:
    free = _slots(MATH_VERIFY)
    slot = free.get()
    try:
        return slot.run(pairs, timeout)
    finally:
        free.put(slot)


def call_worker(kind: WorkerKind, payload: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Send ``payload`` to a free worker of ``kind``; its reply, or None on time-out/death.

    Safe to call from any thread; waits for a free worker when all are busy (not counted
    against ``timeout``). ``payload`` must be JSON-serialisable and ASCII-encodable by
    :func:`json.dumps` (its default escapes non-ASCII).
    """
    free = _slots(kind)
    slot = free.get()
    try:
        return slot.call(payload, timeout)
    finally:
        free.put(slot)


def _worker_pids(kind: WorkerKind = MATH_VERIFY) -> list[int]:
    """Process ids of the running workers of ``kind`` (for tests and debugging)."""
    return [pid for slot in list(_all_slots) if slot.kind == kind for pid in slot.pids()]
