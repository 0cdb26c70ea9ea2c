"""Server load: 32 concurrent clients x 4 requests on loopback; p50 / p99 latency.

Two back-ends, one after the other:
- fake: the scripted backend (no model), ``self-consistency@3`` per request: the server's
  own overhead (validation, queueing, worker threads, voting, JSON).
- embedded: SmolLM2-135M through llama.cpp, ``self-consistency@4`` with 16 tokens per
  sample: requests queue behind the model (one decode loop at a time).

Every request must be answered exactly once with its own answer (checked as in
tests/test_server_load.py). Run: ``.venv/bin/python benchmarks/bench_server_load.py``
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from _server_helpers import percentile, run_load, serve  # noqa: E402

from samplescale import ScriptedBackend  # noqa: E402
from samplescale.server import create_app  # noqa: E402


def report(name: str, records: list, wall: float, clients: int, per_client: int) -> None:
    ids = {r[0] for r in records}
    ok = [r for r in records if r[1] == 200]
    assert len(records) == len(ids) == clients * per_client, "lost or duplicated requests"
    lat = [r[2] for r in ok]
    print(f"| {name} | {len(records)} | {len(ok)} | {percentile(lat, 0.5) * 1000:.0f} | "
          f"{percentile(lat, 0.99) * 1000:.0f} | {wall:.1f} | {len(records) / wall:.1f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=4, help="per client")
    ap.add_argument("--skip-embedded", action="store_true")
    args = ap.parse_args()
    c, k = args.clients, args.requests
    print("| backend | requests | answered 200 | p50 latency (ms) | p99 latency (ms) | "
          "wall (s) | requests/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def echo(prompt, i):
        tag = re.search(r"tag=(\S+)", prompt.messages[-1].content).group(1)
        return f"reply to {tag}: The answer is {len(tag)}."

    def fake_body(ci, ki):
        return {"model": "self-consistency@3/fake",
                "messages": [{"role": "user", "content": f"tag=c{ci}-r{ki}"}]}

    with serve(create_app(ScriptedBackend(echo), "fake", max_queue=c)) as url:
        t0 = time.perf_counter()
        records = run_load(url, c, k, fake_body, timeout_s=120)
        wall = time.perf_counter() - t0
    for rid, status, _, body in records:
        assert status == 200 and body["choices"][0]["message"]["content"].startswith(f"reply to {rid}:")
    report("fake, self-consistency@3", records, wall, c, k)

    if not args.skip_embedded:
        from samplescale.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend(n_ctx=4096, n_seq_max=4)

        def llama_body(ci, ki):
            return {"model": "self-consistency@4/smollm2", "max_tokens": 16, "seed": ci * 100 + ki,
                    "messages": [{"role": "user", "content": f"What is {ci % 9 + 1} + {ki + 1}?"}]}

        with serve(create_app(backend, "smollm2", max_queue=c, max_concurrency=2)) as url:
            t0 = time.perf_counter()
            records = run_load(url, c, k, llama_body, timeout_s=600)
            wall = time.perf_counter() - t0
        report("embedded SmolLM2, self-consistency@4, 16 tokens", records, wall, c, k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
