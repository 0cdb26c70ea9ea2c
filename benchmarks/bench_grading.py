"""Grading speed: answers graded per second, before (a git revision) and after (this tree).

One grading = ``is_equivalent(extract_answer(output), extract_answer(gold))``, what an
evaluation does per sample. Two workloads:

* ``gsm8k``: GSM8K-style outputs built from the 1,319 GSM8K test answers
  (``data/gsm8k/test.jsonl``): per problem one right output ("... The answer is N.") and
  one wrong (``#### N+1``), graded against the gold solution (``... #### N``);
* ``latex``: the 257 (gold, output) pairs of the public grading table
  (``tests/data/grading_cases.jsonl``: real MATH, NuminaMath and OpenThoughts outputs).

Each side runs in its own process on the same inputs: the old side imports the package
exported from the revision (``git archive``), the new side this tree's ``src``. The
verification worker is started before timing, every repetition grades every pair
afresh in a new process, the two sides alternate repetition by repetition (so a change
of load hits both), and each side's best repetition is kept.

With ``--regrade RESULTS.jsonl`` it instead grades every output of an evaluation's
``results.jsonl`` with both sides and lists the outputs whose verdict changed.

Usage::

    .venv/bin/python benchmarks/bench_grading.py --before main --reps 3
    .venv/bin/python benchmarks/bench_grading.py --before main --regrade runs/.../results.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
TABLE = ROOT / "tests" / "data" / "grading_cases.jsonl"


def gsm8k_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        gold = json.loads(line)["answer"]
        n = gold.rsplit("####", 1)[1].strip().replace(",", "")
        steps = gold.rsplit("####", 1)[0].replace("<<", "").replace(">>", " ").strip()
        pairs.append((f"{steps}\nThe answer is {n}.", gold))
        pairs.append((f"{steps}\n#### {int(n) + 1}", gold))
    return pairs


def latex_pairs(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [(row["pred"], row["gold"]) for row in rows]


def results_pairs(path: Path) -> list[tuple[str, str]]:
    """(output, gold) for every sample and greedy answer of an eval ``results.jsonl``."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts = [s["text"] for s in record.get("samples", []) if s.get("status") == "ok"]
        if record.get("greedy"):
            texts.append(record["greedy"]["text"])
        pairs += [(text, record["gold"]) for text in texts]
    return pairs


def verdicts(src: str, path: Path) -> list[bool]:
    """Run in a child process: the verdict on every output of a results file."""
    sys.path.insert(0, src)
    import samplescale.verifiers.math as vm

    return [
        vm.is_equivalent(vm.extract_answer(out), gold, timeout=10.0)
        for out, gold in results_pairs(path)
    ]


def measure(src: str, workload: str, reps: int) -> dict[str, float]:
    """Run in a child process: grade the workload ``reps`` times with ``src`` first on sys.path."""
    sys.path.insert(0, src)
    import samplescale.verifiers.math as vm

    pairs = gsm8k_pairs(GSM8K) if workload == "gsm8k" else latex_pairs(TABLE)
    vm.is_equivalent("x+1", "1+x")  # start the worker outside the timing
    best, graded = float("inf"), []
    for _ in range(reps):
        vm._decide.cache_clear()
        start = time.perf_counter()
        graded = [
            vm.is_equivalent(vm.extract_answer(out), vm.extract_answer(gold), timeout=10.0)
            for out, gold in pairs
        ]
        best = min(best, time.perf_counter() - start)
    result = {"pairs": len(pairs), "graded_right": sum(graded), "seconds": best}
    result["per_s"] = len(pairs) / best
    if workload == "latex":  # agreement with Math-Verify's documented verdicts
        rows = [json.loads(line) for line in TABLE.read_text(encoding="utf-8").splitlines()]
        result["agree_mv"] = sum(
            g == row["math_verify"] for g, row in zip(graded, rows, strict=True)
        )
        result["wrong_right"] = sum(
            g and not row["verdict"] for g, row in zip(graded, rows, strict=True)
        )
    return result


def export(revision: str, into: Path) -> str:
    """``src`` of ``revision`` unpacked into ``into``; its path."""
    archive = into / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision, "src"], cwd=ROOT, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return str(into / "src")


def child(src: str, workload: str, reps: int, regrade: str | None = None) -> Any:
    cmd = [sys.executable, __file__, "--child", src, "--workload", workload, "--reps", str(reps)]
    cmd += ["--regrade", regrade] if regrade else []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="main", help="git revision of the old side")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--regrade", help="instead: grade every output of this eval results.jsonl with both sides"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workload", default="gsm8k", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.regrade:
            print(json.dumps(verdicts(args.child, Path(args.regrade))))
        else:
            print(json.dumps(measure(args.child, args.workload, args.reps)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        old_src = export(args.before, Path(tmp))
        if args.regrade:
            old = child(old_src, "", 1, args.regrade)
            new = child(str(ROOT / "src"), "", 1, args.regrade)
            pairs = results_pairs(Path(args.regrade))
            print(f"outputs {len(pairs)}: right {sum(old)} ({args.before}), {sum(new)} (this)")
            for (out, gold), a, b in zip(pairs, old, new, strict=True):
                if a != b:
                    print(f"  gold {gold!r}: {args.before} {a}, this {b}: {out[-160:]!r}")
            return
        print(
            f"{'workload':8} {'side':>8} {'pairs':>6} {'right':>6} {'seconds':>8} {'graded/s':>9}"
        )
        for workload in ("gsm8k", "latex"):
            best: dict[str, dict[str, Any]] = {}
            for _ in range(args.reps):  # the sides alternate, so load changes hit both
                for side, src in ((args.before, old_src), ("this", str(ROOT / "src"))):
                    r = child(src, workload, 1)
                    if side not in best or r["seconds"] < best[side]["seconds"]:
                        best[side] = r
            for side, r in best.items():
                extra = ""
                if "agree_mv" in r:
                    extra = (
                        f"  agrees with Math-Verify on {r['agree_mv']}/{r['pairs']};"
                        f" wrong answers graded right: {r['wrong_right']}"
                    )
                print(
                    f"{workload:8} {side:>8} {r['pairs']:6d} {r['graded_right']:6d} "
                    f"{r['seconds']:8.2f} {r['per_s']:9.1f}{extra}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
