"""Scoring token prefixes on the embedded llama.cpp model: next-token logits served from the
KV cache (the :class:`~samplescale.backends.base.LogitsModel` half of
:class:`~samplescale.backends.llamacpp.LlamaCppBackend`, split from it by size)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from samplescale.backends.decoding import check_logits_request, check_token_ids
from samplescale.backends.llama_sched import LiveSequences
from samplescale.types import Prompt


class PrefixScoring:
    """``next_token_logits``, ``logits_at`` and ``cached_logits_at`` over the backend's
    :class:`LiveSequences` (a base of ``LlamaCppBackend``, which sets the attributes)."""

    vocab_size: int
    n_ctx: int
    n_ctx_train: int
    _live: LiveSequences
    _local: threading.local

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids of ``prompt`` (``LlamaCppBackend`` defines it)."""
        raise NotImplementedError

    def next_token_logits(self, prompt: Prompt, prefix: Sequence[int] = ()) -> np.ndarray:
        """Raw next-token logits after ``prompt`` + ``prefix`` token ids, shape (V,), float32."""
        ids = check_token_ids(prefix, self.vocab_size, "prefix")
        return self.logits_at(self.tokenize_prompt(prompt) + ids)[0]

    def logits_at(self, tokens: Sequence[int], last: int = 1) -> np.ndarray:
        """Raw next-token logits after each of the last ``last`` prefixes of ``tokens``.

        Recently scored token sequences stay in the KV cache (up to ``n_seq_max``
        sequences and ``n_ctx`` cells, least recently used freed first); a call decodes only
        the tokens after the longest cached common prefix (at least ``last``), so extending
        a sequence token by token costs one token per call. Inside a
        :meth:`prefix_session` the session's own cache serves it.

        Reproducibility: llama.cpp's arithmetic depends on how tokens were batched, so the
        logits can differ in their last digits with what is cached (enough to flip a
        near-tie; measured below 1e-3 in tests/test_llama_kv.py). Outside a session
        :meth:`generate` starts from an empty cache; a session opened on a quiet backend
        does too, so a seeded strategy run (which runs in a session) is reproducible
        across call histories.

        Parameters
        ----------
        tokens : sequence of int, length L >= 1
        last : int in [1, L]

        Returns
        -------
        ndarray, shape (last, vocab_size), float32
            Row ``i``: logits after ``tokens[: L - last + 1 + i]``.

        Raises
        ------
        ConfigError
            If ``tokens`` is empty, longer than the context, has an invalid id, or ``last``
            is out of range.
        """
        return self.cached_logits_at(tokens, last)[0]

    def cached_logits_at(self, tokens: Sequence[int], last: int = 1) -> tuple[np.ndarray, int]:
        """:meth:`logits_at` and the number of ``tokens`` served from the KV cache (not
        decoded), in ``[0, L - last]``.

        Raises
        ------
        ConfigError
            As :meth:`logits_at`.
        """
        toks = check_logits_request(
            tokens, last, self.vocab_size, min(self.n_ctx, self.n_ctx_train),
            f"n_ctx={self.n_ctx}, trained {self.n_ctx_train}",
        )
        scope = getattr(self._local, "scope", None)
        with self._live.call():
            _, entry, logits, cached = self._live.prefix(
                0 if scope is None else scope, toks, len(toks), last
            )
            self._live.done(entry, len(toks))
        return logits, cached
