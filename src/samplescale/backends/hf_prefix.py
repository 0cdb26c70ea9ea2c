"""Prefix caching for the transformers backend: token prefixes and their KV caches.

A :class:`PrefixStore` holds *entries*: a token list and the Hugging Face ``DynamicCache``
(batch size 1) of exactly those tokens. A request for a token list is served from the
entry sharing the longest common prefix with it: a private copy of that entry's cache,
cropped to the shared prefix (``DynamicCache.crop``), to which the caller feeds only the
remaining tokens. This is what :class:`~samplescale.backends.base.PrefixCaching` asks of a
backend; on llama.cpp the same role is played by
:class:`~samplescale.backends.llama_kv.SequencePool`.

Copies are cheap: :func:`share` gives a new cache object whose layers refer to the same
key/value tensors. That is safe because a ``DynamicLayer`` never writes into its tensors:
``update`` concatenates into new ones, ``crop`` and ``batch_select_indices`` slice or index
into new ones (transformers 5.x ``cache_utils``), so growing or cropping the copy leaves the
original untouched (tests/test_transformers_prefix.py checks it). A cache whose layers
cannot be cropped back exactly (sliding-window or linear-attention layers:
``Cache.is_croppable`` False) is never stored, and every request then misses.

Budget: at most ``max_entries`` entries and ``max_tokens`` tokens in all (each entry counted
at its full length, though copies share their tensors); the least recently used entries
are dropped first. Not thread-safe: the backend uses it under its lock.

:class:`RoundCache` is the batched cache of one decoding round: finished rows leave the
batch (so every row of a step is at the same position, no padding), and inside a session
each finished sample's sequence is stored as an entry first.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from samplescale.backends.llama_kv import common_prefix


def share(cache: Any) -> Any:
    """A new ``DynamicCache`` with the same contents as ``cache``, sharing its tensors;
    updating or cropping either leaves the other as it was."""
    new = copy.copy(cache)
    new.layers = [copy.copy(layer) for layer in cache.layers]
    return new


def row(cache: Any, index: int, length: int) -> Any:
    """The cache of batch row ``index`` (its first ``length`` positions) as a batch-1
    ``DynamicCache`` with its own (contiguous) tensors."""
    new = share(cache)
    for layer in new.layers:
        if getattr(layer, "is_initialized", False) and layer.keys is not None:
            layer.keys = layer.keys[index : index + 1, :, :length].clone()
            layer.values = layer.values[index : index + 1, :, :length].clone()
    return new


class PrefixStore:
    """Cached token prefixes and their KV caches (see the module docstring).

    Parameters
    ----------
    max_entries : int
        Most entries held, >= 1.
    max_tokens : int
        Most tokens held by all entries together, >= 1.
    """

    def __init__(self, max_entries: int, max_tokens: int) -> None:
        self.max_entries = max_entries
        self.max_tokens = max_tokens
        self._entries: dict[tuple[int, ...], tuple[Any, int]] = {}  # tokens -> (cache, used)
        self._clock = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def tokens(self) -> int:
        """Tokens held by all entries (each counted at its full length)."""
        return sum(len(t) for t in self._entries)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    def lookup(self, tokens: Sequence[int], limit: int) -> tuple[Any | None, int]:
        """The cache of the longest prefix of ``tokens[:limit]`` held, as a private copy
        the caller may grow, and its length; ``(None, 0)`` when no entry shares a token."""
        best, k = None, 0
        for key in self._entries:
            n = min(common_prefix(key, tokens), limit)
            if n > k:
                best, k = key, n
        if best is None:
            return None, 0
        cache, _ = self._entries[best]
        self._clock += 1
        self._entries[best] = (cache, self._clock)
        mine = share(cache)
        if k < len(best):
            mine.crop(k - len(best))  # a negative count removes that many positions
        return mine, k

    def add(self, tokens: Sequence[int], cache: Any) -> None:
        """Hold ``cache`` (batch 1, exactly the KV of ``tokens``; the store keeps it, the
        caller must not grow it afterwards) as the entry of ``tokens``, dropping least
        recently used entries to stay within the budget. Empty token lists, lists longer
        than the whole budget and caches that cannot be cropped back are not stored."""
        key = tuple(int(t) for t in tokens)
        if not key or len(key) > self.max_tokens or not cache.is_croppable:
            return
        self._clock += 1
        self._entries[key] = (cache, self._clock)
        total = self.tokens
        while len(self._entries) > self.max_entries or total > self.max_tokens:
            oldest = min(self._entries, key=lambda t: self._entries[t][1])
            del self._entries[oldest]
            total -= len(oldest)


class RoundCache:
    """The KV cache of one round of samples decoded together (batch row ``i`` is sample
    ``i`` of the round until rows leave).

    Parameters
    ----------
    cache : DynamicCache
        The prompt's cache repeated to ``rows`` batch rows; grown in place.
    prompt : list of int
        The prompt's tokens (the cache's first positions).
    rows : int
    store : PrefixStore or None
        Where finished samples' sequences are cached (None: nowhere).
    forward : callable (tokens, cache, start) -> ndarray
        One token per batch row at position ``start``; the next-token logits (rows, V).
    select : callable (cache, keep)
        Keep only the batch rows ``keep`` (positions in the current batch).
    """

    def __init__(
        self,
        cache: Any,
        prompt: list[int],
        rows: int,
        store: PrefixStore | None,
        forward: Callable[[list[int], Any, int], np.ndarray],
        select: Callable[[Any, list[int]], None],
    ) -> None:
        self.cache, self.prompt, self.store = cache, prompt, store
        self._forward, self._select = forward, select
        self.current = list(range(rows))  # the sample of each batch row
        self.fed: list[list[int]] = [[] for _ in range(rows)]  # tokens in each row's cache

    def step(self, active: list[int], tokens: list[int], k: int) -> np.ndarray:
        """The ``step`` of :func:`samplescale.backends.decoding.decode_rows`: rows not in
        ``active`` leave the batch (cached first), then ``tokens`` are fed."""
        if active != self.current:
            self._keep([i for i in self.current if i not in active])
            self._select(self.cache, [self.current.index(i) for i in active])
            self.current = list(active)
        for i, t in zip(active, tokens):
            self.fed[i].append(t)
        return self._forward(tokens, self.cache, len(self.prompt) + k)

    def finish(self) -> None:
        """Cache the rows still in the batch (call when the round has ended)."""
        self._keep(self.current)

    def _keep(self, leaving: list[int]) -> None:
        if self.store is None:
            return
        for i in leaving:  # its cache holds the prompt and every token but its last
            n = len(self.prompt) + len(self.fed[i])
            self.store.add(self.prompt + self.fed[i], row(self.cache, self.current.index(i), n))
