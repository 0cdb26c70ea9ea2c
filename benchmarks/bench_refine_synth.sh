#!/usr/bin/env bash
# Section (n) of RESULTS.md: refine vs self-consistency at about the same generated tokens on
# arithmetic level 3 (SmolLM2-135M, the embedded model), and synth's yield on arithmetic L1.
# Resumable: each run is an eval / synth directory under runs/bench-n (rerun to resume).
# Small on purpose (2 shared CPU cores): LIMIT problems, one thread.
set -euo pipefail
LIMIT=${LIMIT:-12}
S=${S:-.venv/bin/samplescale}
OUT=${OUT:-runs/bench-n}
COMMON=(--task arithmetic --level 3 --limit "$LIMIT" --max-tokens 128 --threads 1 --seed 0)
# refine: 2 candidates + 1 round of 2 revisions = 4 samples (+ 4 P(True) calls)
$S eval "${COMMON[@]}" -n 2 --strategy refine --option rounds=1 --output "$OUT/refine-c2-r1"
# self-consistency at 4 samples: about the same generated tokens
$S eval "${COMMON[@]}" -n 4 --strategy self-consistency --output "$OUT/sc-4"
# synth on arithmetic level 1: yield per problem
$S synth --task arithmetic --level 1 --limit "$LIMIT" -n 8 --max-tokens 48 --threads 1 \
    --output "$OUT/synth-l1"
# aggregate: 3 candidates + 1 greedy aggregation call, about the same generated tokens
$S eval "${COMMON[@]}" -n 3 --strategy aggregate --output "$OUT/aggregate-3"
