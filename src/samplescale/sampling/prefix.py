"""The shortest prefix of a sort order that reaches a probability mass (top-p, typical).

Nucleus sampling sorts tokens by decreasing probability and locally typical sampling by
the distance of their surprisal from the entropy; both keep the shortest prefix of that
order whose mass reaches ``p``. A full sort of a 50k-150k vocabulary per row costs
milliseconds, so each row first sorts only a few *candidates* (the tokens a cheap test
admits, e.g. weight >= exp(-8) times the top weight) and accepts their prefix when it is
provably the prefix of the whole row: it reaches the mass, and its last key is below the
smallest key any non-candidate can have. Otherwise the next candidate set is tried, and at
last the whole row is sorted. The candidate sets decide only the speed, never the result.
Sorts are the fast unstable kind, redone stably when a tie meets the prefix boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

__all__ = ["prefix_mask", "smallest_prefix_with_mass"]

KeyOf = Callable[[np.ndarray | None], np.ndarray]  # sort keys of some columns (None: all)
Tries = Iterable[tuple[np.ndarray, float]]  # (candidate columns, floor of the others' keys)
Row = Callable[[int], tuple[KeyOf, Tries]]

HEAVY = float(np.exp(-8.0))  # default candidates: weight >= HEAVY * the row's top weight


def prefix_mask(weights: np.ndarray, mass: np.ndarray, row: Row) -> np.ndarray:
    """Mask of each row's shortest prefix, in ascending key order (ties: lower column),
    whose weight reaches ``mass``; at least one token per row.

    Parameters
    ----------
    weights : ndarray, shape (batch, n), float
        Probabilities or unnormalised weights, >= 0.
    mass : ndarray, shape (batch,), float64
        Mass to reach per row, in the units of ``weights``.
    row : callable r -> (key_of, tries)
        For row ``r``: ``key_of(columns)``, the sort keys of increasing column indices
        (all of the row's keys for None), and ``tries``, the candidate sets to try in
        turn: pairs of increasing column indices and a floor such that every column NOT
        among the candidates has a key >= floor.

    Returns
    -------
    ndarray, shape (batch, n), bool
    """
    keep = np.zeros(weights.shape, dtype=bool)
    for r in range(weights.shape[0]):
        key_of, tries = row(r)
        keep[r, _row_prefix(key_of, weights[r], mass[r], tries)] = True
    return keep


def _row_prefix(key_of: KeyOf, w: np.ndarray, mass: float, tries: Tries) -> np.ndarray:
    for ids, floor in tries:
        if ids.size == w.size:
            break
        if ids.size == 0:
            continue
        k = key_of(ids)
        kept, last, reached = _sorted_prefix(k, w[ids], mass)
        if reached and last < floor:
            return ids[kept]
    return _sorted_prefix(key_of(None), w, mass)[0]


def _sorted_prefix(key: np.ndarray, w: np.ndarray, mass: float) -> tuple[np.ndarray, float, bool]:
    """Positions of the shortest prefix in ascending ``key`` order (ties: lower position)
    whose weight reaches ``mass``, the key of its last entry, and whether ``w`` reaches
    ``mass`` at all. A fast unstable sort, redone stably only when a tie meets the boundary
    (ties elsewhere cannot change the set)."""
    order = np.argsort(key)
    kept, reached = _prefix(w[order], mass)
    j = int(np.count_nonzero(kept)) - 1
    near = key[order[max(j - 1, 0) : j + 2]]  # sorted: ties are neighbours
    if (near[1:] == near[:-1]).any():
        order = np.argsort(key, kind="stable")
        kept, reached = _prefix(w[order], mass)
        j = int(np.count_nonzero(kept)) - 1
    return order[kept], key[order[j]], reached


def _prefix(sorted_w: np.ndarray, mass: float) -> tuple[np.ndarray, bool]:
    """Mask of the shortest prefix whose weight reaches ``mass`` (the weight before each
    kept entry is < mass), and whether the entries given reach ``mass`` at all."""
    cum = np.cumsum(sorted_w, dtype=np.float64)
    kept = cum - sorted_w < mass
    kept[0] = True
    return kept, bool(cum[np.count_nonzero(kept) - 1] >= mass)


def smallest_prefix_with_mass(
    key: np.ndarray,
    probs: np.ndarray,
    p: float | np.ndarray,
    radii: Sequence[float | np.ndarray] | None = None,
) -> np.ndarray:
    """Mask of the shortest prefix of each row, in ascending ``key`` order (ties: lower id),
    whose probability mass reaches ``p``; at least one token per row.

    The candidates of each row are the tokens with ``key <= radius``, for each radius in
    turn (:func:`prefix_mask`; a row no radius serves is sorted in full).

    Parameters
    ----------
    key : ndarray, shape (batch, vocab), float
        Sort key (``-probs`` for top-p; ``inf`` for tokens that must come last).
    probs : ndarray, shape (batch, vocab), float
        Probabilities, or unnormalised weights >= 0.
    p : float or ndarray, shape (batch,)
        Mass to reach per row, in the units of ``probs`` (callers subtract their rounding
        tolerance).
    radii : sequence of float or ndarray of shape (batch,), optional
        Candidate radii, in the units of ``key``. Default: per row, the largest key among
        the tokens with at least :data:`HEAVY` times the row's top weight.

    Returns
    -------
    ndarray, shape (batch, vocab), bool
    """
    b = key.shape[0]
    if radii is None:
        heavy = probs >= HEAVY * probs.max(axis=-1, keepdims=True)
        radii = [key.max(axis=-1, where=heavy, initial=-np.inf)]
    levels = [np.broadcast_to(np.asarray(r, dtype=key.dtype), (b,)) for r in radii]

    def row(r: int):  # every other token has a key > radius
        kr = key[r]
        tries = ((np.flatnonzero(kr <= lv[r]), np.nextafter(lv[r], np.inf)) for lv in levels)
        return (lambda ids: kr if ids is None else kr[ids]), tries

    return prefix_mask(probs, np.broadcast_to(np.asarray(p, dtype=np.float64), (b,)), row)
