"""Continuous batching on the embedded model (issue 16): 1, 4, 8 and 32 concurrent clients,
p50 / p99 latency and tokens/s, batching off (``--no-batching``: one request at a time)
and on, in one run.

Each level runs the real server on loopback (``create_app`` + uvicorn in a thread) over
one LlamaCppBackend per mode (SmolLM2-135M, ``n_seq_max`` live sequences,
``max_concurrency`` 32); both servers are up at once and each level runs off, then on, so
that both modes meet the same machine load. Every client sends ``--requests`` plain chat requests in turn
(seeded, temperature 1, ``--max-tokens`` tokens at most); tokens/s counts the completion
tokens the responses report. Every request must be answered exactly once with 200.

Run: ``.venv/bin/python benchmarks/bench_server_batching.py [--max-tokens 32]``; rows are
appended to ``benchmarks/results/server_batching.jsonl`` as they finish (``--resume``
skips rows already there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _server_helpers import percentile, run_load, serve  # noqa: E402

from samplescale.server import create_app  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "server_batching.jsonl"
QUESTIONS = ["What is {a} + {b}?", "Name a fruit that starts with the letter {l}.",
             "Write one sentence about the number {a}.", "Say hello to {l} in French."]


def body(ci: int, ki: int, max_tokens: int) -> dict:
    q = QUESTIONS[(ci + ki) % len(QUESTIONS)].format(a=ci % 9 + 1, b=ki + 2, l="ABCDEFG"[ci % 7])
    return {"model": "smollm2", "max_tokens": max_tokens, "temperature": 1.0,
            "seed": 1000 * ci + ki, "messages": [{"role": "user", "content": q}]}


def level(backend, url: str, batching: bool, clients: int, per: int, args) -> None:
    """Run one load level and append its row to OUT."""
    b = backend._live.batcher
    steps, rows = b.steps, b.rows
    t0 = time.perf_counter()
    recs = run_load(url, clients, per, lambda c, k: body(c, k, args.max_tokens), timeout_s=900)
    wall = time.perf_counter() - t0
    assert len({r[0] for r in recs}) == len(recs) == clients * per
    assert all(r[1] == 200 for r in recs), [r[1] for r in recs]
    lat = [r[2] for r in recs]
    toks = sum(r[3]["usage"]["completion_tokens"] for r in recs)
    row = {"batching": batching, "clients": clients, "requests": len(recs),
           "max_tokens": args.max_tokens, "completion_tokens": toks,
           "p50_ms": round(percentile(lat, 0.5) * 1000),
           "p99_ms": round(percentile(lat, 0.99) * 1000),
           "wall_s": round(wall, 1), "tokens_per_s": round(toks / wall, 1),
           "rows_per_step": round((b.rows - rows) / max(b.steps - steps, 1), 2)}
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 32])
    ap.add_argument("--requests", type=int, nargs="+", default=[4, 2, 2, 1],
                    help="requests per client, one value per --clients level")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--n-seq-max", type=int, default=32)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    from samplescale.backends.llamacpp import LlamaCppBackend

    done = set()
    if args.resume and OUT.exists():
        done = {(r["batching"], r["clients"]) for r in map(json.loads, OUT.read_text().splitlines())}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    backends = {m: LlamaCppBackend(n_ctx=4096, n_seq_max=args.n_seq_max, batching=m)
                for m in (False, True)}
    with contextlib.ExitStack() as stack:
        urls = {m: stack.enter_context(serve(create_app(
            b, "smollm2", max_queue=128, max_concurrency=32))) for m, b in backends.items()}
        for url in urls.values():  # warm-up (page the model in), not timed
            run_load(url, 1, 1, lambda c, k: body(c, k, 4), timeout_s=900)
        for clients, per in zip(args.clients, args.requests):
            for batching in (False, True):  # off then on at each level: the same machine load
                if (batching, clients) not in done:
                    level(backends[batching], urls[batching], batching, clients, per, args)
    print("| batching | clients | requests | p50 (ms) | p99 (ms) | tokens/s | rows a step |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in map(json.loads, OUT.read_text().splitlines()):
        print(f"| {'on' if r['batching'] else 'off'} | {r['clients']} | {r['requests']} | "
              f"{r['p50_ms']} | {r['p99_ms']} | {r['tokens_per_s']} | {r['rows_per_step']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
