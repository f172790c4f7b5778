#!/usr/bin/env bash
# The test command: installs what is missing, builds with AddressSanitizer and
# UndefinedBehaviorSanitizer (warnings are errors) and runs the whole suite
# through meson (the crash harness's and the soak's quick runs among it),
# then the concurrency scenarios and a few crash-harness kills under
# ThreadSanitizer, then each libFuzzer target briefly (clang).
# Prints the totals of every test binary on the last line as "N passed,
# N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1

build=build-asan
if [ ! -d "$build" ]; then
        meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true \
                --buildtype=debugoptimized >/dev/null || exit 1
fi
ninja -C "$build" || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
meson test -C "$build" --print-errorlogs "$@"
status=$?

# ThreadSanitizer: the concurrency scenarios, as a plain program (Criterion's
# runner does not start under TSan). ck_pr is switched to compiler builtins so
# that TSan sees its atomics.
tsan=build-tsan
if [ ! -d "$tsan" ]; then
        meson setup "$tsan" -Db_sanitize=thread -Db_lundef=false -Dwerror=true \
                -Dc_args=-DCK_USE_CC_BUILTINS=1 --buildtype=debugoptimized >/dev/null || exit 1
fi
tsan_out=$(ninja -C "$tsan" tests/tsan_stress >/dev/null &&
        TSAN_OPTIONS=halt_on_error=1 "$tsan/tests/tsan_stress" 2>&1)
tsan_status=$?
echo "$tsan_out" | tail -n 40
[ "$tsan_status" -ne 0 ] && status=1
# The crash harness's writers (the child's threads) under TSan: a race makes
# the child exit on its own, which the harness reports as a failed kill.
crash_out=$(ninja -C "$tsan" tests/crash/crash >/dev/null &&
        TSAN_OPTIONS=halt_on_error=1 "$tsan/tests/crash/crash" --kills 4 --mode all 2>&1)
crash_status=$?
echo "$crash_out" | tail -n 40
[ "$crash_status" -ne 0 ] && status=1

# libFuzzer: every saved crash again, then each target for 20 s (scripts/fuzz.sh).
fuzz_out=$(scripts/fuzz.sh --seconds "${SOMBRA_FUZZ_SECONDS:-20}" 2>&1)
fuzz_status=$?
echo "$fuzz_out" | tail -n 20
[ "$fuzz_status" -ne 0 ] && status=1

# Criterion ends each binary's output with a "Synthesis" line; add them up.
log="$build/meson-logs/testlog.txt"
passed=0
failed=0
if [ -f "$log" ]; then
        while read -r p f c; do
                passed=$((passed + p))
                failed=$((failed + f + c))
        done < <(sed -n 's/.*Synthesis: Tested: [0-9]* | Passing: \([0-9]*\) | Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2 \3/p' "$log")
fi
# The plain programs end with "<name>: N passed, N failed": the crash quick,
# soak, cli, example-server and abi runs in the meson log, the two TSan programs
# and the fuzzers. A program that exits non-zero without reporting a failure
# (TSan stopped it before its summary) counts as one failure.
summary() { # summary NAME OUTPUT STATUS
        local p f
        read -r p f < <(echo "$2" | sed -n "s/^$1: \([0-9]*\) passed, \([0-9]*\) failed\$/\1 \2/p" | tail -n 1)
        passed=$((passed + ${p:-0}))
        failed=$((failed + ${f:-0}))
        if [ "$3" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
                failed=$((failed + 1))
        fi
}
[ -f "$log" ] && summary crash "$(cat "$log")" 0
[ -f "$log" ] && summary soak "$(cat "$log")" 0
[ -f "$log" ] && summary cli "$(cat "$log")" 0
[ -f "$log" ] && summary server "$(cat "$log")" 0
[ -f "$log" ] && summary abi "$(cat "$log")" 0
summary tsan "$tsan_out" "$tsan_status"
summary crash "$crash_out" "$crash_status"
summary fuzz "$fuzz_out" "$fuzz_status"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1 # a binary died before its summary (timeout, sanitizer abort)
fi
echo "$passed passed, $failed failed"
exit "$status"
