"""Summaries of evaluation records: pass@k / maj@k curves with intervals, tokens and time.

Estimators (all from ONE pool of N samples per problem):

* pass@k: the unbiased estimator of Chen et al. (2021) per problem, averaged over problems.
* maj@k: the exact expectation, over uniformly random k-subsets of the pool, that the
  majority vote of the subset is correct (:func:`samplescale.metrics.maj_at_k`).
* intervals: 95% Wilson score interval on the mean over problems (treating the sum of
  per-problem values as successes, conservative for fractional values), and a 95%
  percentile bootstrap over problems in ``summary.json``.
* tokens at k: mean generated tokens per problem to draw k samples (k times the mean
  tokens per sample). Time at k: the pool's wall time scaled by k / N (the N samples are
  decoded together, so this is the cost share of k samples, not the latency of a
  k-sample run).

Problems that could not be run (error records, :mod:`samplescale.records`) count as wrong:
pass@k, maj@k, greedy and strategy accuracy are means over ALL problems, with 0 for each
error record, so an error never raises a rate. Tokens and time are means over the problems
that ran. ``problem_errors`` lists the errors (id and reason); ``sample_errors`` counts
failed samples (``Sample.status == "error"``) inside the problems that ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from samplescale.analysis.intervals import bootstrap_interval, mean_with_interval
from samplescale.metrics import maj_at_k, pass_at_k

Record = dict[str, Any]


def k_values(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, and ``n`` itself if it is not a power of two."""
    ks = [1]
    while ks[-1] * 2 <= n:
        ks.append(ks[-1] * 2)
    if ks[-1] != n:
        ks.append(n)
    return ks


def _interval(values: Sequence[float], rng: np.random.Generator) -> dict[str, float]:
    out = mean_with_interval(values)
    lo, hi = bootstrap_interval(values, rng=rng)
    return {**out, "boot_lo": lo, "boot_hi": hi}


def _ran(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r["status"] == "ok"]


def _errors(records: Sequence[Record]) -> dict[str, Any]:
    return {
        "problem_errors": [
            {"id": r["id"], "reason": r["error"]["message"]}
            for r in records
            if r["status"] == "error"
        ],
        "sample_errors": sum(s["status"] == "error" for r in _ran(records) for s in r["samples"]),
    }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _greedy_summary(records: Sequence[Record], rng: np.random.Generator) -> dict[str, Any]:
    ran = _ran(records)
    g = [float(r["status"] == "ok" and r["greedy"]["correct"]) for r in records]
    return {
        **_interval(g, rng),
        "tokens": _mean([r["greedy"]["usage"]["completion_tokens"] for r in ran]),
        "time_s": _mean([r["greedy"]["usage"]["wall_time_s"] for r in ran]),
    }


def summarize_pool(records: Sequence[Record], seed: int = 0) -> dict[str, Any]:
    """Summarise pool records (see the module docstring for the estimators).

    Parameters
    ----------
    records : sequence of dict
        Records from :func:`samplescale.evaluate.evaluate` without a strategy: pool
        records, all with the same N, and error records (counted as wrong).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``{"problems", "n", "greedy": {...}, "curve": [{"k", "pass": {...}, "maj": {...},
        "tokens", "time_s"}, ...], "usage": {...}, "problem_errors": [{"id", "reason"}],
        "sample_errors"}``; every rate has ``mean``, ``lo``, ``hi`` (Wilson) and
        ``boot_lo``, ``boot_hi``. With no problem that ran, ``n`` is None and the curve
        is empty.
    """
    rng = np.random.default_rng(seed)
    ran = _ran(records)
    n = min((r["n"] for r in ran), default=None)
    curve = [] if n is None else _curve(records, n, rng)
    return {
        "problems": len(records),
        "n": n,
        "greedy": _greedy_summary(records, rng),
        "curve": curve,
        "usage": _total_usage(ran),
        **_errors(records),
    }


def _curve(records: Sequence[Record], n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """pass@k and maj@k for k = 1, 2, 4, ..., n over all records (errors count 0)."""
    ran = _ran(records)
    tokens_per_sample = _mean([s["tokens"] for r in ran for s in r["samples"]])
    pool_time = _mean([r["usage"]["wall_time_s"] for r in ran])
    ok = [r["status"] == "ok" for r in records]
    curve = []
    for k in k_values(n):
        passes = [pass_at_k(r["n"], r["c"], k) if o else 0.0 for r, o in zip(records, ok)]
        majs = [
            maj_at_k(r["labels"], r["correct_label"], k) if o else 0.0
            for r, o in zip(records, ok)
        ]
        curve.append(
            {
                "k": k,
                "pass": _interval(passes, rng),
                "maj": _interval(majs, rng),
                "tokens": k * tokens_per_sample,
                "time_s": pool_time * k / n,
            }
        )
    return curve


def summarize_strategy(records: Sequence[Record], seed: int = 0) -> dict[str, Any]:
    """Summarise strategy records: accuracy with intervals, tokens and time, beside greedy.

    Error records count as wrong (module docstring); ``strategy`` is None when no problem ran.
    """
    rng = np.random.default_rng(seed)
    ran = _ran(records)
    acc = [float(r["status"] == "ok" and r["correct"]) for r in records]
    return {
        "problems": len(records),
        "strategy": ran[0]["strategy"] if ran else None,
        "accuracy": _interval(acc, rng),
        "tokens": _mean([r["usage"]["completion_tokens"] for r in ran]),
        "time_s": _mean([r["usage"]["wall_time_s"] for r in ran]),
        "greedy": _greedy_summary(records, rng),
        "usage": _total_usage(ran),
        **_errors(records),
    }


def _total_usage(records: Sequence[Record]) -> dict[str, Any]:
    keys = ("prompt_tokens", "completion_tokens", "model_calls", "wall_time_s")
    tot = {k: 0 for k in keys}
    for r in records:
        for part in (r["usage"], r["greedy"]["usage"]):
            for k in keys:
                tot[k] += part[k]
    return tot
