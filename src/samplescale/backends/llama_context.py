"""One llama.cpp context: its unified KV cache, the decode batch and the logits it returns.

Sequences (ids ``0 .. n_seq_max - 1``) share one unified KV cache of ``n_ctx`` cells; a
token decoded for sequence ``s`` at position ``p`` occupies one cell, and
:meth:`DecodeContext.seq_cp` lets another sequence share cells without copying them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from samplescale.backends.llama_model import GGUFModel
from samplescale.errors import BackendError


class DecodeContext:
    """A llama.cpp context for ``model`` with ``n_seq_max`` sequences over ``n_ctx`` cells.

    Parameters
    ----------
    model : GGUFModel
    n_ctx : int
        KV-cache cells shared by all sequences.
    n_seq_max : int
        Most sequences (and most tokens per decode step of a batch, at least 512).
    threads : int
        CPU threads for decoding.

    Raises
    ------
    BackendError
        If llama.cpp cannot create the context (e.g. too large for memory).
    """

    def __init__(self, model: GGUFModel, n_ctx: int, n_seq_max: int, threads: int) -> None:
        ll = self._ll = model.ll
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = max(512, n_seq_max)
        cparams.n_ubatch = max(512, n_seq_max)
        cparams.n_seq_max = n_seq_max
        cparams.kv_unified = True
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        try:
            self._ctx = model.internals.LlamaContext(
                model=model.model, params=cparams, verbose=False
            )
        except ValueError as exc:
            raise BackendError(
                f"llama.cpp could not create a context of n_ctx={n_ctx} KV cells for "
                f"{model.path.name} (too large for memory? lower max_tokens or the number of "
                f"parallel samples): {exc}"
            ) from exc
        self._batch = model.internals.LlamaBatch(
            n_tokens=cparams.n_batch, embd=0, n_seq_max=n_seq_max, verbose=False
        )
        self.n_ctx, self.n_seq_max, self.n_batch = n_ctx, n_seq_max, cparams.n_batch
        self.vocab_size = model.vocab_size

    def decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """Decode one batch of at most ``n_batch`` entries ``(token, position, sequence,
        want_logits)``.

        Raises
        ------
        BackendError
            If no KV cells are free for the batch, or llama.cpp fails.
        """
        b = self._batch.batch
        b.n_tokens = len(entries)
        for i, (tok, pos, seq, want) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = want
        rc = self._ll.llama_decode(self._ctx.ctx, b)
        if rc == 1:
            raise BackendError(f"llama_decode found no free KV-cache slot (n_ctx={self.n_ctx})")
        if rc != 0:
            raise BackendError(f"llama_decode failed with code {rc}")

    def logits(self, rows: int) -> np.ndarray:
        """The logits of the last decode's ``rows`` entries that asked for them, in batch
        order, shape (rows, vocab_size), float32 (a copy)."""
        ptr = self._ll.llama_get_logits(self._ctx.ctx)
        return np.ctypeslib.as_array(ptr, shape=(rows, self.vocab_size)).copy()

    def extend(self, seq: int, tokens: Sequence[int], start: int, last: int = 1) -> np.ndarray:
        """Decode ``tokens`` as positions ``start ..`` of sequence ``seq`` (in chunks of
        ``n_batch``); return the logits after each of the last ``last`` tokens, shape
        (last, vocab_size)."""
        rows = []
        n = len(tokens)
        for lo in range(0, n, self.n_batch):
            chunk = tokens[lo : lo + self.n_batch]
            want = [lo + i >= n - last for i in range(len(chunk))]
            self.decode([(t, start + lo + i, seq, w) for i, (t, w) in enumerate(zip(chunk, want))])
            if any(want):
                rows.append(self.logits(sum(want)))
        return np.concatenate(rows, axis=0)

    def clear(self) -> None:
        """Empty the KV cache (every sequence)."""
        self._ll.llama_memory_clear(self._ctx.memory, True)

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        """Drop positions ``[p0, p1)`` of sequence ``seq`` (-1: open end; both -1: all)."""
        self._ll.llama_memory_seq_rm(self._ctx.memory, seq, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int, p1: int) -> None:
        """Let sequence ``dst`` share the cells of ``src``'s positions ``[p0, p1)``."""
        self._ll.llama_memory_seq_cp(self._ctx.memory, src, dst, p0, p1)

    def seq_pos_max(self, seq: int) -> int:
        """The largest position sequence ``seq`` holds (-1 when it holds none)."""
        return int(self._ll.llama_memory_seq_pos_max(self._ctx.memory, seq))
