"""Token bitmasks (llguidance's layout) as boolean rows.

A bitmask row holds ``ceil(vocab / 32)`` int32 words; bit ``i`` of word ``w`` is token
``32 * w + i`` (1: allowed).
"""

from __future__ import annotations

import numpy as np


def allocate(batch: int, vocab_size: int) -> np.ndarray:
    """An all-allowed bitmask, shape (batch, ceil(vocab_size / 32)), int32."""
    return np.full((batch, (vocab_size + 31) // 32), -1, dtype=np.int32)


def as_bool(bitmask: np.ndarray, vocab_size: int) -> np.ndarray:
    """Which tokens each row allows, shape (batch, vocab_size), bool."""
    words = np.ascontiguousarray(bitmask, dtype="<i4")
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")
    return bits[:, :vocab_size].view(bool)
