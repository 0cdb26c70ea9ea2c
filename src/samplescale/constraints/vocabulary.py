"""A model's vocabulary as llguidance's tokenizer, built from the model's token bytes.

Every backend with logits gives ``piece(token) -> bytes`` and ``is_end(token) -> bool``
(what :func:`samplescale.backends.decoding.decode_rows` receives); that is all the mask
needs. Special tokens other than the end-of-generation ones have empty pieces in
samplescale's backends; they get llguidance's ``0xFF`` prefix, so no grammar ever allows
them. Strings that the grammar forces are tokenized by greedy longest match over the token
bytes, which only affects how llguidance splits forced text, never which tokens the mask
allows.

Building one costs about 0.4 s for a 49k vocabulary and 1.5 s for a 152k one (measured in
``benchmarks/bench_grammar_libs.py``), so it is cached per model object.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from samplescale.constraints.library import llguidance
from samplescale.errors import ConfigError

Piece = Callable[[int], bytes]
IsEnd = Callable[[int], bool]

_lock = threading.Lock()
_by_owner: weakref.WeakKeyDictionary[Any, dict[tuple[Any, Any, int], Any]] = (
    weakref.WeakKeyDictionary()
)


class _Tokens:
    """What ``llguidance.TokenizerWrapper`` reads: token bytes, end token, a tokenizer
    (greedy longest match over the token bytes)."""

    def __init__(self, tokens: list[bytes], ends: list[int]) -> None:
        self.tokens = tokens
        self.eos_token_id = ends[0]
        self.bos_token_id = None
        self._ids: dict[bytes, int] = {}
        for t, p in enumerate(tokens):
            if p and not p.startswith(b"\xff"):
                self._ids.setdefault(p, t)
        self._longest = max(map(len, self._ids), default=1)

    def __call__(self, text: bytes | str) -> list[int]:
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        out, i = [], 0
        while i < len(data):
            for k in range(min(self._longest, len(data) - i), 0, -1):
                t = self._ids.get(data[i : i + k])
                if t is not None:
                    out.append(t)
                    i += k
                    break
            else:  # a byte no token spells: it cannot be generated anyway
                i += 1
        return out


def build_tokenizer(piece: Piece, is_end: IsEnd, vocab_size: int) -> Any:
    """llguidance's ``LLTokenizer`` for ``vocab_size`` tokens (not cached).

    Raises
    ------
    ConfigError
        If no token is an end-of-generation token (a constrained sequence could never end).
    """
    llg = llguidance()
    ends = [t for t in range(vocab_size) if is_end(t)]
    if not ends:
        raise ConfigError("constrained generation needs a model with an end-of-generation token")
    end_set = set(ends)
    tokens = []
    for t in range(vocab_size):
        p = piece(t)
        tokens.append(p if p or t in end_set else b"\xff<special_%d>" % t)
    return llg.LLTokenizer(llg.TokenizerWrapper(_Tokens(tokens, ends)), n_vocab=vocab_size, eos_token=ends)


def tokenizer_for(piece: Piece, is_end: IsEnd, vocab_size: int) -> Any:
    """:func:`build_tokenizer`, cached while the model object that owns ``piece`` lives
    (bound methods of one backend share one entry)."""
    owner = getattr(piece, "__self__", piece)
    key = (getattr(piece, "__func__", piece), getattr(is_end, "__func__", is_end), vocab_size)
    with _lock:
        entries = _by_owner.setdefault(owner, {})
        if key not in entries:
            entries[key] = build_tokenizer(piece, is_end, vocab_size)
        return entries[key]
