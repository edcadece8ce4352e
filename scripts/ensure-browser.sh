#!/usr/bin/env bash
# Make sure the dashboard's browser tests can run: Debian's chromium and Playwright's Python package
# (driving that chromium; Playwright's own browser download is never used). Fails if either is missing.
set -u
PY=${PY:-.venv/bin/python}
CHROMIUM=${SXSYNC_TEST_CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
  echo "chromium is missing at $CHROMIUM: installing Debian's package" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null || true
fi
if ! "$PY" -c "import playwright.sync_api" 2>/dev/null; then
  echo "playwright (Python) is missing: installing it into the venv" >&2
  "$PY" -m pip install -q playwright || true
fi
[ -x "$CHROMIUM" ] || { echo "FATAL: no chromium at $CHROMIUM (apt-get install chromium)" >&2; exit 1; }
"$PY" -c "import playwright.sync_api" || { echo "FATAL: the playwright Python package is not importable" >&2; exit 1; }
echo "browser: $("$CHROMIUM" --version 2>/dev/null | head -n1) with playwright $("$PY" -c 'import importlib.metadata as m; print(m.version("playwright"))')"
