"""The eval loop's greedy row in the pool's call vs the old sequential greedy call (issue 15, item 5).

Two llama.cpp backends on the same GGUF, one problem at a time, side by side:

- ``old``: ``n_seq_max = n`` (the eval CLI's sizing before) and the old code path: a
  greedy call (``Greedy().run``), then the pool (``decoders.generate``);
- ``new``: ``n_seq_max = n + 1`` (the CLI's sizing now) and
  :func:`samplescale.evaluate_records.pool_record`, which decodes the greedy row in the pool's call
  (:mod:`samplescale.evaluate_greedy`).

Per problem it prints both wall times, and whether the greedy text, every pool sample's
text, and the token counts of the usage are identical. The order of the two
runs alternates per problem (contention on shared cores hits both alike).

Usage: .venv/bin/python benchmarks/bench_greedy_row.py MODEL.gguf GSM8K.jsonl
           [--limit 5] [--n 8] [--max-tokens 384] [--threads 1] [--out FILE.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from samplescale.backends.llamacpp import LlamaCppBackend
from samplescale.config import SamplingParams
from samplescale.decoders import generate
from samplescale.evaluate_greedy import batches_greedy
from samplescale.evaluate_records import pool_record, problem_seed
from samplescale.strategies import Greedy
from samplescale.tasks import load_task

TOKENS = ("prompt_tokens", "completion_tokens", "cached_prompt_tokens", "model_calls")
# same_usage_tokens: the pool's usage equal; the greedy's prompt, completion tokens and
# calls equal, its prompt counted as cached in the one call (served by the pool's prefill)


def old_record(problem, prompt, backend, params):  # type: ignore[no-untyped-def]
    """The fields compared, by the old code path: greedy first, then the pool."""
    g = Greedy().run(backend, prompt, params)
    gen = generate(backend, prompt, params.replace(seed=problem_seed(0, problem.id)))
    return {
        "greedy": {"text": g.samples[0].text, "usage": g.usage.model_dump()},
        "samples": [{"text": s.text} for s in gen.samples],
        "usage": gen.usage.model_dump(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSONL of rows; problems in it are skipped")
    a = ap.parse_args()
    params = SamplingParams(n=a.n, temperature=a.temperature, max_tokens=a.max_tokens)
    task = load_task("gsm8k", path=a.data, limit=a.limit)
    backends = {
        name: LlamaCppBackend(
            a.model, n_ctx=None, n_seq_max=a.n + extra, max_tokens=a.max_tokens,
            n_threads=a.threads,
        )
        for name, extra in (("old", 0), ("new", 1))
    }
    done = set()
    if a.out and os.path.exists(a.out):
        with open(a.out) as f:
            done = {json.loads(line)["id"] for line in f if line.strip()}
    assert batches_greedy(backends["new"], params)
    out = open(a.out, "a") if a.out else None
    total = {"old": 0.0, "new": 0.0}
    for i, problem in enumerate(task.problems):
        if problem.id in done:
            continue
        prompt = task.prompt(problem)
        recs, secs = {}, {}
        for name in ("old", "new") if i % 2 == 0 else ("new", "old"):
            t0 = time.perf_counter()
            if name == "new":
                recs[name] = pool_record(problem, prompt, backends[name], params, seed=0)
            else:
                recs[name] = old_record(problem, prompt, backends[name], params)
            secs[name] = time.perf_counter() - t0
            total[name] += secs[name]
        o, n = recs["old"], recs["new"]
        same_greedy = o["greedy"]["text"] == n["greedy"]["text"]
        same_pool = [s["text"] for s in o["samples"]] == [s["text"] for s in n["samples"]]
        og, ng = o["greedy"]["usage"], n["greedy"]["usage"]
        same_tokens = all(o["usage"][k] == n["usage"][k] for k in TOKENS) and all(
            og[k] == ng[k] for k in ("prompt_tokens", "completion_tokens", "model_calls")
        ) and ng["cached_prompt_tokens"] == ng["prompt_tokens"]
        row = {
            "id": problem.id, "old_s": round(secs["old"], 2), "new_s": round(secs["new"], 2),
            "greedy_tokens": o["greedy"]["usage"]["completion_tokens"],
            "pool_tokens": o["usage"]["completion_tokens"],
            "same_greedy": same_greedy, "same_pool": same_pool, "same_usage_tokens": same_tokens,
            "pool_differing_samples": sum(
                x["text"] != y["text"] for x, y in zip(o["samples"], n["samples"])
            ),
        }
        print(json.dumps(row), flush=True)
        if out is not None:
            out.write(json.dumps(row) + "\n")
            out.flush()
    print(json.dumps({"total_old_s": round(total["old"], 1), "total_new_s": round(total["new"], 1),
                      "saving": round(1 - total["new"] / total["old"], 3)}), flush=True)


if __name__ == "__main__":
    main()
