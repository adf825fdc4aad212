#!/bin/bash
# SPDX-License-Identifier: MIT
# Stage "fresh-debian": the README's promise, kept. In a minimal Debian 12 root
# (debootstrap minbase + git + ca-certificates, nothing else) a clean copy of
# the committed tree runs `scripts/demo` (which must install no Node), the
# README's "Next steps" from the build tree as pasted, then
# `scripts/test --quick`, as a newcomer would, and `scripts/setup` once more
# (which must find nothing to install). Whatever they need must be installed
# by scripts/setup there, from the mirrors; nothing the host has counts. The
# last line is "N passed, N failed". Needs root. About 5 minutes once the
# root and the downloaded packages are cached.
#
# The root is built once (about a minute) and cached in
# /var/cache/notifyq-tests (NQ_TEST_CACHE); each run works on an overlay of it
# that is thrown away. Only the host's access to the mirrors is lent at run
# time, never committed: its apt sources and apt settings, its CA bundle and
# its npm configuration. Downloaded .deb files are kept between runs in
# $NQ_TEST_CACHE/fresh-apt-archives (apt still installs every one in the root).
# Run on its own: bash tests/stages/fresh-debian.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. tests/packaging/lib.sh

T0=$SECONDS
WORK=
NSPAWN_PID=
CGROUPS=()
step() { echo "== $* ($((SECONDS - T0)) s)"; }

# --- the cached root ----------------------------------------------------------------

FRESH_PKGS="git,ca-certificates"

# fresh_rootfs: prints the path of the cached minbase root, building it the
# first time. Kept apart from the packages stage's roots (rootfs-*), which hold
# systemd and are replaced when their package set changes.
fresh_rootfs() {
    local mirror key dir log
    mirror=$(nqt_mirror)
    [ -n "$mirror" ] || { echo "no URIs: in /etc/apt/sources.list.d/debian.sources" >&2; return 1; }
    key=$(printf '%s %s %s\n' "$NQT_SUITE" "$mirror" "$FRESH_PKGS" | sha256sum | cut -c1-12)
    dir=$NQT_CACHE/fresh-$key
    mkdir -p "$NQT_CACHE"
    (
        flock 9
        [ -f "$dir/.complete" ] && exit 0
        nqt_rootfs_discard "$dir.tmp"
        log=$NQT_CACHE/fresh-debootstrap.log
        echo "building $NQT_SUITE minbase root in $dir (+$FRESH_PKGS)" >&2
        timeout 600 debootstrap --variant=minbase --include="$FRESH_PKGS" "$NQT_SUITE" "$dir.tmp" \
            "$mirror" >"$log" 2>&1 || { tail -20 "$log" >&2; nqt_rootfs_discard "$dir.tmp"; exit 1; }
        chroot "$dir.tmp" apt-get clean
        touch "$dir.tmp/.complete"
        mv "$dir.tmp" "$dir"
        find "$NQT_CACHE" -maxdepth 1 -name 'fresh-*' -type d ! -name "fresh-$key" \
            ! -name fresh-apt-archives -exec rm -rf --one-file-system {} +
    ) 9>"$NQT_CACHE/.fresh.lock" || return 1
    echo "$dir"
}

# --- one run's root: an overlay on the cache, the host's mirror access, the tree -------

cleanup() {
    local m
    stop_container
    if [ -n "$WORK" ]; then
        for m in $(findmnt -rn -o TARGET | grep "^$WORK/" | sort -r); do umount -l "$m"; done
        rm -rf --one-file-system "$WORK"
    fi
}

# The host's way to the mirrors: apt sources and settings (less the docker
# hook that deletes downloaded archives, which would empty the shared cache),
# extra CA certificates with the bundle made from them, npm configuration.
lend_host_access() { # ROOTDIR
    local r=$1 f
    # debootstrap writes no /etc/hosts; an installed Debian 12 has this one
    # (localhost as ::1 too), and tests that name localhost must work there.
    [ -f "$r/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
        >"$r/etc/hosts"
    rm -f "$r/etc/apt/sources.list"
    [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$r/etc/apt/"
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        /etc/apt/apt.conf.d/* /etc/apt/auth.conf.d/* /etc/apt/trusted.gpg.d/* /etc/apt/keyrings/*; do
        [ -f "$f" ] || continue
        case "$f" in */docker-clean) continue ;; esac
        mkdir -p "$r$(dirname "$f")"
        cp -p "$f" "$r$f"
    done
    [ -f /etc/apt/trusted.gpg ] && cp -p /etc/apt/trusted.gpg "$r/etc/apt/"
    if [ -d /usr/local/share/ca-certificates ]; then
        mkdir -p "$r/usr/local/share/ca-certificates"
        cp -pr /usr/local/share/ca-certificates/. "$r/usr/local/share/ca-certificates/"
    fi
    cp -p /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
    for f in /etc/npmrc /usr/etc/npmrc /root/.npmrc; do
        [ -f "$f" ] || continue
        mkdir -p "$r$(dirname "$f")"
        cp -p "$f" "$r$f"
    done
}

# The committed tree, as `git clone` would give it (no build products, nothing
# uncommitted, no node_modules).
copy_checkout() { # ROOTDIR
    mkdir -p "$1/root/notifyq"
    git -C "$ROOT" archive --format=tar HEAD | tar -x -C "$1/root/notifyq"
}

# --- running commands inside, without booting ---------------------------------------

stop_container() {
    local c p i
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID"
        for i in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$NSPAWN_PID" 2>/dev/null && kill -KILL "$NSPAWN_PID"
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    NSPAWN_PID=
    for c in "${CGROUPS[@]}"; do
        [ -d "$c" ] || continue
        for p in $(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
        for i in $(seq 50); do
            find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
            [ -d "$c" ] || break
            sleep 0.1
        done
        [ -d "$c" ] && echo "warning: could not remove cgroup $c" >&2
    done
    CGROUPS=()
}

# in_root SECONDS LOG CMD...: runs CMD as root in /root/notifyq inside the
# root, sharing the host's network (to reach the mirrors), in a cgroup of its
# own; a stub init (--as-pid2) reaps what the test suites start.
in_root() {
    local t=$1 log=$2 name r rc
    shift 2
    name=notifyq-fresh-$$-$RANDOM
    CGROUPS=()
    for r in $(nqt_cgroup_roots); do
        mkdir "$r/$name" || return 1
        CGROUPS+=("$r/$name")
    done
    (
        for r in "${CGROUPS[@]}"; do echo "$BASHPID" >"$r/cgroup.procs"; done
        exec timeout -k 10 "$t" systemd-nspawn -q -D "$MERGED" --register=no --keep-unit --as-pid2 \
            --machine=nqfresh --resolv-conf=copy-host \
            --bind="$NQT_CACHE/fresh-apt-archives:/var/cache/apt/archives" \
            --chdir=/root/notifyq --setenv=HOME=/root --setenv=LANG=C.UTF-8 \
            --setenv=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
    ) </dev/null >"$log" 2>&1 &
    NSPAWN_PID=$!
    wait "$NSPAWN_PID"
    rc=$?
    NSPAWN_PID=
    stop_container
    return $rc
}

# run_inside NAME SECONDS CMD...: one check; the log's tail on failure.
run_inside() {
    local name=$1 t=$2 log s0=$SECONDS rc
    shift 2
    log=$WORK/$(echo "$name" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9\n' '-').log
    LAST_LOG=$log
    in_root "$t" "$log" "$@"
    rc=$?
    if [ $rc -eq 0 ]; then
        nqt_ok "$name ($((SECONDS - s0)) s)"
        grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 | sed 's/^/    /'
    else
        nqt_fail "$name (exit $rc after $((SECONDS - s0)) s)"
        [ $rc -eq 124 ] && echo "    timed out after $t s"
        # scripts/test prints the failures' own messages, then its table.
        tail -80 "$log" | sed 's/^/    /'
    fi
    return $rc
}

summary() {
    step done
    echo "$NQT_PASSED passed, $NQT_FAILED failed"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

step prerequisites
if [ "$(id -u)" -ne 0 ]; then
    nqt_fail "the fresh-debian stage needs root (debootstrap, overlay mounts, systemd-nspawn)"
    summary; exit 1
fi
missing=()
for t in debootstrap systemd-nspawn git findmnt; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
    nqt_fail "tools missing: ${missing[*]} (scripts/setup installs debootstrap systemd-container)"
    summary; exit 1
fi

step "minimal Debian 12 root"
if ! BASE=$(fresh_rootfs); then
    nqt_fail "debootstrap --variant=minbase bookworm (+$FRESH_PKGS)"
    summary; exit 1
fi
nqt_ok "cached root $BASE"

WORK=$(mktemp -d /var/tmp/notifyq-fresh.XXXXXX)
MERGED=$WORK/root
mkdir -p "$WORK/upper" "$WORK/work" "$MERGED" "$NQT_CACHE/fresh-apt-archives/partial"
if ! mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$WORK/upper,workdir=$WORK/work" "$MERGED"; then
    nqt_fail "overlay of the cached root"
    summary; exit 1
fi
lend_host_access "$MERGED"
if ! copy_checkout "$MERGED"; then
    nqt_fail "clean checkout of HEAD copied in"
    summary; exit 1
fi
nqt_ok "clean checkout of $(git -C "$ROOT" rev-parse --short HEAD) in /root/notifyq"

step "scripts/demo inside"
run_inside "scripts/demo in a fresh Debian 12 root" 1800 scripts/demo
# The demo never runs Node: its setup must not install it.
nqt_expect "the demo installed neither node nor npm packages" "absent absent" \
    "$([ -e "$MERGED/usr/bin/node" ] && echo present || echo absent) $(
        [ -e "$MERGED/root/notifyq/tests/interop/node_modules" ] && echo present || echo absent)"

# The README's "Next steps" from the build tree, pasted as they stand: the
# indented block after "**From the build tree" (the demo prints the same).
readme_next_steps() {
    awk '/^\*\*From the build tree/ { on = 1; next }
         on && /^    / { print substr($0, 5); seen = 1; next }
         on && seen && !/^$/ { exit }' "$MERGED/root/notifyq/README"
}
NEXT=$(readme_next_steps)
if [ -z "$NEXT" ]; then
    nqt_fail "README's Next steps (from the build tree): no command block found"
else
    printf 'set -e\n%s\n' "$NEXT" >"$MERGED/root/next-steps.sh"
    run_inside "README's Next steps from the build tree, pasted" 120 bash /root/next-steps.sh
    nqt_check "the message sent in Next steps is in the spool" \
        grep -h "It works." "$LAST_LOG"
fi

step "scripts/test --quick inside"
run_inside "scripts/test --quick in a fresh Debian 12 root" 3600 scripts/test --quick

# Idempotent: a second run finds everything in place and installs nothing.
settled() {
    in_root 300 "$WORK/setup-again.log" scripts/setup test || { cat "$WORK/setup-again.log"; return 1; }
    cat "$WORK/setup-again.log"
    ! grep -q 'installing\|npm ci in' "$WORK/setup-again.log"
}
nqt_check "scripts/setup test again installs nothing" settled

summary
[ "$NQT_FAILED" -eq 0 ]
