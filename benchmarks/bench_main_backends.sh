#!/usr/bin/env bash
# The main job (samplescale eval --task arithmetic --n 16, the embedded SmolLM2) on three
# backends, one after another in one run: llama.cpp (the default), transformers (the same
# GGUF, dequantized) and openai (samplescale's own server over llama.cpp, on loopback).
#   benchmarks/bench_main_backends.sh [OUT_DIR]     THREADS=1 by default (same for all)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d /tmp/samplescale-main-XXXX)}
threads=${THREADS:-1}
port=${PORT:-8765}
bin=.venv/bin/samplescale
mkdir -p "$out"
job() { local name=$1; shift; local t0=$SECONDS
  "$bin" eval --task arithmetic --n 16 "$@" --output "$out/$name" | tee "$out/$name.txt"
  echo "$name: $((SECONDS - t0)) s wall" | tee -a "$out/times.txt"; }

job llamacpp --threads "$threads"
job transformers --backend transformers --threads "$threads"
"$bin" serve --port "$port" --threads "$threads" --log-level warning &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 1
done
job openai --backend openai --base-url "http://127.0.0.1:$port/v1"
echo "results in $out"
