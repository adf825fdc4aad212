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
check common config supervisor queue worker handlers providers template store http deliverylog
check config supervisor queue worker handlers providers template store http deliverylog
check supervisor queue worker handlers providers template store http deliverylog
check queue supervisor worker handlers providers template store http deliverylog
check handlers supervisor worker
check deliverylog supervisor queue worker handlers providers template store http ctl
# libpq is the delivery log's: nothing else includes it.
hits=$(grep -l 'libpq-fe.h' */*.c */*.h 2>/dev/null | grep -v '^deliverylog/')
if [ -n "$hits" ]; then
    echo "layering: only deliverylog/ includes <libpq-fe.h>: $hits"
    fail=1
fi
check template supervisor worker queue handlers providers
exit $fail
