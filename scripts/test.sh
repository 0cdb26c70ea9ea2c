#!/usr/bin/env bash
# README command 2: install with the test tools, then run the whole test suite.
# Without arguments it first runs the static checks (ruff, mypy: about 15 s);
# arguments go to pytest alone (a part of the suite).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
if [ "$#" -eq 0 ]; then
    .venv/bin/ruff check src tests benchmarks
    .venv/bin/mypy src/samplescale
fi
.venv/bin/python -m pytest "$@"
