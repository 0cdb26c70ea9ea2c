#!/usr/bin/env bash
# Section (n) of RESULTS.md: refine vs self-consistency at about the same generated tokens on
# arithmetic level 3 (SmolLM2-135M, the embedded model), and synth's yield on arithmetic L1.
# Section (n2): the items 3, 4, 6 and 8 against self-consistency (arithmetic L2).
# Section (n3): item 7, thinksum, against self-consistency on the same samples (arithmetic L3).
# Section (n5): items 5 and 10, model-switch (SmolLM2 then Qwen2.5-Coder-0.5B) and phi-decoding,
# against self-consistency at about the same generated tokens (arithmetic L2).
# Resumable: each run is an eval / synth directory under runs/bench-n (rerun to resume).
# PART=n runs only section (n), PART=n2 only section (n2), PART=n3 only section (n3),
# PART=n5 only section (n5) (QWEN: the second model's GGUF, default benchmarks/models/...).
# Section (n6): GSM8K (first 30 problems) with Qwen2.5-Coder-0.5B: synth's yield, and methods
# against the maj@k curve of section (b)'s pool of 16 (same model, settings and seed).
# PART=n6 runs it; METHODS6 picks its runs (default all: synth model-switch refine aggregate).
# S (the samplescale command) and PY (the python of the tables) may be set.
# Small on purpose (2 shared CPU cores): LIMIT problems, one thread.
set -euo pipefail
LIMIT=${LIMIT:-12}
S=${S:-.venv/bin/samplescale}
OUT=${OUT:-runs/bench-n}
COMMON=(--task arithmetic --level 3 --limit "$LIMIT" --max-tokens 128 --threads 1 --seed 0)
# the tables of RESULTS (n2)-(n6): per method, and maj@k of a pool at k = 1, 2, 4, 8, 16
table() { ${PY:-.venv/bin/python} benchmarks/table_runs.py "$@"; }

if [[ "${PART:-all}" == "all" || "${PART:-all}" == "n" ]]; then
# refine: 2 candidates + 1 round of 2 revisions = 4 samples (+ 4 P(True) calls)
$S eval "${COMMON[@]}" -n 2 --strategy refine --option rounds=1 --output "$OUT/refine-c2-r1"
# self-consistency at 4 samples: about the same generated tokens
$S eval "${COMMON[@]}" -n 4 --strategy self-consistency --output "$OUT/sc-4"
# synth on arithmetic level 1: yield per problem
$S synth --task arithmetic --level 1 --limit "$LIMIT" -n 8 --max-tokens 48 --threads 1 \
    --output "$OUT/synth-l1"
# aggregate: 3 candidates + 1 greedy aggregation call, about the same generated tokens
$S eval "${COMMON[@]}" -n 3 --strategy aggregate --output "$OUT/aggregate-3"
fi

# ---- Section (n2): div-sampling, progressive-hint, fractured, batch-prompting vs
# self-consistency at about the same generated tokens. Arithmetic level 2, not 3: section (n)
# found no sample of any method right on level 3 (coverage 0 for SmolLM2-135M).
# PART=n2 runs only this part; LEVEL2 / LIMIT2 / OUT2 size it.
if [[ "${PART:-all}" == "all" || "${PART:-all}" == "n2" ]]; then
LIMIT2=${LIMIT2:-30}
OUT2=${OUT2:-runs/bench-n2}
C2=(--task arithmetic --level "${LEVEL2:-2}" --limit "$LIMIT2" --max-tokens 128 --threads 1 --seed 0)
$S eval "${C2[@]}" -n 4 --strategy self-consistency --output "$OUT2/sc-4"
# a pool of 16 per problem: maj@k (self-consistency at k samples) for every k <= 16 with its
# tokens, to match each method's generated tokens (summary.json "curve")
$S eval "${C2[@]}" -n 16 --output "$OUT2/pool-16"
# 4 samples over 4 prompts (original, role, instruction, rephrase) + 1 greedy rewording call
$S eval "${C2[@]}" -n 4 --strategy div-sampling \
    --option 'perturbations=["original","role","instruction","rephrase"]' --output "$OUT2/div-4"
# 2 plain samples, then 2 samples hinted with answers drawn from them (hint marginalization)
$S eval "${C2[@]}" -n 2 --strategy progressive-hint --option rounds=1 --output "$OUT2/php-2x2"
# 3 traces, each cut at half and at the end, 1 answer of <= 16 tokens per cut
$S eval "${C2[@]}" -n 3 --strategy fractured --option depths=2 --output "$OUT2/fractured-3x2x1"
# 4 problems per prompt, 4 samples of each batch prompt (room for 4 answers: 512 tokens)
$S eval "${C2[@]}" --max-tokens 512 -n 4 --strategy batch-prompting --option batch_size=4 \
    --output "$OUT2/batch-4x4"
$S compare "$OUT2"/sc-4 "$OUT2"/div-4 "$OUT2"/php-2x2 "$OUT2"/fractured-3x2x1 "$OUT2"/batch-4x4
table "$OUT2"/*/
fi

# ---- Section (n3): thinksum vs self-consistency on arithmetic level 3 (issue 20, item 7).
# Same seed, same N: thinksum's items are the classes of the very samples self-consistency
# votes over (the draw is seeded alike), so the two differ only in the Sum stage, at the same
# generated tokens (a sub-query read from the logits generates none; it costs prompt tokens).
# PART=n3 runs only this part; LEVEL3 / LIMIT3 / OUT3 size it.
if [[ "${PART:-all}" == "all" || "${PART:-all}" == "n3" ]]; then
LIMIT3=${LIMIT3:-30}
OUT3=${OUT3:-runs/bench-n3}
C3=(--task arithmetic --level "${LEVEL3:-3}" --limit "$LIMIT3" --max-tokens 128 --threads 1 --seed 0)
$S eval "${C3[@]}" -n 4 --strategy self-consistency --output "$OUT3/sc-4"
$S eval "${C3[@]}" -n 4 --strategy thinksum --output "$OUT3/thinksum-4"
# the check alone (alpha = 0: the vote shares ignored)
$S eval "${C3[@]}" -n 4 --strategy thinksum --option alpha=0 --output "$OUT3/thinksum-4-a0"
$S eval "${C3[@]}" -n 8 --strategy self-consistency --output "$OUT3/sc-8"
$S compare "$OUT3"/sc-4 "$OUT3"/thinksum-4 "$OUT3"/thinksum-4-a0 "$OUT3"/sc-8
table "$OUT3"/*/
fi

# ---- Section (n5): model-switch and phi-decoding vs self-consistency (issue 20, items 5, 10).
# The same settings as (n2); the pool of 16 gives maj@k at every k for the token match.
if [[ "${PART:-all}" == "all" || "${PART:-all}" == "n5" ]]; then
OUT5=${OUT5:-runs/bench-n5}
QWEN=${QWEN:-benchmarks/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}
C5=(--task arithmetic --level 2 --limit "${LIMIT5:-30}" --max-tokens 128 --threads "${THREADS5:-1}" --seed 0)
$S eval "${C5[@]}" -n 4 --strategy self-consistency --output "$OUT5/sc-4"
$S eval "${C5[@]}" -n 16 --output "$OUT5/pool-16"
# 2 samples of SmolLM2; when they disagree, 2 of Qwen2.5-Coder-0.5B; consistency-weighted vote
$S eval "${C5[@]}" -n 4 --strategy model-switch --option "models=[\"$QWEN\"]" \
    --output "$OUT5/model-switch-2+2"
# 4 candidate steps valued by rollouts, clustered, pruned (defaults)
$S eval "${C5[@]}" -n 4 --strategy phi-decoding --output "$OUT5/phi-4"
$S compare "$OUT5"/sc-4 "$OUT5"/model-switch-2+2 "$OUT5"/phi-4
table "$OUT5"/*/
fi

# ---- Section (n6): GSM8K with Qwen2.5-Coder-0.5B (issue 20's done figures).
# The self-consistency baseline is section (b)'s pool (benchmarks/results/gsm8k-qwen0.5b-n16:
# 16 samples per problem, T = 0.8, 512 tokens, seed 0), unpacked as "$OUT6/pool-16".
# OFFSET6=M runs problems M .. M + LIMIT6 - 1 (eval --offset: the same ids and seeds as in
# a run over all of them) into "<name>-from<M>", e.g. LIMIT6=15 then OFFSET6=15 LIMIT6=15 in
# two processes; the table pools the two parts of a method ("a,a-from15").
if [[ "${PART:-all}" == "all" || "${PART:-all}" == "n6" ]]; then
OUT6=${OUT6:-runs/bench-n6}
QWEN=${QWEN:-benchmarks/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}
DATA=${DATA:-../shared/data/gsm8k/test.jsonl}
OFF=${OFFSET6:-0}
SUF=$([[ $OFF == 0 ]] || echo "-from$OFF")
C6=(--task gsm8k --data "$DATA" --offset "$OFF" --limit "${LIMIT6:-30}" --max-tokens 512
    --temperature 0.8 --threads "${THREADS6:-1}" --seed 0)
if [[ ! -d "$OUT6/pool-16" ]]; then
  mkdir -p "$OUT6/pool-16"
  cp benchmarks/results/gsm8k-qwen0.5b-n16/{run.json,summary.json} "$OUT6/pool-16/"
  gunzip -c benchmarks/results/gsm8k-qwen0.5b-n16/results.jsonl.gz > "$OUT6/pool-16/results.jsonl"
fi
for m in ${METHODS6:-synth model-switch refine aggregate}; do
  case $m in
    # 8 samples per problem; every kept row re-verified from its text by the test of (n)
    synth) $S synth "${C6[@]}" --model "$QWEN" -n 8 --output "$OUT6/synth-8$SUF" ;;
    # 2 samples of SmolLM2-135M; when they disagree, 2 of Qwen; consistency-weighted vote
    # (model-switch-v2: the same after the tie-break change: ties go to the model switched to)
    model-switch|model-switch-v2) $S eval "${C6[@]}" -n 4 --strategy model-switch \
        --option "models=[\"$QWEN\"]" \
        --output "$OUT6/model-switch-2+2${m#model-switch}$SUF" ;;
    # 2 candidates + 1 round of 2 revisions = 4 samples (+ P(True) feedback)
    refine) $S eval "${C6[@]}" --model "$QWEN" -n 2 --strategy refine --option rounds=1 \
        --output "$OUT6/refine-c2-r1$SUF" ;;
    # 3 candidates + 1 greedy aggregation call
    aggregate) $S eval "${C6[@]}" --model "$QWEN" -n 3 --strategy aggregate \
        --output "$OUT6/aggregate-3$SUF" ;;
    # 4 samples over 4 prompts (original, role, instruction, rephrase) + 1 greedy rewording call
    # (div-sampling-v2: the same after rewordings that state an answer are left out, with
    # the trace that gives summary.json's by_prompt; -v3: after the rewording request was
    # rewritten and cut at "The answer is", since v2 left out all 30 rewordings)
    div-sampling|div-sampling-v2|div-sampling-v3) $S eval "${C6[@]}" --model "$QWEN" -n 4 \
        --strategy div-sampling \
        --option 'perturbations=["original","role","instruction","rephrase"]' \
        --output "$OUT6/div-4${m#div-sampling}$SUF" ;;
    # 2 plain samples, then 2 samples hinted with answers drawn from them
    progressive-hint) $S eval "${C6[@]}" --model "$QWEN" -n 2 --strategy progressive-hint \
        --option rounds=1 --output "$OUT6/php-2x2$SUF" ;;
    # 3 traces, each cut at half and at the end, 1 short answer per cut
    fractured) $S eval "${C6[@]}" --model "$QWEN" -n 3 --strategy fractured --option depths=2 \
        --output "$OUT6/fractured-3x2x1$SUF" ;;
    # 2 problems per prompt, 4 samples of each batch prompt (room for 2 answers: 1024 tokens)
    batch-prompting) $S eval "${C6[@]}" --model "$QWEN" --max-tokens 1024 -n 4 \
        --strategy batch-prompting --option batch_size=2 --output "$OUT6/batch-2x4$SUF" ;;
    # 4 candidate steps valued by rollouts, clustered, pruned (defaults), at most 1100
    # generated tokens a problem (maj@4's 1123): unbounded, each step costs 4 rollouts
    phi-decoding) $S eval "${C6[@]}" --model "$QWEN" -n 4 --strategy phi-decoding \
        --option token_budget=1100 --output "$OUT6/phi-4-b1100$SUF" ;;
    # the Sum stage over the classes of 4 samples (same draw as self-consistency at 4)
    thinksum) $S eval "${C6[@]}" --model "$QWEN" -n 4 --strategy thinksum \
        --output "$OUT6/thinksum-4$SUF" ;;
    # 4 samples under the recipe learned on problems 30-41 (never evaluated on) by
    # OUT=runs/bench-n6/reprompt LIMIT=15 TRAIN=12 TOKENS=512 SC=0 TASK="--task gsm8k
    # --data ../shared/data/gsm8k/test.jsonl --temperature 0.8" benchmarks/bench_reprompting.sh
    reprompting) $S eval "${C6[@]}" --model "$QWEN" -n 4 --strategy reprompting \
        --option "recipe=$OUT6/reprompt/recipe/recipe.json" \
        --output "$OUT6/reprompt/reprompting-4$SUF" ;;
    *) echo "unknown method $m" >&2; exit 2 ;;
  esac
done
# every method over the first 30 problems; the ones run in two parts pooled
P="$OUT6/pool-16"
two() { echo "$OUT6/$1,$OUT6/$1-from15"; }
table "$P" "$P:15" "$OUT6/div-4" "$(two div-4-v2)" "$(two div-4-v3)" "$OUT6/thinksum-4" "$OUT6/batch-2x4" "$OUT6/model-switch-2+2" \
    "$OUT6/model-switch-2+2-v2" "$(two refine-c2-r1)" "$(two aggregate-3)" "$(two php-2x2)" \
    "$(two fractured-3x2x1)" "$(two phi-4-b1100)" "$(two reprompt/reprompting-4)"
fi
