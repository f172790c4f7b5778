#!/usr/bin/env bash
# The long power-loss run: tests/test_powerloss.c with --lineages N (default
# 10) lineages of 24 chained power losses per sync mode, each from a new
# database and seed, under ASan and UBSan. Prints each mode's totals (images,
# unsynced blocks at the cuts, acknowledged commits lost) and the Criterion
# summary; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
lineages=10
while [ $# -gt 0 ]; do
        case "$1" in
        --lineages) lineages="$2"; shift 2 ;;
        *) echo "usage: $0 [--lineages N]" >&2; exit 2 ;;
        esac
done
scripts/deps.sh
build=build-asan
[ -d "$build" ] || meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dwerror=true --buildtype=debugoptimized >/dev/null
ninja -C "$build" tests/test_powerloss >/dev/null
SOMBRA_POWERLOSS_LINEAGES="$lineages" "$build/tests/test_powerloss" -j1 --verbose 2>&1 |
        grep -a -E 'powerloss mode|Synthesis|FAIL|Assertion|  '
