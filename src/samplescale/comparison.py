"""Compute-matched comparison of runs: accuracy against compute, the Pareto front, and
paired tests on shared problems. Pure functions over records; no I/O.

Each run contributes points (an accuracy with its interval at a cost):

* a pool run: maj@k (self-consistency with k samples, the accuracy a user gets without
  a verifier) at k = 1, 2, 4, ..., N, at the cost of k samples of the pool
  (:meth:`samplescale.analysis.compute.Cost.scaled`), and its greedy answer;
* a strategy run: its accuracy at its cost.

Accuracy intervals are the problem-clustered Jeffreys intervals
(:func:`samplescale.analysis.small_sample.clustered_interval`). A point is on the Pareto
front when no other point is at least as accurate for at most the same cost and better
in one of the two. Paired tests (:func:`samplescale.analysis.paired.compare_paired`)
compare every two runs on the problems both ran (same ids), each run by its headline
per-problem value: maj@N for a pool run, correctness for a strategy run.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from samplescale.analysis.compute import AXES, Cost, cost_per_problem
from samplescale.analysis.paired import PairedResult, compare_paired
from samplescale.analysis.pools import correct_vector, maj_matrix, pool_size
from samplescale.analysis.small_sample import clustered_interval
from samplescale.errors import ConfigError
from samplescale.summary import k_values

__all__ = ["AXES", "Point", "headline", "pairwise", "pareto_front", "run_points"]

Record = dict[str, Any]
Kind = Literal["pool", "strategy"]


@dataclass(frozen=True)
class Point:
    """One accuracy at one cost: ``run`` and ``method`` name it (``"maj@4"``,
    ``"greedy"``, a strategy name); ``lo``/``hi`` the 95% clustered interval."""

    run: str
    method: str
    accuracy: float
    lo: float
    hi: float
    problems: int
    cost: Cost

    def x(self, axis: str) -> float | None:
        """The cost on ``axis`` (a key of ``AXES``), None when it is unknown."""
        c = self.cost
        values: dict[str, float | None] = {
            "tokens": c.completion_tokens,
            "total_tokens": c.prompt_tokens + c.completion_tokens,
            "flops": c.flops,
            "dollars": c.dollars,
            "time": c.wall_time_s,
        }
        if axis not in values:
            raise ConfigError(f"axis must be one of {sorted(values)}, got {axis!r}")
        return values[axis]


def _interval(values: np.ndarray) -> tuple[float, float]:
    return clustered_interval(values) if values.size > 1 else (0.0, 1.0)


def run_points(
    name: str, records: Sequence[Record], kind: Kind, **prices: float | None
) -> list[Point]:
    """The points of one run (module docstring).

    Parameters
    ----------
    name : str
        The run's name.
    records : sequence of dict
        Its records.
    kind : {"pool", "strategy"}
        Its kind.
    **prices
        ``params``, ``price_prompt``, ``price_completion`` for
        :func:`samplescale.analysis.compute.cost_per_problem`.

    Returns
    -------
    list of Point
    """
    size = len(records)
    greedy_records = [
        {"status": r["status"], "usage": r["greedy"]["usage"]} if r["status"] == "ok" else r
        for r in records
    ]
    greedy = correct_vector(records, greedy=True)
    points = [Point(name, "greedy", float(greedy.mean()), *_interval(greedy), size,
                    cost_per_problem(greedy_records, **prices))]
    cost = cost_per_problem(records, **prices)
    if kind == "strategy":
        acc = correct_vector(records)
        strategy = next(r["strategy"] for r in records if r["status"] == "ok")
        return [*points, Point(name, strategy, float(acc.mean()), *_interval(acc), size, cost)]
    n = pool_size(records)
    ks = k_values(n)
    maj = maj_matrix(records, ks)
    for j, k in enumerate(ks):
        col = maj[:, j]
        points.append(Point(name, f"maj@{k}", float(col.mean()), *_interval(col), size,
                            cost.scaled(k / n)))
    return points


def pareto_front(points: Sequence[Point], axis: str = "tokens") -> list[Point]:
    """The points no other point dominates (more accurate at no more cost, or as accurate
    for less), sorted by cost; points without a cost on ``axis`` are left out."""
    known = [p for p in points if p.x(axis) is not None]
    front = []
    for p in known:
        px = p.x(axis)
        assert px is not None
        dominated = any(
            (q.x(axis) or 0.0) <= px and q.accuracy >= p.accuracy
            and ((q.x(axis) or 0.0) < px or q.accuracy > p.accuracy)
            for q in known
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p.x(axis), -p.accuracy))


def headline(records: Sequence[Record], kind: Kind) -> dict[str, float]:
    """Problem id -> headline value: maj@N (pool run) or correctness (strategy run)."""
    if kind == "strategy":
        values = correct_vector(records)
    else:
        values = maj_matrix(records, [pool_size(records)])[:, 0]
    return {r["id"]: float(v) for r, v in zip(records, values)}


def pairwise(
    runs: Sequence[tuple[str, Sequence[Record], Kind]], *, rng: np.random.Generator
) -> list[tuple[str, str, PairedResult | None]]:
    """Paired comparison of every two runs on their shared problems (B against A, in the
    order given); None where they share no problem."""
    heads = [(name, headline(records, kind)) for name, records, kind in runs]
    out: list[tuple[str, str, PairedResult | None]] = []
    for (na, ha), (nb, hb) in itertools.combinations(heads, 2):
        ids = sorted(set(ha) & set(hb))
        res = None
        if ids:
            res = compare_paired([ha[i] for i in ids], [hb[i] for i in ids], rng=rng)
        out.append((na, nb, res))
    return out
