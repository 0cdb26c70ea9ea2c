"""Generated tokens/s for 16 samples of one prompt: batched shared-prefix vs sequential calls.

Three measurements, interleaved in one run (ROUNDS times each, medians reported):

* ``batched``: the product, ``LlamaCppBackend.generate`` with ``n=16`` (one llama.cpp batch
  per step, prompt KV cache shared).
* ``sequential``: the product, 16 calls with ``n=1``.
* ``bare``: a bare llama.cpp batch loop on the same context (low-level API, numpy softmax
  sampling, no stop strings, no per-sample bookkeeping): the ceiling for the batched path.

Usage: .venv/bin/python benchmarks/bench_batched.py [--model PATH] [--tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from samplescale.backends.llamacpp import LlamaCppBackend
from samplescale.config import SamplingParams
from samplescale.types import Prompt

PROMPT = Prompt.user("Write a long, detailed essay about the history of the Roman Empire.")


def bare_loop(b: LlamaCppBackend, n: int, tokens: int, seed: int) -> tuple[int, float]:
    """Prompt once as sequence 0, copy to n sequences, then one batch per step."""
    ll, mem = b._ll, b._ctx.memory
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    prompt = b.tokenize_prompt(PROMPT)
    logits = b._prefill(prompt)[None, :].repeat(n, axis=0)
    for j in range(1, n):
        ll.llama_memory_seq_cp(mem, 0, j, 0, len(prompt))
    alive = list(range(n))
    generated = 0
    for step in range(tokens):
        p = np.exp((logits - logits.max(axis=1, keepdims=True)) / 0.8)
        p /= p.sum(axis=1, keepdims=True)
        toks = [int(rng.choice(p.shape[1], p=row)) for row in p]
        generated += len(alive)
        keep = [(i, t) for i, t in zip(alive, toks) if not ll.llama_vocab_is_eog(b._model.vocab, t)]
        if not keep or step == tokens - 1:
            break
        alive = [i for i, _ in keep]
        b._decode([(t, len(prompt) + step, i, True) for i, t in keep])
        logits = b._logits(len(alive))
    return generated, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    b = LlamaCppBackend(args.model, n_seq_max=args.n)
    params = SamplingParams(n=args.n, temperature=0.8, max_tokens=args.tokens)
    rates: dict[str, list[float]] = {"batched": [], "sequential": [], "bare": []}
    b.generate(PROMPT, params.model_copy(update={"n": 2, "max_tokens": 4, "seed": 0}))  # warm-up
    for r in range(args.rounds):
        t = time.perf_counter()
        g = b.generate(PROMPT, params.model_copy(update={"seed": r}))
        rates["batched"].append(g.usage.completion_tokens / (time.perf_counter() - t))
        t = time.perf_counter()
        total = 0
        for i in range(args.n):
            total += b.generate(
                PROMPT, params.model_copy(update={"n": 1, "seed": 1000 * r + i})
            ).usage.completion_tokens
        rates["sequential"].append(total / (time.perf_counter() - t))
        with b._lock:
            gen, dt = bare_loop(b, args.n, args.tokens, seed=r)
        rates["bare"].append(gen / dt)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"model {b.model_path.name}, n={args.n}, max_tokens={args.tokens}, rounds={args.rounds}")
    for k, v in med.items():
        print(
            f"{k:>10}: {v:7.1f} generated tokens/s  (rounds: {', '.join(f'{x:.1f}' for x in rates[k])})"
        )
    print(f"batched / sequential = {med['batched'] / med['sequential']:.2f}x")
    print(f"batched / bare loop  = {med['batched'] / med['bare']:.3f}")


if __name__ == "__main__":
    main()
