#!/usr/bin/env bash
# README command 2: install with the test tools, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
.venv/bin/python -m pytest "$@"
