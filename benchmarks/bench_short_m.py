"""short-m@k on llama.cpp: wall time and tokens against drawing all k, side by side (issue 17).

For each problem (arithmetic level 2, the embedded SmolLM2 model by default) the same k
seeded chains are drawn three ways on one backend, one after the other: all k to the end
(``backend.generate``, self-consistency@k's cost), short-1@k and short-3@k (the strategy,
early exit through ``generate_first``). Same seeds give the same tokens row by row, so
the tokens saved are exact; wall time is measured per call (the order of the three is
rotated from problem to problem). Records go to ``OUTPUT/records.jsonl`` (resumable: done
problems are skipped); a markdown table is printed at the end.

    .venv/bin/python benchmarks/bench_short_m.py --limit 10 --k 8 --output benchmarks/results/short-m-arith2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from samplescale.aggregate import vote
from samplescale.analysis.intervals import mean_with_interval
from samplescale.backends.llamacpp import LlamaCppBackend
from samplescale.config import SamplingParams
from samplescale.strategies import ShortMAtK
from samplescale.tasks import load_task
from samplescale.verifiers.extract import sample_answer
from samplescale.verifiers.math import answers_equivalent


def _correct(answer: str | None, gold: str) -> bool:
    return answer is not None and answers_equivalent(answer, gold)


def run_problem(backend: LlamaCppBackend, task, i: int, args) -> dict:
    problem = task.problems[i]
    prompt = task.prompt(problem)
    params = SamplingParams(n=args.k, max_tokens=args.max_tokens, temperature=args.temperature,
                            seed=args.seed + i)
    out: dict = {"problem": i, "gold": problem.gold}
    jobs = ["all"] + [f"short-{m}" for m in args.m]
    shift = i % len(jobs)
    for job in jobs[shift:] + jobs[:shift]:
        start = time.perf_counter()
        if job == "all":
            gen = backend.generate(prompt, params)
            wall = time.perf_counter() - start
            v = vote([sample_answer(s) for s in gen.samples], None, answers_equivalent)
            out[job] = {"wall_s": wall, "tokens": gen.usage.completion_tokens,
                        "correct": _correct(v.answer, problem.gold),
                        "lengths": [s.num_tokens for s in gen.samples],
                        "finish": [s.finish_reason for s in gen.samples]}
        else:
            r = ShortMAtK(m=int(job.split("-")[1])).run(backend, prompt, params)
            wall = time.perf_counter() - start
            t = r.trace[0]
            out[job] = {"wall_s": wall, "tokens": r.usage.completion_tokens,
                        "correct": _correct(r.answer, problem.gold), "cut_at": t["cut_at"],
                        "cancelled": t["cancelled"], "mode": t["mode"]}
    return out


def table(records: list[dict], args) -> str:
    rows = ["| method | accuracy | 95% Wilson | wall s / problem | tokens / problem | "
            "wall vs all k | tokens vs all k |", "|---|---|---|---|---|---|---|"]
    base_w = float(np.mean([r["all"]["wall_s"] for r in records]))
    base_t = float(np.mean([r["all"]["tokens"] for r in records]))
    for job in ["all"] + [f"short-{m}" for m in args.m]:
        acc = mean_with_interval([float(r[job]["correct"]) for r in records])
        w = float(np.mean([r[job]["wall_s"] for r in records]))
        t = float(np.mean([r[job]["tokens"] for r in records]))
        name = f"all {args.k} (self-consistency@{args.k})" if job == "all" else \
            f"{job.replace('short-', 'short-')}@{args.k}"
        rows.append(f"| {name} | {acc['mean']:.3f} | {acc['lo']:.2f}-{acc['hi']:.2f} | "
                    f"{w:.2f} | {t:.0f} | {w / base_w:.2f} | {t / base_t:.2f} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--level", type=int, default=2)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--m", type=int, nargs="+", default=[1, 3])
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/short-m-arith2"))
    args = ap.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "records.jsonl"
    done = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    task = load_task("arithmetic", level=args.level, limit=args.limit, seed=args.seed)
    backend = LlamaCppBackend(n_ctx=4096, n_seq_max=max(16, args.k), n_threads=args.threads)
    seen = {r["problem"] for r in done}
    for i in range(len(task.problems)):
        if i in seen:
            continue
        rec = run_problem(backend, task, i, args)
        done.append(rec)
        with path.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"problem {i}: " + ", ".join(
            f"{j} {rec[j]['wall_s']:.1f}s {rec[j]['tokens']}tok" for j in rec
            if isinstance(rec[j], dict)), flush=True)
    print(table(done, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
