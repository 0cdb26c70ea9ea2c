"""Code selection without the hidden tests, measured with them: best-of-N by the prompt's
public examples and self-consistency by behaviour (AlphaCode-style clustering), beside the
first sample (pass@1 of one draw) and coverage (pass@N, hidden tests as the oracle).

Reads the pool of a ``samplescale eval --task humaneval`` run (every sample's program)::

    .venv/bin/python benchmarks/bench_code_selection.py --run DIR --data HumanEval.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from samplescale.tasks.code import humaneval
from samplescale.verifiers.code_select import select_offline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args()
    problems = {p.id: p for p in humaneval(args.data).problems}
    rows = []
    for line in (args.run / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        p = problems[rec["id"]]
        out = select_offline(rec, p.metadata["code_prompt"], p.metadata["entry_point"])
        rows.append(out)
    n = len(rows)
    keys = ("first", "best_of_n_public", "behaviour_vote", "coverage")
    report = {"problems": n, "samples_per_problem": len(rec["samples"]) if n else 0}
    report.update({k: sum(r[k] for r in rows) / n for k in keys} if n else {})
    report["with_examples"] = sum(r["examples"] > 0 for r in rows)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
