"""Continuous batching: concurrent callers' decode steps merged into one model step.

Each caller (a thread decoding its own request: a plain request's ``n`` samples, a
strategy's pool) keeps its own sampling (sampler pipeline, seeded streams, stop strings)
and submits only "feed these tokens to these sequences and give me their next logits".
:class:`StepBatcher` runs one model step over the rows that every caller has submitted
(the thread that finds no step running leads it, the others wait for their rows), so
sequences of different requests share each batch; callers join and leave between steps
(:meth:`StepBatcher.member`). This is continuous (iteration-level) batching as in Orca
(Yu et al., OSDI 2022) and vLLM, without a scheduler thread: the callers take turns.

The batcher knows nothing of the model: ``run(keys, tokens)`` is the backend's step (for
llama.cpp, :meth:`samplescale.backends.llama_kv.SequencePool.step` under the backend's
lock); no lock is held while a caller samples or yields.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.errors import ConfigError

#: run(keys, tokens) -> logits, shape (len(keys), V): one model step over merged rows.
StepFn = Callable[[list[Any], list[int]], np.ndarray]


@dataclass
class _Job:
    keys: list[Any]
    tokens: list[int]
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


class StepBatcher:
    """Merges the decode steps of concurrent callers into shared model steps.

    Parameters
    ----------
    run : callable (keys, tokens) -> ndarray
        One model step: feed ``tokens[i]`` to sequence ``keys[i]``; return the next-token
        logits of every row, shape (len(keys), V), float32. Called by one thread at a time.
    max_rows : int
        Most rows in one step, in [1, 4096]; a caller's rows are never split across steps
        (a caller with more rows than this gets a step of its own).
    wait_s : float
        Seconds the leading caller waits, at most, for the other live members to submit
        their rows before it runs the step, in [0, 1]. It stops waiting as soon as every
        member has submitted, so a lone caller never waits.

    Attributes
    ----------
    steps : int
        Model steps run so far.
    rows : int
        Rows decoded so far (``rows / steps`` is the mean batch size).
    max_rows_seen : int
        The largest step run so far, in rows.

    Raises
    ------
    ConfigError
        If ``max_rows`` or ``wait_s`` is out of range.
    """

    def __init__(self, run: StepFn, max_rows: int, wait_s: float = 0.002) -> None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or not 1 <= max_rows <= 4096:
            raise ConfigError(f"max_rows must be an integer in [1, 4096], got {max_rows!r}")
        if not 0.0 <= wait_s <= 1.0:
            raise ConfigError(f"wait_s must be in [0, 1] seconds, got {wait_s!r}")
        self._run = run
        self.max_rows = max_rows
        self.wait_s = float(wait_s)
        self._cv = threading.Condition()
        self._members = 0
        self._pending: list[_Job] = []
        self._running = False
        self.steps = 0
        self.rows = 0
        self.max_rows_seen = 0

    @property
    def members(self) -> int:
        """Callers inside :meth:`member` now."""
        with self._cv:
            return self._members

    @contextlib.contextmanager
    def member(self) -> Iterator[None]:
        """Be counted as a live caller (one who will submit steps) until the block ends.

        A leader waits for members' rows (up to ``wait_s``), so a caller enters the block
        before its first :meth:`step` and leaves it when it has no more steps to submit.
        """
        with self._cv:
            self._members += 1
        try:
            yield
        finally:
            with self._cv:
                self._members -= 1
                self._cv.notify_all()

    def step(self, keys: Sequence[Any], tokens: Sequence[int]) -> np.ndarray:
        """Feed ``tokens[i]`` to sequence ``keys[i]``, in a step shared with whatever
        other callers submit meanwhile; the next-token logits of these rows, shape
        (len(keys), V), float32.

        Raises
        ------
        ConfigError
            If ``keys`` and ``tokens`` differ in length or are empty.
        Exception
            Whatever ``run`` raised for the step these rows were in.
        """
        if len(keys) != len(tokens) or not keys:
            raise ConfigError(
                f"step needs one token per sequence (at least one), got {len(keys)} "
                f"sequences and {len(tokens)} tokens"
            )
        job = _Job(list(keys), [int(t) for t in tokens])
        with self._cv:
            self._pending.append(job)
            self._cv.notify_all()
            try:
                while not job.done:
                    if self._running:
                        self._cv.wait()
                        continue
                    self._lead()
            except BaseException:  # interrupted while waiting: its rows must not run later
                if job in self._pending:
                    self._pending.remove(job)
                raise
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _lead(self) -> None:
        """Run one step over the pending rows (called holding the condition, released
        while the model runs)."""
        self._running = True  # from now on the others wait for this step
        deadline = time.monotonic() + self.wait_s
        while len(self._pending) < self._members and self._rows_pending() < self.max_rows:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cv.wait(left)
        batch: list[_Job] = []
        n = 0
        for job in self._pending:
            if batch and n + len(job.keys) > self.max_rows:
                break
            batch.append(job)
            n += len(job.keys)
        del self._pending[: len(batch)]
        self._cv.release()
        try:
            keys = [k for job in batch for k in job.keys]
            tokens = [t for job in batch for t in job.tokens]
            logits = self._run(keys, tokens)
            lo = 0
            for job in batch:
                job.result = logits[lo : lo + len(job.keys)]
                lo += len(job.keys)
        except BaseException as exc:  # every caller of the step sees the failure
            for job in batch:
                job.error = exc
        finally:
            self._cv.acquire()
            for job in batch:
                job.done = True
            self.steps += 1
            self.rows += n
            self.max_rows_seen = max(self.max_rows_seen, n)
            self._running = False
            self._cv.notify_all()

    def _rows_pending(self) -> int:
        return sum(len(job.keys) for job in self._pending)
