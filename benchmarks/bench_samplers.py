"""Sampler cost: samplescale's pipeline vs Hugging Face logits processors, and the sampler's
share of per-token time in the llama.cpp backend.

Part 1 (needs torch and transformers: run with benchmarks/.venv-hf/bin/python, made by
benchmarks/setup_hf.sh): float32 logits of shape (16, 151936) (Qwen2.5's vocabulary), one
configuration at a time; each step = process the logits AND draw one token per row, for both
sides (samplescale ``pipeline.sample``; HF ``LogitsProcessorList`` + softmax +
``torch.multinomial``). The two sides alternate repetition by repetition; medians reported.

Part 2 (needs the llama extra: run with .venv/bin/python): ``LlamaCppBackend.generate`` of 16
samples x 64 tokens with ``pipeline.sample`` wrapped by a timer; the share is sampler seconds /
generate seconds.

Logits: real next-token logits of Qwen2.5-Coder-0.5B-Instruct (vocabulary 151,936) at 16
positions of a greedy answer to a GSM8K problem (``logits`` part, saved to
benchmarks/out/qwen_logits.npy), and synthetic N(0, 3^2) logits, a flat worst case where
top-p and typical sampling keep a large share of the vocabulary.

Usage::

    .venv/bin/python benchmarks/bench_samplers.py logits
    benchmarks/.venv-hf/bin/python benchmarks/bench_samplers.py hf --reps 15
    .venv/bin/python benchmarks/bench_samplers.py llama --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from samplescale.config import SamplingParams  # noqa: E402
from samplescale.sampling import pipeline  # noqa: E402

VOCAB = 151_936
BATCH = 16
HERE = Path(__file__).resolve().parent
QWEN = HERE / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
REAL_LOGITS = HERE / "out" / "qwen_logits.npy"

CONFIGS = {
    "top-k 50, T 0.7": dict(top_k=50, temperature=0.7),
    "top-p 0.9, T 0.7": dict(top_p=0.9, temperature=0.7),
    "min-p 0.05, T 0.7": dict(min_p=0.05, temperature=0.7),
    "typical 0.9": dict(typical_p=0.9),
    "epsilon 3e-4": dict(epsilon=3e-4),
    "eta 3e-4": dict(eta=3e-4),
    "repetition 1.2 (64-token history)": dict(repetition_penalty=1.2),
    "top-k 50 + top-p 0.9 + min-p 0.05, T 0.7": dict(
        top_k=50, top_p=0.9, min_p=0.05, temperature=0.7
    ),
}


def hf_processors(cfg: dict):
    from transformers import (
        EpsilonLogitsWarper,
        EtaLogitsWarper,
        LogitsProcessorList,
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
        TypicalLogitsWarper,
    )

    procs = []
    if "repetition_penalty" in cfg:
        procs.append(RepetitionPenaltyLogitsProcessor(cfg["repetition_penalty"]))
    if "top_k" in cfg:
        procs.append(TopKLogitsWarper(cfg["top_k"]))
    if "typical_p" in cfg:
        procs.append(TypicalLogitsWarper(cfg["typical_p"]))
    if "top_p" in cfg:
        procs.append(TopPLogitsWarper(cfg["top_p"]))
    if "min_p" in cfg:
        procs.append(MinPLogitsWarper(cfg["min_p"]))
    if "epsilon" in cfg:
        procs.append(EpsilonLogitsWarper(cfg["epsilon"]))
    if "eta" in cfg:
        procs.append(EtaLogitsWarper(cfg["eta"], device="cpu"))
    if "temperature" in cfg:
        procs.append(TemperatureLogitsWarper(cfg["temperature"]))
    return LogitsProcessorList(procs)


def save_real_logits() -> None:
    """Qwen2.5-Coder-0.5B logits at 16 positions of a greedy GSM8K answer."""
    from samplescale.backends.llamacpp import LlamaCppBackend
    from samplescale.types import Prompt

    if not QWEN.is_file():
        raise SystemExit(f"{QWEN} missing: run .venv/bin/python benchmarks/fetch_qwen.py")
    backend = LlamaCppBackend(QWEN, n_ctx=2048, n_seq_max=1)
    prompt = Prompt.user(
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May? "
        "Think step by step."
    )
    tokens = backend.tokenize_prompt(prompt)
    rows = []
    for _ in range(BATCH):
        logits = backend.logits_at(tokens)[0]
        rows.append(logits)
        tokens.append(int(np.argmax(logits)))
    REAL_LOGITS.parent.mkdir(parents=True, exist_ok=True)
    np.save(REAL_LOGITS, np.stack(rows).astype(np.float32))
    print(f"saved {REAL_LOGITS} ({len(rows)} x {backend.vocab_size})")


def bench_hf(reps: int) -> None:
    import torch
    import transformers

    rng = np.random.default_rng(0)
    history = rng.integers(0, VOCAB, size=(BATCH, 64))
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}, numpy {np.__version__}; "
        f"logits float32 ({BATCH}, {VOCAB}); {reps} alternating repetitions, medians"
    )
    sets = {"synthetic N(0, 3^2)": (rng.standard_normal((BATCH, VOCAB)) * 3).astype(np.float32)}
    if REAL_LOGITS.is_file():
        sets = {"Qwen2.5-Coder-0.5B": np.load(REAL_LOGITS), **sets}
    for label, logits in sets.items():
        print(f"\nLogits: {label}\n")
        _bench_hf_set(logits, history, reps)


def _bench_hf_set(logits: np.ndarray, history: np.ndarray, reps: int) -> None:
    import torch

    t_logits = torch.from_numpy(logits)
    t_ids = torch.from_numpy(history)
    gen = torch.Generator().manual_seed(0)
    print("| configuration | samplescale ms/step | HF processors ms/step | HF / samplescale |")
    print("|---|---:|---:|---:|")
    for name, cfg in CONFIGS.items():
        params = SamplingParams(**cfg)
        hist = history.tolist() if params.penalized else None
        procs = hf_processors(cfg)
        ours, theirs = [], []
        for r in range(reps + 1):
            t0 = time.perf_counter()
            pipeline.sample(logits, params, np.random.default_rng(r), history=hist)
            t1 = time.perf_counter()
            scores = procs(t_ids, t_logits.clone())
            torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=gen)
            t2 = time.perf_counter()
            if r:  # the first repetition warms caches up
                ours.append(t1 - t0)
                theirs.append(t2 - t1)
        a, b = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")


def bench_llama(rounds: int) -> None:
    from samplescale.backends.llamacpp import LlamaCppBackend
    from samplescale.types import Prompt

    spent = [0.0]
    inner = pipeline.sample

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - t0

    pipeline.sample = timed  # the backend calls pipeline.sample through the module
    backend = LlamaCppBackend(n_ctx=4096, n_seq_max=16)
    prompt = Prompt.user("Write a long, detailed essay about the history of the Roman Empire.")
    configs = {
        "T 0.8": SamplingParams(temperature=0.8),
        "top-p 0.9 + min-p 0.05, T 0.8": SamplingParams(temperature=0.8, top_p=0.9, min_p=0.05),
        "typical 0.9 + repetition 1.1": SamplingParams(typical_p=0.9, repetition_penalty=1.1),
    }
    print(f"SmolLM2-135M (vocab {backend.vocab_size}), 16 samples x 64 tokens, {rounds} rounds")
    print("| configuration | sampler share of generate time (median) | rounds |")
    print("|---|---:|---|")
    for name, params in configs.items():
        shares = []
        for r in range(rounds):
            spent[0] = 0.0
            t0 = time.perf_counter()
            backend.generate(prompt, params.replace(n=16, max_tokens=64, seed=r))
            shares.append(spent[0] / (time.perf_counter() - t0))
        rounds_txt = ", ".join(f"{s:.1%}" for s in shares)
        print(f"| {name} | {statistics.median(shares):.1%} | {rounds_txt} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=("logits", "hf", "llama"))
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.part == "logits":
        save_real_logits()
    elif args.part == "hf":
        bench_hf(args.reps)
    else:
        bench_llama(args.rounds)


if __name__ == "__main__":
    main()
