#!/usr/bin/env bash
# Creates .venv and installs oodscope with the pinned CPU build of torch (constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
