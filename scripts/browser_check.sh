#!/usr/bin/env bash
# The analysis notebooks in a real browser (scripts/browser_check.py): installs Debian's Chromium and the playwright package
# into the venv if missing (never `playwright install`: it downloads browsers), then runs the check.
# usage: bash scripts/browser_check.sh [SCREENSHOTS_DIR]      (default /tmp/browser_shots; VENV=path overrides .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
if [ ! -x /usr/bin/chromium ]; then
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
"$VENV/bin/python" -c "import playwright" 2>/dev/null || "$VENV/bin/pip" install -q playwright
exec "$VENV/bin/python" scripts/browser_check.py "${1:-/tmp/browser_shots}"
