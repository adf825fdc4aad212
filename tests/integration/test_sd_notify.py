# SPDX-License-Identifier: MIT
"""systemd notifications without systemd: the test is the service manager,
listening on its own NOTIFY_SOCKET."""
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import NOTIFYQD, wait_for

UCRED = struct.Struct("3i")


class NotifySocket:
    """Collects (sender pid, message) from a datagram socket; SO_PASSCRED
    gives the kernel's word on who sent each one."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self.collect, daemon=True)
        self.thread.start()

    def collect(self):
        while self.running:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = UCRED.unpack(payload[:UCRED.size])[0]
            with self.lock:
                for line in data.decode().splitlines():
                    self.messages.append((pid, line, time.monotonic()))

    def lines(self):
        with self.lock:
            return [m[1] for m in self.messages]

    def senders(self):
        with self.lock:
            return {m[0] for m in self.messages}

    def index(self, line, start=0):
        lines = self.lines()
        for i in range(start, len(lines)):
            if lines[i] == line or (line.endswith("=") and lines[i].startswith(line)):
                return i
        return None

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


@pytest.fixture
def notify(daemon_factory):
    d = daemon_factory()
    n = NotifySocket(str(d.sockdir / "notify.sock"))
    yield d, n
    n.close()


def start_notified(d, n, watchdog_usec, watchdog_pid=None):
    env = d.env()
    env["NOTIFY_SOCKET"] = n.path
    env["WATCHDOG_USEC"] = str(watchdog_usec)
    if watchdog_pid != "master":
        if watchdog_pid is not None:
            env["WATCHDOG_PID"] = str(watchdog_pid)
        return d.start(env=env)
    # sd_watchdog_enabled() honours WATCHDOG_PID only when it names the
    # caller, and the master's pid exists only after the fork: a shell sets
    # it to its own pid, then execs notifyqd in its place.
    with open(d.log_path, "ab") as log:
        d.proc = subprocess.Popen(
            ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$0" -f -c "$1"', str(NOTIFYQD), str(d.cfg)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    d.pids_seen.add(d.proc.pid)
    return d


@pytest.mark.parametrize("watchdog_pid", [None, "master"])
def test_ready_status_watchdog_reload_stopping(notify, watchdog_pid):
    d, n = notify
    start_notified(d, n, 300000, watchdog_pid)
    d.wait_ready()
    wait_for(lambda: n.index("READY=1") is not None, timeout=5, what="READY=1")
    ready = n.index("READY=1")
    assert n.index("STATUS=") is not None
    # The watchdog interval is 300 ms: the master pings at least every 150 ms.
    wait_for(lambda: n.lines().count("WATCHDOG=1") >= 4, timeout=2, what="4 WATCHDOG=1")

    d.sighup()
    reloading = wait_for(lambda: n.index("RELOADING=1", ready), timeout=5, what="RELOADING=1")
    wait_for(lambda: n.index("READY=1", reloading + 1), timeout=8, what="READY=1 after reload")
    assert any(l.startswith("MONOTONIC_USEC=") for l in n.lines()[reloading:])

    assert d.stop() == 0
    wait_for(lambda: n.index("STOPPING=1") is not None, timeout=2, what="STOPPING=1")
    # Only the master speaks to systemd (NotifyAccess=main).
    assert n.senders() == {d.pid}, n.senders()


def test_no_watchdog_when_its_pid_is_another_process(notify):
    d, n = notify
    start_notified(d, n, 200000, watchdog_pid=1)
    d.wait_ready()
    wait_for(lambda: n.index("READY=1") is not None, timeout=5, what="READY=1")
    # Absence needs a window: 0.5 s holds five 100 ms pings had they been due.
    time.sleep(0.5)
    assert "WATCHDOG=1" not in n.lines()
