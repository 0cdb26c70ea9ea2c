#!/usr/bin/env bash
# Section (n4) of RESULTS.md: reprompting (a recipe learned by Gibbs sampling on training
# problems OFFSET .. OFFSET+TRAIN-1) vs self-consistency at about the same generated tokens,
# both on the first LIMIT problems (never trained on). Arithmetic level LEVEL, one thread.
# Resumable: eval directories resume; reprompt prints its recipe again under the same settings.
# TASK (default "--task arithmetic --level LEVEL") picks another task, e.g. section (n6)'s
# TASK="--task gsm8k --data ../shared/data/gsm8k/test.jsonl --temperature 0.8"; SC=0 skips the
# self-consistency runs (when a pool of samples gives maj@k at every k instead).
set -euo pipefail
S=${S:-.venv/bin/samplescale}
OUT=${OUT:-runs/bench-n4}
MODEL=${MODEL:-}
LEVEL=${LEVEL:-3}
LIMIT=${LIMIT:-30}
OFFSET=${OFFSET:-30}
TRAIN=${TRAIN:-16}
N=${N:-4}
TOKENS=${TOKENS:-160}
read -r -a TASK_ARGS <<< "${TASK:---task arithmetic --level $LEVEL}"
COMMON=("${TASK_ARGS[@]}" --max-tokens "$TOKENS" --threads 1 --seed 0 ${MODEL:+--model "$MODEL"})
# the recipe: K = 2 examples, T = TRAIN Gibbs iterations, 3 candidates scored
$S reprompt "${COMMON[@]}" --offset "$OFFSET" --limit "$TRAIN" --k 2 --iterations "$TRAIN" \
    --candidates 3 --init-tries 4 --output "$OUT/recipe"
$S eval "${COMMON[@]}" --limit "$LIMIT" -n "$N" --strategy reprompting \
    --option "recipe=$OUT/recipe/recipe.json" --output "$OUT/reprompting-$N"
# self-consistency at N, and at N_SC samples (about reprompting's generated tokens: its
# samples are longer, they copy the examples' worked steps)
[[ "${SC:-1}" == 0 ]] && exit 0
for n in "$N" "${N_SC:-6}"; do
    $S eval "${COMMON[@]}" --limit "$LIMIT" -n "$n" --strategy self-consistency --output "$OUT/sc-$n"
done
$S compare "$OUT/reprompting-$N" "$OUT/sc-$N" "$OUT/sc-${N_SC:-6}"
