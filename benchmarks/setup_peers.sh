#!/usr/bin/env bash
# Install the peers of benchmarks/bench_peers_sc.py, each in its own virtual environment
# (never as a dependency of samplescale):
#   benchmarks/peers/its-hub/.venv   its-hub 1.2.0 with its OpenAI-compatible LM ("lm" extra)
#   benchmarks/peers/optillm/.venv   optillm 0.4.0 (CPU torch 2.13.0 first, so pip does not
#                                    pull a multi-GB CUDA build)
# Both paths match the '.venv/' pattern of the root .gitignore.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

if [ ! -x peers/its-hub/.venv/bin/python ] || ! peers/its-hub/.venv/bin/python -c "import its_hub" 2>/dev/null; then
  "$PY" -m venv peers/its-hub/.venv
  peers/its-hub/.venv/bin/pip install --quiet "its-hub[lm]==1.2.0"
fi
echo "its-hub: $(peers/its-hub/.venv/bin/python -c 'import importlib.metadata as m; print(m.version("its-hub"))')"

if [ ! -x peers/optillm/.venv/bin/optillm ]; then
  "$PY" -m venv peers/optillm/.venv
  peers/optillm/.venv/bin/pip install --quiet "torch==2.13.0"
  peers/optillm/.venv/bin/pip install --quiet "optillm==0.4.0"
fi
echo "optillm: $(peers/optillm/.venv/bin/python -c 'import importlib.metadata as m; print(m.version("optillm"))')"
