"""Concurrent requests on one llama.cpp context: admission to the KV cache and shared steps.

:class:`LiveSequences` is what :class:`~samplescale.backends.llamacpp.LlamaCppBackend`
decodes through. It owns the :class:`~samplescale.backends.llama_kv.SequencePool` (the one
owner of the KV cache), the lock that guards it, and a
:class:`~samplescale.backends.batching.StepBatcher`:

- KV-cache operations (prefix lookup and prompt decode, forks, frees) run under the lock,
  one at a time, between batch steps;
- each request first *holds* the sequences and cells it may grow to (its prompt plus
  ``max_tokens`` for its first sequence, ``max_tokens`` for each further sample decoded at
  once); a request that does not fit beside the running ones waits, first come first
  served, until they release room. The cap on live sequences is ``n_seq_max``;
- the one-token decode steps of all running requests are merged into shared llama.cpp
  batches by the batcher (continuous batching); the lock is held only while a step runs,
  never while a caller samples or a stream yields.

Reproducibility (measured on SmolLM2-135M Q4_1, llama-cpp-python 0.3.36, CPU, flash
attention on, as llama.cpp picks by default):

- the rows of one llama.cpp batch step are computed independently: a sequence's logits are
  bit-identical whatever other sequences share its steps or its cache (1 to 3 others, any
  row position, 17 steps: max |difference| 0), as long as its own cells lie in position
  order in the cache;
- when a sequence is freed while another decodes, llama.cpp places the survivor's later
  tokens in the freed cells, before its earlier ones, and its logits change (up to 1.17 over
  12 steps; the same with f32 K and V caches, so it is not f16 rounding). So a finished
  request's cells are freed late (:meth:`SequencePool.retire_scope`): when room is needed
  or the cache empties;
- hence a seeded request gives the same tokens, text and log-probabilities alone or beside
  others as long as no sequence is evicted while it decodes (tests/test_batching.py: 4
  concurrent requests, 7 sequences of 16; tests/test_server_batching.py: 6 requests, plain
  and self-consistency); when concurrent requests fill the cache (the cap reached, requests
  waiting for room) evictions happen and the requests running then may differ from a lone
  run in their later tokens (tested: all complete, within the cap);
- not explained yet: 8 threads x 2 chat requests each (32 tokens, 32 sequences, no cell
  freed during the run) had one request of the 16 differ from its lone run in each of 4
  runs, always a first request of a thread (the 8 that start together).

With ``batching=False`` whole calls run one at a time (a call holds a second lock from its
first step to its last), which is the server's behaviour before continuous batching.

Abandoned calls: a thread may install an abort check (:meth:`LiveSequences.aborting`, the
server's "the client left"); a call of that thread that waits for room or for its turn
calls it every :data:`ABORT_POLL_S` seconds and before its prompt is decoded, so a call whose
client left never decodes its prompt only to stop at its first token (a disconnect storm
once kept the server busy for 12 s doing just that, one queued prompt after another).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from samplescale.backends.batching import StepBatcher
from samplescale.backends.llama_context import DecodeContext
from samplescale.backends.llama_kv import Entry, SequencePool

#: Seconds a step's leader waits for the other running requests' rows.
BATCH_WAIT_S = 0.02
#: Seconds between two abort checks of a call waiting for room or for its turn.
ABORT_POLL_S = 0.05


class LiveSequences:
    """The KV cache of one :class:`DecodeContext` shared by concurrent requests.

    Parameters
    ----------
    cx : DecodeContext
    batching : bool
        Merge the decode steps of concurrent calls (True) or run calls one at a time.
    wait_s : float
        Seconds a step waits, at most, for the rows of the other running calls, in [0, 1].

    Attributes
    ----------
    pool : SequencePool
        Use it only under :attr:`lock`.
    lock : threading.Lock
    batcher : StepBatcher
    """

    def __init__(self, cx: DecodeContext, batching: bool = True, wait_s: float = BATCH_WAIT_S):
        self.pool = SequencePool(cx)
        self.lock = threading.Lock()
        self.batching = batching
        self.batcher = StepBatcher(self._run, max_rows=cx.n_batch, wait_s=wait_s)
        self._room = threading.Condition(self.lock)
        self._queue: deque[object] = deque()
        self._seqs = 0  # sequences held by running calls
        self._cells = 0  # cells held by running calls
        self._serial = threading.Lock()  # batching off: one call at a time
        self._abort = threading.local()  # the calling thread's abort check, if any

    @contextlib.contextmanager
    def aborting(self, check: Callable[[], None]) -> Iterator[None]:
        """Within the block, the calling thread's calls run ``check()`` (which raises to
        abort, e.g. the server's ``ClientGone``) while they wait for room or for their turn,
        and before their prompt is decoded. Nested blocks: the innermost check applies."""
        outer = getattr(self._abort, "check", None)
        self._abort.check = check
        try:
            yield
        finally:
            self._abort.check = outer

    def _check_abort(self) -> None:
        check = getattr(self._abort, "check", None)
        if check is not None:
            check()

    # ------------------------------------------------------------------ room
    @property
    def held(self) -> tuple[int, int]:
        """``(sequences, cells)`` held by running calls now."""
        with self.lock:
            return self._seqs, self._cells

    def hold(self, seqs: int, cells: int) -> None:
        """Wait (first come, first served) until ``seqs`` sequences and ``cells`` cells fit
        beside what running calls hold, then hold them. Call it holding :attr:`lock`; a
        request fits alone whenever it fits the context (checked before)."""
        ticket = object()
        self._queue.append(ticket)
        poll = ABORT_POLL_S if getattr(self._abort, "check", None) is not None else None
        try:
            while self._queue[0] is not ticket or not self._fits(seqs, cells):
                self._room.wait(poll)
                self._check_abort()  # raises: the ticket leaves the queue, nothing held
        finally:
            self._queue.remove(ticket)
            self._room.notify_all()
        self._seqs += seqs
        self._cells += cells

    def _fits(self, seqs: int, cells: int) -> bool:
        if not self._seqs and not self._cells:
            return True  # alone: the context check already passed
        return (self._seqs + seqs <= self.pool.max_sequences
                and self._cells + cells <= self.pool.max_cells)

    def spare(self, rows: int, cells_per_row: int) -> int:
        """How many of ``rows`` more sequences of ``cells_per_row`` cells fit beside what
        running calls hold, without waiting (call under :attr:`lock`)."""
        seqs = self.pool.max_sequences - self._seqs
        cells = self.pool.max_cells - self._cells
        return max(0, min(rows, seqs, cells // max(cells_per_row, 1)))

    def release(self, seqs: int, cells: int) -> None:
        """Give back what :meth:`hold` took (call under :attr:`lock`)."""
        self._seqs -= seqs
        self._cells -= cells
        self._room.notify_all()

    # ------------------------------------------------------------------ calls
    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """One model call: with batching off, calls run one at a time (a waiting call runs
        its thread's abort check every :data:`ABORT_POLL_S` seconds)."""
        if self.batching:
            yield
            return
        while not self._serial.acquire(timeout=ABORT_POLL_S):
            self._check_abort()
        try:
            yield
        finally:
            self._serial.release()

    def prefix(
        self, scope: int | None, tokens: Sequence[int], cells: int, last: int = 1,
        hold: bool = True,
    ) -> tuple[int, Entry, np.ndarray, int]:
        """Hold one sequence and ``cells`` cells (waiting for room; not with ``hold=False``:
        inside :meth:`room`), open a scope when ``scope`` is None, and decode ``tokens``
        (:meth:`SequencePool.prefix`).

        Returns ``(scope, entry, logits, cached)``; the caller ends with :meth:`done`
        (the same ``hold``). Raises what the thread's abort check raises
        (:meth:`aborting`), holding nothing.
        """
        seqs, cells = (1, cells) if hold else (0, 0)
        self._check_abort()
        with self.lock:
            if hold:
                self.hold(seqs, cells)
            try:
                self._check_abort()  # it may have waited long: no prompt decoded for nobody
            except BaseException:
                self.release(seqs, cells)
                raise
            own = scope is None
            sc = self.pool.open_scope() if scope is None else scope
            try:
                entry, logits, cached = self.pool.prefix(sc, tokens, last)
            except BaseException:
                if own:
                    self.pool.retire_scope(sc)
                self.release(seqs, cells)
                raise
        return sc, entry, logits, cached

    def done(
        self, entry: Entry, cells: int, scope: int | None = None, hold: bool = True
    ) -> None:
        """Unpin ``entry``, close ``scope`` (one :meth:`prefix` opened), release the room
        (not with ``hold=False``)."""
        with self.lock:
            entry.pins -= 1
            if scope is not None:
                self.pool.retire_scope(scope)
            if hold:
                self.release(1, cells)

    def forks(self, head: Entry, rows: int, per_row: int) -> tuple[list[Entry], bool]:
        """Sequences for a round of up to ``rows`` samples continuing ``head``, held
        (``per_row`` cells each beside ``head``'s own). Returns ``(seqs, last)``: when every
        row fits, the round is the last and ``seqs[0]`` is ``head`` itself; otherwise only
        new forks (or ``[head]`` alone when none fits; the caller then cuts ``head`` back
        to its prompt after the round, :meth:`end_round`)."""
        with self.lock:
            n = self.spare(rows - 1, per_row)
            if n == rows - 1:
                seqs, last = [head], True
            else:
                n = self.spare(rows, per_row)
                seqs, last = ([], False) if n else ([head], False)
            self.pool.make_room(n, (n + len(seqs)) * per_row)  # raises before holding
            self._seqs += n
            self._cells += n * per_row
            return seqs + [self.pool.fork(head) for _ in range(n)], last

    @contextlib.contextmanager
    def room(self, seqs: int, cells: int) -> Iterator[None]:
        """Hold ``seqs`` sequences and ``cells`` cells for the block (waiting for them as
        :meth:`hold` does): a call that decodes several prompts holds its whole room at
        once, then uses :meth:`prefix` and :meth:`fork_rows` with ``hold=False``."""
        with self.lock:
            self.hold(seqs, cells)
        try:
            yield
        finally:
            with self.lock:
                self.release(seqs, cells)

    def fork_rows(
        self, heads: Sequence[Entry], rows: Sequence[int], per_row: Sequence[int]
    ) -> list[list[Entry]]:
        """``[[heads[i], fork, ...], ...]``: ``rows[i]`` sequences continuing each head
        (the head is the first) that will grow by ``per_row[i]`` cells each, in room held
        with :meth:`room` (unpinned cached entries are freed for them, least recently used
        first); unpin the forks with :meth:`unpin` when done."""
        with self.lock:
            grow = sum(n * c for n, c in zip(rows, per_row))
            self.pool.make_room(sum(n - 1 for n in rows), grow)
            return [[h] + [self.pool.fork(h) for _ in range(n - 1)] for h, n in zip(heads, rows)]

    def unpin(self, entries: Sequence[Entry]) -> None:
        """Unpin ``entries`` (their cells stay cached until room is needed)."""
        with self.lock:
            for e in entries:
                e.pins -= 1

    def end_round(self, head: Entry, seqs: list[Entry], per_row: int, cut: int | None) -> None:
        """Unpin and release a round's forks; cut ``head`` back to ``cut`` tokens if given."""
        with self.lock:
            forks = [e for e in seqs if e is not head]
            for e in forks:
                e.pins -= 1
            if cut is not None:
                self.pool.truncate(head, cut)
            self.release(len(forks), len(forks) * per_row)

    def step(self, entries: Sequence[Entry], tokens: Sequence[int]) -> np.ndarray:
        """One token for each of ``entries``, in a batch step shared with the other
        running calls; their next-token logits, shape (len(entries), V), float32."""
        return self.batcher.step(list(entries), list(tokens))

    def _run(self, entries: list[Entry], tokens: list[int]) -> np.ndarray:
        with self.lock:
            return self.pool.step(entries, tokens)
