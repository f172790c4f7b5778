#!/usr/bin/env bash
# The long crash run: installs what is missing, builds the crash harness
# without sanitizers (debugoptimized: assertions stay on, and a kill lands in
# code that runs at full speed) and kills a writing child 1000 times over
# every sync mode, reopening and checking the database after each kill.
# Options are passed to the harness (--kills N, --mode M, --seed S, --dir D);
# the last line is its summary "crash: N passed, N failed", and the exit
# status is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
build=build-crash
[ -d "$build" ] || meson setup "$build" --buildtype=debugoptimized >/dev/null
ninja -C "$build" tests/crash/crash >/dev/null
exec "$build/tests/crash/crash" --kills 1000 --mode all "$@"
