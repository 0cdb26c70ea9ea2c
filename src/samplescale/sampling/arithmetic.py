"""Code points of arithmetic sampling (Vilnis et al., 2023, "Arithmetic Sampling: Parallel
Diverse Decoding for Large Language Models", ICML).

The ``n`` samples of one request get the code points ``c_i = (offset + i / n) mod 1`` with
ONE shared uniform ``offset``. Each code is decoded by inverting the next-token CDF step by
step and rescaling it into the chosen token's interval,
``c <- (c - cdf_before(token)) / p(token)`` (:func:`samplescale.sampling.pipeline.sample`
with ``codes=``). Each ``c_i`` is marginally uniform, so each sample is marginally an exact
ancestral sample; the evenly spaced codes make the set more diverse than i.i.d. samples
(they fall into different high-probability branches instead of repeating one).

Precision: every step consumes ``-log2 p(token)`` bits of a float64 code (52 bits in all).
When a code has consumed :data:`REFRESH_BITS` bits it is refreshed as
``(c + u) mod 1`` with a fresh uniform ``u`` from the sample's own stream: still exactly
uniform, so the sample stays marginally exact, but from there on it is independent of the
other codes (the set's coupling matters most for the first, branching tokens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from samplescale.errors import ConfigError

REFRESH_BITS = 40.0


class ArithmeticCodes:
    """The code points of ``n`` samples decoded together.

    Parameters
    ----------
    generators : sequence of numpy.random.Generator, length n
        The samples' own streams. The shared offset is drawn from the first one.

    Attributes
    ----------
    codes : ndarray, shape (n,), float64
        Current code of each sample, in [0, 1).
    bits : ndarray, shape (n,), float64
        Bits each code has consumed since it was last refreshed.
    """

    def __init__(self, generators: Sequence[np.random.Generator]) -> None:
        n = len(generators)
        if n < 1:
            raise ConfigError("arithmetic sampling needs at least one sample")
        self._gens = list(generators)
        offset = self._gens[0].random()
        self.codes = np.mod(offset + np.arange(n) / n, 1.0)
        self.bits = np.zeros(n)

    def take(self, rows: Sequence[int]) -> np.ndarray:
        """The current codes of ``rows`` (global sample indices), shape (len(rows),)."""
        return self.codes[np.asarray(rows, dtype=np.int64)]

    def advance(
        self, rows: Sequence[int], next_codes: np.ndarray, sampling_logprobs: np.ndarray
    ) -> None:
        """Store the rescaled codes of ``rows`` after one drawn token each.

        Parameters
        ----------
        rows : sequence of int
            Global sample indices, in the order of the draw's rows.
        next_codes : ndarray, shape (len(rows),), float64
            ``Draw.next_codes``.
        sampling_logprobs : ndarray, shape (len(rows),), float64
            Natural-log probabilities of the drawn tokens (bits consumed = -lp / ln 2).
        """
        idx = np.asarray(rows, dtype=np.int64)
        self.codes[idx] = next_codes
        self.bits[idx] += -np.asarray(sampling_logprobs) / math.log(2.0)
        for i in idx[self.bits[idx] > REFRESH_BITS]:
            self.codes[i] = (self.codes[i] + self._gens[i].random()) % 1.0
            self.bits[i] = 0.0
