#!/bin/bash
# SPDX-License-Identifier: MIT
# Stage "fuzz": every libFuzzer target (tests/fuzz/fuzz_*.c) under ASan+UBSan,
# one after the other, through scripts/fuzz: its committed corpus replayed
# (seeds and every crash found before), then NQ_FUZZ_SECONDS (default 60) of
# fuzzing. A crash, leak, timeout or UB fails the target; the input is kept in
# tests/fuzz/corpus/<target>/ as crash-<sha1>, to be committed with the fix.
# Prints executions per target; last line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
SECS=${NQ_FUZZ_SECONDS:-60}
passed=0
failed=0
T0=$SECONDS
for t in $(scripts/fuzz --list); do
    t1=$SECONDS
    out=$(scripts/fuzz "$t" "$SECS" 2>&1)
    rc=$?
    last=$(echo "$out" | tail -1)
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $last ($((SECONDS - t1)) s with the build)"
    else
        failed=$((failed + 1))
        echo "$out" | tail -60 | sed 's/^/    /'
        echo "FAIL $last"
    fi
done
echo "fuzz stage: $((SECONDS - T0)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
