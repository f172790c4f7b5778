#!/usr/bin/env bash
# The test command: installs what is missing, builds with AddressSanitizer and
# UndefinedBehaviorSanitizer (warnings are errors) and runs the whole suite
# through meson, then the concurrency scenarios under ThreadSanitizer, then
# the libFuzzer targets briefly (clang). Prints the totals of every test binary on the last line as
# "N passed, N failed" and exits non-zero on any failure.
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

# libFuzzer: every saved crash again, then each target for 20 s (scripts/fuzz.sh).
fuzz_out=$(scripts/fuzz.sh --seconds "${SOMBRA_FUZZ_SECONDS:-20}" 2>&1)
fuzz_status=$?
echo "$fuzz_out" | tail -n 20
[ "$fuzz_status" -ne 0 ] && status=1
read -r fp ff < <(echo "$fuzz_out" | sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
if [ "$fuzz_status" -ne 0 ] && [ "${ff:-0}" -eq 0 ]; then
        ff=1 # the build or the script failed before its summary
fi

# Criterion ends each binary's output with a "Synthesis" line; add them up.
log="$build/meson-logs/testlog.txt"
passed=0
failed=0
if [ -f "$log" ]; then
        while read -r p f c; do
                passed=$((passed + p))
                failed=$((failed + f + c))
        done < <(sed -n 's/.*Synthesis: Tested: [0-9]* | Passing: \([0-9]*\) | Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2 \3/p' "$log")
        # The plain programs run by meson (soak) end with "<name>: N passed, N failed".
        while read -r p f; do
                passed=$((passed + p))
                failed=$((failed + f))
        done < <(sed -n 's/^soak: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$log")
fi
read -r tp tf < <(echo "$tsan_out" | sed -n 's/^tsan: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p')
passed=$((passed + ${tp:-0} + ${fp:-0}))
failed=$((failed + ${tf:-0} + ${ff:-0}))
if [ "$tsan_status" -ne 0 ] && [ "${tf:-0}" -eq 0 ]; then
        failed=$((failed + 1)) # TSan stopped the program (a race) before its summary
fi
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1 # a binary died before its summary (timeout, sanitizer abort)
fi
echo "$passed passed, $failed failed"
exit "$status"
