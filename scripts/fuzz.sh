#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each one: first
# on every saved crash in tests/fuzz/regress/<target>/ (each must now pass),
# then fuzzing for --seconds S (default 20) from tests/fuzz/corpus/<target>/
# plus what earlier runs found (build-fuzz/corpus/). A new crash is written
# to tests/fuzz/regress/<target>/, to be committed as a regression input once
# fixed. Prints "fuzz: N passed, N failed" last; exits non-zero on a failure.
#   scripts/fuzz.sh                 # the test command's short run
#   scripts/fuzz.sh --seconds 3600  # an hour per target
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=20
while [ $# -gt 0 ]; do
        case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        *) echo "usage: scripts/fuzz.sh [--seconds S]" >&2; exit 2 ;;
        esac
done
scripts/deps.sh || exit 1

build=build-fuzz
if [ ! -d "$build" ]; then
        CC=clang meson setup "$build" -Dtests=false -Dfuzz=true -Db_sanitize=address,undefined \
                -Db_lundef=false -Dwerror=true --buildtype=debugoptimized >/dev/null || exit 1
fi
ninja -C "$build" >/dev/null || { ninja -C "$build"; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
passed=0
failed=0
for target in fuzz_record fuzz_wal fuzz_open fuzz_import; do
        exe="$build/tests/fuzz/$target"
        regress="tests/fuzz/regress/$target"
        for input in "$regress"/*; do
                [ -f "$input" ] || continue
                if "$exe" "$input" >/dev/null 2>&1; then
                        passed=$((passed + 1))
                else
                        failed=$((failed + 1))
                        echo "fuzz: $target fails again on $input"
                fi
        done
        corpus="$build/corpus/$target"
        mkdir -p "$corpus" "$regress"
        if "$exe" -max_total_time="$seconds" -timeout=10 -max_len=65536 -print_final_stats=1 -close_fd_mask=2 \
                -artifact_prefix="$regress/" "$corpus" "tests/fuzz/corpus/$target" \
                >"$build/$target.log" 2>&1; then
                passed=$((passed + 1))
                echo "fuzz: $target: $(grep -o 'stat::number_of_executed_units: *[0-9]*' \
                        "$build/$target.log" | grep -o '[0-9]*$') inputs in ${seconds}s, no failure"
        else
                failed=$((failed + 1))
                echo "fuzz: $target failed; the input is in $regress/:"
                grep -E "ERROR|SUMMARY|runtime error|Test unit" "$build/$target.log" | head -5
        fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
