"""Paired comparison of two pool runs of ``samplescale eval`` on the same problems: is the
difference in pass@k / maj@k / greedy accuracy within sampling noise?

For each k, the per-problem difference ``metric(run B) - metric(run A)`` is averaged over
the problems both runs hold, with a 95% interval mean +- 1.96 sd / sqrt(m) (paired over
problems, so the problems' difficulty cancels). A difference whose interval contains 0 is
within sampling noise at that level.

Usage: .venv/bin/python benchmarks/compare_runs.py RUN_A RUN_B [RUN_C ...]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from samplescale.metrics import maj_at_k, pass_at_k


def load(run: Path) -> dict[str, dict]:
    rows = (json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line)
    return {r["id"]: r for r in rows if r.get("status", "ok") == "ok"}


def per_problem(r: dict, k: int) -> tuple[float, float, float]:
    """pass@k, maj@k and greedy correctness (0/1) of one problem."""
    return (
        pass_at_k(r["n"], r["c"], k),
        maj_at_k(r["labels"], r["correct_label"], k),
        float(bool(r["greedy"]["correct"])),
    )


def main() -> None:
    runs = [Path(a) for a in sys.argv[1:]]
    base, others = load(runs[0]), [load(r) for r in runs[1:]]
    n = min(r["n"] for r in base.values())
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= n]
    print(f"A = {runs[0]} ({len(base)} problems)")
    for run, other in zip(runs[1:], others):
        ids = sorted(set(base) & set(other))
        print(f"\nB = {run}: {len(ids)} shared problems; B - A, mean [95% interval] (paired)")
        print(
            "| k | pass@k A | pass@k B | diff | maj@k A | maj@k B | diff |\n|---|---|---|---|---|---|---|"
        )
        for k in ks:
            a = np.array([per_problem(base[i], k) for i in ids])
            b = np.array([per_problem(other[i], k) for i in ids])
            cells = []
            for col in (0, 1):
                d = b[:, col] - a[:, col]
                half = 1.96 * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
                cells += [
                    f"{a[:, col].mean():.3f}",
                    f"{b[:, col].mean():.3f}",
                    f"{d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}]",
                ]
            print(f"| {k} | " + " | ".join(cells) + " |")
        a = np.array([per_problem(base[i], 1)[2] for i in ids])
        b = np.array([per_problem(other[i], 1)[2] for i in ids])
        d = b - a
        half = 1.96 * d.std(ddof=1) / math.sqrt(len(d))
        print(
            f"greedy: A {a.mean():.3f}, B {b.mean():.3f}, diff {d.mean():+.3f} "
            f"[{d.mean() - half:+.3f}, {d.mean() + half:+.3f}]; same greedy answer on "
            f"{sum(base[i]['greedy']['answer'] == other[i]['greedy']['answer'] for i in ids)}"
            f"/{len(ids)} problems"
        )


if __name__ == "__main__":
    main()
