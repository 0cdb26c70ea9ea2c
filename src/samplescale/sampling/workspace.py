"""Reusable memory for the per-step arrays of :func:`samplescale.sampling.pipeline.sample`.

One decoding step needs a few arrays the size of its logits (penalised logits, log-weights,
weights). Fresh arrays that large cost more than the arithmetic on them: the allocator gives
their pages back to the kernel when they are freed, and the next step pays again to have
them mapped and zeroed. So each call of ``sample`` borrows one :class:`Workspace` from a
pool and returns it when it ends. Nothing returned by ``sample`` is a view of a workspace
(every result is a new, small array), so a workspace is used by one call at a time; the pool
holds one workspace per call that ran concurrently, each with at most four arrays of the
largest ``(batch, vocab)`` it served (9.7 MB each for 16 rows of 151,936 float32 logits).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

__all__ = ["Workspace", "borrow"]


class Workspace:
    """Named scratch arrays whose memory is kept between uses (grown when too small)."""

    def __init__(self) -> None:
        self._memory: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype`` in the memory called ``name``.

        It is valid until the next request for the same name; arrays of different names
        never overlap.
        """
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        memory = self._memory.get(name)
        if memory is None or memory.size < nbytes:
            memory = self._memory[name] = np.empty(nbytes, dtype=np.uint8)
        return memory[:nbytes].view(dtype).reshape(shape)


_POOL: list[Workspace] = []


@contextmanager
def borrow() -> Iterator[Workspace]:
    """A workspace for the duration of the ``with`` block (thread-safe: list ``pop`` and
    ``append`` are atomic)."""
    try:
        ws = _POOL.pop()
    except IndexError:
        ws = Workspace()
    try:
        yield ws
    finally:
        _POOL.append(ws)
