#!/bin/sh
# SPDX-License-Identifier: MIT
# Dependencies point one way (ARCHITECTURE.md): the supervisor (the master)
# must not include the modules that open Redis, HTTP or database connections,
# and the lower layers must not include the upper ones. A row for a module
# that does not exist yet checks nothing until it does.
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
# A system header (extended regex on what follows "#include <") only in the
# modules named; the programs' main()s (src/*.c) count as outside them.
check_sys() { # header-regex allowed-dir...
    h=$1; shift
    hits=$(grep -lE "#include <$h" ./*.c ./*/*.c ./*/*.h 2>/dev/null)
    for f in $hits; do
        ok=0
        for d in "$@"; do
            case $f in ./"$d"/*) ok=1 ;; esac
        done
        if [ $ok = 0 ]; then
            echo "layering: <$(echo "$h" | tr -d '\\')...> is only for $*: $f"
            fail=1
        fi
    done
}
all="common config proc supervisor queue worker transfer providers template handlers deliverylog admin ctl store http"
without() { # module... : $all without them
    for m in $all; do
        case " $* " in *" $m "*) ;; *) printf '%s ' "$m" ;; esac
    done
}
# dir: the only modules it may include (besides itself)
check common $(without common)
check config $(without config common)
check proc $(without proc common config)
check supervisor $(without supervisor common config proc)
check queue $(without queue common config)
check transfer $(without transfer common config)
check template $(without template common config)
check deliverylog $(without deliverylog common config)
check providers $(without providers common config transfer template)
check handlers $(without handlers common config queue providers template transfer deliverylog)
check worker $(without worker common config proc queue handlers providers template transfer deliverylog)
check admin $(without admin common config proc queue)
check ctl $(without ctl common config queue deliverylog)

check_sys 'hiredis/' queue
check_sys 'curl/curl\.h' transfer providers
check_sys 'libpq-fe\.h' deliverylog
check_sys 'microhttpd\.h' admin
exit $fail
