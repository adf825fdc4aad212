#!/bin/bash
# SPDX-License-Identifier: MIT
# Stage "static": cppcheck and clang-tidy (the checked-in .clang-tidy) over
# src/, and clang-format --dry-run -Werror (the checked-in .clang-format) over
# the C files of src/ and tests/. Each tool is one check and fails on any
# finding; every finding is listed, one per line, as file:line:col: check, in
# NQ_STATIC_FINDINGS (default _build-static/findings.txt).
# Last line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=$ROOT/_build-static
FINDINGS=${NQ_STATIC_FINDINGS:-$BUILD/findings.txt}
JOBS=$(nproc)
T0=$SECONDS
passed=0
failed=0

result() { # name findings-file seconds
    local n
    n=$(grep -c . "$2")
    if [ "$n" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $1: no findings ($3 s)"
    else
        failed=$((failed + 1))
        sed 's/^/    /' "$2" | head -40
        [ "$n" -gt 40 ] && echo "    ... $((n - 40)) more in $FINDINGS"
        echo "FAIL $1: $n findings ($3 s)"
    fi
    cat "$2" >>"$FINDINGS"
}

missing=()
for t in cppcheck clang-tidy clang-format pkg-config; do
    command -v "$t" >/dev/null || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "static: missing ${missing[*]} (scripts/setup installs them)"
    echo "0 passed, 1 failed"
    exit 1
fi

# config.h, as the build makes it: the sources include it first.
if [ ! -f "$BUILD/config.h" ] || [ configure.ac -nt "$BUILD/config.h" ]; then
    if [ ! -x configure ] || [ configure.ac -nt configure ]; then
        mkdir -p m4
        autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
    fi
    mkdir -p "$BUILD"
    (cd "$BUILD" && "$ROOT/configure" -q) >/dev/null 2>&1 \
        || { echo "static: configure failed"; echo "0 passed, 1 failed"; exit 1; }
fi
mkdir -p "$BUILD" "$(dirname "$FINDINGS")"
: >"$FINDINGS"
W=$(mktemp -d /tmp/notifyq-static.XXXXXX)
trap 'rm -rf "$W"' EXIT

DEFS=(-DNQ_SYSCONFDIR='"/etc"' -DNQ_LOCALSTATEDIR='"/var"' -DNQ_RUNSTATEDIR='"/run"')
# shellcheck disable=SC2207
PKG=($(pkg-config --cflags hiredis libcurl yaml-0.1 libpq libsystemd libevent jansson \
    libmicrohttpd libcrypto))
mapfile -t SRC < <(find src -name '*.c' | sort)
mapfile -t FMT < <(find src tests -path tests/interop/node_modules -prune -o \
    \( -name '*.c' -o -name '*.h' \) -print | sort)

# cppcheck. Left out, and why:
#   memleak, resourceLeak: cppcheck does not model __attribute__((cleanup))
#     (nq_autofree, nq_autoclose, json_auto_t), so each one is a "leak"; leaks
#     are caught at run time (valgrind and ASan on every suite, LSan in fuzz).
#   variableScope: declarations at the top of a block are a style we allow.
#   missingInclude*: system headers are not cppcheck's to read.
t=$SECONDS
cppcheck --quiet --std=c11 --enable=warning,style,performance,portability --inline-suppr \
    -j"$JOBS" --error-exitcode=0 -D__GNUC__ "${DEFS[@]}" -I src -I "$BUILD" \
    --suppress=memleak --suppress=resourceLeak --suppress=variableScope \
    --suppress=missingInclude --suppress=missingIncludeSystem \
    --template='{file}:{line}:{column}: {severity}: {message} [cppcheck-{id}]' \
    src 2>"$W/cppcheck.raw" >/dev/null
grep -E '^src/.*:[0-9]+:[0-9]+: ' "$W/cppcheck.raw" | sort -u >"$W/cppcheck"
result cppcheck "$W/cppcheck" $((SECONDS - t))

# clang-tidy, with .clang-tidy; a header's findings appear once, not per file.
t=$SECONDS
printf '%s\n' "${SRC[@]}" | xargs -P"$JOBS" -I{} sh -c \
    'clang-tidy --quiet "$1" -- "$@" 2>/dev/null; true' _ {} -std=c11 -Isrc -I"$BUILD" \
    "${DEFS[@]}" "${PKG[@]}" >"$W/tidy.raw"
sed -n "s|^$ROOT/||; s/: \(warning\|error\): \(.*\) \[\([^],]*\)[],].*/: \3: \2/p" "$W/tidy.raw" \
    | grep -E '^src/' | sort -u >"$W/tidy"
result clang-tidy "$W/tidy" $((SECONDS - t))

# clang-format: one line per file that drifts, with its first places.
t=$SECONDS
: >"$W/format"
for f in "${FMT[@]}"; do
    out=$(clang-format --dry-run -Werror "$f" 2>&1) && continue
    n=$(echo "$out" | grep -c 'clang-format-violations')
    first=$(echo "$out" | grep -o '^[^:]*:[0-9]*:[0-9]*' | head -1)
    echo "${first:-$f}: clang-format: $n places drift from .clang-format" >>"$W/format"
done
result clang-format "$W/format" $((SECONDS - t))

echo "static stage: $((SECONDS - T0)) s, findings in $FINDINGS"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
