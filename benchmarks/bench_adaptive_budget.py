"""`samplescale serve --adaptive-budget`: where a shared token rate puts the samples.

Starts ``samplescale serve`` twice on the embedded SmolLM2 model (without and with
``--adaptive-budget``), sends the same arithmetic questions as ``<strategy>@N`` requests
from a few concurrent clients, and records per request: samples drawn, tokens, whether
the first round's vote was split, the decisions, and correctness. Rows go to a jsonl file
as they finish (resumable: finished (setting, question) pairs are skipped).

    .venv/bin/python benchmarks/bench_adaptive_budget.py --level 2 --limit 24 \
        --budget 1500 --output benchmarks/out/adaptive-budget.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from samplescale.tasks import load_task
from samplescale.verifiers.math import is_equivalent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(budget: int | None, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "samplescale.cli", "serve", "--port", str(port),
           "--threads", str(threads), "--max-concurrency", "4", "--log-level", "warning"]
    if budget is not None:
        cmd += ["--adaptive-budget", str(budget)]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            if httpx.get(url + "/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("samplescale serve did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--level", type=int, default=2)
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--strategy", default="esc@8")
    ap.add_argument("--options", default='{"window": 2}')
    ap.add_argument("--budget", type=int, default=1500, help="tokens per minute")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()
    task = load_task("arithmetic", level=args.level, limit=args.limit)
    done = set()
    if args.output.exists():
        done = {(r["setting"], r["id"]) for r in map(json.loads, args.output.open())}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for setting, budget in (("none", None), (f"{args.budget}/min", args.budget)):
        todo = [p for p in task.problems if (setting, p.id) not in done]
        if not todo:
            continue
        proc, url = start(budget, args.threads)
        try:
            def ask(problem, url=url, setting=setting):
                start_t = time.perf_counter()
                r = httpx.post(url + "/chat/completions", timeout=600, json={
                    "model": f"{args.strategy}/smollm2", "max_tokens": args.max_tokens,
                    "seed": 0, "temperature": 0.8,
                    "messages": [m.model_dump() for m in task.prompt(problem).messages],
                    "samplescale": {"options": json.loads(args.options)}})
                body = r.json()
                ext = body["samplescale"]
                stops = ext.get("stopping", [])
                first = stops[0] if stops else {}
                return {
                    "setting": setting, "id": problem.id, "status": r.status_code,
                    "samples": ext["n"], "tokens": ext["usage"]["completion_tokens"],
                    "seconds": time.perf_counter() - start_t,
                    "first_window_unanimous": first.get("window_unanimous"),
                    "decisions": [s["decision"] for s in stops],
                    "gated": [s.get("global_budget") for s in stops if "global_budget" in s],
                    "correct": bool(ext.get("answer") is not None
                                    and is_equivalent(ext["answer"], problem.gold)),
                }

            with ThreadPoolExecutor(args.clients) as pool, args.output.open("a") as fh:
                for row in pool.map(ask, todo):
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    print(json.dumps(row), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
    rows = [json.loads(x) for x in args.output.open()]
    for setting in sorted({r["setting"] for r in rows}):
        rs = [r for r in rows if r["setting"] == setting]
        split = [r for r in rs if r["first_window_unanimous"] is False]
        settled = [r for r in rs if r["first_window_unanimous"] is True]

        def mean(xs, key):
            return sum(x[key] for x in xs) / len(xs) if xs else float("nan")

        print(f"{setting}: {len(rs)} requests, accuracy {mean(rs, 'correct'):.3f}, "
              f"samples {mean(rs, 'samples'):.2f} (split first window {mean(split, 'samples'):.2f}"
              f" over {len(split)}, unanimous {mean(settled, 'samples'):.2f} over {len(settled)}), "
              f"tokens {sum(r['tokens'] for r in rs)}, denied rounds "
              f"{sum(1 for r in rs for g in r['gated'] if not g['granted'])}")


if __name__ == "__main__":
    main()
