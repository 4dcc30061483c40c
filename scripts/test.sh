#!/usr/bin/env bash
# Create (or reuse) .venv, install graft with its test tools, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# The web page's test drives Debian's chromium (Playwright cannot download its own browser here).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q chromium >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Two workers (pytest-xdist; a file's tests stay on one worker, each worker one torch thread):
# the suite's many short, single-threaded steps overlap. GRAFT_TEST_WORKERS=0 runs it serially.
exec .venv/bin/python -m pytest -n "${GRAFT_TEST_WORKERS:-2}" --dist loadfile "$@"
