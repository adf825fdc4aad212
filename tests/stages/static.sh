#!/bin/bash
# SPDX-License-Identifier: MIT
# Stage "static": cppcheck and clang-tidy (the checked-in .clang-tidy files)
# over every C file of src/ and tests/ (unit tests, fuzz harnesses, interop
# drivers), and clang-format --dry-run -Werror (the checked-in .clang-format)
# over every C source and header there. Each tool is one check and fails on
# any finding; every finding is printed, one per line, as
# file:line:col: check: message, and kept in NQ_STATIC_FINDINGS (default
# _build-static/findings.txt).
#
# Files are found by glob, so new modules and tests are checked without
# editing this script. Each file is analysed with the flags make would
# compile it with (DEFS, AM_CPPFLAGS, AM_CFLAGS or its program's own
# _CPPFLAGS/_CFLAGS, pkg-config's include paths; warning and sanitizer flags
# left out), read from a build configured in _build-static, whose config.h
# the sources include first. clang-tidy's results are cached per file under
# _build-static/tidy-cache, keyed by the file as preprocessed with its
# comments (so a NOLINT counts), the .clang-tidy files and the tool version.
# Last line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=$ROOT/_build-static
FINDINGS=${NQ_STATIC_FINDINGS:-$BUILD/findings.txt}
CACHE=$BUILD/tidy-cache
JOBS=$(nproc)
T0=$SECONDS
passed=0
failed=0

give_up() {
    echo "FAIL - static: $*"
    echo "0 passed, 1 failed"
    exit 1
}

result() { # name findings-file seconds
    local n
    n=$(grep -c . "$2")
    if [ "$n" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok - $1: no findings ($3 s)"
    else
        failed=$((failed + 1))
        echo "FAIL - $1: $n findings ($3 s)"
        sed 's/^/    /' "$2" | head -60
        [ "$n" -gt 60 ] && echo "    ... $((n - 60)) more in $FINDINGS"
    fi
    cat "$2" >>"$FINDINGS"
}

missing=()
for t in cppcheck clang-tidy clang-format clang pkg-config make autoreconf sha256sum; do
    command -v "$t" >/dev/null || missing+=("$t")
done
[ ${#missing[@]} -eq 0 ] || give_up "missing ${missing[*]} (scripts/setup test installs them)"

# A configured build, as scripts/test bootstraps one: its Makefile holds the
# flags, its config.h is what the sources include first.
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ] ||
    [ -n "$(find src tests etc man packaging -name '*.mk' -newer Makefile.in \
        -not -path '*/node_modules/*' 2>/dev/null | head -1)" ]; then
    mkdir -p m4
    autoreconf -fi >/dev/null 2>&1 || give_up "autoreconf failed (run autoreconf -fi to see why)"
fi
mkdir -p "$BUILD" "$CACHE" "$(dirname "$FINDINGS")"
if [ ! -f "$BUILD/config.h" ] || [ ! -f "$BUILD/Makefile" ] || [ configure -nt "$BUILD/Makefile" ] ||
    [ Makefile.in -nt "$BUILD/Makefile" ]; then
    (cd "$BUILD" && "$ROOT/configure" -q) >"$BUILD/configure.out" 2>&1 ||
        give_up "configure failed (see $BUILD/configure.out and $BUILD/config.log)"
fi
: >"$FINDINGS"
W=$(mktemp -d /tmp/notifyq-static.XXXXXX)
trap 'rm -rf "$W"' EXIT

mapfile -t SRC < <(find src tests -path tests/interop/node_modules -prune -o -name '*.c' -print |
    sort)
mapfile -t FMT < <(find src tests -path tests/interop/node_modules -prune -o \
    \( -name '*.c' -o -name '*.h' \) -print | sort)
[ ${#SRC[@]} -gt 0 ] || give_up "no C files under src/ and tests/"

# Each file's flags, as make has them: the program a file is the source of
# is named by automake's canonical form of its path (tests/unit/test_job.c:
# tests_unit_test_job); its own _CPPFLAGS and _CFLAGS replace AM_CPPFLAGS
# and AM_CFLAGS as in automake. Paths in them are relative to $BUILD, where
# the tools run.
canon() { local c=${1%.c}; echo "${c//[^A-Za-z0-9_]/_}"; }
{
    echo 'include Makefile'
    echo 'nq-static-flags:'
    printf '\t@: $(foreach p,$(NQ_PROGS),$(file >>$(NQ_OUT),$(p) $(DEFS) $(DEFAULT_INCLUDES) '
    printf '$(or $($(p)_CPPFLAGS),$(AM_CPPFLAGS)) $(CPPFLAGS) $(filter-out -W%% -O%% -g%% '
    printf -- '-f%%sanitize%% -fno-omit-frame-pointer,$(or $($(p)_CFLAGS),$(AM_CFLAGS)) $(CFLAGS))))\n'
} >"$W/flags.mk"
progs=$(for f in "${SRC[@]}"; do canon "$f"; done | sort -u | tr '\n' ' ')
: >"$W/flags"
make -s -C "$BUILD" -f "$W/flags.mk" nq-static-flags NQ_OUT="$W/flags" NQ_PROGS="$progs" \
    >"$W/make.out" 2>&1 || { cat "$W/make.out"; give_up "could not read the flags from $BUILD/Makefile"; }
mkdir -p "$W/args"
while read -r prog flags; do
    printf '%s\n' "$flags" >"$W/args/$prog"
done <"$W/flags"

# cppcheck, with the -I and -D flags of the library (every file).
# Left out, and why:
#   memleak, resourceLeak: cppcheck does not model __attribute__((cleanup))
#     (nq_autofree, nq_autoclose, json_auto_t), so each one is a "leak"; leaks
#     are caught at run time (valgrind and ASan on every suite, LSan in fuzz).
#   variableScope: declarations at the top of a block are a style we allow.
#   missingInclude*: system headers are not cppcheck's to read.
#   In tests/ only: nullPointerRedundantCheck and memleakOnRealloc: cmocka's
#     fail_msg() and assert_*() end a test, but cppcheck takes them to return.
t=$SECONDS
eval "set -- $(cat "$W/args/$(canon src/notifyqd.c)")"
CPPC=()
for a in "$@"; do # the tree's own include paths: system headers are not cppcheck's to read
    case "$a" in -I/*) [[ "$a" == -I"$ROOT"* ]] && CPPC+=("$a") ;; -I* | -D*) CPPC+=("$a") ;; esac
done
printf "$ROOT/%s\n" "${SRC[@]}" >"$W/cppcheck.files"
(cd "$BUILD" && cppcheck --quiet --std=c11 --enable=warning,style,performance,portability \
    --inline-suppr -j"$JOBS" --error-exitcode=0 -D__GNUC__ "${CPPC[@]}" \
    --suppress=memleak --suppress=resourceLeak --suppress=variableScope \
    --suppress=missingInclude --suppress=missingIncludeSystem \
    --suppress="nullPointerRedundantCheck:$ROOT/tests/*" --suppress="memleakOnRealloc:$ROOT/tests/*" \
    --template='{file}:{line}:{column}: cppcheck-{id}: {message}' \
    --file-list="$W/cppcheck.files") 2>"$W/cppcheck.raw" >/dev/null
sed -n "s|^$ROOT/||p" "$W/cppcheck.raw" | grep -E '^[^ :]+:[0-9]+:[0-9]+: ' | sort -u >"$W/cppcheck"
# A cppcheck that stopped without findings (bad flag, crash) is not a pass.
grep -vE "^$ROOT/[^ :]+:[0-9]+:[0-9]+: |^ |^\s*\^|^$" "$W/cppcheck.raw" | head -5 |
    sed 's/^/cppcheck: /' >>"$W/cppcheck"
result cppcheck "$W/cppcheck" $((SECONDS - t))

# clang-tidy, one file at a time in parallel; a header's findings appear once.
t=$SECONDS
{
    clang-tidy --version
    find src tests -name .clang-tidy -not -path '*/node_modules/*' | sort | xargs cat
    cat .clang-tidy
} >"$W/tidy.key"
cat >"$W/tidy1.sh" <<'EOF'
#!/bin/bash
# tidy1.sh FILE ARGS: clang-tidy's output for FILE, from the cache when the
# file as preprocessed (comments kept) and the configuration are unchanged.
f=$1
eval "set -- $(cat "$2")"
key=$({ clang -E -C -D__clang_analyzer__ "$@" "$f" 2>&1; printf '%s\n' "$@"; cat "$TIDY_KEY"; } | sha256sum)
key=${key%% *}
if [ -f "$CACHE/$key" ]; then
    touch "$CACHE/$key"
    cat "$CACHE/$key"
    exit 0
fi
clang-tidy --quiet "$f" -- "$@" >"$CACHE/$key.$$" 2>"$CACHE/$key.$$.err"
rc=$?
cat "$CACHE/$key.$$"
if [ $rc -le 1 ]; then
    mv "$CACHE/$key.$$" "$CACHE/$key"
else # a crash: say so, and do not cache it
    echo "$f:1:1: error: clang-tidy exited with $rc: $(tail -1 "$CACHE/$key.$$.err") [clang-tidy-crash]"
    rm -f "$CACHE/$key.$$"
fi
rm -f "$CACHE/$key.$$.err"
EOF
for f in "${SRC[@]}"; do
    printf '%s\0%s\0' "$ROOT/$f" "$W/args/$(canon "$f")"
done | (cd "$BUILD" && CACHE=$CACHE TIDY_KEY=$W/tidy.key xargs -0 -n2 -P"$JOBS" bash "$W/tidy1.sh") \
    >"$W/tidy.raw"
# A message may span lines (the Padding check's does); it ends at "[check...]".
awk -v root="$ROOT/" '
    function out(d,   m) {
        if (index(d, root) == 1)
            d = substr(d, length(root) + 1)
        if (match(d, / \[[^],]*[],][^[]*$/)) {
            m = substr(d, RSTART + 2)
            sub(/[],].*/, "", m)
            d = substr(d, 1, RSTART - 1)
        } else
            m = "clang-tidy"
        sub(/: (warning|error): /, ": " m ": ", d)
        print d
    }
    on { d = d " " $0; if ($0 ~ /\]$/) { on = 0; out(d) } next }
    /^[^ :]+:[0-9]+:[0-9]+: (warning|error): / { d = $0; if ($0 ~ /\]$/) out(d); else on = 1 }
    END { if (on) out(d) }' "$W/tidy.raw" | sort -u >"$W/tidy"
# Old entries go once the cache outgrows a few runs of the tree.
find "$CACHE" -type f -mtime +14 -delete 2>/dev/null
result clang-tidy "$W/tidy" $((SECONDS - t))

# clang-format: one line per file that drifts, with its first place.
t=$SECONDS
: >"$W/format"
for f in "${FMT[@]}"; do
    out=$(clang-format --dry-run -Werror "$f" 2>&1) && continue
    n=$(echo "$out" | grep -c 'clang-format-violations')
    first=$(echo "$out" | grep -o '^[^:]*:[0-9]*:[0-9]*' | head -1)
    echo "${first:-$f:1:1}: clang-format: $n places drift from .clang-format" >>"$W/format"
done
result clang-format "$W/format" $((SECONDS - t))

echo "static stage: $((SECONDS - T0)) s, findings in $FINDINGS"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
