"""Compute-matched search vs sampling on GSM8K: particle filtering, beam search, best-of-N,
self-consistency at the same generated-token budgets per problem.

Model: Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, fetched by benchmarks/fetch_qwen.py) run by
llama.cpp. Process scorer of the search methods and scorer of best-of-N: P(True)
self-evaluation by the same model (Kadavath et al., 2022; samplescale.verifiers.process).

Budgets are generated (policy) tokens per problem and are never exceeded:

- particle-filtering: about one particle per ``--tokens-per-particle`` (250) tokens of the
  budget (2, 4, 8 at 500, 1000, 2000; ``--particles`` fixes it), ``token_budget=B``
  (per-step ``max_tokens`` ``--step-tokens``, lowered near the end of the budget),
  ``--max-steps`` steps.
- beam-search: as many candidates per round (beam width half of them, 2 expansions per beam),
  ``token_budget=B``.
- best-of-n, self-consistency: a budgeted pool: sample ``i`` gets at most
  ``min(512, tokens left)`` tokens, until fewer than ``--min-sample-tokens`` (64) are left;
  then the strategy selects from the pool (so N grows with B: about B / 260, the mean GSM8K
  solution length of this model, RESULTS.md (b); a last sample cut by the budget counts,
  answer or not). One pool per problem, drawn in batches for the largest budget, serves every
  budget: cutting a sample to its first m tokens is drawing it with ``max_tokens=m``. Their
  ``wall_s`` is the pool's drawing time pro rata to the tokens used, plus scoring.

Scorer tokens (P(True) reads a judging prompt, generates nothing) are reported, not budgeted.
Each finished (problem, method, budget) is appended to a JSONL file at once, so an
interrupted run resumes where it stopped (budgets outermost, so a cut run leaves every
problem done at the small budgets; pools in ``pools.jsonl``). At the end: accuracy with 95%
Wilson intervals and mean generated tokens per method and budget (printed,
``summary.json``, and as the Markdown tables of RESULTS.md (e) in ``summary.md``), and a
plot of accuracy against tokens (``search.png``). The summary also counts the stored
candidate answers that the current answer extraction would read differently
(``stale_answers``): the scores are current when it is 0.

Usage:
  .venv/bin/python benchmarks/bench_search.py [--limit 20] [--first 0] [--budgets 500 1000 2000]
      [--methods particle-filtering beam-search best-of-n self-consistency]
      [--data ../shared/data/gsm8k/test.jsonl] [--model PATH] [--out DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from fetch_qwen import fetch  # noqa: E402

from samplescale.backends.llamacpp import LlamaCppBackend  # noqa: E402
from samplescale.config import SamplingParams  # noqa: E402
from samplescale.evaluate_records import problem_seed  # noqa: E402
from samplescale.metrics import wilson_interval  # noqa: E402
from samplescale.strategies import (  # noqa: E402
    BeamSearch,
    BestOfN,
    ParticleFiltering,
    SelfConsistency,
    Strategy,
)
from samplescale.tasks import gsm8k  # noqa: E402
from samplescale.types import Prompt, Result, Sample, Usage  # noqa: E402
from samplescale.verifiers.extract import sample_answer  # noqa: E402
from samplescale.verifiers.math import is_equivalent  # noqa: E402
from samplescale.verifiers.process import self_evaluation  # noqa: E402
from samplescale.verifiers.scorers import Scorer  # noqa: E402

METHODS = ("particle-filtering", "beam-search", "best-of-n", "self-consistency")
LABELS = {  # the names in RESULTS.md and on the plot
    "particle-filtering": "particle filtering",
    "beam-search": "beam search",
    "best-of-n": "best-of-N (P(True))",
    "self-consistency": "self-consistency",
}
SEARCH = ("particle-filtering", "beam-search")


def search_setup(
    method: str, budget: int, args: argparse.Namespace
) -> tuple[Strategy, SamplingParams]:
    """The search strategy and its sampling parameters at a budget of ``budget`` generated
    tokens: ``particles(budget)`` particles (or candidates per round), so that a search
    spends about the budget instead of stopping early."""
    base = SamplingParams(temperature=args.temperature, top_p=0.95)
    n = particles(budget, args)
    if method == "particle-filtering":
        strategy: Strategy = ParticleFiltering(
            token_budget=budget, max_steps=args.max_steps, scorer=args.scorer
        )
    else:
        strategy = BeamSearch(
            token_budget=budget, max_steps=args.max_steps, expansions=2, scorer=args.scorer
        )
    return strategy, base.replace(n=n, max_tokens=args.step_tokens)


def particles(budget: int, args: argparse.Namespace) -> int:
    """``--particles`` if given, else about one particle per ``--tokens-per-particle``
    generated tokens of the budget (at least 2)."""
    if args.particles:
        return int(args.particles)
    return max(2, round(budget / args.tokens_per_particle))


def draw_pool(
    backend: LlamaCppBackend, prompt: Prompt, params: SamplingParams, budget: int, min_tokens: int
) -> tuple[list[Sample], float]:
    """Independent samples of at most ``params.max_tokens`` tokens, drawn in batches of
    ``params.n`` (batch ``k`` with seed ``params.seed + k``), until :func:`budgeted_pool` at
    ``budget`` is exhausted. Returns the samples and the seconds spent drawing them."""
    samples: list[Sample] = []
    start = time.perf_counter()
    k = 0
    while budgeted_pool(samples, budget, min_tokens, params.max_tokens)[1] >= min_tokens:
        samples += backend.generate(prompt, params.replace(seed=params.seed + k)).samples
        k += 1
    return samples, time.perf_counter() - start


def budgeted_pool(
    pool: list[Sample],
    budget: int,
    min_tokens: int,
    max_tokens: int,
    detokenize: Callable[[Sequence[int]], str] | None = None,
) -> tuple[list[Sample], int]:
    """The samples of the sequential budgeted procedure: sample ``i`` of ``pool`` with at
    most ``min(max_tokens, tokens left)`` tokens, while at least ``min_tokens`` are left.

    A sample cut to its first ``m`` tokens has exactly the law of a sample drawn with
    ``max_tokens=m`` (the tokens are drawn left to right), so cutting the pool's samples is
    the procedure itself, and every budget reads the same pool (common random numbers).
    ``detokenize`` gives the text of a cut sample's tokens (the backend's pieces, decoded
    as the backend decodes them); without it only the token count is right (the pool
    drawing loop needs no more). Returns the samples and the tokens left (``min_tokens`` or
    more: the pool ran out).
    """
    chosen: list[Sample] = []
    left = budget
    for sample in pool:
        if left < min_tokens:
            break
        m = min(max_tokens, left)
        if sample.num_tokens > m:
            sample = sample.model_copy(
                update={
                    "text": detokenize(sample.token_ids[:m]) if detokenize else "",
                    "token_ids": sample.token_ids[:m],
                    "token_texts": sample.token_texts[:m],
                    "logprobs": sample.logprobs[:m],
                    "sampling_logprobs": sample.sampling_logprobs[:m],
                    "finish_reason": "length",
                }
            )
        chosen.append(sample)
        left -= sample.num_tokens
    return chosen, left


def text_of(backend: LlamaCppBackend) -> Callable[[Sequence[int]], str]:
    """Token ids to text as llama.cpp samples are decoded: pieces joined, UTF-8 with
    replacement (``backends.decoding.SequenceBuilder``)."""
    return lambda ids: b"".join(backend.piece(t) for t in ids).decode("utf-8", "replace")


def generated_tokens(result: Result) -> int:
    """Policy tokens: the search strategies' own count, else the samples' completion tokens."""
    end = result.trace[-1] if result.trace else {}
    if end.get("event") == "end" and "policy_tokens" in end:
        return int(end["policy_tokens"])
    return sum(s.num_tokens for s in result.samples)


def run_search(problem: Any, method: str, budget: int, backend: LlamaCppBackend, args) -> dict:
    prompt = Prompt.user(f"{args.instruction}\n\n{problem.question}")
    strategy, params = search_setup(method, budget, args)
    params = params.replace(seed=problem_seed(args.seed, problem.id))
    start = time.perf_counter()
    result = strategy.run(backend, prompt, params)
    end = result.trace[-1] if result.trace else {}
    return record(problem, method, budget, result, end.get("scorer_calls"), params, start)


def run_pooled(
    problem: Any,
    budget: int,
    backend: LlamaCppBackend,
    pool: dict,
    ptrue_cache: dict[str, float],
    args,
) -> list[dict]:
    """Self-consistency and best-of-N (P(True) scores) on the budgeted pool at ``budget``."""
    prompt = Prompt.user(f"{args.instruction}\n\n{problem.question}")
    params = SamplingParams(
        temperature=args.temperature, top_p=0.95, n=1, max_tokens=args.sample_tokens
    ).replace(seed=problem_seed(args.seed, problem.id))
    samples, _ = budgeted_pool(
        pool["samples"], budget, args.min_sample_tokens, args.sample_tokens, text_of(backend)
    )
    share = sum(s.num_tokens for s in samples) / max(1, pool["tokens"])
    ptrue = self_evaluation(backend)

    def p_true(sample: Sample, answer: str | None) -> float:
        if sample.text not in ptrue_cache:
            ptrue_cache[sample.text] = ptrue.score(prompt, (sample.text,))
        return ptrue_cache[sample.text]

    records = []
    for method, strategy in (
        ("self-consistency", SelfConsistency()),
        ("best-of-n", BestOfN(scorer=Scorer(name="p-true", scale="probability", fn=p_true))),
    ):
        start = time.perf_counter() - share * pool["wall_s"]
        state = strategy.init(prompt, params)
        usage = sum(
            (Usage(completion_tokens=s.num_tokens, model_calls=1) for s in samples), Usage()
        )
        state = state.model_copy(update={"samples": tuple(samples), "usage": state.usage + usage})
        result = strategy.finalize(state)
        calls = len(samples) if method == "best-of-n" else None
        records.append(record(problem, method, budget, result, calls, params, start))
    return records


def record(problem, method, budget, result: Result, scorer_calls, params, start) -> dict:
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
        "cached_prompt_tokens": result.usage.cached_prompt_tokens,
        "model_calls": result.usage.model_calls,
        "scorer_calls": scorer_calls,
        "stop_reason": end.get("stop_reason"),
        "samples": len(result.samples),
        "log_evidence": result.log_evidence,
        "wall_s": time.perf_counter() - start,
        "params": params.model_dump(mode="json", include={"n", "max_tokens", "temperature"}),
        # every candidate, so a change of answer extraction can re-score the run offline
        "selected": result.selected,
        "candidates": [
            {"text": s.text, "finish_reason": s.finish_reason, "status": s.status, "answer": a}
            for s, a in zip(result.samples, result.answers or (None,) * len(result.samples))
        ],
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


def covered(record: dict) -> bool:
    """Whether any candidate the method returned has the gold answer (its coverage: what a
    perfect verifier could select)."""
    return any(is_equivalent(c["answer"], record["gold"]) for c in record.get("candidates", ()))


def stale_answers(records: list[dict]) -> int:
    """Candidates whose stored answer differs from what the current extraction reads
    (``sample_answer``): the run's scores are current only when this is 0."""
    stale = 0
    for r in records:
        for c in r.get("candidates", ()):
            ok = c["status"] == "ok"
            got = (
                sample_answer(Sample(text=c["text"], finish_reason=c["finish_reason"]))
                if ok
                else None
            )
            stale += got != c["answer"]
    return stale


def summarize(records: list[dict], out: Path, methods: list[str]) -> list[dict]:
    """Accuracy (95% Wilson interval), mean generated tokens, scorer calls and seconds per
    method and budget, and coverage (a candidate with the gold answer: what a perfect
    verifier could select), over the problems that every method finished at that budget (so the
    methods are compared on the same problems); and, per budget, paired comparisons of
    each search method with each sampling method: problems only one of them solved and the
    exact McNemar p-value (two-sided binomial test on those discordant problems)."""
    from scipy.stats import binomtest

    rows, pairs = [], []
    for budget in sorted({r["budget"] for r in records}):
        by = {
            m: {r["id"]: r for r in records if r["method"] == m and r["budget"] == budget}
            for m in methods
        }
        ids = set.intersection(*(set(v) for v in by.values()))
        if not ids:
            continue
        for method in methods:
            rs = [by[method][i] for i in sorted(ids)]
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
                    "coverage": sum(map(covered, rs)) / len(rs),
                    "mean_scorer_calls": sum(r["scorer_calls"] or 0 for r in rs) / len(rs),
                    "mean_wall_s": sum(r["wall_s"] for r in rs) / len(rs),
                    **cost_per_token(rs),
                }
            )
        sc = next((r for r in rows[-len(methods) :] if r["method"] == "self-consistency"), None)
        for r in rows[-len(methods) :]:
            r["wall_per_token_vs_sc"] = (
                r["s_per_generated_token"] / sc["s_per_generated_token"] if sc else None
            )
        for search in (m for m in methods if m in SEARCH):
            for sampling in (m for m in methods if m not in SEARCH):
                only_search = sum(
                    by[search][i]["correct"] > by[sampling][i]["correct"] for i in ids
                )
                only_sampling = sum(
                    by[sampling][i]["correct"] > by[search][i]["correct"] for i in ids
                )
                n = only_search + only_sampling
                pairs.append(
                    {
                        "budget": budget,
                        "search": search,
                        "sampling": sampling,
                        "problems": len(ids),
                        "only_search": only_search,
                        "only_sampling": only_sampling,
                        "mcnemar_p": binomtest(only_search, n, 0.5).pvalue if n else 1.0,
                    }
                )
    stale = stale_answers(records)
    (out / "summary.json").write_text(
        json.dumps({"rows": rows, "paired": pairs, "stale_answers": stale}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(f"stored answers that the current extraction reads differently: {stale}")
    (out / "summary.md").write_text(markdown(rows, pairs), encoding="utf-8")
    print(
        f"{'method':<20}{'budget':>7}{'n':>4}{'acc':>7}{'95% CI':>14}{'cover':>7}{'tokens':>8}"
        f"{'scorer':>8}{'s/problem':>10}"
    )
    for r in rows:
        ci = f"{r['ci95'][0]:.2f}-{r['ci95'][1]:.2f}"
        print(
            f"{r['method']:<20}{r['budget']:>7}{r['problems']:>4}{r['accuracy']:>7.3f}"
            f"{ci:>14}{r['coverage']:>7.2f}{r['mean_generated_tokens']:>8.0f}"
            f"{r['mean_scorer_calls']:>8.1f}"
            f"{r['mean_wall_s']:>10.0f}"
            f"  prompt computed/token {r['computed_prompt_per_generated_token']:.2f}"
            + (
                f"  s/token vs SC {r['wall_per_token_vs_sc']:.2f}x"
                if r["wall_per_token_vs_sc"]
                else ""
            )
        )
    print("paired (same problems): only-search / only-sampling solved, exact McNemar p")
    for q in pairs:
        print(
            f"  B={q['budget']:<5} {q['search']:<19} vs {q['sampling']:<17} "
            f"{q['only_search']:>2} / {q['only_sampling']:<2} p={q['mcnemar_p']:.3f}"
        )
    plot(rows, out / "search.png")
    return rows


def cost_per_token(rs: list[dict]) -> dict:
    """Seconds per generated token and prompt tokens computed (not served from the KV
    cache) per generated token, over the records ``rs`` (records of runs before
    ``cached_prompt_tokens`` was recorded count every prompt token as computed)."""
    tokens = max(1, sum(r["generated_tokens"] for r in rs))
    computed = sum(r["prompt_tokens"] - r.get("cached_prompt_tokens", 0) for r in rs)
    return {
        "s_per_generated_token": sum(r["wall_s"] for r in rs) / tokens,
        "computed_prompt_per_generated_token": computed / tokens,
        "cached_prompt_share": sum(r.get("cached_prompt_tokens", 0) for r in rs)
        / max(1, sum(r["prompt_tokens"] for r in rs)),
    }


class WithoutPrefixCache:
    """A backend with its prefix sessions hidden (``--no-prefix-cache``): every call of a
    strategy run re-prefills its whole prompt, as before issue 15."""

    def __init__(self, backend: LlamaCppBackend) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> Any:
        if name in ("prefix_session", "cached_logits_at"):
            raise AttributeError(name)
        return getattr(self.backend, name)


def markdown(rows: list[dict], pairs: list[dict]) -> str:
    """The two tables of RESULTS.md (e): per method and budget, and the paired tests."""
    t = [
        "| budget (generated tokens) | method | problems | accuracy | 95% Wilson CI | coverage "
        "| mean generated tokens | scorer calls | s / problem | prompt tokens computed per "
        "generated token | s per generated token vs self-consistency |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t.append(
            f"| {r['budget']} | {LABELS[r['method']]} | {r['problems']} | "
            f"{r['correct']}/{r['problems']}"
            f" = {r['accuracy']:.2f} | {r['ci95'][0]:.2f}-{r['ci95'][1]:.2f} | "
            f"{r['coverage']:.2f} | {r['mean_generated_tokens']:.0f} | "
            f"{r['mean_scorer_calls']:.1f} | {r['mean_wall_s']:.0f} | "
            f"{r['computed_prompt_per_generated_token']:.2f} | "
            + (f"{r['wall_per_token_vs_sc']:.2f}x |" if r["wall_per_token_vs_sc"] else "- |")
        )
    t += [
        "",
        "| budget | search | vs sampling | problems | solved only by search | solved only by "
        "sampling | exact McNemar p |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for q in pairs:
        t.append(
            f"| {q['budget']} | {LABELS[q['search']]} | {LABELS[q['sampling']]} | {q['problems']} | "
            f"{q['only_search']} | {q['only_sampling']} | {q['mcnemar_p']:.3f} |"
        )
    return "\n".join(t) + "\n"


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
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=LABELS[method])
    ax.set_xlabel("generated tokens per problem (mean)")
    ax.set_ylabel("accuracy (95% Wilson CI)")
    ax.set_title("GSM8K, Qwen2.5-Coder-0.5B, compute-matched")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def new_pool(problem: Any, backend: LlamaCppBackend, args) -> dict:
    """The sample pool of ``problem`` for the largest budget."""
    prompt = Prompt.user(f"{args.instruction}\n\n{problem.question}")
    params = SamplingParams(
        temperature=args.temperature, top_p=0.95, n=args.pool_batch, max_tokens=args.sample_tokens
    ).replace(seed=problem_seed(args.seed, problem.id))
    samples, wall = draw_pool(backend, prompt, params, max(args.budgets), args.min_sample_tokens)
    return {
        "id": problem.id,
        "samples": samples,
        "tokens": sum(s.num_tokens for s in samples),
        "wall_s": wall,
    }


def pool_record(pool: dict) -> dict:
    return {**pool, "samples": [s.model_dump(mode="json") for s in pool["samples"]]}


def write(fh, rec: dict) -> None:
    """Append one JSON line and make it durable at once (the run resumes from the file)."""
    fh.write(json.dumps(rec) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/gsm8k/test.jsonl"))
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument(
        "--first", type=int, default=0,
        help="index of the first problem run (problems first..limit-1; to split a run "
        "over processes, each with its own --out)",
    )
    ap.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--model", default=None, help="GGUF file (default: Qwen2.5-Coder-0.5B)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/out/search-qwen0.5b"))
    ap.add_argument(
        "--particles", type=int, default=None, help="fixed particles (default: by budget)"
    )
    ap.add_argument("--tokens-per-particle", type=int, default=250)
    ap.add_argument("--sample-tokens", type=int, default=512)
    ap.add_argument("--pool-batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--n-seq-max",
        type=int,
        default=16,
        help="llama.cpp sequences (cached partial solutions and scorer prompts share them)",
    )
    ap.add_argument(
        "--no-prefix-cache",
        action="store_true",
        help="re-prefill every prompt of a search (the behaviour before issue 15)",
    )
    ap.add_argument(
        "--scorer", default="p-true", choices=["p-true", "p-true-in-context"],
        help="process scorer of the searches (p-true-in-context: asked in the policy's own "
        "conversation, so a score decodes only the question)",
    )
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
    ap.add_argument(
        "--summarize-only", action="store_true", help="summarize the results file, run nothing"
    )
    args = ap.parse_args()
    out = Path(args.out)
    if args.summarize_only:
        summarize(load_done(out / "results.jsonl"), out, args.methods)
        return
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    records = load_done(results)
    done = {(r["id"], r["method"], r["budget"]) for r in records}
    pools = {r["id"]: r for r in load_done(out / "pools.jsonl")}
    for pool in pools.values():
        pool["samples"] = [Sample.model_validate(s) for s in pool["samples"]]
    llama = LlamaCppBackend(
        args.model or fetch(), n_ctx=8192, n_seq_max=args.n_seq_max, n_threads=args.threads
    )
    backend: Any = WithoutPrefixCache(llama) if args.no_prefix_cache else llama
    task = gsm8k(args.data, limit=args.limit)
    task = task.model_copy(update={"problems": task.problems[args.first:]})
    search = [m for m in args.methods if m in SEARCH]
    pooled = [m for m in args.methods if m not in SEARCH]
    ptrue_cache: dict[str, float] = {}
    with results.open("a", encoding="utf-8") as fh, (out / "pools.jsonl").open("a") as pool_fh:
        # Budgets outermost: an interrupted run leaves every problem at the small budgets.
        for budget in args.budgets:
            for problem in task.problems:
                new: list[dict] = []
                for method in search:
                    if (problem.id, method, budget) not in done:
                        new.append(run_search(problem, method, budget, backend, args))
                        write(fh, new[-1])
                if pooled and any((problem.id, m, budget) not in done for m in pooled):
                    if problem.id not in pools:
                        pools[problem.id] = new_pool(problem, backend, args)
                        write(pool_fh, pool_record(pools[problem.id]))
                    for rec in run_pooled(
                        problem, budget, backend, pools[problem.id], ptrue_cache, args
                    ):
                        if (
                            rec["method"] in pooled
                            and (problem.id, rec["method"], budget) not in done
                        ):
                            new.append(rec)
                            write(fh, rec)
                for rec in new:
                    records.append(rec)
                    print(
                        f"{problem.id} {rec['method']:<18} B={budget:<5} "
                        f"correct={rec['correct']!s:<5} tokens={rec['generated_tokens']:<5} "
                        f"{rec['wall_s']:.0f}s",
                        flush=True,
                    )
    summarize(records, out, args.methods)


if __name__ == "__main__":
    main()
