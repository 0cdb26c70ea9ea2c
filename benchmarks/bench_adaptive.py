"""Adaptive stopping rules priced on one pool, beside self-consistency at 4, 8, 16 (issue 17).

Draws (or resumes) one pool of N samples per problem with ``samplescale eval`` (arithmetic
level 2, the embedded SmolLM2 model by default), then prices every rule of
:func:`samplescale.analysis.stopping_records.default_rules` on it (expected accuracy with a
95 % Wilson interval over problems, expected samples and tokens; exact, or Monte Carlo
with its standard error) and prints a markdown table with maj@k (self-consistency) at
k = 4, 8, 16 from the same pool, and a plot of accuracy against mean samples.

    .venv/bin/python benchmarks/bench_adaptive.py --limit 30 --n 16 \\
        --output benchmarks/out/adaptive-arith2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from samplescale.analysis.intervals import mean_with_interval
from samplescale.analysis.pools import maj_matrix
from samplescale.analysis.stopping_records import default_rules, price_records
from samplescale.strategies import AdaptiveConsistency, ConfidenceStop, SemanticEntropy

# beyond the defaults: looser rules, to trace the accuracy / samples trade-off
EXTRA_RULES = [
    AdaptiveConsistency(threshold=0.6), AdaptiveConsistency(threshold=0.7),
    SemanticEntropy(threshold=1.0), SemanticEntropy(threshold=1.4),
    ConfidenceStop(keep=0.9, consensus=0.6), ConfidenceStop(keep=0.9, consensus=0.8),
    ConfidenceStop(keep=0.5, consensus=0.6),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="arithmetic")
    ap.add_argument("--level", type=int, default=2)
    ap.add_argument("--limit", type=int, default=30)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--draws", type=int, default=2000, help="Monte Carlo orderings per problem")
    ap.add_argument("--output", type=Path, default=Path("benchmarks/out/adaptive-arith2"))
    ap.add_argument("--eval-args", default="", help="extra arguments for samplescale eval")
    ap.add_argument("--price-only", action="store_true",
                    help="price the records drawn so far; draw nothing")
    args = ap.parse_args()
    cmd = [
        sys.executable, "-m", "samplescale.cli", "eval", "--task", args.task,
        *(["--level", str(args.level)] if args.task == "arithmetic" else []),
        "--limit", str(args.limit), "--n", str(args.n),
        "--seed", str(args.seed), "--output", str(args.output), *args.eval_args.split(),
    ]
    if not args.price_only:
        subprocess.run(cmd, check=True)  # resumes a finished or partial run
    records = [json.loads(x) for x in (args.output / "results.jsonl").read_text().splitlines()]
    priced = price_records(records, default_rules() + EXTRA_RULES, seed=args.seed,
                           draws=args.draws)
    ks = [k for k in (1, 4, 8, 16) if k <= priced["budget"]]
    maj = maj_matrix(records, ks)
    ran = [r for r in records if r["status"] == "ok"]
    tok = float(np.mean([s["tokens"] for r in ran for s in r["samples"]]))
    rows = [(f"self-consistency@{k}", mean_with_interval(maj[:, j]), float(k), k * tok, "exact")
            for j, k in enumerate(ks)]
    for r in priced["rules"]:
        keys = ("keep", "consensus") if r["rule"] == "confidence-stop" else (
            "window", "threshold", "round", "m")
        params = ", ".join(f"{k}={r[k]}" for k in keys if k in r)
        se = f" (se {r['accuracy_mc_se']:.4f})" if r["method"] != "exact" else ""
        rows.append((f"{r['rule']} {params}{se}", r["accuracy"], r["samples"], r["tokens"],
                     r["method"]))
    what = f"{args.task} level {args.level}" if args.task == "arithmetic" else args.task
    print(f"\n{what}: {len(records)} problems, pool N={priced['budget']}")
    print("| rule | accuracy | 95% Wilson | mean samples | mean tokens | method |")
    print("|---|---|---|---|---|---|")
    for name, acc, samples, tokens, method in rows:
        print(f"| {name} | {acc['mean']:.3f} | {acc['lo']:.2f}-{acc['hi']:.2f} | "
              f"{samples:.2f} | {tokens:.0f} | {method} |")
    for sk in priced["skipped"]:
        params = " ".join(f"{k}={v}" for k, v in sk.items() if k not in ("rule", "reason"))
        print(f"not priced: {sk['rule']} {params}: {sk['reason']}")
    out = args.output / "stopping.json"
    out.write_text(json.dumps({"priced": priced, "sc": [
        {"k": k, "accuracy": mean_with_interval(maj[:, j])} for j, k in enumerate(ks)]},
        indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5))
    for name, acc, samples, _, _ in rows:
        style = "ks" if name.startswith("self-consistency") else {
            "esc": "^", "adaptive-consistency": "o", "semantic-entropy": "D",
            "confidence-stop": "v", "short-m-at-k": "P"}[name.split()[0]]
        ax.errorbar(samples, acc["mean"], yerr=[[acc["mean"] - acc["lo"]],
                    [acc["hi"] - acc["mean"]]], fmt=style, capsize=3, label=name)
    ax.set_xlabel("mean samples used")
    ax.set_ylabel("accuracy (95% Wilson)")
    ax.set_title(f"{what}: stopping rules priced on one pool")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(args.output / "stopping.png", dpi=120)
    print(f"wrote {out} and {args.output / 'stopping.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
