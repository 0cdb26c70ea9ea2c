"""Speculative sampling with a model drafting for itself: acceptance rate, tokens per target
call and generated tokens/s against plain sequential decoding, measured in one run.

Only self-draft pairs are possible with the models available here (SmolLM2-135M and
Qwen2.5-Coder-0.5B have different tokenizers). With draft == target the acceptance rate is
~1 and each target call yields about ``k + 1`` tokens, but the draft costs as much per token
as the target, so on a CPU this measures the machinery's overhead, not a speed-up: a real
speed-up needs a draft much cheaper than the target with the same tokenizer.

For each model, per round (medians over rounds): ``plain`` = ``LlamaCppBackend.generate``
called once per sample (``n=1``); ``spec k=K`` = :class:`SpeculativeBackend` on the same
prompts and seeds.

Usage: .venv/bin/python benchmarks/bench_speculative.py [--tokens 48] [--n 4] [--k 2 4]
       [--rounds 1] [--temperature 0.8] [--models smollm2 qwen]
"""

from __future__ import annotations

import argparse
import statistics
import time

from samplescale.backends.llamacpp import LlamaCppBackend, default_model_path
from samplescale.config import SamplingParams
from samplescale.decoders.speculative import SpeculativeBackend
from samplescale.types import Prompt

PROMPT = Prompt.user("Write a short story about a lighthouse keeper.")


def plain_rate(backend: LlamaCppBackend, params: SamplingParams, seed: int) -> float:
    start, tokens = time.perf_counter(), 0
    for i in range(params.n):
        one = params.replace(n=1, seed=seed + i)
        tokens += backend.generate(PROMPT, one).usage.completion_tokens
    return tokens / (time.perf_counter() - start)


def bench_model(path: str, args: argparse.Namespace) -> None:
    backend = LlamaCppBackend(path, n_ctx=4096)
    params = SamplingParams(n=args.n, temperature=args.temperature, max_tokens=args.tokens)
    backend.generate(PROMPT, params.replace(n=1, max_tokens=4, seed=0))  # warm-up
    rows: dict[str, list[tuple[float, float | None, float | None]]] = {"plain": []}
    for r in range(args.rounds):
        rows["plain"].append((plain_rate(backend, params, 1000 * r), None, None))
        for k in args.k:
            spec = SpeculativeBackend(backend, backend, k=k)
            start = time.perf_counter()
            gen, stats = spec.generate_with_stats(PROMPT, params.replace(seed=1000 * r))
            rate = gen.usage.completion_tokens / (time.perf_counter() - start)
            rows.setdefault(f"spec k={k}", []).append(
                (rate, stats.acceptance_rate, stats.tokens_per_target_call)
            )
    print(
        f"\n{backend.model_path.name}: n={args.n} samples, max_tokens={args.tokens}, "
        f"T={args.temperature}, rounds={args.rounds} (medians)"
    )
    print(
        f"{'mode':>10} {'tokens/s':>9} {'vs plain':>9} {'acceptance':>11} {'tok/target call':>16}"
    )
    base = statistics.median(x[0] for x in rows["plain"])
    for name, values in rows.items():
        rate = statistics.median(x[0] for x in values)
        acc = [x[1] for x in values if x[1] is not None]
        per = [x[2] for x in values if x[2] is not None]
        print(
            f"{name:>10} {rate:9.1f} {rate / base:8.2f}x "
            f"{f'{statistics.median(acc):.3f}' if acc else '-':>11} "
            f"{f'{statistics.median(per):.2f}' if per else '-':>16}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--k", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument(
        "--models",
        nargs="+",
        choices=["smollm2", "qwen"],
        default=["smollm2"],
        help="smollm2: the embedded model; qwen: Qwen2.5-Coder-0.5B (fetched if missing)",
    )
    args = ap.parse_args()
    for name in args.models:
        if name == "qwen":
            from fetch_qwen import fetch

            bench_model(str(fetch()), args)
        else:
            bench_model(str(default_model_path()), args)


if __name__ == "__main__":
    main()
