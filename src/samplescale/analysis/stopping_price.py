"""Pricing adaptive stopping rules from one pool of samples, without drawing new ones.

A pool record holds ``N`` samples of a problem (answer-class ``labels``, the
``correct_label``, tokens, and where the backend reported log-probabilities each sample's
``lowest_group_confidence``). Running an adaptive strategy (:mod:`samplescale.strategies.adaptive`,
:mod:`samplescale.strategies.confidence_stop`) on the pool in a uniformly random order,
sampling without replacement up to a budget ``B <= N``, gives its accuracy and the samples
and tokens it uses; this module computes their expectations over all ``N!`` orderings.

* ``esc``, ``adaptive-consistency``, ``semantic-entropy``: **exact**. Their decisions
  depend only on the class counts drawn so far (ESC also on whether the current window is
  still unanimous), so a dynamic programme over (counts drawn, window state) with the
  hypergeometric transition probabilities ``r_c / R`` gives the expectations exactly;
  wrong classes with the same pool count are exchangeable, so the programme keeps the
  multiset of their drawn counts (a pool of 16 different answers has 17 states, not
  2^16). Expected tokens follow from the expected draws per exchangeable slot. Pools with
  more than :data:`MAX_STATES` count states fall back to Monte Carlo.
* ``confidence-stop``: **Monte Carlo** over ``draws`` random orderings (every sample has
  its own confidence, so there are no small sufficient statistics), with the standard
  error of each mean reported.
* ``short-m-at-k`` (:func:`samplescale.analysis.short_m_price.price_short_m`): the k chains are a uniformly random k-subset of
  the pool (``k = B``); the recorded lengths say which ``m`` finish first, and every other
  chain of the subset is charged up to the longest voter's length. **Exact** by
  enumerating the ``C(N, k)`` subsets when there are at most :data:`MAX_STATES`, else
  Monte Carlo over ``draws`` subsets with standard errors.

Ties of an unweighted vote count ``1/t`` when the correct class is one of ``t`` tied
classes (a uniformly random tie-break, as :func:`samplescale.metrics.maj_at_k`; the
strategies themselves break ties by the class seen first). The weighted vote of
``confidence-stop`` breaks ties by the class seen first, as the strategy does. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from samplescale.errors import ConfigError, check_int, check_rng
from samplescale.stopping import confidence_threshold, consensus_share
from samplescale.strategies.adaptive import (
    ESC,
    AdaptiveStrategy,
)
from samplescale.strategies.confidence_stop import ConfidenceStop

__all__ = ["MAX_STATES", "Price", "price_rule", "simulate"]

#: Largest number of count states ``prod_c (n_c + 1)`` priced exactly.
MAX_STATES = 200_000


@dataclass(frozen=True)
class Price:
    """Expected accuracy, samples and tokens of a stopping rule on one pool.

    Attributes
    ----------
    accuracy : float
        Expected probability of a correct answer, in ``[0, 1]``.
    samples : float
        Expected number of samples drawn, in ``[1, B]``.
    tokens : float
        Expected number of generated tokens of the samples drawn.
    method : {"exact", "monte-carlo"}
    accuracy_se, samples_se, tokens_se : float
        Monte Carlo standard errors of the three means (0 when exact).
    """

    accuracy: float
    samples: float
    tokens: float
    method: str
    accuracy_se: float = 0.0
    samples_se: float = 0.0
    tokens_se: float = 0.0


def _vote_accuracy(counts: Sequence[int], correct: int | None) -> float:
    top = max(counts, default=0)
    if correct is None or top == 0 or counts[correct] != top:
        return 0.0
    return 1.0 / sum(c == top for c in counts)


def _boundaries(strategy: AdaptiveStrategy, budget: int) -> set[int]:
    out, m = set(), 0
    while m < budget:
        m += min(strategy.round_size(m), budget - m)
        out.add(m)
    return out


def simulate(
    strategy: AdaptiveStrategy,
    labels: Sequence[Hashable | None],
    correct_label: Hashable | None,
    tokens: Sequence[int] | None = None,
    confidences: Sequence[float] | None = None,
    budget: int | None = None,
) -> tuple[float, int, int]:
    """Run ``strategy``'s stopping rule on the pool in the given order.

    Returns
    -------
    (float, int, int)
        Accuracy of the final vote (``1/t`` for a tie of ``t`` classes holding the
        correct one, unweighted rules), samples drawn, tokens of the samples drawn.
    """
    budget = len(labels) if budget is None else budget
    toks = list(tokens) if tokens is not None else [0] * len(labels)
    if isinstance(strategy, ConfidenceStop):
        return _simulate_confidence(strategy, labels, correct_label, toks, confidences, budget)
    m = 0
    while True:
        size = min(strategy.round_size(m), budget - m)
        m += size
        drawn = list(labels[:m])
        if m >= budget or strategy.rule(drawn, size, None)["stop"]:  # type: ignore[arg-type]
            break
    classes = sorted({x for x in labels if x is not None}, key=str)
    counts = [drawn.count(c) for c in classes]
    correct = classes.index(correct_label) if correct_label in classes else None
    return _vote_accuracy(counts, correct), m, int(sum(toks[:m]))


def _simulate_confidence(
    strategy: ConfidenceStop,
    labels: Sequence[Hashable | None],
    correct_label: Hashable | None,
    toks: list[int],
    confidences: Sequence[float] | None,
    budget: int,
) -> tuple[float, int, int]:
    if confidences is None or len(confidences) != len(labels):
        raise ConfigError("confidence-stop needs one confidence per sample (the pool records' "
                          "lowest_group_confidence)")
    thr = confidence_threshold(confidences[: strategy.warmup], strategy.keep)
    weights = [math.exp(c) if math.isfinite(c) and c >= thr else 0.0 for c in confidences]
    m = 0
    while True:
        m += min(strategy.round_size(m), budget - m)
        leader, share = consensus_share(labels[:m], weights[:m])
        if m >= budget or share >= strategy.consensus:
            break
    good = leader is not None and leader == correct_label
    return float(good), m, int(sum(toks[:m]))


_MIXED = -1  # ESC window states: mixed, or the correct class, or (group, drawn count)
_CORRECT = -2
Window = int | tuple[int, int] | None


def _exact(
    strategy: AdaptiveStrategy, labels: Sequence[Hashable | None], correct_label: Hashable | None,
    tokens: Sequence[int], budget: int,
) -> Price:
    """The dynamic programme of the module docstring. Wrong classes with the same pool
    count are exchangeable under every rule here, so a state keeps, per such group, the
    sorted drawn counts of its classes (plus the correct class's and the unanswered
    samples' drawn counts, and ESC's window state)."""
    pool: dict[Hashable, int] = {}
    for x in labels:
        if x is not None:
            pool[x] = pool.get(x, 0) + 1
    c0 = pool.pop(correct_label, 0) if correct_label is not None else 0
    u0 = sum(x is None for x in labels)
    sizes = sorted(set(pool.values()))
    n_classes = [sum(v == c for v in pool.values()) for c in sizes]
    total = len(labels)
    stops = _boundaries(strategy, budget)
    w = strategy.window if isinstance(strategy, ESC) else 0
    memo: dict[tuple[Any, ...], tuple[float, tuple[float, ...]]] = {}

    def stop_here(dc: int, du: int, groups: tuple[tuple[int, ...], ...], win: Window,
                  m: int) -> bool:
        if m >= budget:
            return True
        if w:  # the window just completed is unanimous iff its state is one class
            return m % w == 0 and win is not None and win != _MIXED
        votes = [dc] + [d for g in groups for d in g]
        return strategy.settled([v for v in votes if v > 0], du)[0]

    def go(dc: int, du: int, groups: tuple[tuple[int, ...], ...],
           win: Window) -> tuple[float, tuple[float, ...]]:
        key = (dc, du, groups, win)
        if key in memo:
            return memo[key]
        m = dc + du + sum(sum(g) for g in groups)
        if m in stops and stop_here(dc, du, groups, win, m):
            votes = [dc] + [d for g in groups for d in g]
            acc = _vote_accuracy(votes, 0 if c0 else None)
            memo[key] = (acc, (float(dc), float(du), *(float(sum(g)) for g in groups)))
            return memo[key]
        rest = total - m
        start = w > 0 and m % w == 0
        moves: list[tuple[float, int, int, tuple[tuple[int, ...], ...], Window]] = []
        if c0 > dc:
            nwin: Window = _CORRECT if w and (start or win == _CORRECT) else _MIXED
            moves.append(((c0 - dc) / rest, dc + 1, du, groups, nwin))
        if u0 > du:
            moves.append(((u0 - du) / rest, dc, du + 1, groups, _MIXED))
        for gi, g in enumerate(groups):
            for d in sorted(set(g)):
                left = sizes[gi] - d
                if left == 0:
                    continue
                k = g.count(d)
                i = g.index(d)
                ng = tuple(sorted(g[:i] + (d + 1,) + g[i + 1:]))
                ngroups = groups[:gi] + (ng,) + groups[gi + 1:]
                if w and start:
                    moves.append((k * left / rest, dc, du, ngroups, (gi, d + 1)))
                elif w and win == (gi, d):  # the window's own class, or another one
                    moves.append((left / rest, dc, du, ngroups, (gi, d + 1)))
                    if k > 1:
                        moves.append(((k - 1) * left / rest, dc, du, ngroups, _MIXED))
                else:
                    moves.append((k * left / rest, dc, du, ngroups, _MIXED))
        acc, used = 0.0, [0.0] * (2 + len(groups))
        for p, ndc, ndu, ngroups, nwin in moves:
            a, u = go(ndc, ndu, ngroups, nwin)
            acc += p * a
            used = [x + p * y for x, y in zip(used, u)]
        memo[key] = (acc, tuple(used))
        return memo[key]

    acc, used = go(0, 0, tuple((0,) * n for n in n_classes), None)
    # samples of one slot are exchangeable: each is drawn with probability E[drawn] / size
    slot_tokens = [0.0] * (2 + len(sizes))
    slot_size = [c0, u0] + [c * n for c, n in zip(sizes, n_classes)]
    for x, t in zip(labels, tokens):
        slot = 1 if x is None else 0 if x == correct_label else 2 + sizes.index(pool[x])
        slot_tokens[slot] += t
    toks = sum(u / n * t for u, n, t in zip(used, slot_size, slot_tokens) if n)
    return Price(acc, float(sum(used)), float(toks), "exact")


def _states(labels: Sequence[Hashable | None], correct_label: Hashable | None) -> int:
    """Count states of :func:`_exact`: per group of ``n`` wrong classes of pool count
    ``c``, the multisets of drawn counts, ``C(n + c, c)``."""
    pool: dict[Hashable, int] = {}
    for x in labels:
        if x is not None:
            pool[x] = pool.get(x, 0) + 1
    c0 = pool.pop(correct_label, 0) if correct_label is not None else 0
    out = (c0 + 1) * (sum(x is None for x in labels) + 1)
    for c in set(pool.values()):
        out *= math.comb(sum(v == c for v in pool.values()) + c, c)
    return out


def price_rule(
    strategy: AdaptiveStrategy,
    labels: Sequence[Hashable | None],
    correct_label: Hashable | None,
    tokens: Sequence[int] | None = None,
    confidences: Sequence[float] | None = None,
    budget: int | None = None,
    rng: np.random.Generator | None = None,
    draws: int = 2000,
) -> Price:
    """Expected accuracy, samples and tokens of ``strategy`` over random orderings of a pool.

    Parameters
    ----------
    strategy : AdaptiveStrategy
        An ``esc``, ``adaptive-consistency``, ``semantic-entropy`` or ``confidence-stop``
        instance (its parameters are the rule's).
    labels : sequence of hashable or None, length N
        Answer class of each sample (None: no answer).
    correct_label : hashable or None
        The correct class (None: no sample is correct; accuracy 0).
    tokens : sequence of int, length N, optional
        Generated tokens of each sample (default 0 each).
    confidences : sequence of float, length N, optional
        Each sample's lowest group confidence (``confidence-stop`` only; its ``window``
        must be the one they were computed with).
    budget : int, optional
        Maximum samples ``B`` in ``[1, N]`` (default ``N``).
    rng : numpy.random.Generator, optional
        Randomness of the Monte Carlo orderings (needed for ``confidence-stop`` and for
        pools beyond :data:`MAX_STATES`).
    draws : int, default 2000
        Monte Carlo orderings, ``>= 2``.

    Returns
    -------
    Price

    Raises
    ------
    ConfigError
        If the lengths disagree, ``budget`` is outside ``[1, N]``, a parameter of the
        strategy does not fit ``budget``, or Monte Carlo is needed without ``rng``.
    """
    if not isinstance(strategy, AdaptiveStrategy):
        raise ConfigError(f"strategy must be an adaptive strategy, got {type(strategy).__name__}")
    n = len(labels)
    budget = n if budget is None else check_int(budget, "budget")
    if not 1 <= budget <= n:
        raise ConfigError(f"budget must be in [1, N] = [1, {n}] (the pool size), got {budget}")
    toks = [0] * n if tokens is None else [check_int(t, "tokens", minimum=0) for t in tokens]
    if len(toks) != n:
        raise ConfigError(f"tokens has {len(toks)} values for {n} samples")
    strategy.check_budget(budget)
    if not isinstance(strategy, ConfidenceStop) and _states(labels, correct_label) <= MAX_STATES:
        return _exact(strategy, labels, correct_label, toks, budget)
    if rng is None:
        raise ConfigError("rng (a numpy.random.Generator) is needed to price this rule by "
                          "Monte Carlo")
    check_rng(rng)
    draws = check_int(draws, "draws", minimum=2)
    conf = None if confidences is None else np.asarray(confidences, dtype=np.float64)
    out = np.empty((draws, 3))
    lab = list(labels)
    for d in range(draws):
        order = rng.permutation(n)
        out[d] = simulate(
            strategy, [lab[i] for i in order], correct_label, [toks[i] for i in order],
            None if conf is None else [float(conf[i]) for i in order], budget,
        )
    mean = out.mean(axis=0)
    se = out.std(axis=0, ddof=1) / math.sqrt(draws)
    return Price(float(mean[0]), float(mean[1]), float(mean[2]), "monte-carlo",
                 float(se[0]), float(se[1]), float(se[2]))

