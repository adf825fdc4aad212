#!/bin/bash
# SPDX-License-Identifier: MIT
# Stage "packages": the path a user takes. Builds the .deb and the .rpm from
# `make dist`, lints them and the unit, then boots Debian 12 with a real
# systemd (systemd-nspawn, no network but loopback) and drives the package
# through apt, systemctl, notifyqctl and dpkg. Every check prints one line;
# the last line is "N passed, N failed, N skipped". Needs root.
#
# The root file system is built once (1 to 3 minutes, by the mirror's speed)
# and cached in /var/cache/notifyq-tests (NQ_TEST_CACHE); each boot starts
# from it clean. Steps that need `notifyqctl send` (job delivery, the queue
# issue) are skipped, saying so, until the packaged notifyqctl has `send`.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. tests/packaging/lib.sh

T0=$SECONDS
WORK=$(mktemp -d /tmp/notifyq-packages.XXXXXX)
trap 'nqt_halt; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
OUT=$ROOT/_packages
UNIT_SRC=packaging/systemd/notifyq.service

step() { echo "== $* ($((SECONDS - T0)) s)"; }

# --- prerequisites --------------------------------------------------------------

step prerequisites
if [ "$(id -u)" -ne 0 ]; then
    nqt_fail "the packages stage needs root (dpkg-buildpackage is fine, nspawn is not)"
    nqt_summary; exit 1
fi
missing=()
for t in dpkg-buildpackage dh lintian rpmbuild rpmlint debootstrap systemd-nspawn nsenter \
    systemd-analyze; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
    nqt_fail "tools missing: ${missing[*]} (scripts/setup installs debhelper lintian rpm rpmlint debootstrap systemd-container)"
    nqt_summary; exit 1
fi
nqt_ok "packaging tools present"

VERSION=$(sed -n 's/^AC_INIT(\[notifyq\], *\[\([^]]*\)\].*/\1/p' configure.ac)
DEBVER=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
nqt_expect "debian/changelog carries AC_INIT's version" "$VERSION" "${DEBVER%-*}"
nqt_expect "notifyq.spec carries AC_INIT's version" "$VERSION" \
    "$(sed -n 's/^Version: *//p' packaging/rpm/notifyq.spec)"

# --- the unit, without booting ---------------------------------------------------

step "unit file"
unit_has() { # every KEY=VALUE line must be in the unit as written
    local want missing_keys=()
    for want in "$@"; do grep -qxF -- "$want" "$UNIT_SRC" || missing_keys+=("$want"); done
    [ ${#missing_keys[@]} -eq 0 ] || { printf 'missing: %s\n' "${missing_keys[@]}"; return 1; }
}
nqt_check "unit: service settings" unit_has Type=notify NotifyAccess=main \
    "ExecStartPre=/usr/sbin/notifyqd --check-config" "ExecStart=/usr/sbin/notifyqd -f" \
    'ExecReload=/bin/kill -HUP $MAINPID' KillMode=mixed Restart=on-failure User=notifyq \
    Group=notifyq RuntimeDirectory=notifyq RuntimeDirectoryMode=0750 StateDirectory=notifyq \
    WatchdogSec=30s UMask=0027
nqt_check "unit: hardening settings" unit_has ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
    PrivateDevices=yes NoNewPrivileges=yes CapabilityBoundingSet= \
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" SystemCallFilter=@system-service \
    SystemCallArchitectures=native MemoryDenyWriteExecute=yes LockPersonality=yes \
    RestrictRealtime=yes RestrictNamespaces=yes ProtectKernelTunables=yes \
    ProtectKernelModules=yes ProtectKernelLogs=yes ProtectControlGroups=yes ProtectClock=yes \
    ProtectHostname=yes
# TimeoutStopSec must outlast the longest drain_timeout in the shipped config
# (default 30s) plus the master's 5 s grace, or systemd kills a drain.
to_ms() { # 500ms 30s 5m 1h 7d, or bare milliseconds
    local n=${1%%[a-z]*} u=${1##*[0-9]}
    case "$u" in ms|"") echo "$n" ;; s) echo $((n * 1000)) ;; m|min) echo $((n * 60000)) ;;
    h) echo $((n * 3600000)) ;; d) echo $((n * 86400000)) ;; *) echo 0 ;; esac
}
drain_ms=30000
for d in $(sed -n 's/^ *drain_timeout: *\([0-9a-z]*\).*/\1/p' etc/notifyq.yaml); do
    [ "$(to_ms "$d")" -gt "$drain_ms" ] && drain_ms=$(to_ms "$d")
done
stop_ms=$(to_ms "$(sed -n 's/^TimeoutStopSec=//p' "$UNIT_SRC")")
nqt_check "unit: TimeoutStopSec ($((stop_ms / 1000)) s) > longest shipped drain_timeout ($((drain_ms / 1000)) s) + 5 s" \
    test "$stop_ms" -gt $((drain_ms + 5000))
exposure=$(cd "$WORK" && systemd-analyze security --offline=yes "$ROOT/$UNIT_SRC" 2>&1 \
    | sed -n 's/.*Overall exposure level for notifyq.service: \([0-9.]*\).*/\1/p')
# --threshold counts in tenths of the displayed level: 20 is 2.0.
nqt_check "systemd-analyze security --offline: exposure ${exposure:-?} <= 2.0" \
    sh -c "cd '$WORK' && systemd-analyze security --offline=yes --threshold=20 '$ROOT/$UNIT_SRC' >/dev/null"

# --- the .deb ----------------------------------------------------------------------

step "build .deb"
rm -f "$OUT"/notifyq_*.deb
NQ_PACKAGE_DIR=$OUT DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
    timeout 300 scripts/package deb >"$WORK/deb.log" 2>&1
DEB=$(ls "$OUT"/notifyq_"$DEBVER"_*.deb 2>/dev/null | head -1)
if [ -z "$DEB" ]; then
    nqt_fail "scripts/package deb"; tail -30 "$WORK/deb.log" | sed 's/^/    /'
    nqt_summary; exit 1
fi
nqt_ok "scripts/package deb: $(basename "$DEB") ($((SECONDS - T0)) s)"

lintian_errors() {
    local out
    out=$(lintian --pedantic --fail-on error "$DEB" 2>&1 | grep -v 'running with root privileges')
    printf '%s\n' "$out" | sed -n '/^[EWIPX]:/p'
    ! printf '%s\n' "$out" | grep -q '^E:'
}
nqt_check "lintian: no errors" lintian_errors
lintian --pedantic "$DEB" 2>/dev/null | grep '^[WI]:' | sed 's/^/    /'

deb_has_files() {
    local list f missing_files=()
    list=$(dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's|^\./|/|')
    for f in /usr/sbin/notifyqd /usr/bin/notifyqctl /etc/notifyq.yaml \
        /lib/systemd/system/notifyq.service /usr/lib/sysusers.d/notifyq.conf \
        /usr/lib/tmpfiles.d/notifyq.conf /usr/share/man/man8/notifyqd.8.gz \
        /usr/share/man/man1/notifyqctl.1.gz /usr/share/man/man5/notifyq.yaml.5.gz \
        /usr/share/man/man7/notifyq-jobs.7.gz \
        /usr/share/notifyq/migrations/0001_init.sql /usr/share/notifyq/openapi.yaml \
        /usr/share/doc/notifyq/copyright; do
        grep -qxF "$f" <<<"$list" || missing_files+=("$f")
    done
    [ ${#missing_files[@]} -eq 0 ] || { printf 'missing: %s\n' "${missing_files[@]}"; return 1; }
}
nqt_check ".deb holds binaries, unit, sysusers, tmpfiles, config, man pages, migrations" deb_has_files
nqt_expect ".deb conffiles" "/etc/notifyq.yaml" \
    "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
nqt_expect ".deb Recommends" "redis-server" "$(dpkg-deb -f "$DEB" Recommends)"
nqt_expect ".deb Suggests" "postgresql" "$(dpkg-deb -f "$DEB" Suggests)"
# ${shlibs:Depends}: every library notifyqd links appears in Depends.
deb_shlibs() {
    local x dep lib pkg missing_libs=()
    x=$WORK/deb-x
    rm -rf "$x" && dpkg-deb -x "$DEB" "$x"
    dep=$(dpkg-deb -f "$DEB" Depends)
    for lib in $(objdump -p "$x/usr/sbin/notifyqd" "$x/usr/bin/notifyqctl" | awk '/NEEDED/{print $2}' | sort -u); do
        pkg=$(dpkg -S "*/$lib" 2>/dev/null | head -1 | cut -d: -f1)
        [ -n "$pkg" ] && ! grep -q "\b$pkg\b" <<<"$dep" && missing_libs+=("$lib ($pkg)")
    done
    echo "Depends: $dep"
    [ ${#missing_libs[@]} -eq 0 ] || { printf 'not in Depends: %s\n' "${missing_libs[@]}"; return 1; }
}
nqt_check ".deb Depends covers every linked library (shlibs)" deb_shlibs
nqt_check ".deb Depends on procps (ExecReload's kill)" \
    sh -c 'dpkg-deb -f "$1" Depends | tr "," "\n" | grep -qx " *procps"' _ "$DEB"
nqt_check ".deb unit is the source unit" cmp "$WORK/deb-x/lib/systemd/system/notifyq.service" "$UNIT_SRC"

# verify needs the units it refers to and the binaries it runs under --root,
# and man pages for Documentation=; it only warns, so stderr must be empty.
analyze_verify() {
    local v=$WORK/verify err
    rm -rf "$v" && cp -a "$WORK/deb-x" "$v"
    mkdir -p "$v/lib/systemd/system" "$v/bin"
    cp -an /lib/systemd/system/. "$v/lib/systemd/system/"
    cp /bin/kill "$v/bin/kill"
    err=$(cd "$WORK" && MANPATH=$v/usr/share/man systemd-analyze verify --root="$v" notifyq.service 2>&1) \
        || { echo "$err"; return 1; }
    [ -z "$err" ] || { echo "$err"; return 1; }
}
nqt_check "systemd-analyze verify: clean" analyze_verify

# --- the .rpm ----------------------------------------------------------------------

step "build .rpm"
NQ_PACKAGE_DIR=$OUT timeout 300 scripts/package rpm >"$WORK/rpm.log" 2>&1
RPM=$(ls "$OUT"/notifyq-"$VERSION"-*.rpm 2>/dev/null | grep -v debug | head -1)
if [ -z "$RPM" ]; then
    nqt_fail "scripts/package rpm"; tail -30 "$WORK/rpm.log" | sed 's/^/    /'
else
    nqt_ok "scripts/package rpm: $(basename "$RPM") ($((SECONDS - T0)) s)"
    rpmlint_errors() {
        local out
        out=$(rpmlint -r packaging/rpm/notifyq.rpmlintrc "$RPM" 2>&1)
        printf '%s\n' "$out" | grep -E ': [EW]: '
        printf '%s\n' "$out" | grep -q ' 0 errors,'
    }
    nqt_check "rpmlint: no errors" rpmlint_errors
    rpm_lists() { # FILE...: each must be in rpm -qp --list
        local list f missing_files=()
        list=$(rpm -qp --list "$RPM")
        for f in "$@"; do grep -qxF "$f" <<<"$list" || missing_files+=("$f"); done
        [ ${#missing_files[@]} -eq 0 ] || { printf 'missing: %s\n' "${missing_files[@]}"; return 1; }
    }
    nqt_check "rpm --list: binaries, unit, sysusers, tmpfiles, config, man pages, migrations" rpm_lists \
        /usr/sbin/notifyqd /usr/bin/notifyqctl /etc/notifyq.yaml \
        /usr/lib/systemd/system/notifyq.service /usr/lib/sysusers.d/notifyq.conf \
        /usr/lib/tmpfiles.d/notifyq.conf /usr/share/man/man8/notifyqd.8 \
        /usr/share/man/man1/notifyqctl.1 /usr/share/man/man5/notifyq.yaml.5 \
        /usr/share/man/man7/notifyq-jobs.7 /usr/share/notifyq/migrations/0001_init.sql /usr/share/notifyq/openapi.yaml
    nqt_expect "rpm: config is %config(noreplace), 0640 root:notifyq" \
        "/etc/notifyq.yaml cn 100640 root notifyq" \
        "$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags} %{FILEMODES:octal} %{FILEUSERNAME} %{FILEGROUPNAME}\n]' "$RPM" | grep '^/etc/notifyq.yaml ')"
    rpm_scripts() {
        local s
        s=$(rpm -qp --scripts "$RPM")
        grep -q 'useradd -r -g notifyq' <<<"$s" || { echo "no user creation in %pre"; return 1; }
        grep -q 'systemd-tmpfiles --create notifyq.conf' <<<"$s" || { echo "no tmpfiles in %post"; return 1; }
        grep -q 'systemctl --no-reload preset notifyq.service' <<<"$s" || { echo "no preset in %post"; return 1; }
        grep -q 'disable --now notifyq.service' <<<"$s" || { echo "no disable in %preun"; return 1; }
        grep -q 'try-restart notifyq.service' <<<"$s" || { echo "no restart in %postun"; return 1; }
    }
    nqt_check "rpm --scripts: users, tmpfiles, preset, disable, restart on upgrade" rpm_scripts
    rpm_requires() {
        local req lib missing_libs=()
        req=$(rpm -qp --requires "$RPM")
        grep -qx 'shadow-utils' <<<"$req" || missing_libs+=(shadow-utils)
        grep -qx '/usr/bin/kill' <<<"$req" || missing_libs+=(/usr/bin/kill)
        for lib in $(objdump -p "$WORK/deb-x/usr/sbin/notifyqd" | awk '/NEEDED/{print $2}'); do
            grep -q "^$lib" <<<"$req" || missing_libs+=("$lib")
        done
        [ ${#missing_libs[@]} -eq 0 ] || { printf 'not required: %s\n' "${missing_libs[@]}"; return 1; }
    }
    nqt_check "rpm --requires: shadow-utils, kill and every linked library" rpm_requires
fi

# --- the root file system ------------------------------------------------------------

step "root file system"
# Everything the .deb depends on, plus redis-server, must be in the cached
# root: the container has no network.
# The runtime packages of configure.ac's libraries are listed too, so that a
# root built before the daemon linked them is not rebuilt when it does.
deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$')
RFS=$(nqt_rootfs redis-server procps libhiredis0.14 libcurl4 libyaml-0-2 libpq5 libevent-2.1-7 \
    libevent-core-2.1-7 libjansson4 libmicrohttpd12 $deps)
if [ -z "$RFS" ]; then
    nqt_fail "root file system"; nqt_summary; exit 1
fi
nqt_ok "root file system $(basename "$RFS") ($((SECONDS - T0)) s)"

# Previous build for the upgrade test: this build with a lower version.
PREV=$WORK/prev
mkdir -p "$PREV/x"
dpkg-deb -R "$DEB" "$PREV/x"
sed -i "s/^Version: .*/Version: $DEBVER~prev/" "$PREV/x/DEBIAN/control"
PREVDEB=notifyq_${DEBVER}~prev_$(dpkg-deb -f "$DEB" Architecture).deb
dpkg-deb --root-owner-group -b "$PREV/x" "$PREV/$PREVDEB" >/dev/null
rm -rf "$PREV/x"
DEBDIR=$WORK/debs
mkdir -p "$DEBDIR" && cp "$DEB" "$DEBDIR/"
DEBNAME=$(basename "$DEB")

# Queues the shipped config declares (top-level `queues:` keys).
SHIPPED_QUEUES=$(awk '/^queues:/{q=1; next} /^[^ #]/{q=0} q && /^  [A-Za-z0-9_.-]+:/{sub(/^  /,""); sub(/:.*/,""); print}' etc/notifyq.yaml)

# --- container A: install, run, operate, remove -------------------------------------

step "container: install and run"
if ! nqt_boot "$RFS" "$WORK/nspawn-a.log" --bind-ro="$DEBDIR:/mnt/debs"; then
    nqt_fail "container boots to running"; nqt_summary; exit 1
fi
nqt_ok "container boots to running ($((SECONDS - T0)) s)"

# Users for the permission checks, made before the snapshot so that only the
# package's own traces are compared after purge.
nqt_in useradd -m nqop && nqt_in useradd -m nqoutsider
snapshot() { # the file tree, less what policy lets a purge leave behind
    nqt_in find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
        -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/apt \
        -o -path /var/lib/dpkg -o -path /var/lib/systemd -o -path /var/lib/redis -o -path /root \) -prune \
        -o -print | grep -vE '^/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$' | sort
}
snapshot >"$WORK/before.txt"

nqt_check "apt-get install /mnt/debs/$DEBNAME (redis-server beside it)" \
    nqt_in_t 120 env DEBIAN_FRONTEND=noninteractive apt-get install -y "/mnt/debs/$DEBNAME"

stat_of() { nqt_in stat -c '%a %U:%G' "$1" 2>&1; }
nqt_expect "user notifyq: system account, home /var/lib/notifyq, no login" \
    "notifyq /var/lib/notifyq /usr/sbin/nologin system" \
    "$(nqt_in getent passwd notifyq | awk -F: '{print $1, $6, $7, ($3 < 1000 ? "system" : "user")}')"
nqt_expect "group notifyq exists" "notifyq" "$(nqt_in getent group notifyq | cut -d: -f1)"
nqt_expect "/etc/notifyq.yaml is 0640 root:notifyq" "640 root:notifyq" "$(stat_of /etc/notifyq.yaml)"
nqt_expect "/var/lib/notifyq is 0750 notifyq:notifyq" "750 notifyq:notifyq" "$(stat_of /var/lib/notifyq)"
nqt_expect "notifyq.service enabled" "enabled" "$(nqt_in systemctl is-enabled notifyq)"
nqt_expect "notifyqd --version" "$VERSION" \
    "$(nqt_in notifyqd --version 2>&1 | grep -o '[0-9][0-9.]*[0-9]' | head -1)"
nqt_expect "notifyqctl --version" "$VERSION" \
    "$(nqt_in notifyqctl --version 2>&1 | grep -o '[0-9][0-9.]*[0-9]' | head -1)"
nqt_check "notifyqd --check-config on the shipped /etc/notifyq.yaml (as notifyq)" \
    nqt_in runuser -u notifyq -- notifyqd --check-config

# The package starts the service; start it again by hand to see READY=1.
nqt_in systemctl stop notifyq
nqt_in systemctl reset-failed notifyq 2>/dev/null
nqt_check "systemctl start notifyq returns (Type=notify: after READY=1)" nqt_in_t 30 systemctl start notifyq
nqt_expect "notifyq is active" "active" "$(nqt_in systemctl is-active notifyq)"
show() { nqt_in systemctl show -P "$1" notifyq; }
MAINPID=$(show MainPID)
nqt_check "STATUS= line reported: '$(show StatusText)'" test -n "$(show StatusText)"
nqt_expect "/run/notifyq is 0750 notifyq:notifyq" "750 notifyq:notifyq" "$(stat_of /run/notifyq)"
nqt_expect "control socket is 0660 notifyq:notifyq" "660 notifyq:notifyq" "$(stat_of /run/notifyq/control.sock)"
proc_status() { # the kernel's view of the master's confinement, in a fixed order
    nqt_in cat "/proc/$MAINPID/status" | awk '$1 ~ /^(NoNewPrivs|Seccomp|CapEff|CapBnd):$/ {v[$1] = $2}
        END {print "NoNewPrivs", v["NoNewPrivs:"], "Seccomp", v["Seccomp:"], "CapEff", v["CapEff:"], "CapBnd", v["CapBnd:"]}'
}
nqt_expect "master runs hardened (no new privileges, seccomp filter, no capabilities)" \
    "NoNewPrivs 1 Seccomp 2 CapEff 0000000000000000 CapBnd 0000000000000000" "$(proc_status)"

# --- operators -------------------------------------------------------------------

step "container: operators"
nqt_in usermod -aG notifyq nqop
status_json() { nqt_in runuser -u nqop -- notifyqctl status --json; }
json_ok=$(status_json 2>"$WORK/status.err"); rc=$?
nqt_expect "notifyqctl status as operator (group notifyq, not root) exits 0" 0 $rc
[ $rc -eq 0 ] || sed 's/^/    /' "$WORK/status.err"
queues_in_status() {
    python3 - "$1" $SHIPPED_QUEUES <<'PY'
import json, sys
st = json.loads(sys.argv[1])
by = {q["name"]: q for q in st["queues"]}
bad = [n for n in sys.argv[2:] if n not in by
       or by[n]["processes"]["running"] != by[n]["processes"]["configured"]]
print("queues:", " ".join(f'{q["name"]}={q["processes"]["running"]}/{q["processes"]["configured"]}'
                          for q in st["queues"]))
sys.exit(1 if bad or not sys.argv[2:] else 0)
PY
}
nqt_check "status shows every shipped queue ($(echo $SHIPPED_QUEUES)) with all processes up" \
    queues_in_status "$json_ok"
table=$(nqt_in runuser -u nqop -- notifyqctl status 2>&1)
nqt_check "human status table names every queue" \
    sh -c 'for q in $2; do printf "%s\n" "$1" | grep -qw "$q" || { echo "no $q in:"; printf "%s\n" "$1"; exit 1; }; done' \
    _ "$table" "$SHIPPED_QUEUES"
for how in "" "-s /run/notifyq/control.sock"; do
    out=$(nqt_in runuser -u nqoutsider -- notifyqctl $how status 2>&1); rc=$?
    out=${out%%$'\n'*}
    nqt_check "notifyqctl $how status as a user outside group notifyq: refused, exit 2 ($out)" test $rc -eq 2
done

# --- a job, end to end ----------------------------------------------------------------

step "container: job delivery"
# `send` exists when the help lists it and `send --help` succeeds. The
# shipped config's sms queue delivers through the file provider into
# /var/lib/notifyq/spool/sms: the path a user's first job takes.
if nqt_in notifyqctl --help 2>&1 | grep -qE '^ +send ' && nqt_in notifyqctl send --help >/dev/null 2>&1; then
    nqt_in cp /etc/notifyq.yaml /tmp/notifyq.yaml.shipped
    deliver() { # one sms job from an operator into the spool
        local token=job$RANDOM$RANDOM f
        nqt_in runuser -u nqop -- notifyqctl send sms \
            --data "{\"to\":\"+15551234567\",\"body\":\"$token\"}" || return 1
        local end=$((SECONDS + 10))
        while [ $SECONDS -lt $end ]; do
            f=$(nqt_in grep -rls "$token" /var/lib/notifyq/spool/sms)
            [ -n "$f" ] && { echo "delivered to $f"; return 0; }
            sleep 0.1
        done
        echo "no $token under /var/lib/notifyq/spool/sms"
        nqt_in journalctl -u notifyq --no-pager -q -n 10
        return 1
    }
    nqt_check "job sent with notifyqctl send lands in the spool (Redis over TCP)" deliver
    # The same through Redis's unix socket; the daemon and the operator reach
    # it as members of group redis.
    nqt_in sh -c 'printf "unixsocket /run/redis/redis-server.sock\nunixsocketperm 770\n" >>/etc/redis/redis.conf'
    nqt_in usermod -aG redis notifyq
    nqt_in usermod -aG redis nqop
    nqt_in systemctl restart redis-server
    nqt_in sed -i 's|^  url: redis://127.0.0.1:6379$|  socket: /run/redis/redis-server.sock|' /etc/notifyq.yaml
    nqt_in systemctl restart notifyq
    nqt_check "job lands in the spool with Redis over a unix socket, under the hardening" deliver
    nqt_in cp /tmp/notifyq.yaml.shipped /etc/notifyq.yaml
    nqt_in systemctl restart notifyq
    MAINPID=$(show MainPID)
else
    for what in "job sent with notifyqctl send lands in the spool (Redis over TCP)" \
        "job lands in the spool with Redis over a unix socket, under the hardening"; do
        nqt_skip "$what: notifyqctl has no send command yet (the queue issue brings it)"
    done
fi

# --- failures and reloads ---------------------------------------------------------------

step "container: worker crash, reload, watchdog"
worker_pid() { # QUEUE SLOT
    nqt_in notifyqctl status --json | python3 -c '
import json, sys
st = json.load(sys.stdin)
q = next(q for q in st["queues"] if q["name"] == sys.argv[1])
w = next(w for w in q["workers"] if w["slot"] == int(sys.argv[2]))
print(w["pid"], q["restarts"])' "$1" "$2" 2>/dev/null
}
first_queue=$(echo $SHIPPED_QUEUES | cut -d' ' -f1)
repaired() {
    local before after
    before=$(worker_pid "$first_queue" 0)
    [[ "$before" =~ ^[0-9]+\ [0-9]+$ ]] || { echo "no running worker $first_queue/0 in status: $before"; return 1; }
    local t0=$(date +%s%N)
    nqt_in sh -c "kill -9 ${before% *}"
    while [ $(($(date +%s%N) - t0)) -lt 5000000000 ]; do
        after=$(worker_pid "$first_queue" 0)
        if [[ "$after" =~ ^[0-9]+\ [0-9]+$ ]] && [ "${after% *}" != "${before% *}" ] \
            && [ "${after#* }" -gt "${before#* }" ]; then
            echo "pid ${before% *} -> ${after% *} seen after $((($(date +%s%N) - t0) / 1000000)) ms," \
                "restarts ${before#* } -> ${after#* }"
            return 0
        fi
        sleep 0.05
    done
    echo "still: $after (was $before)"; return 1
}
nqt_check "kill -9 of worker $first_queue/0: a new pid within 5 s, restarts counted" repaired
nqt_expect "master survives a worker's death" "$MAINPID active" "$(show MainPID) $(nqt_in systemctl is-active notifyq)"

broken_reload() {
    nqt_in cp /etc/notifyq.yaml /tmp/notifyq.yaml.good
    nqt_in sh -c 'printf "no_such_key: 1\n" >>/etc/notifyq.yaml'
    local since
    since=$(nqt_in date '+%Y-%m-%d %H:%M:%S')
    nqt_in systemctl reload notifyq || { echo "systemctl reload failed"; return 1; }
    local end=$((SECONDS + 5))
    while [ $SECONDS -lt $end ]; do
        nqt_in journalctl -u notifyq --since "$since" --no-pager -q | grep -q 'no_such_key' && break
        sleep 0.1
    done
    nqt_in journalctl -u notifyq --since "$since" --no-pager -q | grep 'no_such_key' \
        || { echo "no error about no_such_key in journalctl -u notifyq"; return 1; }
    [ "$(nqt_in systemctl is-active notifyq)" = active ] || { echo "not active"; return 1; }
    [ "$(show MainPID)" = "$MAINPID" ] || { echo "master changed"; return 1; }
}
nqt_check "reload with a broken config: error in journalctl -u notifyq, service stays active" broken_reload
nqt_in cp /tmp/notifyq.yaml.good /etc/notifyq.yaml
nqt_check "reload with the good config again" nqt_in systemctl reload notifyq
nqt_expect "active after reloads" "active" "$(nqt_in systemctl is-active notifyq)"

nqt_expect "WatchdogSec is 30s" "30s" "$(show WatchdogUSec)"
# Feeding is what matters, not the period: a 2 s watchdog for a few seconds
# proves it as well as 30 s would, in a tenth of the time.
watchdog_fed() {
    nqt_in mkdir -p /run/systemd/system/notifyq.service.d
    printf '[Service]\nWatchdogSec=2s\n' | nqt_in tee /run/systemd/system/notifyq.service.d/watchdog.conf >/dev/null
    nqt_in systemctl daemon-reload
    nqt_in systemctl restart notifyq || return 1
    local pid t1 t2
    pid=$(show MainPID)
    sleep 1; t1=$(show WatchdogTimestampMonotonic)
    sleep 4; t2=$(show WatchdogTimestampMonotonic)
    echo "pings at ${t1} and ${t2} us; MainPID $pid -> $(show MainPID); restarts $(show NRestarts)"
    [ "$(nqt_in systemctl is-active notifyq)" = active ] && [ "$(show MainPID)" = "$pid" ] \
        && [ "$(show NRestarts)" = 0 ] && [ "${t2:-0}" -gt "${t1:-0}" ]
}
nqt_check "watchdog fed: up 5 s past a 2 s WatchdogSec, pings advancing" watchdog_fed
nqt_in rm -rf /run/systemd/system/notifyq.service.d
nqt_in systemctl daemon-reload
nqt_in systemctl restart notifyq

# --- stop and remove ----------------------------------------------------------------------

step "container: stop, remove, purge"
nqt_check "systemctl stop notifyq (drain)" nqt_in_t 60 systemctl stop notifyq
nqt_expect "stopped: inactive, Result=success, exit 0" "inactive success 0" \
    "$(nqt_in systemctl is-active notifyq) $(show Result) $(show ExecMainStatus)"
nqt_check "/run/notifyq removed at stop" nqt_in test ! -e /run/notifyq

nqt_check "dpkg -r notifyq" nqt_in env DEBIAN_FRONTEND=noninteractive dpkg -r notifyq
nqt_expect "after -r: config-files state, conffile kept, binaries and unit gone" \
    "deinstall ok config-files yes no no" \
    "$(nqt_in dpkg-query -W -f='${Status}' notifyq) $(nqt_in test -f /etc/notifyq.yaml && echo yes || echo no) $(nqt_in test -e /usr/sbin/notifyqd && echo yes || echo no) $(nqt_in test -e /lib/systemd/system/notifyq.service && echo yes || echo no)"
nqt_check "dpkg -P notifyq" nqt_in env DEBIAN_FRONTEND=noninteractive dpkg -P notifyq
snapshot >"$WORK/after.txt"
left=$(comm -13 "$WORK/before.txt" "$WORK/after.txt")
nqt_check "purge leaves no files behind" sh -c '[ -z "$1" ] || { printf "left: %s\n" $1; exit 1; }' _ "$left"
nqt_expect "purge leaves no enablement state" "" \
    "$(nqt_in sh -c 'ls /etc/systemd/system/*/notifyq.service /var/lib/systemd/deb-systemd-helper-enabled/notifyq.service.dsh-also /var/lib/systemd/deb-systemd-helper-enabled/*/notifyq.service 2>/dev/null')"
nqt_halt

# --- container B: upgrade over a previous build ---------------------------------------

step "container: upgrade"
if ! nqt_boot "$RFS" "$WORK/nspawn-b.log" --bind-ro="$DEBDIR:/mnt/debs" --bind-ro="$PREV:/mnt/prev"; then
    nqt_fail "container boots to running (upgrade)"
else
    upgrade() {
        local pid
        nqt_in env DEBIAN_FRONTEND=noninteractive apt-get install -y \
            "/mnt/prev/$PREVDEB" >/dev/null || { echo "previous build did not install"; return 1; }
        [ "$(nqt_in systemctl is-active notifyq)" = active ] || { echo "previous build not active"; return 1; }
        nqt_in sh -c 'printf "# local change kept across upgrades\n" >>/etc/notifyq.yaml'
        pid=$(show MainPID)
        nqt_in env DEBIAN_FRONTEND=noninteractive apt-get install -y \
            "/mnt/debs/$DEBNAME" >/dev/null || { echo "upgrade failed"; return 1; }
        echo "installed $(nqt_in dpkg-query -W -f='${Version}' notifyq); MainPID $pid -> $(show MainPID)"
        [ "$(nqt_in dpkg-query -W -f='${Version}' notifyq)" = "$DEBVER" ] || return 1
        nqt_in grep -q '^# local change kept across upgrades$' /etc/notifyq.yaml \
            || { echo "modified conffile lost"; return 1; }
        [ "$(stat_of /etc/notifyq.yaml)" = "640 root:notifyq" ] || { echo "conffile mode $(stat_of /etc/notifyq.yaml)"; return 1; }
        [ "$(nqt_in systemctl is-active notifyq)" = active ] || { echo "not active after upgrade"; return 1; }
        [ "$(show MainPID)" != "$pid" ] || { echo "service not restarted"; return 1; }
    }
    nqt_check "upgrade over a previous build keeps the modified conffile and restarts the service" upgrade
fi
nqt_halt

step done
nqt_summary
[ "$NQT_FAILED" -eq 0 ]
