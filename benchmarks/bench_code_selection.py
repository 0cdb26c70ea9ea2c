"""Code selection without the hidden tests, measured with them, on the pool of an eval run.

Reads the pool of a ``samplescale eval --task humaneval`` run (every sample's program) and
applies the rules of the code strategies (:mod:`samplescale.verifiers.code_select`: the
same functions ``eval --strategy`` runs) to it: best-of-N by the public examples, MBR-exec
(self-consistency over behaviour) and AlphaCode-style filtering then clustering. Beside
them: the first sample, pass@1 (the unbiased estimator over the pool) and coverage (pass@N,
the hidden tests as the oracle); and pass@k, maj@k for every k = 1..N. Every rate is a mean
over problems with a 95% Wilson interval (problems that could not be run count as wrong)::

    .venv/bin/python benchmarks/bench_code_selection.py --run DIR --data HumanEval.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from samplescale.metrics import maj_at_k, mean_with_interval, pass_at_k
from samplescale.tasks.code import humaneval
from samplescale.verifiers.code_select import RULES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args()
    task = humaneval(args.data)
    problems = {p.id: p for p in task.problems}
    records = [json.loads(x) for x in (args.run / "results.jsonl").read_text().splitlines()]
    rows: dict[str, list[float]] = {k: [] for k in ("pass@1", "first", *RULES, "coverage")}
    with_examples = 0
    for rec in records:
        if rec["status"] != "ok":  # a problem that could not be run counts as wrong
            for values in rows.values():
                values.append(0.0)
            continue
        tests = task.public_tests(problems[rec["id"]])
        with_examples += bool(tests.examples)
        correct = [s["correct"] for s in rec["samples"]]
        runs = tests.run_programs([s["program"] for s in rec["samples"]])
        rows["pass@1"].append(pass_at_k(rec["n"], rec["c"], 1))
        rows["first"].append(float(correct[0]))
        for name, rule in RULES.items():
            chosen = rule(runs, len(tests.examples)).selected
            rows[name].append(float(chosen is not None and correct[chosen]))
        rows["coverage"].append(float(any(correct)))
    ok = [r for r in records if r["status"] == "ok"]
    n = min((r["n"] for r in ok), default=0)
    curve = [
        {
            "k": k,
            "pass": mean_with_interval(
                [pass_at_k(r["n"], r["c"], k) if r["status"] == "ok" else 0.0 for r in records]
            ),
            "maj": mean_with_interval(
                [maj_at_k(r["labels"], r["correct_label"], k) if r["status"] == "ok" else 0.0
                 for r in records]
            ),
        }
        for k in range(1, n + 1)
    ]
    report = {
        "problems": len(records),
        "samples_per_problem": n,
        "with_public_examples": with_examples,
        **{k: mean_with_interval(v) for k, v in rows.items()},
        "curve": curve,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
