#!/usr/bin/env bash
# Installs everything, with every extra the tests exercise (scripts/setup.sh test,peers,serve,onnx,ray,docs), and
# runs the default test suite (slow runs excluded), which builds the documentation site and runs its examples.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,peers,serve,onnx,ray,docs
export OODSCOPE_DATA="${OODSCOPE_DATA:-$(cd .. && pwd)/shared/data}"
.venv/bin/python -m pytest -q --durations=25 "$@"
