"""Sample allocation across sampling configurations, learned from pools (OSCA).

OSCA (Zhang et al. 2024, "Scaling LLM Inference with Optimized Sample Compute
Allocation", arXiv:2410.22480): a budget of ``B`` samples per problem is spread over
``C`` sampling configurations (temperatures, prompts, models) by an allocation
``k = (k_1, ..., k_C)``, ``sum(k) = B``, learned on training problems with known answers
and applied to held-out problems. Nothing here draws a sample: every estimate comes from
pools already drawn, one per problem and configuration (``samplescale eval`` runs).

Two objectives, both means over problems on the scale [0, 1]:

* ``coverage`` -- the probability that at least one of the ``B`` samples is correct,
  exact and unbiased from the pools (:func:`mixed_coverage`): the configurations are
  drawn independently, each ``k_c`` without replacement from its pool of ``n_c``.
* ``majority`` -- the probability that the majority vote over the ``B`` samples is correct
  (ties between ``t`` classes count ``1/t``, as :func:`samplescale.metrics.maj_at_k`),
  by Monte Carlo over fixed random orderings of each pool (:func:`mixed_majority`; the same
  orderings for every allocation, so allocations are compared on common random numbers).

:func:`learn_allocation` searches allocations as OSCA does, by hill climbing: a greedy
start (one sample at a time to the configuration that gains most) and then single-sample
moves between configurations while one improves the objective.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from samplescale.errors import ConfigError

Allocation = tuple[int, ...]


def check_allocation(alloc: Sequence[int], sizes: Sequence[int], budget: int | None = None) -> None:
    """Raise ConfigError unless ``0 <= alloc[c] <= sizes[c]`` and (if given) ``sum == budget``."""
    if len(alloc) != len(sizes):
        raise ConfigError(f"allocation has {len(alloc)} counts for {len(sizes)} configurations")
    for c, (k, n) in enumerate(zip(alloc, sizes, strict=True)):
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k <= n:
            raise ConfigError(f"allocation[{c}] must be an integer in [0, {n}] (the pool size), "
                              f"got {k!r}")
    if budget is not None and sum(alloc) != budget:
        raise ConfigError(f"allocation sums to {sum(alloc)} samples, not the budget {budget}")


def miss_probability(n: int, c: int, k: int) -> float:
    """Probability that ``k`` samples drawn without replacement from a pool of ``n`` with
    ``c`` correct are all wrong: ``C(n - c, k) / C(n, k)`` (1.0 for ``k = 0``)."""
    p = 1.0
    for i in range(k):
        p *= (n - c - i) / (n - i)
        if p <= 0.0:
            return 0.0
    return p


def mixed_coverage(n: np.ndarray, correct: np.ndarray, alloc: Sequence[int]) -> np.ndarray:
    """Exact coverage of each problem under an allocation.

    Parameters
    ----------
    n, correct : numpy.ndarray of int, shape (P, C)
        Pool size and number of correct samples of problem ``p`` under configuration ``c``.
    alloc : sequence of int, length C
        Samples per configuration, ``0 <= alloc[c] <= min_p n[p, c]``.

    Returns
    -------
    numpy.ndarray of float64, shape (P,)
        ``1 - prod_c C(n - correct, k_c) / C(n, k_c)`` per problem, in [0, 1]: the unbiased
        estimate of "at least one of the samples is correct".
    """
    out = np.empty(n.shape[0])
    for p in range(n.shape[0]):
        miss = 1.0
        for cfg, k in enumerate(alloc):
            miss *= miss_probability(int(n[p, cfg]), int(correct[p, cfg]), int(k))
        out[p] = 1.0 - miss
    return out


@dataclass(frozen=True)
class VotePools:
    """Answer classes of the pools of every problem under every configuration.

    Attributes
    ----------
    labels : list of list of list of int or None
        ``labels[p][c][i]``: answer class of sample ``i`` of problem ``p`` under configuration
        ``c`` (classes shared across the configurations of one problem), None for no answer.
    correct_label : list of int or None
        The correct class of each problem (None: no sample is correct).
    orders : list of list of numpy.ndarray of int
        ``orders[p][c]``: shape (R, n_pc), R random orderings of that pool; the first ``k``
        of an ordering are the ``k`` samples drawn.
    """

    labels: list[list[list[int | None]]]
    correct_label: list[int | None]
    orders: list[list[np.ndarray]]

    @classmethod
    def with_orderings(
        cls,
        labels: list[list[list[int | None]]],
        correct_label: list[int | None],
        draws: int,
        rng: np.random.Generator,
    ) -> VotePools:
        """Draw ``draws`` orderings of every pool with ``rng`` (``draws >= 1``)."""
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ConfigError(f"draws must be an integer >= 1, got {draws!r}")
        orders = [
            [np.array([rng.permutation(len(pool)) for _ in range(draws)], dtype=np.int64)
             .reshape(draws, len(pool)) for pool in problem]
            for problem in labels
        ]
        return cls(labels, correct_label, orders)


def _vote_credit(votes: Counter[int], correct: int | None) -> float:
    """1/t when ``correct`` is one of the t classes with the most votes, else 0."""
    if correct is None or not votes:
        return 0.0
    top = max(votes.values())
    leaders = [c for c, v in votes.items() if v == top]
    return 1.0 / len(leaders) if correct in leaders else 0.0


def mixed_majority(pools: VotePools, alloc: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Majority-vote accuracy of each problem under an allocation, by Monte Carlo.

    Returns
    -------
    mean, se : numpy.ndarray of float64, shape (P,)
        Mean over the R orderings of the vote's credit (1 correct, 1/t in a t-way tie that
        includes the correct class, 0 otherwise; samples without an answer cast no vote),
        and its Monte Carlo standard error (0 when R = 1).
    """
    means, ses = [], []
    for labels, correct, orders in zip(pools.labels, pools.correct_label, pools.orders,
                                       strict=True):
        draws = orders[0].shape[0] if orders else 1
        credit = np.empty(draws)
        for r in range(draws):
            votes: Counter[int] = Counter()
            for cfg, k in enumerate(alloc):
                votes.update(x for x in (labels[cfg][i] for i in orders[cfg][r, :k])
                             if x is not None)
            credit[r] = _vote_credit(votes, correct)
        means.append(credit.mean())
        ses.append(credit.std(ddof=1) / np.sqrt(draws) if draws > 1 else 0.0)
    return np.array(means), np.array(ses)


def uniform_allocation(budget: int, sizes: Sequence[int]) -> Allocation:
    """``budget`` split as evenly as the pool sizes allow (remainders to the first)."""
    alloc = [0] * len(sizes)
    for _ in range(budget):
        open_ = [c for c in range(len(sizes)) if alloc[c] < sizes[c]]
        if not open_:
            raise ConfigError(f"budget {budget} exceeds the {sum(sizes)} samples of the pools")
        alloc[min(open_, key=lambda c: (alloc[c], c))] += 1
    return tuple(alloc)


def learn_allocation(
    objective: Callable[[Allocation], float], sizes: Sequence[int], budget: int
) -> tuple[Allocation, float]:
    """The allocation of ``budget`` samples that hill climbing finds best (OSCA).

    Parameters
    ----------
    objective : callable
        Mean objective over the training problems for an allocation (higher is better).
    sizes : sequence of int, length C
        Largest count each configuration can take (its pool size).
    budget : int
        Samples per problem, in ``[1, sum(sizes)]``.

    Returns
    -------
    allocation, value
        The allocation (ties broken towards earlier configurations, so the result is
        deterministic) and its objective.

    Raises
    ------
    ConfigError
        If the budget is out of range.
    """
    total = sum(sizes)
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= total:
        raise ConfigError(f"budget must be an integer in [1, {total}] (the samples of the "
                          f"pools), got {budget!r}")
    alloc = [0] * len(sizes)
    for _ in range(budget):  # greedy start
        gains = [(objective((*alloc[:c], alloc[c] + 1, *alloc[c + 1:])), -c)
                 for c in range(len(sizes)) if alloc[c] < sizes[c]]
        alloc[-max(gains)[1]] += 1
    best = objective(tuple(alloc))
    while True:  # single-sample moves while one improves
        moves = [
            (objective(t), t)
            for a in range(len(sizes)) for b in range(len(sizes))
            if a != b and alloc[a] > 0 and alloc[b] < sizes[b]
            for t in [tuple(alloc[c] - (c == a) + (c == b) for c in range(len(sizes)))]
        ]
        top = max(moves, key=lambda m: m[0], default=None)
        if top is None or top[0] <= best + 1e-12:
            return tuple(alloc), best
        best, alloc = top[0], list(top[1])
