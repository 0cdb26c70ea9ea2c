"""The one owner of llama.cpp's KV cache: sequence ids, cells and cached token prefixes.

Every decode of :class:`~samplescale.backends.llamacpp.LlamaCppBackend` goes through a
:class:`SequencePool`. A cached *entry* is a llama.cpp sequence id holding the KV cells of a
token list (positions ``0 .. len - 1``). A request for the logits after a token list is
served from the entry sharing the longest common prefix with it (automatic prefix caching,
as vLLM's prefix caching or SGLang's RadixAttention do): an entry that is a whole prefix is
extended in place, otherwise its shared prefix is copied into a free sequence with
``llama_memory_seq_cp`` (cells are shared, not duplicated, in the unified cache), and only
the tokens after the shared prefix are decoded.

Entries belong to a *scope* (one per session, :meth:`SequencePool.open_scope`) and are
matched only within it, so what one session computes never depends on another's cache.
The budget is ``max_sequences`` sequence ids and ``max_cells`` KV cells; when a request
needs more, entries that no running request pins are freed, least recently used first. When
even that cannot make room, :meth:`SequencePool.room` reports how many rows fit, and the
caller decodes in several rounds (or, for a single token list, raises: it cannot fit).

Cells are counted exactly: every decode writes a new *block* of cells, an entry refers to
position ranges of blocks (a copy refers to its source's blocks), and the cells in use are,
per block, the longest range any live entry refers to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from samplescale.backends.llama_context import DecodeContext
from samplescale.errors import BackendError


@dataclass
class Entry:
    """One sequence of the KV cache.

    Attributes
    ----------
    seq : int
        The llama.cpp sequence id, in ``[0, max_sequences)``.
    scope : int
        The session it belongs to.
    tokens : list of int
        The tokens whose KV cells the sequence holds, at positions ``0 .. len - 1``.
    spans : list of (block, lo, hi)
        Positions ``[lo, hi)`` whose cells were written by decode block ``block``.
    open_block : int or None
        The block this entry may grow in place (its own last write), else None.
    used : int
        Logical time of the last use (least recently used is freed first).
    pins : int
        Running requests that need it (a pinned entry is never freed by eviction).
    """

    seq: int
    scope: int
    tokens: list[int] = field(default_factory=list)
    spans: list[tuple[int, int, int]] = field(default_factory=list)
    open_block: int | None = None
    used: int = 0
    pins: int = 0


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class SequencePool:
    """Sequence ids, KV cells and cached prefixes of one :class:`DecodeContext`.

    Parameters
    ----------
    cx : DecodeContext
    max_cells : int, optional
        Most KV cells the cached entries may hold, in [1, cx.n_ctx]; defaults to ``n_ctx``.

    Notes
    -----
    Not thread-safe: the backend calls it under its lock.
    """

    def __init__(self, cx: DecodeContext, max_cells: int | None = None) -> None:
        self.cx = cx
        self.max_sequences = cx.n_seq_max
        self.max_cells = cx.n_ctx if max_cells is None else max_cells
        self._entries: dict[int, Entry] = {}
        self._clock = 0
        self._blocks = 0
        self._scopes = 0
        self.open_scopes: set[int] = set()

    # ------------------------------------------------------------------ accounting
    @property
    def live_sequences(self) -> int:
        """Sequence ids in use."""
        return len(self._entries)

    def cells_used(self, entries: Sequence[Entry] | None = None) -> int:
        """KV cells held by ``entries`` (default: all live entries)."""
        top: dict[int, int] = {}
        for e in self._entries.values() if entries is None else entries:
            for block, lo, hi in e.spans:
                top[block] = max(top.get(block, 0), hi - lo)
        return sum(top.values())

    def room(self, rows: int, cells_per_row: int, reserve: int = 0) -> int:
        """How many of ``rows`` new sequences of ``cells_per_row`` cells each fit beside
        ``reserve`` more cells once every unpinned entry is freed (at least 0)."""
        pinned = [e for e in self._entries.values() if e.pins]
        seqs = self.max_sequences - len(pinned)
        cells = self.max_cells - self.cells_used(pinned) - reserve
        return max(0, min(rows, seqs, cells // max(cells_per_row, 1)))

    # ------------------------------------------------------------------ scopes
    def open_scope(self) -> int:
        """A new scope id; the cache is emptied first when no other scope is open (so a
        session on a quiet backend starts from the state of a fresh one)."""
        if not self.open_scopes:
            self.clear()
        self._scopes += 1
        self.open_scopes.add(self._scopes)
        return self._scopes

    def retire_scope(self, scope: int) -> None:
        """Close ``scope``, keeping its entries' cells until room is needed (they are then
        freed, least recently used first, like any unpinned entry; never matched again);
        empty the cache when no scope is left open.

        Why: llama.cpp places later tokens of running sequences in the cells a freed
        sequence leaves, and a sequence whose cells are so out of position order gets
        different logits (measured up to 1.2 on SmolLM2, with f32 K/V too; see
        :mod:`samplescale.backends.llama_sched`). Freeing late keeps concurrent requests
        bit-identical to running alone while the cache has room.
        """
        self.open_scopes.discard(scope)
        if not self.open_scopes:
            self.clear()

    # ------------------------------------------------------------------ entries
    def clear(self) -> None:
        """Free every sequence (an empty KV cache)."""
        self.cx.clear()
        self._entries.clear()

    def free(self, entry: Entry) -> None:
        """Free one sequence and its cells (cells shared with other entries stay)."""
        self.cx.seq_rm(entry.seq)
        del self._entries[entry.seq]

    def make_room(self, seqs: int, cells: int) -> None:
        """Free unpinned entries, least recently used first, until ``seqs`` more sequence
        ids and ``cells`` more cells fit.

        Raises
        ------
        BackendError
            If pinned entries alone leave too little room.
        """
        while (
            len(self._entries) + seqs > self.max_sequences
            or self.cells_used() + cells > self.max_cells
        ):
            free = [e for e in self._entries.values() if not e.pins]
            if not free:
                raise BackendError(
                    f"the KV cache is full: {seqs} more sequences and {cells} more cells do not "
                    f"fit beside the running requests (max {self.max_sequences} sequences, "
                    f"{self.max_cells} cells); lower n or max_tokens"
                )
            self.free(min(free, key=lambda e: e.used))

    def _new(self, scope: int) -> Entry:
        seq = next(j for j in range(self.max_sequences) if j not in self._entries)
        e = self._entries[seq] = Entry(seq=seq, scope=scope)
        return e

    def touch(self, entry: Entry) -> None:
        """Mark ``entry`` as just used."""
        self._clock += 1
        entry.used = self._clock

    def fork(self, src: Entry, length: int | None = None) -> Entry:
        """A new pinned entry sharing ``src``'s first ``length`` cells (default all);
        room for one sequence must have been made."""
        k = len(src.tokens) if length is None else length
        e = self._new(src.scope)
        if k:
            self.cx.seq_cp(src.seq, e.seq, 0, k)
        e.tokens = src.tokens[:k]
        e.spans = [(b, lo, min(hi, k)) for b, lo, hi in src.spans if lo < k]
        e.pins = 1
        self.touch(e)
        return e

    def prefix(
        self, scope: int, tokens: Sequence[int], last: int = 1
    ) -> tuple[Entry, np.ndarray, int]:
        """A pinned entry holding ``tokens`` and the logits after its last ``last`` tokens.

        Parameters
        ----------
        scope : int
        tokens : sequence of int, length L >= 1
        last : int in [1, L]

        Returns
        -------
        entry : Entry
            Pinned: the caller unpins it (``entry.pins -= 1``) when done.
        logits : ndarray, shape (last, vocab_size), float32
        cached : int
            Tokens served from the cache (not decoded), in [0, L - last].

        Raises
        ------
        BackendError
            If the tokens do not fit beside the pinned entries.
        """
        limit = len(tokens) - last
        best, k, rank = None, 0, (0, False, 0)
        for e in self._entries.values():
            if e.scope == scope:
                n = min(common_prefix(e.tokens, tokens), limit)
                r = (n, n == len(e.tokens) and not e.pins, e.used)  # prefer extending in place
                if n and r > rank:
                    best, k, rank = e, n, r
        if best is not None and k == len(best.tokens) and not best.pins:
            entry = best  # an extension: decode in place
            entry.pins += 1
        else:
            if best is not None:
                best.pins += 1  # keep the source while room is made
            try:
                self.make_room(1, 0)
            finally:
                if best is not None:
                    best.pins -= 1
            if best is None:
                entry = self._new(scope)
                entry.pins = 1
            else:
                entry = self.fork(best, k)
        self.touch(entry)
        try:
            self.make_room(0, len(tokens) - k)
            logits = self.write(entry, list(tokens[k:]), last)
        except BaseException:
            entry.pins -= 1
            raise
        return entry, logits, k

    def truncate(self, entry: Entry, length: int) -> None:
        """Drop ``entry``'s positions from ``length`` on."""
        self.cx.seq_rm(entry.seq, length, -1)
        del entry.tokens[length:]
        entry.spans = [(b, lo, min(hi, length)) for b, lo, hi in entry.spans if lo < length]
        entry.open_block = None

    def write(self, entry: Entry, tokens: list[int], last: int = 1) -> np.ndarray:
        """Decode ``tokens`` after ``entry``'s; logits after the last ``last`` of them."""
        start = len(entry.tokens)
        logits = self.cx.extend(entry.seq, tokens, start, last)
        self._grow(entry, tokens)
        return logits

    def step(self, entries: Sequence[Entry], tokens: Sequence[int]) -> np.ndarray:
        """Decode one token for each entry in ONE batch; logits, shape (len(entries), V)."""
        self.cx.decode([(t, len(e.tokens), e.seq, True) for e, t in zip(entries, tokens)])
        logits = self.cx.logits(len(entries))
        for e, t in zip(entries, tokens):
            self._grow(e, [t])
        return logits

    def _grow(self, entry: Entry, tokens: list[int]) -> None:
        start, end = len(entry.tokens), len(entry.tokens) + len(tokens)
        last = entry.spans[-1] if entry.spans else None
        if last is not None and last[0] == entry.open_block and last[2] == start:
            entry.spans[-1] = (last[0], last[1], end)
        else:
            self._blocks += 1
            entry.open_block = self._blocks
            entry.spans.append((self._blocks, start, end))
        entry.tokens.extend(tokens)

    def check(self) -> None:
        """Raise BackendError if an entry's cells disagree with llama.cpp's (for tests)."""
        for j in range(self.max_sequences):
            e = self._entries.get(j)
            top = self.cx.seq_pos_max(j)
            want = len(e.tokens) - 1 if e is not None else -1
            if top != want:
                raise BackendError(f"sequence {j}: llama.cpp holds up to {top}, pool says {want}")
