#!/usr/bin/env bash
# Creates .venv and installs oodscope with the pinned CPU build of torch (constraints.txt).
# Extras to install may be given, e.g. `bash scripts/setup.sh test,peers` (default: none).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".${extras:+[$extras]}"
