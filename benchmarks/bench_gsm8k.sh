#!/usr/bin/env bash
# The main job on real problems: the first 30 GSM8K test problems with Qwen2.5-Coder-0.5B-Instruct
# (fetched by benchmarks/fetch_qwen.py), greedy plus one pool of 16 samples per problem.
# Usage: benchmarks/bench_gsm8k.sh [path/to/gsm8k/test.jsonl]   (default: ../shared/data/gsm8k/test.jsonl)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/gsm8k/test.jsonl}"
model=$(.venv/bin/python benchmarks/fetch_qwen.py 2>/dev/null)
.venv/bin/samplescale eval --task gsm8k --data "$data" --limit 30 --n 16 --temperature 0.8 \
  --max-tokens 512 --model "$model" --output benchmarks/out/gsm8k-qwen0.5b-n16
