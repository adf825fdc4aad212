# SPDX-License-Identifier: MIT
# Helpers for tests/stages/packages.sh: check counting, a cached Debian 12
# root file system, and booting it under systemd-nspawn in a cgroup of its
# own. Facts behind the container recipe: shared/SYSTEMD-TESTING.md.
# Sourced by bash; every function is prefixed nqt_.

NQT_CACHE=${NQ_TEST_CACHE:-/var/cache/notifyq-tests}
NQT_SUITE=bookworm
NQT_PASSED=0
NQT_FAILED=0
NQT_SKIPPED=0

# --- counting ---------------------------------------------------------------

nqt_ok() { NQT_PASSED=$((NQT_PASSED + 1)); echo "ok - $*"; }
nqt_fail() { NQT_FAILED=$((NQT_FAILED + 1)); echo "FAIL - $*"; }
nqt_skip() { NQT_SKIPPED=$((NQT_SKIPPED + 1)); echo "skip - $*"; }

# nqt_check NAME CMD...: passes when CMD exits 0. Shows the head of what CMD
# printed on success (its evidence), the tail on failure.
nqt_check() {
    local name=$1 out rc
    shift
    out=$("$@" 2>&1); rc=$?
    if [ $rc -eq 0 ]; then
        nqt_ok "$name"
        [ -n "$out" ] && printf '%s\n' "$out" | head -3 | sed 's/^/    /'
    else
        nqt_fail "$name (exit $rc)"
        [ -n "$out" ] && printf '%s\n' "$out" | tail -15 | sed 's/^/    /'
    fi
    return $rc
}

# nqt_expect NAME EXPECTED ACTUAL
nqt_expect() {
    if [ "$2" = "$3" ]; then
        nqt_ok "$1"
    else
        nqt_fail "$1: expected '$2', got '$3'"
        return 1
    fi
}

nqt_summary() {
    echo "$NQT_PASSED passed, $NQT_FAILED failed, $NQT_SKIPPED skipped"
}

# --- the cached root file system ----------------------------------------------

# The mirror apt on this machine already uses (first URIs: of the deb822 file).
nqt_mirror() {
    sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1
}

# nqt_rootfs PKG...: prints the path of a minbase bookworm root holding
# systemd, dbus and PKG... The container has no network (--private-network),
# so everything a test installs with apt must be in here already. A cached
# root that has all of PKG installed is reused; otherwise one is built (about
# 30 s to a few minutes, by the mirror's speed) and replaces the others.
nqt_rootfs() {
    local mirror key dir pkgs log
    mirror=$(nqt_mirror)
    [ -n "$mirror" ] || { echo "no URIs: in /etc/apt/sources.list.d/debian.sources" >&2; return 1; }
    pkgs=$(printf '%s\n' systemd dbus "$@" | sort -u)
    for dir in "$NQT_CACHE"/rootfs-*; do
        [ -f "$dir/.complete" ] && nqt_rootfs_has "$dir" $pkgs && { echo "$dir"; return 0; }
    done
    pkgs=$(echo $pkgs | tr ' ' ',')
    key=$(printf '%s %s %s\n' "$NQT_SUITE" "$mirror" "$pkgs" | sha256sum | cut -c1-12)
    dir=$NQT_CACHE/rootfs-$key
    mkdir -p "$NQT_CACHE"
    (
        flock 9
        [ -f "$dir/.complete" ] && exit 0
        nqt_rootfs_discard "$dir.tmp"
        log=$NQT_CACHE/debootstrap.log
        echo "building $NQT_SUITE root file system in $dir ($pkgs)" >&2
        timeout 420 debootstrap --variant=minbase --include="$pkgs" "$NQT_SUITE" "$dir.tmp" "$mirror" \
            >"$log" 2>&1 || { tail -20 "$log" >&2; nqt_rootfs_discard "$dir.tmp"; exit 1; }
        chroot "$dir.tmp" apt-get clean
        touch "$dir.tmp/.complete"
        mv "$dir.tmp" "$dir"
        # An older package set's root is dead weight now.
        find "$NQT_CACHE" -maxdepth 1 -name 'rootfs-*' ! -name "rootfs-$key" -exec rm -rf --one-file-system {} +
    ) 9>"$NQT_CACHE/.lock" || return 1
    echo "$dir"
}

# A debootstrap cut short may leave /proc and /sys mounted inside its target:
# unmount before removing, or rm would walk into them.
nqt_rootfs_discard() {
    local m
    [ -e "$1" ] || return 0
    for m in $(findmnt -rn -o TARGET | grep "^$1/" | sort -r); do umount -l "$m"; done
    rm -rf --one-file-system "$1"
}

# nqt_rootfs_has DIR PKG...: every PKG is installed in the root DIR.
nqt_rootfs_has() {
    local dir=$1 p
    shift
    for p in "$@"; do
        dpkg-query --admindir="$dir/var/lib/dpkg" -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q 'install ok installed' || return 1
    done
}

# --- a booted container -----------------------------------------------------------

NQT_NSPAWN_PID=
NQT_LEADER=
NQT_CGROUPS=()

# The controllers nspawn needs a cgroup of its own in: the unified tree, and
# the named systemd hierarchy when the host runs the hybrid layout.
nqt_cgroup_roots() {
    if [ -d /sys/fs/cgroup/unified ]; then
        echo /sys/fs/cgroup/unified
        [ -d /sys/fs/cgroup/systemd ] && echo /sys/fs/cgroup/systemd
    else
        echo /sys/fs/cgroup
    fi
}

# nqt_boot ROOT LOG [NSPAWN-OPTION...]: boots ROOT (left untouched: volatile
# overlay) and waits until its systemd says `running`.
nqt_boot() {
    local root=$1 log=$2 name r i
    shift 2
    name=notifyq-test-$$-$RANDOM
    NQT_CGROUPS=()
    for r in $(nqt_cgroup_roots); do
        mkdir "$r/$name" || return 1
        NQT_CGROUPS+=("$r/$name")
    done
    (
        for r in "${NQT_CGROUPS[@]}"; do echo "$BASHPID" >"$r/cgroup.procs"; done
        exec systemd-nspawn -q -D "$root" -b --register=no --keep-unit --volatile=overlay \
            --console=passive --private-network --machine=nqtest "$@"
    ) </dev/null >"$log" 2>&1 &
    NQT_NSPAWN_PID=$!
    # The leader is nspawn's child once it has exec'd systemd (before that the
    # child is nspawn's own helper), and it answers only once its bus is up.
    local state= pid
    for i in $(seq 300); do
        kill -0 "$NQT_NSPAWN_PID" 2>/dev/null || break
        for pid in $(ps -o pid= --ppid "$NQT_NSPAWN_PID" 2>/dev/null); do
            [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = systemd ] && NQT_LEADER=$pid
        done
        if [ -n "$NQT_LEADER" ]; then
            state=$(nqt_in_t 10 systemctl is-system-running 2>&1)
            case "$state" in initializing|starting|running|degraded|maintenance) break ;; esac
        fi
        sleep 0.1
    done
    [ -n "$NQT_LEADER" ] || { echo "no container leader"; cat "$log"; return 1; }
    state=$(nqt_in_t 60 systemctl is-system-running --wait 2>&1)
    [ "$state" = running ] || { echo "system state: $state"; nqt_in systemctl --failed --no-pager; return 1; }
}

# nqt_in CMD...: runs CMD inside the container, with a clean environment.
nqt_in() { nqt_in_t 120 "$@"; }
nqt_in_t() {
    local t=$1
    shift
    timeout -k 5 "$t" nsenter -t "$NQT_LEADER" -a -- \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 SYSTEMD_PAGER= "$@"
}

# nqt_halt: stops the container and removes its cgroups, whatever state it is
# in. Safe to call twice (trap and normal path).
nqt_halt() {
    local i c p
    if [ -n "$NQT_NSPAWN_PID" ] && kill -0 "$NQT_NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NQT_NSPAWN_PID"
        for i in $(seq 100); do
            kill -0 "$NQT_NSPAWN_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$NQT_NSPAWN_PID" 2>/dev/null && kill -KILL "$NQT_NSPAWN_PID"
        wait "$NQT_NSPAWN_PID" 2>/dev/null
    fi
    for c in "${NQT_CGROUPS[@]}"; do
        [ -d "$c" ] || continue
        # Anything left in our cgroups was started by this container.
        for p in $(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null); do
            kill -KILL "$p" 2>/dev/null
        done
        for i in $(seq 50); do
            find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
            [ -d "$c" ] || break
            sleep 0.1
        done
        [ -d "$c" ] && echo "warning: could not remove cgroup $c" >&2
    done
    NQT_NSPAWN_PID=
    NQT_LEADER=
    NQT_CGROUPS=()
}
