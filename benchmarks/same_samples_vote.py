"""A selecting strategy against the majority vote over its own samples (RESULTS (n6)).

Usage: ``python benchmarks/same_samples_vote.py RUN [RUN ...]``, each RUN an ``eval``
directory of a strategy that draws samples and then picks an answer among them (thinksum,
model-switch): its records hold every sample's answer and verdict, so self-consistency on
*the same samples* (``samplescale.aggregate.vote``, exact answer classes, ties to the class
seen first) is the paired baseline at exactly the same draws. Prints one line per run:
both accuracies, problems won / lost by the strategy, and the exact McNemar p.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from samplescale.aggregate import vote
from samplescale.analysis.paired import mcnemar_exact


def main(runs: list[str]) -> None:
    for run in runs:
        lines = (Path(run) / "results.jsonl").read_text().splitlines()
        ok = [r for r in map(json.loads, filter(str.strip, lines)) if r["status"] == "ok"]
        method = [bool(r["correct"]) for r in ok]
        sc = []
        for r in ok:
            v = vote([s.get("answer") for s in r["samples"]])
            sc.append(v.winner is not None and bool(r["samples"][v.winner].get("correct")))
        won = sum(m and not s for m, s in zip(method, sc))
        lost = sum(s and not m for m, s in zip(method, sc))
        print(f"{run}: {len(ok)} problems; strategy {sum(method)} right, majority vote of "
              f"the same samples {sum(sc)} right; strategy won {won}, lost {lost} "
              f"(exact McNemar p = {mcnemar_exact(method, sc):.3g})")


if __name__ == "__main__":
    main(sys.argv[1:])
