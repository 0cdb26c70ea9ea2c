"""Constrained generation on real models: mask cost per token, and the bias of masking.

Part ``cost``: for SmolLM2-135M and Qwen2.5-Coder-0.5B (llama.cpp, the product's
``generate``), one JSON schema and one regular expression, draws ``--n`` samples and splits
each generated token's wall time into the constraint's share (llguidance's mask fill, the
bitmask to boolean rows, advancing the matchers: timed around
:class:`samplescale.constraints.matcher.RowMatchers`) and the rest (the model's decode step
and the sampler). Also the one-time cost (vocabulary build, compile) and unconstrained
tokens/s side by side in the same run.

Part ``bias``: on SmolLM2, a question whose constraint has a finite language (a few
answers). Every token path the mask allows is enumerated with the model's logits, which
gives both laws exactly: masked sampling's (each step renormalised over the allowed tokens)
and the exact conditional ``p(x | constraint)`` (the model's path probabilities, end token
included, renormalised over the language). Constrained SMC (``constrained-smc``) is run
beside them; total variation distances between the answer distributions are reported.

Usage (results are written as they are measured; finished parts are kept on a rerun)::

    nice .venv/bin/python benchmarks/bench_constraints.py --out benchmarks/results/constraints.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from samplescale.backends.llamacpp import LlamaCppBackend
from samplescale.config import Constraint, SamplingParams
from samplescale.constraints import matcher as M
from samplescale.constraints.matcher import PrefixMatchers
from samplescale.smc.constrained import constrained_smc
from samplescale.types import Prompt

HERE = Path(__file__).resolve().parent
QWEN = HERE / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "email": {"type": "string", "pattern": "^[a-z]+@[a-z]+\\.(com|org)$"},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
    },
    "required": ["name", "age", "email", "hobbies"],
    "additionalProperties": False,
}
REGEX = r"[A-Z][a-z]+ [A-Z][a-z]+, born (19|20)[0-9]{2}, lives in [A-Z][a-z]+\."
COST_CASES = {
    "json-schema": (Constraint(kind="json_schema", source=json.dumps(SCHEMA)),
                    "Describe a fictional person as JSON: name, age, email, hobbies."),
    "regex": (Constraint(kind="regex", source=REGEX),
              "Describe a fictional person in one line: full name, birth year, city."),
}


class Timed:
    """Wall time spent inside RowMatchers' methods (the constraint's share of a step)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0  # CPU time of the calling thread (robust to a busy machine)
        self._orig = (M.RowMatchers.allowed, M.RowMatchers.advance)

    def __enter__(self) -> Timed:
        allowed, advance = self._orig

        def timed(f: Any) -> Any:
            def g(*a: Any, **k: Any) -> Any:
                t, c = time.perf_counter(), time.thread_time()
                try:
                    return f(*a, **k)
                finally:
                    self.seconds += time.perf_counter() - t
                    self.cpu_seconds += time.thread_time() - c
            return g

        M.RowMatchers.allowed, M.RowMatchers.advance = timed(allowed), timed(advance)  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        M.RowMatchers.allowed, M.RowMatchers.advance = self._orig  # type: ignore[method-assign]


def cost(backend: LlamaCppBackend, n: int, max_tokens: int) -> dict[str, Any]:
    from samplescale.constraints.compiler import compile_matcher
    from samplescale.constraints.vocabulary import build_tokenizer

    t = time.perf_counter()
    tok = build_tokenizer(backend.piece, backend.is_end, backend.vocab_size)
    out: dict[str, Any] = {"vocab_size": backend.vocab_size,
                           "vocabulary_build_s": time.perf_counter() - t}
    backend.generate(Prompt.user("Hi"), SamplingParams(max_tokens=4, seed=0))  # warm up
    for name, (constraint, question) in COST_CASES.items():
        t = time.perf_counter()
        compile_matcher(constraint, tok)
        compile_s = time.perf_counter() - t
        prompt = Prompt.user(question)
        free = SamplingParams(n=n, seed=1, max_tokens=max_tokens)
        t = time.perf_counter()
        g0 = backend.generate(prompt, free)
        free_s = time.perf_counter() - t
        params = free.replace(constraint=constraint)
        backend.generate(prompt, params.replace(n=1, max_tokens=2))  # the vocabulary, cached
        with Timed() as timer:
            t, c = time.perf_counter(), time.process_time()
            g = backend.generate(prompt, params)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
        tokens = sum(s.num_tokens for s in g.samples)
        steps = max(s.num_tokens for s in g.samples)
        out[name] = {
            "compile_s": compile_s,
            "samples": n,
            "tokens": tokens,
            "complete": sum(s.finish_reason == "stop" for s in g.samples),
            "wall_s": wall,
            "mask_s": timer.seconds,
            "mask_share": timer.seconds / wall,
            "cpu_s": cpu,
            "mask_cpu_s": timer.cpu_seconds,
            "mask_share_cpu": timer.cpu_seconds / cpu,
            "load_average_1min": os.getloadavg()[0],
            "mask_ms_per_step": 1e3 * timer.seconds / steps,
            "ms_per_step": 1e3 * wall / steps,
            "constrained_tokens_per_s": tokens / wall,
            "unconstrained_tokens_per_s": sum(s.num_tokens for s in g0.samples) / free_s,
            "example": g.samples[0].text[:200],
        }
        print(name, json.dumps(out[name]), file=sys.stderr, flush=True)
    return out


def enumerate_language(
    backend: LlamaCppBackend, prompt: Prompt, constraint: Constraint, max_tokens: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Masked sampling's law and the exact conditional over the answer texts, by walking
    every token path the mask allows (a finite language)."""
    ids = backend.tokenize_prompt(prompt)
    pm = PrefixMatchers(constraint, backend.piece, backend.is_end, backend.vocab_size)
    masked: Counter[str] = Counter()
    model: Counter[str] = Counter()

    def visit(prefix: tuple[int, ...], log_p: float, log_q: float) -> None:
        logits = backend.logits_at(ids + list(prefix))[0].astype(np.float64)
        allowed = pm.allowed([prefix])[0]
        lse = np.logaddexp.reduce(logits)
        lse_kept = np.logaddexp.reduce(logits[allowed])
        for tok in np.flatnonzero(allowed):
            lp = logits[tok] - lse
            lq = logits[tok] - lse_kept
            if backend.is_end(int(tok)):
                text = b"".join(backend.piece(t) for t in prefix).decode("utf-8", "replace")
                masked[text] += math.exp(log_q + lq)
                model[text] += math.exp(log_p + lp)
            elif len(prefix) + 1 < max_tokens:
                visit(pm.extend(prefix, int(tok)), log_p + lp, log_q + lq)

    visit((), 0.0, 0.0)
    z = sum(model.values())
    return dict(masked), {k: v / z for k, v in model.items()} | {"__Z__": z}


def tv(p: dict[str, float], q: dict[str, float]) -> float:
    keys = (set(p) | set(q)) - {"__Z__"}
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


BIAS_CASES = {
    "prime": ("Is 7 a prime number? Answer Yes or No.", r"(Yes|No)"),
    "capital": ("What is the capital of Australia?", r"(Sydney|Canberra|Melbourne)"),
}


def bias(backend: LlamaCppBackend, particles: int, runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (question, regex) in BIAS_CASES.items():
        prompt = Prompt.user(question)
        c = Constraint(kind="regex", source=regex)
        t = time.perf_counter()
        masked, exact = enumerate_language(backend, prompt, c, max_tokens=8)
        enum_s = time.perf_counter() - t
        smc: Counter[str] = Counter()
        zs = []
        t = time.perf_counter()
        for r in range(runs):
            res = constrained_smc(backend, prompt, SamplingParams(max_tokens=8, constraint=c, seed=r),
                                  particles)
            for s, w in zip(res.samples, res.weights):
                smc[s.text] += w / runs
            zs.append(math.exp(res.log_evidence))
        smc_s = time.perf_counter() - t
        out[name] = {
            "question": question, "regex": regex,
            "masked_law": masked, "exact_conditional": {k: v for k, v in exact.items() if k != "__Z__"},
            "P_constraint_exact": exact["__Z__"], "P_constraint_smc_mean": float(np.mean(zs)),
            "smc_weighted": dict(smc), "smc_particles": particles, "smc_runs": runs,
            "tv_masked_vs_exact": tv(masked, exact), "tv_smc_vs_exact": tv(dict(smc), exact),
            "enumerate_s": enum_s, "smc_s": smc_s,
        }
        print(name, json.dumps(out[name]), file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--particles", type=int, default=16)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--parts", nargs="+", default=["cost", "bias"])
    args = ap.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))

    if "bias" in args.parts and "bias | SmolLM2-135M" not in results:
        backend = LlamaCppBackend(n_ctx=4096)
        results["bias | SmolLM2-135M"] = bias(backend, args.particles, args.runs)
        save()
    models = {"SmolLM2-135M": None, "Qwen2.5-Coder-0.5B": QWEN}
    for mname, path in models.items():
        key = f"cost | {mname}"
        if "cost" in args.parts and key not in results:
            backend = LlamaCppBackend(path, n_ctx=4096, n_seq_max=max(4, args.n))
            results[key] = cost(backend, args.n, args.max_tokens)
            save()


if __name__ == "__main__":
    main()
