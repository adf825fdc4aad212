# SPDX-License-Identifier: MIT
"""The control socket: commands, protocol errors, peer checks, and what
workers inherit."""
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess

import pytest

from conftest import NOTIFYQCTL, short_tmpdir, wait_for

NOBODY = pwd.getpwnam("nobody")


def test_pause_and_resume(notifyqd):
    r = notifyqd.ctl("pause", "email")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "email: paused"
    assert notifyqd.queue("email")["state"] == "paused"
    assert notifyqd.queue("sms")["state"] != "paused"
    wait_for(lambda: all(w["state"] == "paused" for w in notifyqd.workers("email")),
             timeout=3, what="email workers paused")

    r = notifyqd.ctl("resume", "email", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"queue": "email", "state": "ok"}
    assert notifyqd.queue("email")["state"] != "paused"


def test_pause_unknown_queue_is_an_error(notifyqd):
    r = notifyqd.ctl("pause", "nosuch")
    assert r.returncode == 1
    assert "nosuch" in r.stderr


def test_reload_over_the_socket(notifyqd):
    gen = notifyqd.status()["generation"]
    notifyqd.write_config({"email": 1, "sms": 1, "push": 3})
    r = notifyqd.ctl("reload")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: notifyqd.ready() and notifyqd.status()["generation"] > gen
             and notifyqd.queue("email")["processes"]["configured"] == 1
             and len(notifyqd.track_children()) == 5, timeout=8, what="reload applied")


def test_reload_of_a_broken_config_reports_where(notifyqd):
    gen = notifyqd.status()["generation"]
    notifyqd.cfg.write_text(notifyqd.config_text().replace("processes: 2", "processes: 0"))
    r = notifyqd.ctl("reload")
    assert r.returncode == 1
    assert str(notifyqd.cfg) in r.stderr and "queues.email.processes" in r.stderr
    assert notifyqd.status()["generation"] == gen


def test_stop_over_the_socket(notifyqd):
    kids = notifyqd.track_children()
    r = notifyqd.ctl("stop")
    assert r.returncode == 0, r.stderr
    assert notifyqd.proc.wait(timeout=5) == 0
    assert not [p for p in kids if os.path.exists("/proc/%d" % p)]


def test_metrics(notifyqd):
    r = notifyqd.ctl("metrics", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert {q["name"] for q in m["queues"]} == {"email", "sms", "push"}
    for q in m["queues"]:
        assert set(q["counters"]) >= {"fetched", "completed", "failed", "retried"}
    r = notifyqd.ctl("metrics")
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[0] == "QUEUE"


def test_protocol_errors_get_an_error_reply(notifyqd):
    replies = notifyqd.request(b"not json\n", b'{"cmd":"bogus"}\n', b'{"cmd":"pause"}\n',
                               b'["status"]\n', b'{"cmd":"status"}\n')
    for r in replies[:4]:
        assert r["ok"] is False and r["error"], r
    # The connection survives errors: the last request is answered.
    assert replies[4]["ok"] is True and replies[4]["pid"] == notifyqd.pid


def read_until_closed(s):
    """Everything the peer sent before closing. A peer that closes with our
    bytes unread makes the kernel report ECONNRESET after its data: that is
    the close too."""
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_over_long_line_gets_an_error_and_is_closed(notifyqd):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(notifyqd.sock)
        try:
            s.sendall(b'{"cmd":"status","pad":"' + b"x" * (70 * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still writing: read the reply anyway
        data = read_until_closed(s)
    reply = json.loads(data.split(b"\n")[0])
    assert reply["ok"] is False and reply["error"]
    assert notifyqd.ctl("status").returncode == 0


def test_socket_mode_is_0660(notifyqd):
    st = os.stat(notifyqd.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660


@pytest.fixture(scope="module")
def ctl_for_nobody():
    """A copy of notifyqctl that nobody can run: the build tree may sit in
    a directory only root can enter (a fresh clone under mktemp -d)."""
    d = short_tmpdir("nq-ctl-")
    copy = d / "notifyqctl"
    shutil.copy2(NOTIFYQCTL, copy)
    os.chmod(copy, 0o755)
    yield copy
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def as_nobody(ctl_for_nobody):
    def run(*args):
        return subprocess.run([str(ctl_for_nobody), *args], capture_output=True, text=True,
                              timeout=10, user=NOBODY.pw_uid, group=NOBODY.pw_gid,
                              extra_groups=[])
    return run


def test_stranger_cannot_connect(notifyqd, as_nobody):
    r = as_nobody("-s", notifyqd.sock, "status")
    assert r.returncode == 2
    assert notifyqd.sock in r.stderr and "permission denied" in r.stderr


def raw_request_as_nobody(path, line):
    """Connects as nobody in a forked child; returns what the daemon sent
    before closing (or the connect error's name)."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(path)
                try:
                    s.sendall(line)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # refused before we wrote: the reply is still there
                data = read_until_closed(s)
            os.write(wfd, data)
        except OSError as e:
            os.write(wfd, ("%s" % type(e).__name__).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


def test_peer_credentials_refuse_strangers_on_an_open_socket(daemon_factory, as_nobody):
    # Mode 0666 lets anyone connect, so only the SO_PEERCRED check stands
    # between nobody and the daemon.
    d = daemon_factory()
    d.write_config(text=d.config_text().replace(
        "control:\n", "control:\n  mode: \"0666\"\n  group: root\n"))
    d.start()
    d.wait_ready()
    assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o666
    out = raw_request_as_nobody(d.sock, b'{"cmd":"stop"}\n')
    assert json.loads(out.split(b"\n")[0]) == {"ok": False, "error": "permission denied",
                                               "refused": True}
    assert d.proc.poll() is None
    r = as_nobody("-s", d.sock, "status")
    assert r.returncode == 2 and "permission denied" in r.stderr


def test_group_members_are_let_in(daemon_factory, as_nobody):
    d = daemon_factory()
    d.write_config(text=d.config_text().replace("control:\n", "control:\n  group: nogroup\n"))
    d.start()
    d.wait_ready()
    st = os.stat(d.sock)
    assert st.st_gid == NOBODY.pw_gid and stat.S_IMODE(st.st_mode) == 0o660
    # nobody's primary group is nogroup (getgrouplist counts it).
    r = as_nobody("-s", d.sock, "status", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pid"] == d.pid


def socket_inodes(pid):
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target)
    return inodes


def fd_targets(pid):
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            pass
    return out


def unix_sockets():
    """inode -> (type, listening) from /proc/net/unix."""
    out = {}
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            cols = line.split()
            flags, kind, inode = int(cols[3], 16), int(cols[4], 16), cols[6]
            out["socket:[%s]" % inode] = (kind, bool(flags & 0x10000))
    return out


def test_workers_inherit_no_foreign_fds(notifyqd):
    # A worker still "starting" has not built its own loop yet: count the fds
    # of settled workers only.
    wait_for(lambda: all(w.get("state") != "starting" for q in notifyqd.status()["queues"]
                         for w in q["workers"]), timeout=10)
    st = notifyqd.status()
    workers = [w["pid"] for q in st["queues"] for w in q["workers"]]
    master = socket_inodes(notifyqd.pid)
    unix = unix_sockets()
    seen = {}
    for pid in workers:
        fds = fd_targets(pid)
        assert {0, 1, 2} <= set(fds), fds
        # Its channel end, libevent's epoll and signal pair, two Redis
        # connections, maybe a journal socket: a handful. The master holds 2
        # per child plus the listener, so a leak of those shows up as a count.
        assert len(fds) <= 11, fds
        assert sum(1 for t in fds.values() if t == "anon_inode:[eventpoll]") == 1, fds
        mine = {t for t in fds.values() if t.startswith("socket:[")}
        # No socket shared with the master (listener, master ends) or with a
        # sibling (their channel ends).
        assert not mine & master, (pid, mine & master)
        kinds = [unix.get(t) for t in mine]
        assert not [k for k in kinds if k and k[1]], "a listening socket in %d: %s" % (pid, fds)
        assert kinds.count((socket.SOCK_SEQPACKET, False)) == 1, (pid, fds)  # its channel
        for other, theirs in seen.items():
            assert not mine & theirs, (pid, other, mine & theirs)
        seen[pid] = mine


def test_unreachable_daemon_exits_2_naming_the_socket(tmp_path):
    sock = str(tmp_path / "none.sock")
    r = subprocess.run([str(NOTIFYQCTL), "-s", sock, "status"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2
    assert r.stderr.strip() == "notifyqctl: %s: no such file: is notifyqd running?" % sock


@pytest.mark.parametrize("args", [["bogus"], ["pause"], ["status", "extra"], []])
def test_usage_errors_exit_64(args):
    r = subprocess.run([str(NOTIFYQCTL), "-s", "/nonexistent", *args], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 64
    assert r.stderr.startswith("notifyqctl: ")
