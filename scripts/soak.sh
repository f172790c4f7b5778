#!/usr/bin/env bash
# The soak test: 64 threads of the mixed workload (80% reads, 20% one-edge
# commits in FULL) for --minutes M (default 10) on a release build, checking
# that memory stays within the page cache plus a stated slack, that
# throughput does not decay and that verify passes at the end (tests/soak.c).
# Other arguments go to the soak program (--threads T, --cache-pages P).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10
args=()
while [ $# -gt 0 ]; do
        case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
        esac
done
scripts/deps.sh
[ -d build-soak ] || meson setup build-soak --buildtype=release >/dev/null
ninja -C build-soak tests/soak >/dev/null
exec build-soak/tests/soak --seconds "$((minutes * 60))" "${args[@]}"
