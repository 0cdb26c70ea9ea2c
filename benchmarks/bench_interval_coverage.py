"""Coverage of 95% intervals for accuracy and pass@k at 20, 50 and 100 problems.

Seeded simulation (RESULTS.md (k)): for each number of problems P and each scenario, draw
``--reps`` synthetic benchmarks, compute each interval and count how often it contains the
true rate.

* accuracy: P problems solved independently with probability p (0/1 per problem);
* pass@k: per-problem solve rates p_i ~ Beta(a, b), a pool of n samples each,
  c_i ~ Binomial(n, p_i), the unbiased pass@k per problem; the true pass@k is
  E[1 - (1 - p)^k] = 1 - B(a, b + k) / B(a, b).

Usage: .venv/bin/python benchmarks/bench_interval_coverage.py [--reps 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from scipy import special

from samplescale.analysis.intervals import clopper_pearson_interval, wilson_interval
from samplescale.analysis.small_sample import (
    clustered_interval,
    jeffreys_interval,
    normal_interval,
)
from samplescale.metrics import pass_at_k

Interval = Callable[[np.ndarray], tuple[float, float]]

BINARY: dict[str, Interval] = {
    "CLT (Wald)": normal_interval,
    "Jeffreys": lambda v: jeffreys_interval(float(v.sum()), v.size),
    "Clopper-Pearson": lambda v: clopper_pearson_interval(int(v.sum()), v.size),
    "Wilson": lambda v: wilson_interval(int(v.sum()), v.size),
}
RATES: dict[str, Interval] = {
    "CLT (Wald)": normal_interval,
    "clustered Jeffreys (capped, default)": clustered_interval,
    "clustered Clopper-Pearson (capped)": lambda v: clustered_interval(
        v, method="clopper-pearson"
    ),
    "clustered Jeffreys, uncapped": lambda v: clustered_interval(v, cap=False),
    "Wilson on the sum": lambda v: wilson_interval(float(v.sum()), v.size),
}


def coverage(draw: Callable[..., np.ndarray], truth: float, methods: dict[str, Interval],
             reps: int) -> dict[str, float]:
    hits = dict.fromkeys(methods, 0)
    for _ in range(reps):
        v = draw()
        for name, f in methods.items():
            lo, hi = f(v)
            hits[name] += lo <= truth <= hi
    return {name: h / reps for name, h in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.reps} synthetic benchmarks per cell; 95% nominal; "
          f"Monte Carlo sd ~ {np.sqrt(0.95 * 0.05 / args.reps):.3f}")
    for p in (0.9, 0.95):
        print(f"\naccuracy, true p = {p}")
        print("| interval | P = 20 | P = 50 | P = 100 |\n|---|---:|---:|---:|")
        rows: dict[str, list[float]] = {m: [] for m in BINARY}
        for size in (20, 50, 100):
            cov = coverage(
                lambda size=size, p=p: (rng.random(size) < p).astype(float), p, BINARY, args.reps
            )
            for m, c in cov.items():
                rows[m].append(c)
        for m, cs in rows.items():
            print(f"| {m} | " + " | ".join(f"{c:.3f}" for c in cs) + " |")
    for a, b, n, k in ((1.0, 0.1, 16, 4), (0.3, 0.3, 16, 4), (1.0, 0.2, 16, 1), (0.2, 1.0, 16, 4)):
        truth = float(1 - np.exp(special.betaln(a, b + k) - special.betaln(a, b)))
        table = np.array([pass_at_k(n, c, k) for c in range(n + 1)])
        print(f"\npass@{k}, p_i ~ Beta({a}, {b}), n = {n} samples per problem, "
              f"true pass@{k} = {truth:.3f}")
        print("| interval | P = 20 | P = 50 | P = 100 |\n|---|---:|---:|---:|")
        rows = {m: [] for m in RATES}
        for size in (20, 50, 100):
            cov = coverage(
                lambda size=size, t=table, a=a, b=b, n=n: t[rng.binomial(n, rng.beta(a, b, size))],
                truth,
                RATES,
                args.reps,
            )
            for m, c in cov.items():
                rows[m].append(c)
        for m, cs in rows.items():
            print(f"| {m} | " + " | ".join(f"{c:.3f}" for c in cs) + " |")


if __name__ == "__main__":
    main()
