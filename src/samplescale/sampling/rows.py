"""A batch of logit rows with the pieces of its softmax, each computed at most once.

Every truncation (:mod:`samplescale.sampling.functional`, :mod:`samplescale.sampling.truncation`)
is a *mask function*: it reads a :class:`Rows` and returns which columns to keep. The public
functions wrap one mask function each; the pipeline (:mod:`samplescale.sampling.pipeline`)
chains them on ONE :class:`Rows` that :meth:`Rows.restrict` shrinks to the kept tokens after
each step, so the softmax of what is left is computed once per step, on few columns, instead
of once per function on the whole vocabulary.

Numerics: ``z`` and the weights ``e`` are in the logits' dtype (float32 or float64); every
sum of probability mass (``total``, ``mean_z``) accumulates in float64. Each cached piece is
computed from the cheapest piece already there (``e`` from ``z`` when ``z`` exists, else
from ``x`` directly), always by the same floating-point operations, so its values do not
depend on the order in which the pieces were asked for.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from samplescale.sampling.workspace import Workspace

__all__ = ["Rows", "divide", "masked"]

_DENSE_SHARE = 4  # restrict() compacts when at most 1 / _DENSE_SHARE of the cells stay


def divide(z: np.ndarray, t: float, out: np.ndarray | None = None) -> np.ndarray:
    """``z / t`` for a temperature ``t > 0``, in ``z``'s dtype (into ``out`` when given),
    or in float64 (a new array) when ``t`` underflows ``z``'s dtype."""
    tt = z.dtype.type(t)
    if tt == 0 or not np.isfinite(1 / tt):
        return z.astype(np.float64) / np.float64(t)
    return np.divide(z, tt, out=out)


def masked(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """New logits: ``x`` where ``keep``, ``-inf`` elsewhere (same shape and dtype)."""
    return np.where(keep, x, -np.inf).astype(x.dtype, copy=False)


class Rows:
    """Logits of ``batch`` rows over ``n`` columns and their softmax pieces (cached).

    Parameters
    ----------
    x : ndarray, shape (batch, n), float32 or float64
        Logits (natural-log scale, any additive offset); ``-inf`` marks tokens outside the
        support. Already validated (:func:`samplescale.sampling.functional.as_logits`: every
        row has a finite value); never mutated.
    top : ndarray, shape (batch, 1), optional
        The row maxima of ``x`` when the caller has them already.
    ids : ndarray, shape (batch, n), int64, optional
        Token id of each column, increasing along a row, ``-1`` for padding; None when
        column ``j`` is token ``j``. Column order is token-id order, so tie rules stated
        in token ids hold on compacted rows too.
    ws : Workspace, optional
        Where the large arrays (``z``, ``e``, tempered weights) live; they are then valid
        only while the caller holds the workspace. Default: new arrays.
    """

    def __init__(
        self,
        x: np.ndarray,
        top: np.ndarray | None = None,
        ids: np.ndarray | None = None,
        ws: Workspace | None = None,
    ) -> None:
        self.x = x
        self.ids = ids
        self._ws = ws
        if top is not None:
            self.__dict__["m"] = top

    def _new(self, name: str) -> np.ndarray:
        """An uninitialised array like ``x``: from the workspace when there is one."""
        if self._ws is None:
            return np.empty(self.x.shape, self.x.dtype)
        return self._ws.array(name, self.x.shape, self.x.dtype)

    @cached_property
    def m(self) -> np.ndarray:
        """Row maxima, shape (batch, 1)."""
        return self.x.max(axis=-1, keepdims=True)

    @cached_property
    def z(self) -> np.ndarray:
        """``x - m``, shape (batch, n): log-weights, 0 at the row maximum, ``-inf`` outside."""
        return np.subtract(self.x, self.m, out=self._new("z"))

    def z_row(self, r: int) -> np.ndarray:
        """Row ``r`` of :attr:`z` (the same values), without computing the whole of it."""
        return self.z[r] if "z" in self.__dict__ else self.x[r] - self.m[r]

    @cached_property
    def e(self) -> np.ndarray:
        """Unnormalised probabilities ``exp(z)``, shape (batch, n), in [0, 1], row max 1."""
        return self.tempered(1.0)

    def tempered(self, t: float) -> np.ndarray:
        """Weights ``exp(divide(z, t))`` at a temperature ``t > 0``, shape (batch, n), in ONE
        array (:attr:`e` itself when ``t = 1`` and it exists already)."""
        if t == 1.0 and "e" in self.__dict__:
            return self.e
        y = self._new("e" if t == 1.0 else "w")
        z = self.__dict__.get("z")
        if z is None:
            z = np.subtract(self.x, self.m, out=y)
        if t != 1.0:
            z = divide(z, t, out=y)
        with np.errstate(under="ignore"):
            return np.exp(z, out=y if z.dtype == y.dtype else None)

    @cached_property
    def total(self) -> np.ndarray:
        """Row sums of ``e``, shape (batch, 1), float64 (>= 1)."""
        return self.e.sum(axis=-1, keepdims=True, dtype=np.float64)

    @cached_property
    def mean_z(self) -> np.ndarray:
        """Expected log-weight ``E[z]`` under each row's distribution, shape (batch, 1),
        float64; the entropy in nats is ``log(total) - mean_z``."""
        s = np.empty((self.x.shape[0], 1))
        with np.errstate(invalid="ignore"):  # 0 * -inf: tokens outside the support
            for r, e in enumerate(self.e):  # row by row: no big temporaries
                z = self.z_row(r)
                s[r] = (e * z).sum(dtype=np.float64)
                if np.isnan(s[r, 0]):
                    s[r] = np.where(e > 0, e * z, 0.0).sum(dtype=np.float64)
        return s / self.total

    def restrict(self, keep: np.ndarray) -> Rows:
        """The rows with only the columns in ``keep``, shape (batch, n) bool.

        When most cells stay, the removed ones become ``-inf`` in place of a copy;
        otherwise the kept cells are gathered into ``(batch, max kept per row)`` columns
        (``-inf`` / id ``-1`` padding at the end of shorter rows).
        """
        b, n = self.x.shape
        if _DENSE_SHARE * np.count_nonzero(keep) > b * n:
            return Rows(masked(self.x, keep), ids=self.ids)
        flat = np.flatnonzero(keep)
        r, c = np.divmod(flat, n)
        counts = np.bincount(r, minlength=b)
        j = np.arange(flat.size) - np.repeat(np.cumsum(counts) - counts, counts)
        x = np.full((b, int(counts.max())), -np.inf, dtype=self.x.dtype)
        ids = np.full(x.shape, -1, dtype=np.int64)
        x[r, j] = self.x[r, c]
        ids[r, j] = c if self.ids is None else self.ids[r, c]
        return Rows(x, ids=ids)

    def token_ids(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Token ids of the cells ``(rows, cols)``, shape like ``rows``, int64."""
        return cols.astype(np.int64) if self.ids is None else self.ids[rows, cols]

    def dense(self, vocab: int) -> np.ndarray:
        """The logits over the full vocabulary, shape (batch, vocab), ``-inf`` outside the
        kept columns (``x`` itself when nothing was compacted)."""
        if self.ids is None:
            return self.x
        out = np.full((self.x.shape[0], vocab), -np.inf, dtype=self.x.dtype)
        r, j = np.nonzero(self.ids >= 0)
        out[r, self.ids[r, j]] = self.x[r, j]
        return out
