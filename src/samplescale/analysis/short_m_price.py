"""Pricing short-m@k (Hassid et al. 2025) from one pool of samples, without drawing new ones.

The k chains of short-m@k are a uniformly random k-subset of the pool; the recorded
lengths and finish reasons say which ``m`` finish first; they vote; every other chain of
the subset is charged up to the longest voter's length (where it would have been
cancelled). Exact by enumerating the ``C(N, k)`` subsets when there are at most
:data:`~samplescale.analysis.stopping_price.MAX_STATES`, else Monte Carlo with standard
errors. No I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence

import numpy as np

from samplescale.analysis import stopping_price
from samplescale.analysis.stopping_price import Price
from samplescale.errors import ConfigError, check_int, check_rng
from samplescale.strategies.short_m import ShortMAtK

__all__ = ["price_short_m"]


def price_short_m(
    strategy: ShortMAtK,
    labels: Sequence[Hashable | None],
    correct_label: Hashable | None,
    tokens: Sequence[int],
    finish: Sequence[str],
    budget: int | None = None,
    rng: np.random.Generator | None = None,
    draws: int = 2000,
) -> Price:
    """Expected accuracy and tokens of short-m@k (``k = budget``) over random k-subsets of
    a pool (see the module docstring).

    In a subset the voters are the ``m`` shortest chains that finished (``"stop"``), then
    those cut by ``max_tokens``, as :func:`samplescale.strategies.short_m.voters` (equal
    lengths by pool index: pool samples are i.i.d., so their order is a random one); they
    vote, a tie going to the shortest voter's class. Tokens: each chain of the subset
    counts ``min(its length, the longest voter's length)``. ``samples`` is ``k`` (every
    chain starts).

    Parameters
    ----------
    strategy : ShortMAtK
    labels : sequence of hashable or None, length N
    correct_label : hashable or None
    tokens : sequence of int, length N
        Recorded length of each sample.
    finish : sequence of str, length N
        Recorded finish reason of each sample (``"stop"``, ``"length"``, ``"error"``).
    budget : int, optional
        ``k`` in ``[m, N]`` (default ``N``).
    rng : numpy.random.Generator, optional
        Needed when ``C(N, k) > MAX_STATES`` (Monte Carlo).
    draws : int, default 2000

    Raises
    ------
    ConfigError
        If the lengths disagree, ``budget`` is outside ``[1, N]``, ``m`` exceeds it, or
        Monte Carlo is needed without ``rng``.
    """
    n = len(labels)
    k = n if budget is None else check_int(budget, "budget")
    if not 1 <= k <= n:
        raise ConfigError(f"budget must be in [1, N] = [1, {n}] (the pool size), got {k}")
    if len(tokens) != n or len(finish) != n:
        raise ConfigError(f"tokens and finish need {n} values each, got {len(tokens)} and "
                          f"{len(finish)}")
    strategy.check_budget(k)
    m = strategy.m

    def one(subset: Sequence[int]) -> tuple[float, float, float]:
        ok = sorted((i for i in subset if finish[i] in ("stop", "length")),
                    key=lambda i: (finish[i] != "stop", tokens[i], i))[:m]
        cut = max((tokens[i] for i in ok), default=0) if len(ok) == m else max(
            (tokens[i] for i in subset), default=0)
        counts: dict[Hashable, int] = {}
        for i in ok:
            if labels[i] is not None:
                counts[labels[i]] = counts.get(labels[i], 0) + 1
        top = max(counts.values(), default=0)
        win = next((labels[i] for i in ok if labels[i] is not None
                    and counts[labels[i]] == top), None)
        good = win is not None and win == correct_label
        return float(good), float(k), float(sum(min(tokens[i], cut) for i in subset))

    if math.comb(n, k) <= stopping_price.MAX_STATES:
        out = np.array([one(s) for s in itertools.combinations(range(n), k)])
        mean = out.mean(axis=0)
        return Price(float(mean[0]), float(mean[1]), float(mean[2]), "exact")
    if rng is None:
        raise ConfigError("rng (a numpy.random.Generator) is needed to price this rule by "
                          "Monte Carlo")
    check_rng(rng)
    draws = check_int(draws, "draws", minimum=2)
    out = np.array([one(rng.choice(n, size=k, replace=False).tolist()) for _ in range(draws)])
    mean, se = out.mean(axis=0), out.std(axis=0, ddof=1) / math.sqrt(draws)
    return Price(float(mean[0]), float(mean[1]), float(mean[2]), "monte-carlo",
                 float(se[0]), float(se[1]), float(se[2]))
