# SPDX-License-Identifier: MIT
"""Integration harness: real processes, the PgBouncer way.

A session fixture runs redis-server on a unix socket in a temp dir; a function
fixture runs notifyqd in the foreground with its own config and control socket.
Tests read like operations (``d.ctl("pause", "email")``, ``d.sighup()``) and wait
with deadlines (``wait_for``), never with bare sleeps. Every process a test saw
(master, workers, any child of the master) is tracked, and teardown asserts
none outlived the daemon.

NOTIFYQ_BUILD names the build directory holding notifyqd and notifyqctl
(scripts/test sets it); default: <repo>/_build. NOTIFYQ_REDIS_SERVER names
the server binary (default redis-server; valkey-server for Valkey 8).
"""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
BUILD = Path(os.environ.get("NOTIFYQ_BUILD") or REPO / "_build")
NOTIFYQD = BUILD / "notifyqd"
NOTIFYQCTL = BUILD / "notifyqctl"
# The server binary: Debian 12's redis-server, or another speaking its
# protocol and options, such as valkey-server 8 (NOTIFYQ_REDIS_SERVER=valkey-server).
REDIS_SERVER = os.environ.get("NOTIFYQ_REDIS_SERVER") or "redis-server"

# Sanitizer reports must never appear in a daemon's log.
LOG_FORBIDDEN = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:")


def pytest_sessionstart(session):
    missing = [str(p) for p in (NOTIFYQD, NOTIFYQCTL) if not os.access(p, os.X_OK)]
    if missing:
        raise pytest.UsageError(
            "integration tests need built programs, missing: %s; build first "
            "(scripts/test does) or point NOTIFYQ_BUILD at the build directory"
            % ", ".join(missing))


def wait_for(pred, timeout, interval=0.02, what=None):
    """Polls pred until it returns something truthy, which is returned; fails
    the test when timeout seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what or getattr(pred, "__name__", "condition")))
        time.sleep(interval)


def pid_alive(pid):
    """True while pid exists and is not a zombie (a zombie already exited)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def children_of(ppid):
    """Live children of ppid, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == ppid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def short_tmpdir(prefix="nq-"):
    """A world-traversable temp dir with a short path: sun_path holds 108
    bytes (pytest's tmp_path can exceed it), and tests that connect as
    `nobody` must be able to reach the socket file."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return Path(d)


class Redis:
    def __init__(self, directory):
        self.dir = directory
        self.socket = str(directory / "redis.sock")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", self.socket,
             "--unixsocketperm", "777", "--save", "", "--appendonly", "no",
             "--dir", str(directory), "--logfile", str(directory / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ping(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(self.socket)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def client(self, **kw):
        import redis
        return redis.Redis(unix_socket_path=self.socket, **kw)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a unix socket (--port 0: no TCP), without
    persistence; shared by the session, so tests flush what they use."""
    d = short_tmpdir("nq-redis-")
    r = Redis(d)
    try:
        wait_for(lambda: r.proc.poll() is not None or r.ping(), timeout=5, what="redis-server")
        assert r.proc.poll() is None, "redis-server exited: %s" % (d / "redis.log").read_text()
        yield r
    finally:
        r.stop()
        shutil.rmtree(d, ignore_errors=True)


def base_config(redis, sock, state_dir, queues=None, drain_timeout="2s", extra=""):
    """A config text for Daemon: the default queues are email (2 processes),
    sms (1) and push (3), all noop. queues maps name -> processes, or
    name -> dict of keys."""
    queues = queues or {"email": 2, "sms": 1, "push": 3}
    lines = [
        "redis:",
        "  socket: %s" % redis,
        "control:",
        "  socket: %s" % sock,
        "state_dir: %s" % state_dir,
        "defaults:",
        "  drain_timeout: %s" % drain_timeout,
        "queues:",
    ]
    for name, q in queues.items():
        q = {"processes": q} if isinstance(q, int) else q
        q = {"handler": "noop", **q}
        lines.append("  %s:" % name)
        for k, v in q.items():
            lines.append("    %s: %s" % (k, v))
    return "\n".join(lines) + "\n" + extra


class Daemon:
    """One notifyqd in the foreground, its config and log in a temp dir."""

    def __init__(self, tmp_path, redis_socket, queues=None, **kw):
        self.tmp = tmp_path
        self.tmp.mkdir(exist_ok=True)
        self.expect_exit = 0
        self.sockdir = short_tmpdir()
        self.sock = str(self.sockdir / "control.sock")
        self.cfg = tmp_path / "notifyq.yaml"
        self.log_path = tmp_path / "notifyqd.log"
        self.state_dir = tmp_path / "state"
        self.redis_socket = redis_socket
        self.proc = None
        self.pids_seen = set()
        self.write_config(queues, **kw)

    # -- config and process ------------------------------------------------

    def config_text(self, queues=None, **kw):
        return base_config(self.redis_socket, self.sock, self.state_dir, queues, **kw)

    def write_config(self, queues=None, text=None, **kw):
        self.cfg.write_text(text if text is not None else self.config_text(queues, **kw))

    def start(self, *args, env=None):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(NOTIFYQD), "-f", "-c", str(self.cfg), *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=env if env is not None else self.env())
        self.pids_seen.add(self.proc.pid)
        return self

    @staticmethod
    def env():
        e = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            e.pop(k, None)
        return e

    @property
    def pid(self):
        return self.proc.pid

    def kill(self, sig):
        self.proc.send_signal(sig)

    def sighup(self):
        self.kill(signal.SIGHUP)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and returns the master's exit status; fails the test if
        it does not exit within timeout seconds."""
        if self.proc.poll() is None:
            self.track_children()
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("notifyqd did not exit within %ss of %s"
                                 % (timeout, signal.Signals(sig).name))

    def kill_all(self):
        """Last resort in teardown, after the assertions were made."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.pids_seen:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.sockdir, ignore_errors=True)

    # -- control -------------------------------------------------------------

    def ctl(self, *args, timeout=10, **kw):
        """Runs notifyqctl -s SOCK ARGS; returns the CompletedProcess."""
        return subprocess.run([str(NOTIFYQCTL), "-s", self.sock, *args],
                              capture_output=True, text=True, timeout=timeout, **kw)

    def request(self, *lines, timeout=5):
        """Sends raw request lines on one connection and returns the decoded
        reply lines (one per request)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.sock)
            replies = []
            f = s.makefile("rb")
            for line in lines:
                s.sendall(line if isinstance(line, bytes) else line.encode())
                replies.append(json.loads(f.readline()))
            return replies

    def try_status(self):
        """The status object, or None while the master does not answer.
        Polls speak the protocol directly: a notifyqctl per poll costs a
        process start (hundreds of ms under ASan); tests of notifyqctl
        itself call d.ctl()."""
        try:
            st = self.request(b'{"cmd":"status"}\n')[0]
        except (OSError, ValueError):
            return None
        if st.pop("ok", None) is not True:
            return None
        self.pids_seen.add(st["pid"])
        for q in st["queues"]:
            self.pids_seen.update(w["pid"] for w in q["workers"] if w.get("pid"))
        if (st.get("http") or {}).get("pid"):
            self.pids_seen.add(st["http"]["pid"])
        return st

    def status(self):
        st = self.try_status()
        assert st is not None, "no status: %s" % self.ctl("status").stderr
        return st

    def queue(self, name):
        for q in self.status()["queues"]:
            if q["name"] == name:
                return q
        raise AssertionError("no queue %r in status" % name)

    def workers(self, name):
        return self.queue(name)["workers"]

    def worker(self, name, slot):
        for w in self.workers(name):
            if w["slot"] == slot:
                return w
        raise AssertionError("no worker %s/%s in status" % (name, slot))

    def track_children(self):
        kids = children_of(self.pid)
        self.pids_seen.update(kids)
        return kids

    def ready(self):
        """The master answers, every queue runs all its workers, and they
        have connected to Redis."""
        if self.proc.poll() is not None:
            raise AssertionError("notifyqd exited with %s:\n%s"
                                 % (self.proc.returncode, self.log_text()[-3000:]))
        st = self.try_status()
        if not st or st["state"] != "running":
            return None
        for q in st["queues"]:
            p = q["processes"]
            if p["running"] != p["configured"] or not all(w.get("pid") for w in q["workers"]):
                return None
            if q["state"] == "connecting":
                return None
        self.track_children()
        return st

    def wait_ready(self, timeout=5):
        return wait_for(self.ready, timeout=timeout, what="notifyqd ready")

    # -- log -------------------------------------------------------------------

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_has(self, regex):
        return re.search(regex, self.log_text(), re.M)

    def wait_for_log(self, regex, timeout=5):
        return wait_for(lambda: self.log_has(regex), timeout=timeout, what="log /%s/" % regex)

    @contextlib.contextmanager
    def log_contains(self, regex, timeout=5):
        """Asserts the block made the daemon log a line matching regex
        (PgBouncer's log_contains)."""
        start = len(self.log_text())
        yield
        wait_for(lambda: re.search(regex, self.log_text()[start:], re.M), timeout=timeout,
                 what="log /%s/" % regex)

    def assert_log_clean(self):
        bad = [l for l in self.log_text().splitlines() if LOG_FORBIDDEN.search(l)]
        assert not bad, "daemon log has:\n" + "\n".join(bad[:20])


def finish(d):
    """Teardown shared by fixtures: the daemon stops cleanly, leaves nothing
    running, and logged no sanitizer report."""
    try:
        if d.proc is not None:
            rc = d.stop()
            assert rc == d.expect_exit, "notifyqd exited %s:\n%s" % (rc, d.log_text()[-3000:])
            # Workers get a drain and the master waits for them, but a child
            # reparented to init is what an orphan looks like: give the kernel
            # no slack here.
            left = [p for p in d.pids_seen if pid_alive(p)]
            assert not left, "processes left after notifyqd exited: %s" % left
        d.assert_log_clean()
    finally:
        d.kill_all()


@pytest.fixture
def daemon_factory(tmp_path, redis_server):
    """Makes (not starts) daemons; each is stopped and checked at teardown."""
    made = []

    def make(queues=None, **kw):
        d = Daemon(tmp_path if not made else tmp_path / str(len(made)), redis_server.socket,
                   queues, **kw)
        made.append(d)
        return d

    yield make
    errors = []
    for d in made:
        try:
            finish(d)
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture
def notifyqd(daemon_factory):
    """A running notifyqd with three noop queues: email 2, sms 1, push 3."""
    d = daemon_factory()
    d.start()
    d.wait_ready()
    return d
