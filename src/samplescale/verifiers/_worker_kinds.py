"""The kinds of worker process of the pool in :mod:`samplescale.verifiers._workers`."""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Number of worker processes of one kind that may run at the same time (one per slot).
_POOL_SIZE = max(1, min(4, os.cpu_count() or 1))

_WORKER_MODULE = "samplescale.verifiers._verify_worker"


@dataclass(frozen=True)
class WorkerKind:
    """One kind of worker: its module, pool size and messages.

    Attributes
    ----------
    name : str
        What the worker runs, for messages (``"math-verify"``).
    module : str
        The worker module, started as ``python -m module``; it speaks the protocol of
        :mod:`samplescale.verifiers._verify_worker` (a ready line, then one JSON reply
        line per JSON request line carrying an ``id``).
    size : int
        Most worker processes of this kind at a time.
    install_hint : str
        What to install when the worker reports a missing import.
    """

    name: str
    module: str
    size: int
    install_hint: str


#: math-verify calls of :mod:`samplescale.verifiers.math`.
MATH_VERIFY = WorkerKind("math-verify", _WORKER_MODULE, _POOL_SIZE, "`pip install math-verify`")
#: Supervisors of sandboxed generated-code runs (:mod:`samplescale.verifiers.code`).
CODE_SANDBOX = WorkerKind(
    "code-sandbox", "samplescale.verifiers._code_worker", _POOL_SIZE, "samplescale"
)
