"""Check the coverage law's extrapolation: fit exp(a k^b) on k <= K of a pool run, predict
pass@N, and compare with the measured pass@N of the same pool (RESULTS.md (k)).

Usage: .venv/bin/python benchmarks/bench_extrapolation.py [--fit-k 4] RUN [RUN ...]
(RUN: a run directory of samplescale eval, or a results.jsonl[.gz] file)
"""

from __future__ import annotations

import argparse

import numpy as np

from samplescale.analysis.pools import pass_matrix, pool_size
from samplescale.analysis.scaling import bootstrap_fit, fit_coverage
from samplescale.cli_runs import load_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--fit-k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print("| run | problems | N | fit on k | a | b | predicted pass@N [95% bootstrap] | "
          "measured pass@N | inside |")
    print("|---|---:|---:|---|---:|---:|---|---:|---|")
    for path in args.runs:
        run = load_run(path)
        n = pool_size(run.records)
        ks = list(range(1, min(args.fit_k, n) + 1))
        mat = pass_matrix(run.records, [*ks, n])
        boot = bootstrap_fit(mat[:, :-1], ks, fit_coverage, rng=np.random.default_rng(args.seed),
                             predict_at=[n])
        pred = boot.predictions[float(n)]
        measured = float(mat[:, -1].mean())
        inside = pred["lo"] <= measured <= pred["hi"]
        print(f"| {run.name} | {len(run.records)} | {n} | 1..{ks[-1]} | {boot.fit.params['a']:.3f} "
              f"| {boot.fit.params['b']:.3f} | {pred['value']:.3f} [{pred['lo']:.3f}, "
              f"{pred['hi']:.3f}] | {measured:.3f} | {'yes' if inside else 'no'} |")


if __name__ == "__main__":
    main()
