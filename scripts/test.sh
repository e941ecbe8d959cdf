#!/usr/bin/env bash
# Installs everything (scripts/setup.sh) and runs the default test suite (slow runs excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OODSCOPE_DATA="${OODSCOPE_DATA:-$(cd .. && pwd)/shared/data}"
.venv/bin/python -m pytest -q "$@"
