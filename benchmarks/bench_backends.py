"""Generated tokens/s for 16 samples of one prompt: the transformers backend vs llama.cpp
on the same GGUF file, side by side in one run.

Three paths, interleaved round by round (ROUNDS times each, medians reported):

* ``llamacpp``: ``LlamaCppBackend.generate(n=16)`` (one llama.cpp batch per step).
* ``transformers``: ``TransformersBackend.generate(n=16)`` on the same GGUF, dequantized to
  float32 (one torch batch per step, prompt KV cache repeated, samplescale's sampler).
* ``hf-generate``: transformers' own ``model.generate(num_return_sequences=16,
  do_sample=True)`` on the same loaded model: the ceiling for the transformers path.

All at temperature 0.8, 64 generated tokens at most, the same thread count for both engines.

Usage: .venv/bin/python benchmarks/bench_backends.py [--tokens 64] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

from samplescale.backends.llamacpp import LlamaCppBackend
from samplescale.backends.transformers import TransformersBackend
from samplescale.config import SamplingParams
from samplescale.types import Prompt

PROMPT = Prompt.user("Write a long, detailed essay about the history of the Roman Empire.")


def hf_generate(b: TransformersBackend, n: int, tokens: int, seed: int) -> tuple[int, float]:
    import torch

    ids = torch.tensor([b.tokenize_prompt(PROMPT)])
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.inference_mode():
        out = b._model.generate(
            ids,
            do_sample=True,
            temperature=0.8,
            top_k=0,
            top_p=1.0,
            max_new_tokens=tokens,
            num_return_sequences=n,
            pad_token_id=b._tok.eos_token_id,
        )
    dt = time.perf_counter() - start
    new = out[:, ids.shape[1] :]
    generated = 0
    for row in new.tolist():  # tokens up to and including the first end token
        k = next((i + 1 for i, t in enumerate(row) if b.is_end(t)), len(row))
        generated += k
    return generated, dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=16)
    args = ap.parse_args()
    llama = LlamaCppBackend(n_ctx=4096, n_seq_max=args.n, n_threads=args.threads)
    t0 = time.perf_counter()
    hf = TransformersBackend(max_batch=args.n, n_threads=args.threads)
    print(f"transformers load: {time.perf_counter() - t0:.1f} s")
    params = SamplingParams(n=args.n, temperature=0.8, max_tokens=args.tokens)
    rates: dict[str, list[float]] = {"llamacpp": [], "transformers": [], "hf-generate": []}
    for r in range(args.rounds):
        for name, b in (("llamacpp", llama), ("transformers", hf)):
            g = b.generate(PROMPT, params.replace(seed=r))
            rates[name].append(g.usage.completion_tokens / g.usage.wall_time_s)
        tok, dt = hf_generate(hf, args.n, args.tokens, r)
        rates["hf-generate"].append(tok / dt)
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()), flush=True)
    print(
        f"\n{args.n} samples x {args.tokens} tokens, threads={args.threads}, rounds={args.rounds}"
    )
    print("| path | generated tokens/s (median) | rounds |\n|---|---:|---|")
    for k, v in rates.items():
        print(f"| {k} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
    ratio = statistics.median(rates["transformers"]) / statistics.median(rates["llamacpp"])
    print(f"\ntransformers / llamacpp = {ratio:.2f}x")


if __name__ == "__main__":
    main()
