#!/usr/bin/env bash
# The main job: installs what is missing, makes a release build and runs the
# demo on ./demo.sombra (100,000 nodes, 500,000 edges; close, reopen, query).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -d build-release ] || meson setup build-release --buildtype=release -Dtests=false >/dev/null
ninja -C build-release >/dev/null
exec build-release/bench/sombra-demo --path "${SOMBRA_DEMO_PATH:-demo.sombra}" "$@"
