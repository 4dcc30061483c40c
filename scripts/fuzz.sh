#!/usr/bin/env bash
# The long fuzz run of every reader (tests/fuzz, and the table loaders' properties): the suite
# runs 30 cases per fuzz test; this runs GRAFT_FUZZ_EXAMPLES (default 2000) with fresh random
# draws. A failure prints the smallest input hypothesis found: fix the reader and add a
# regression test named for it.
#
#   scripts/fuzz.sh                          # 2000 cases per test
#   GRAFT_FUZZ_EXAMPLES=20000 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GRAFT_FUZZ_EXAMPLES="${GRAFT_FUZZ_EXAMPLES:-2000}" HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/fuzz tests/data/test_loader_properties.py \
    --hypothesis-show-statistics "$@"
