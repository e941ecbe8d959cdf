#!/usr/bin/env bash
# Builds the documentation site from docs/ with Sphinx (furo, MyST, autodoc, sphinx-click) into
# build/docs/html; any warning is an error. Needs the docs extra (bash scripts/setup.sh docs).
#   bash scripts/docs.sh                 build
#   bash scripts/docs.sh serve [PORT]    build, then serve it at http://127.0.0.1:PORT (default 8000)
#   bash scripts/docs.sh screenshots     build, then write docs/figures/docs-*.png (headless Chromium)
# PYTHON (default .venv/bin/python) and OODSCOPE_DOCS_OUT (default build/docs/html) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
out="${OODSCOPE_DOCS_OUT:-build/docs/html}"
if ! "$py" -c "import sphinx, myst_parser, furo, sphinx_click" 2>/dev/null; then
    echo "error: the docs extra is not installed: bash scripts/setup.sh docs" >&2
    exit 2
fi
# -E reads every page again, so a warning of an unchanged page is not hidden by an incremental build
"$py" -m sphinx -b html -E -W --keep-going -q docs "$out"
echo "built $out/index.html" >&2
case "${1:-}" in
    "") ;;
    serve)
        echo "serving http://127.0.0.1:${2:-8000}/ (Ctrl-C stops)" >&2
        exec "$py" -m http.server "${2:-8000}" --bind 127.0.0.1 --directory "$out" ;;
    screenshots)
        chromium="$(command -v chromium || command -v chromium-browser || true)"
        [ -n "$chromium" ] || { echo "error: chromium is not installed" >&2; exit 2; }
        profile="$(mktemp -d)"
        trap 'rm -rf "$profile"' EXIT
        for page in index:docs-home reference/detectors:docs-catalogue how-to/thresholds:docs-guide; do
            "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
                --user-data-dir="$profile" --window-size=1280,1000 --virtual-time-budget=3000 \
                --screenshot="docs/figures/${page#*:}.png" "file://$PWD/$out/${page%%:*}.html" 2>/dev/null
            echo "wrote docs/figures/${page#*:}.png" >&2
        done ;;
    *)
        echo "usage: bash scripts/docs.sh [serve [PORT] | screenshots]" >&2
        exit 2 ;;
esac
