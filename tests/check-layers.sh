#!/bin/sh
# SPDX-License-Identifier: MIT
# Dependencies point one way (ARCHITECTURE.md): the supervisor (the master)
# must not include the modules that open Redis, HTTP or database connections,
# and the lower layers must not include the upper ones.
srcdir=${srcdir:-$(dirname "$0")/..}
cd "$srcdir/src" || exit 1
fail=0
check() { # dir forbidden...
    d=$1; shift
    for m in "$@"; do
        hits=$(grep -lE "#include \"$m/" "$d"/*.c "$d"/*.h 2>/dev/null)
        if [ -n "$hits" ]; then
            echo "layering: $d must not include $m/: $hits"
            fail=1
        fi
    done
}
check common config supervisor queue worker handlers providers template store http
check config supervisor queue worker handlers providers template store http
check supervisor queue worker handlers providers template store http
check queue supervisor worker handlers providers template store http
check handlers supervisor worker
for d in common config supervisor queue; do check "$d" transfer; done
check transfer config supervisor queue worker handlers providers template store http
# libcurl belongs to the transport alone.
hits=$(grep -lE '#include <curl/' */*.c */*.h 2>/dev/null | grep -v '^transfer/')
if [ -n "$hits" ]; then
    echo "layering: only transfer/ may include <curl/...>: $hits"
    fail=1
fi
exit $fail
