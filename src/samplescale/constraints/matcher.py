"""Per-sequence matcher state: which tokens each sequence may draw next.

:class:`RowMatchers` follows the rows of one decode loop
(:func:`samplescale.backends.decoding.decode_rows`); :class:`PrefixMatchers` follows the
particles of SMC, whose resampling duplicates and drops sequences, by their token prefix.
Both compile the constraint once and give each sequence its own copy of the matcher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samplescale.config import Constraint
from samplescale.constraints import mask
from samplescale.constraints.compiler import compile_matcher
from samplescale.constraints.vocabulary import IsEnd, Piece, tokenizer_for
from samplescale.errors import BackendError


def _fill(matchers: Sequence[Any], vocab_size: int) -> np.ndarray:
    """The allowed tokens of each matcher, shape (len(matchers), vocab_size), bool."""
    bits = mask.allocate(len(matchers), vocab_size)
    for i, m in enumerate(matchers):
        row = bits[i]
        m.unsafe_compute_mask_ptr(row.ctypes.data, row.nbytes)
        if m.is_error():
            raise BackendError(f"constraint matcher failed: {m.get_error()[:300]}")
    return mask.as_bool(bits, vocab_size)


def _consume(m: Any, token: int) -> None:
    if not m.consume_token(int(token)):
        raise BackendError(f"constraint refused drawn token {int(token)}: {m.get_error()[:300]}")


class RowMatchers:
    """One matcher per row of a decode loop.

    Parameters
    ----------
    constraint : Constraint
    piece, is_end : callable
        The model's token bytes and end-of-generation test.
    vocab_size : int
        Width of the model's logits.
    rows : int
        Number of sequences.

    Raises
    ------
    ConfigError
        If the constraint is invalid or impossible (:func:`compile_matcher`).
    MissingDependencyError
        Without llguidance.
    """

    def __init__(
        self, constraint: Constraint, piece: Piece, is_end: IsEnd, vocab_size: int, rows: int
    ) -> None:
        template = compile_matcher(constraint, tokenizer_for(piece, is_end, vocab_size))
        self.vocab_size = vocab_size
        self._matchers = [template.deep_copy() for _ in range(rows)]

    def allowed(self, rows: Sequence[int]) -> np.ndarray:
        """Tokens allowed next for each of ``rows``, shape (len(rows), vocab_size), bool."""
        return _fill([self._matchers[r] for r in rows], self.vocab_size)

    def advance(self, rows: Sequence[int], tokens: Sequence[int]) -> None:
        """Feed ``tokens[j]`` to the matcher of ``rows[j]``.

        Raises
        ------
        BackendError
            If a matcher refuses its token (the token was not drawn from its mask).
        """
        for r, t in zip(rows, tokens):
            _consume(self._matchers[r], t)


class PrefixMatchers:
    """Matchers of token prefixes, for particles that are copied and dropped.

    Parameters are those of :class:`RowMatchers` without ``rows``. Only the prefixes made
    by the last :meth:`extend` calls (and the empty one) are kept: call :meth:`prune` with
    the prefixes still needed after each step.
    """

    def __init__(self, constraint: Constraint, piece: Piece, is_end: IsEnd, vocab_size: int):
        self.vocab_size = vocab_size
        self._by_prefix: dict[tuple[int, ...], Any] = {
            (): compile_matcher(constraint, tokenizer_for(piece, is_end, vocab_size))
        }

    def allowed(self, prefixes: Sequence[tuple[int, ...]]) -> np.ndarray:
        """Tokens allowed after each prefix, shape (len(prefixes), vocab_size), bool."""
        return _fill([self._by_prefix[p] for p in prefixes], self.vocab_size)

    def extend(self, prefix: tuple[int, ...], token: int) -> tuple[int, ...]:
        """Register ``prefix + (token,)`` (the token must be allowed after ``prefix``)."""
        new = (*prefix, int(token))
        if new not in self._by_prefix:
            m = self._by_prefix[prefix].deep_copy()
            _consume(m, token)
            self._by_prefix[new] = m
        return new

    def accepting(self, prefix: tuple[int, ...]) -> bool:
        """True when ``prefix`` is a complete string of the constraint."""
        return bool(self._by_prefix[prefix].is_accepting())

    def prune(self, keep: Sequence[tuple[int, ...]]) -> None:
        """Forget every prefix but ``keep``."""
        wanted = set(keep)
        self._by_prefix = {p: m for p, m in self._by_prefix.items() if p in wanted}
