"""Markdown table of strategy runs and a pool's maj@k curve (RESULTS sections (n2)-(n6)).

Usage: ``python benchmarks/table_runs.py RUN [RUN ...]``. A RUN is an ``eval`` output
directory, or several joined with ``,`` (one method run over parts of a benchmark, e.g.
problems 0-14 and 15-29): their records are pooled into one row. A pool run (no strategy)
gives maj@k rows at k = 1, 2, 4, 8, 16 (exact, ``maj_matrix``) with the generated tokens of
k samples; ``POOL:15`` takes its first 15 problems only (to match a method run on those).
Accuracy intervals are Wilson 95% over problems (``wilson_interval``; for maj@k, of the
expected number right).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from samplescale.analysis.intervals import wilson_interval
from samplescale.analysis.pools import maj_matrix, pass_matrix

KS = (1, 2, 4, 8, 16)


def _records(run: str) -> list[dict]:
    recs: list[dict] = []
    for d in map(Path, run.split(",")):
        lines = (d / "results.jsonl").read_text().splitlines()
        recs += [json.loads(line) for line in lines if line.strip()]
    return recs


def _pool_rows(run: str) -> list[tuple]:
    path, _, first = run.partition(":")
    recs = [r for r in _records(path) if r["status"] == "ok"]
    recs = recs[:int(first)] if first else recs
    n = min(r["n"] for r in recs)
    ks = [k for k in KS if k <= n]
    maj, cover = maj_matrix(recs, ks).sum(axis=0), pass_matrix(recs, ks).sum(axis=0)
    per_sample = sum(s["tokens"] for r in recs for s in r["samples"]) / sum(
        len(r["samples"]) for r in recs)
    return [(f"maj@{k} (pool of {n}{f', first {first}' if first else ''})", m / len(recs),
             *wilson_interval(m, len(recs)), f"{c:.1f} / {len(recs)}", k * per_sample,
             None, None, None, None) for k, m, c in zip(ks, maj, cover)]


def rows(run: str) -> list[tuple]:
    """One row per run, or one per k for a pool run; none for a directory without results."""
    if not all((Path(d) / "results.jsonl").exists() for d in run.split(":")[0].split(",")):
        return []
    if ":" in run or not json.loads((Path(run.split(",")[0]) / "run.json").read_text())[
            "strategy"]:
        return _pool_rows(run)
    ok = [r for r in _records(run) if r["status"] == "ok"]
    right = sum(r["correct"] for r in ok)
    lo, hi = wilson_interval(right, len(ok))

    def mean(key: str) -> float:
        return sum(r["usage"][key] for r in ok) / len(ok)

    saved = [r["batch"]["saved_prompt_tokens"] for r in ok if "batch" in r]
    name = " + ".join(Path(d).name for d in run.split(","))
    return [(name, right / len(ok), lo, hi,
             f"{sum(any(s['correct'] for s in r['samples']) for r in ok)} / {len(ok)}",
             mean("completion_tokens"), mean("prompt_tokens"), mean("model_calls"),
             mean("wall_time_s"), sum(saved) / len(saved) if saved else None)]


def main(runs: list[str]) -> None:
    print("| method | accuracy | 95% Wilson | any sample right | generated tokens "
          "| prompt tokens | model calls | wall s | prompt tokens saved |")
    print("|---|---|---|---|---|---|---|---|---|")

    def f(v: float | None, p: int) -> str:
        return "" if v is None else f"{v:.{p}f}"

    for run in runs:
        for n, acc, lo, hi, cov, tok, pt, mc, w, sv in rows(run):
            print(f"| {n} | {acc:.3f} | {lo:.2f}-{hi:.2f} | {cov} | {tok:.0f} | {f(pt, 0)} "
                  f"| {f(mc, 2)} | {f(w, 1)} | {f(sv, 1)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
