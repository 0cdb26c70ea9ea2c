"""Ranking from LLM-judge scores with posterior ranks and credible intervals.

Each item (a model, a strategy, a run) has judge scores on a discrete scale of ``L``
levels ``0 .. L-1`` (binary: ``L = 2``, pass/fail). The model is the conjugate one: item
``j``'s distribution over levels is ``pi_j ~ Dirichlet(1, ..., 1)`` a priori (for
``L = 2`` the uniform Beta(1, 1) on its pass rate), so its posterior is
``Dirichlet(1 + counts_j)`` (Gelman et al., "Bayesian Data Analysis", 3rd ed., section
3.4). Its value is the expected level rescaled to ``[0, 1]``,
``v_j = sum_l l * pi_jl / (L - 1)``. Posterior draws of all ``v_j`` give, per draw, the
ranks of the items (1 = best); over draws, each item's mean rank, the equal-tailed
credible interval of its rank and the probability that it is best.

Identifiability with three or more levels: judge levels are ordinal. The data identify,
for each cut ``l``, the probabilities ``P(score >= l)``, but an ordering by the expected
level also assumes the levels are equally spaced; another spacing, equally compatible
with ordinal scores, can order the items differently. :func:`rank_by_judge` therefore
always warns for ``L >= 3`` and names the items whose order differs between cuts
(``P(score >= l)`` for ``l = 1 .. L-1``, by posterior mean). No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from samplescale.errors import ConfigError, check_confidence, check_int, check_rng

__all__ = ["ItemRank", "JudgeRanking", "rank_by_judge"]


@dataclass(frozen=True)
class ItemRank:
    """One item's posterior: value (mean, interval) on ``[0, 1]``, mean rank, rank
    interval and the probability of rank 1, from ``scores`` judge scores."""

    item: str
    scores: int
    value: float
    value_interval: tuple[float, float]
    mean_rank: float
    rank_interval: tuple[int, int]
    prob_best: float


@dataclass(frozen=True)
class JudgeRanking:
    """Items sorted by mean rank, and warnings (identifiability for ``L >= 3``)."""

    levels: int
    items: list[ItemRank]
    warnings: list[str] = field(default_factory=list)


def _counts(scores: Mapping[str, Sequence[int]], levels: int) -> dict[str, np.ndarray]:
    if not isinstance(scores, Mapping) or len(scores) < 2:
        raise ConfigError("scores must map at least 2 item names to their judge scores")
    out = {}
    for item, values in scores.items():
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise ConfigError(f"scores[{item!r}] must be a non-empty list of integer levels")
        if arr.min() < 0 or arr.max() >= levels:
            raise ConfigError(f"scores[{item!r}] must lie in [0, {levels - 1}] (levels = "
                              f"{levels}), got {int(arr.min())}..{int(arr.max())}")
        out[str(item)] = np.bincount(arr, minlength=levels).astype(float)
    return out


def rank_by_judge(
    scores: Mapping[str, Sequence[int]],
    levels: int,
    *,
    rng: np.random.Generator,
    draws: int = 4000,
    confidence: float = 0.95,
) -> JudgeRanking:
    """Posterior ranks of items from their judge scores (module docstring).

    Parameters
    ----------
    scores : mapping of str to sequence of int
        Item name to its judge scores, each an integer level in ``[0, levels - 1]``;
        at least 2 items.
    levels : int
        Number of levels ``L >= 2`` (2: binary).
    rng : numpy.random.Generator
        Source of the posterior draws (keyword-only).
    draws : int, default 4000
        Posterior draws, ``>= 100``.
    confidence : float, default 0.95
        Credible level of the intervals, in ``(0, 1)``.

    Returns
    -------
    JudgeRanking

    Raises
    ------
    ConfigError
        If fewer than 2 items are given, a score is not an integer in range, or an
        argument is out of range.
    """
    big_l = check_int(levels, "levels", minimum=2)
    n_draws = check_int(draws, "draws", minimum=100)
    conf = check_confidence(confidence)
    check_rng(rng)
    counts = _counts(scores, big_l)
    names = list(counts)
    weights = np.arange(big_l) / (big_l - 1)
    values = np.stack(
        [rng.dirichlet(counts[n] + 1.0, size=n_draws) @ weights for n in names], axis=1
    )  # (draws, items)
    ranks = (-values).argsort(axis=1).argsort(axis=1) + 1
    tail = (1.0 - conf) / 2.0
    items = []
    for j, name in enumerate(names):
        vlo, vhi = np.quantile(values[:, j], [tail, 1.0 - tail])
        rlo, rhi = np.quantile(ranks[:, j], [tail, 1.0 - tail], method="inverted_cdf")
        items.append(ItemRank(
            name, int(counts[name].sum()), float(values[:, j].mean()), (float(vlo), float(vhi)),
            float(ranks[:, j].mean()), (int(rlo), int(rhi)), float(np.mean(ranks[:, j] == 1)),
        ))
    items.sort(key=lambda r: r.mean_rank)
    warnings = []
    if big_l >= 3:
        warnings.append(
            f"{big_l} ordinal levels: this ranking treats them as equally spaced; ordinal "
            "scores identify only P(score >= l) at each cut, and another spacing may order "
            "the items differently"
        )
        orders = {}
        for cut in range(1, big_l):
            share = {n: (counts[n][cut:].sum() + (big_l - cut)) / (counts[n].sum() + big_l)
                     for n in names}  # posterior mean of P(score >= cut)
            orders[cut] = sorted(names, key=lambda n: -share[n])
        flips = sorted({
            tuple(sorted((a, b)))
            for c1 in orders for c2 in orders if c1 < c2
            for i, a in enumerate(orders[c1]) for b in orders[c1][i + 1:]
            if orders[c2].index(b) < orders[c2].index(a)
        })
        if flips:
            pairs = ", ".join(f"{a} / {b}" for a, b in flips)
            warnings.append(f"the order depends on the cut: {pairs} swap between cuts "
                            "P(score >= l); report per-cut rates, not one ranking")
    return JudgeRanking(big_l, items, warnings)
