#!/usr/bin/env bash
# The main job: installs what is missing, makes a release build and runs the
# benchmark suite (Sombra and SQLite side by side, every durability profile),
# printing progress on stderr and the results table on stdout. Arguments are
# passed to sombra-bench (--quick, --json, --workload NAME, --threads N, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -d build-release ] || meson setup build-release --buildtype=release -Dtests=false >/dev/null
ninja -C build-release >/dev/null
exec build-release/bench/sombra-bench "$@"
