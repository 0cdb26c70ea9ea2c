"""Estimators of sampling metrics from one pool of samples per problem: pass@k and maj@k.

:func:`pass_at_k` and :func:`maj_at_k` are exact (integer combinatorics and
:class:`fractions.Fraction`, converted to ``float`` at the end), so no pool size can
overflow into ``inf / inf = nan``. Bad arguments raise
:class:`samplescale.errors.ConfigError` naming the argument and its valid range. No I/O.

The intervals that used to live here (:func:`wilson_interval`,
:func:`clopper_pearson_interval`, :func:`bootstrap_interval`, :func:`mean_with_interval`)
are in :mod:`samplescale.analysis.intervals`; importing them from this module still works.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from samplescale.errors import ConfigError, check_int, check_sequence

__all__ = ["maj_at_k", "pass_at_k"]

_MOVED = frozenset(
    {"bootstrap_interval", "clopper_pearson_interval", "mean_with_interval", "wilson_interval"}
)


def __getattr__(name: str) -> Any:
    """The interval functions moved to :mod:`samplescale.analysis.intervals` (PEP 562)."""
    if name in _MOVED:
        from samplescale.analysis import intervals

        return getattr(intervals, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct.

    pass@k is the probability that at least one of ``k`` samples solves the problem.
    Given ``n >= k`` samples with ``c`` correct, the unbiased estimator of
    Chen et al. (2021), "Evaluating Large Language Models Trained on Code"
    (arXiv:2107.03374), is::

        pass@k = 1 - C(n - c, k) / C(n, k)

    i.e. one minus the probability that a uniformly random ``k``-subset (without
    replacement) of the ``n`` samples contains no correct sample. The ratio is computed
    exactly as a product of ``min(c, k)`` integer factors in a :class:`fractions.Fraction`
    and rounded to ``float`` once at the end, so it never overflows for any ``n``.

    Parameters
    ----------
    n : int
        Number of samples drawn for the problem (``n >= k``).
    c : int
        Number of correct samples (``0 <= c <= n``).
    k : int
        Budget of the metric (``k >= 1``).

    Returns
    -------
    float
        The estimate, in ``[0, 1]``. Exactly ``0.0`` when ``c == 0`` and exactly ``1.0``
        when ``n - c < k`` (every ``k``-subset contains a correct sample).

    Raises
    ------
    ConfigError
        If an argument is not an integer, or ``k < 1``, ``n < k``, ``c < 0`` or ``c > n``.
    """
    n = check_int(n, "n")
    c = check_int(c, "c")
    k = check_int(k, "k")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got k={k}")
    if n < k:
        raise ConfigError(f"n must be >= k (need at least k samples), got n={n}, k={k}")
    if not 0 <= c <= n:
        raise ConfigError(f"c must be in [0, n] = [0, {n}], got c={c}")
    if c == 0:
        return 0.0
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i<k} (n-c-i)/(n-i) = prod_{i<c} (n-k-i)/(n-i).
    lo, hi = min(c, k), max(c, k)
    num = math.prod(n - hi - i for i in range(lo))
    den = math.prod(n - i for i in range(lo))
    return float(1 - Fraction(num, den))


def _ways_by_ties(sizes: Sequence[int], n_free: int, v: int, total: int) -> list[int]:
    """``w[s]``: ways to pick ``total`` samples from classes of ``sizes`` (each capped at
    ``v`` picks) and ``n_free`` uncapped samples, with exactly ``s`` classes picked ``v`` times.
    """
    rows = min(len(sizes), total // v) + 1
    # poly[s, u]: ways to select u samples from the classes seen so far with s ties at v.
    poly = np.zeros((rows, total + 1), dtype=object)
    poly[0, 0] = 1
    for size in sizes:
        below = np.array([math.comb(size, x) for x in range(min(v - 1, total) + 1)], dtype=object)
        new = np.zeros_like(poly)
        for s in range(rows):
            new[s] = np.convolve(poly[s], below)[: total + 1]
        if v <= total:  # the class gets exactly v votes: one more tie
            new[1:, v:] += poly[:-1, : total + 1 - v] * math.comb(size, v)
        poly = new
    lo = max(0, total - n_free)
    free = np.array([math.comb(n_free, total - u) for u in range(lo, total + 1)], dtype=object)
    return [int(np.dot(poly[s, lo:], free)) for s in range(rows)]


def maj_at_k(labels: Sequence[Hashable | None], correct_label: Hashable | None, k: int) -> float:
    """Exact maj@k: probability that a majority vote over ``k`` samples is correct.

    The pool holds ``N = len(labels)`` samples of one problem; ``labels[i]`` is the
    answer class of sample ``i`` (any hashable, e.g. a normalised answer string), or
    ``None`` when no answer was extracted or the sample failed -- such a sample casts no
    vote. The value returned is the exact expectation, over a uniformly random
    ``k``-subset of the pool drawn without replacement, of the indicator "the majority
    vote of the subset selects ``correct_label``":

    * the vote selects the class with the most votes among the non-``None`` labels;
    * a tie between ``t`` classes is broken by taking the class seen first in a uniformly
      random order of the subset, which selects each tied class, in particular the
      correct one, with probability ``1 / t``;
    * a subset whose labels are all ``None`` selects nothing (counts 0).

    This is majority voting / self-consistency (Wang et al. 2023, "Self-Consistency
    Improves Chain of Thought Reasoning in Language Models"), reported as maj@k by
    Lewkowycz et al. (2022, Minerva); averaging over subsets makes it an unbiased
    estimate of maj@k from ``N >= k`` samples, as :func:`pass_at_k` is for pass@k.

    Computation: with ``n_c`` correct samples, for each count ``v >= 1`` of correct
    votes a dynamic programme over the other classes counts (by products of binomial
    coefficients) the ways ``ways(v, s)`` to draw the other ``k - v`` samples so that no
    class exceeds ``v`` votes and exactly ``s`` classes tie at ``v``. Then, exactly::

        maj@k = sum_{v, s} C(n_c, v) * ways(v, s) / (s + 1) / C(N, k)

    The cost is polynomial in ``N`` and ``k``; subsets are never enumerated.

    Parameters
    ----------
    labels : sequence of hashable or None, length N
        Answer class of each sample in the pool; ``None`` marks a sample without a vote.
    correct_label : hashable or None
        The correct answer class. ``None`` (no reference answer) gives ``0.0``.
    k : int
        Number of votes per subset, ``1 <= k <= N``.

    Returns
    -------
    float
        maj@k in ``[0, 1]``; ``0.0`` when ``correct_label`` is ``None`` or absent from
        ``labels``.

    Raises
    ------
    ConfigError
        If ``labels`` is not a sequence (a ``str`` is refused, not read as characters),
        ``k`` is not an integer or not in ``[1, N]``, or a label is not hashable.
    """
    k = check_int(k, "k")
    pool = check_sequence("labels", labels)
    size = len(pool)
    if not 1 <= k <= size:
        raise ConfigError(f"k must be in [1, N] = [1, {size}] (N = len(labels)), got k={k}")
    if correct_label is None:
        return 0.0
    try:
        counts = Counter(label for label in pool if label is not None)
        n_correct = counts.pop(correct_label, 0)
    except TypeError as exc:
        raise ConfigError("labels and correct_label must be hashable (or None)") from exc
    n_none = size - n_correct - sum(counts.values())
    if n_correct == 0:
        return 0.0
    others = sorted(counts.values(), reverse=True)
    favourable = Fraction(0)
    for v in range(1, min(n_correct, k) + 1):
        total = k - v
        # Classes with fewer than v samples can never reach v votes: they join the
        # unlabelled samples in one uncapped pool counted by a single binomial.
        capped = [m for m in others if m >= v]
        n_free = n_none + sum(m for m in others if m < v)
        if v * len(capped) + n_free < total:
            continue  # some other class would have to exceed v votes
        base = math.comb(n_correct, v)
        for ties, ways in enumerate(_ways_by_ties(capped, n_free, v, total)):
            if ways:
                favourable += Fraction(base * ways, ties + 1)
    return float(favourable / math.comb(size, k))
