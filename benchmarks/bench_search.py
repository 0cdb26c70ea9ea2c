"""Compute-matched search vs sampling on GSM8K: particle filtering, beam search, best-of-N,
self-consistency at the same generated-token budgets per problem.

Model: Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, fetched by benchmarks/fetch_qwen.py) run by
llama.cpp. Process scorer of the search methods and scorer of best-of-N: P(True)
self-evaluation by the same model (Kadavath et al., 2022; samplescale.verifiers.process).

Budgets are generated (policy) tokens per problem and are never exceeded:

- particle-filtering: ``--particles`` particles, ``token_budget=B`` (per-step ``max_tokens``
  ``--step-tokens``, lowered near the end of the budget), ``--max-steps`` steps.
- beam-search: ``--particles`` candidates per round (beam width ``particles / 2``, 2
  expansions per beam), ``token_budget=B``.
- best-of-n, self-consistency: a budgeted pool: samples are drawn one at a time, each of at
  most ``min(512, tokens left)`` tokens, until fewer than ``--min-sample-tokens`` (64) are
  left; then the strategy selects from the pool (so N grows with B: about B / 260, the mean
  GSM8K solution length of this model, RESULTS.md (b); a last sample cut by the budget
  counts, answer or not).

Scorer tokens (P(True) reads a judging prompt, generates nothing) are reported, not budgeted.
Each finished (problem, method, budget) is appended to a JSONL file at once, so an
interrupted run resumes where it stopped. At the end: accuracy with 95% Wilson intervals and
mean generated tokens per method and budget (printed, ``summary.json``), and a plot of
accuracy against tokens (``search.png``).

Usage:
  .venv/bin/python benchmarks/bench_search.py [--limit 20] [--budgets 500 1000 2000]
      [--methods particle-filtering beam-search best-of-n self-consistency]
      [--data ../shared/data/gsm8k/test.jsonl] [--model PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from fetch_qwen import fetch  # noqa: E402

from samplescale.backends.llamacpp import LlamaCppBackend  # noqa: E402
from samplescale.config import SamplingParams  # noqa: E402
from samplescale.evaluate import problem_seed  # noqa: E402
from samplescale.metrics import wilson_interval  # noqa: E402
from samplescale.strategies import (  # noqa: E402
    BeamSearch,
    BestOfN,
    ParticleFiltering,
    SelfConsistency,
    Strategy,
)
from samplescale.tasks import gsm8k  # noqa: E402
from samplescale.types import Prompt, Result  # noqa: E402
from samplescale.verifiers.math import is_equivalent  # noqa: E402
from samplescale.verifiers.process import ProcessScorer, self_evaluation  # noqa: E402
from samplescale.verifiers.scorers import Scorer  # noqa: E402

METHODS = ("particle-filtering", "beam-search", "best-of-n", "self-consistency")


def method_setup(
    method: str, budget: int, backend: LlamaCppBackend, prompt: Prompt, args: argparse.Namespace
) -> tuple[Strategy, SamplingParams, ProcessScorer | None]:
    """The strategy, sampling parameters and (best-of-N) outcome scorer of ``method`` at a
    budget of ``budget`` generated tokens."""
    base = SamplingParams(temperature=args.temperature, top_p=0.95)
    if method == "particle-filtering":
        strategy: Strategy = ParticleFiltering(token_budget=budget, max_steps=args.max_steps)
        return strategy, base.replace(n=args.particles, max_tokens=args.step_tokens), None
    if method == "beam-search":
        strategy = BeamSearch(token_budget=budget, max_steps=args.max_steps, expansions=2)
        return strategy, base.replace(n=args.particles, max_tokens=args.step_tokens), None
    params = base.replace(n=1, max_tokens=512)
    if method == "self-consistency":
        return SelfConsistency(), params, None
    ptrue = self_evaluation(backend)
    outcome = Scorer(
        name="p-true", scale="probability", fn=lambda s, a: ptrue.score(prompt, (s.text,))
    )
    return BestOfN(scorer=outcome), params, ptrue


def budgeted_pool(
    strategy: Strategy,
    backend: LlamaCppBackend,
    prompt: Prompt,
    params: SamplingParams,
    budget: int,
    min_tokens: int,
) -> Result:
    """Draw samples one at a time within ``budget`` generated tokens, then let ``strategy``
    (a sampling strategy) select from them."""
    state = strategy.init(prompt, params)
    i = 0
    while (left := budget - sum(s.num_tokens for s in state.samples)) >= min_tokens:
        call = params.replace(n=1, max_tokens=min(params.max_tokens, left), seed=params.seed + i)
        gen = backend.generate(prompt, call)
        state = state.model_copy(
            update={"samples": state.samples + gen.samples, "usage": state.usage + gen.usage}
        )
        i += 1
    return strategy.finalize(state)


def generated_tokens(result: Result) -> int:
    """Policy tokens: the search strategies' own count, else the samples' completion tokens."""
    end = result.trace[-1] if result.trace else {}
    if end.get("event") == "end" and "policy_tokens" in end:
        return int(end["policy_tokens"])
    return sum(s.num_tokens for s in result.samples)


def run_one(problem: Any, method: str, budget: int, backend: LlamaCppBackend, args) -> dict:
    prompt = Prompt.user(f"{args.instruction}\n\n{problem.question}")
    strategy, params, outcome_scorer = method_setup(method, budget, backend, prompt, args)
    params = params.replace(seed=problem_seed(args.seed, problem.id))
    start = time.perf_counter()
    if method in ("best-of-n", "self-consistency"):
        result = budgeted_pool(strategy, backend, prompt, params, budget, args.min_sample_tokens)
    else:
        result = strategy.run(backend, prompt, params)
    tokens = generated_tokens(result)
    if tokens > budget:
        raise RuntimeError(f"{method} spent {tokens} generated tokens over its budget {budget}")
    end = result.trace[-1] if result.trace else {}
    return {
        "id": problem.id,
        "method": method,
        "budget": budget,
        "gold": problem.gold,
        "answer": result.answer,
        "correct": bool(is_equivalent(result.answer, problem.gold)),
        "generated_tokens": tokens,
        "prompt_tokens": result.usage.prompt_tokens,
        "model_calls": result.usage.model_calls,
        "scorer_calls": outcome_scorer.usage.calls if outcome_scorer else end.get("scorer_calls"),
        "stop_reason": end.get("stop_reason"),
        "samples": len(result.samples),
        "log_evidence": result.log_evidence,
        "wall_s": time.perf_counter() - start,
        "params": params.model_dump(mode="json", include={"n", "max_tokens", "temperature"}),
    }


def load_done(path: Path) -> list[dict]:
    """Records already written (a torn last line from an interrupted run is dropped)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise
    return records


def summarize(records: list[dict], out: Path) -> list[dict]:
    rows = []
    for method in METHODS:
        for budget in sorted({r["budget"] for r in records}):
            rs = [r for r in records if r["method"] == method and r["budget"] == budget]
            if not rs:
                continue
            k = sum(r["correct"] for r in rs)
            lo, hi = wilson_interval(k, len(rs))
            rows.append(
                {
                    "method": method,
                    "budget": budget,
                    "problems": len(rs),
                    "correct": k,
                    "accuracy": k / len(rs),
                    "ci95": [lo, hi],
                    "mean_generated_tokens": sum(r["generated_tokens"] for r in rs) / len(rs),
                    "mean_scorer_calls": sum(r["scorer_calls"] or 0 for r in rs) / len(rs),
                    "mean_wall_s": sum(r["wall_s"] for r in rs) / len(rs),
                }
            )
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"{'method':<20}{'budget':>7}{'n':>4}{'acc':>7}{'95% CI':>14}{'tokens':>8}{'scorer':>8}")
    for r in rows:
        ci = f"{r['ci95'][0]:.2f}-{r['ci95'][1]:.2f}"
        print(
            f"{r['method']:<20}{r['budget']:>7}{r['problems']:>4}{r['accuracy']:>7.3f}"
            f"{ci:>14}{r['mean_generated_tokens']:>8.0f}{r['mean_scorer_calls']:>8.1f}"
        )
    plot(rows, out / "search.png")
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in METHODS:
        rs = [r for r in rows if r["method"] == method]
        if not rs:
            continue
        x = [r["mean_generated_tokens"] for r in rs]
        y = [r["accuracy"] for r in rs]
        err = [
            [r["accuracy"] - r["ci95"][0] for r in rs],
            [r["ci95"][1] - r["accuracy"] for r in rs],
        ]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=method)
    ax.set_xlabel("generated tokens per problem (mean)")
    ax.set_ylabel("accuracy (95% Wilson CI)")
    ax.set_title("GSM8K, Qwen2.5-Coder-0.5B, compute-matched")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/gsm8k/test.jsonl"))
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--model", default=None, help="GGUF file (default: Qwen2.5-Coder-0.5B)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/out/search-qwen0.5b"))
    ap.add_argument("--particles", type=int, default=4)
    ap.add_argument("--step-tokens", type=int, default=128)
    ap.add_argument("--max-steps", type=int, default=8)
    ap.add_argument("--min-sample-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--instruction",
        default="Solve the problem. Think step by step, separating steps by a blank line, then "
        "finish your reply with 'The answer is' followed by the final answer.",
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    records = load_done(results)
    done = {(r["id"], r["method"], r["budget"]) for r in records}
    backend = LlamaCppBackend(args.model or fetch(), n_ctx=8192, n_seq_max=8)
    task = gsm8k(args.data, limit=args.limit)
    with results.open("a", encoding="utf-8") as fh:
        for problem in task.problems:
            for budget in args.budgets:
                for method in args.methods:
                    if (problem.id, method, budget) in done:
                        continue
                    rec = run_one(problem, method, budget, backend, args)
                    fh.write(json.dumps(rec) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                    records.append(rec)
                    print(
                        f"{problem.id} {method:<18} B={budget:<5} correct={rec['correct']!s:<5} "
                        f"tokens={rec['generated_tokens']:<5} {rec['wall_s']:.0f}s",
                        flush=True,
                    )
    summarize(records, out)


if __name__ == "__main__":
    main()
