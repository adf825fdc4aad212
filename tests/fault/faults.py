# SPDX-License-Identifier: MIT
"""What every fault scenario shares: a unix-socket proxy to Redis that can
delay, hold (black-hole) or cut what passes, and the accounting every test
ends with (every job completed or failed with a reason, none lost)."""
import os
import select
import socket
import threading
import time

from conftest import short_tmpdir


class RedisProxy:
    """Listens on a unix socket and relays each connection to Redis's.
    delay: seconds added to every chunk in each direction. hold(): from now
    on nothing passes in either direction and connections stay open, as
    when a network drops packets; release() lets new connections through
    again (the held ones stay dead, as TCP connections would)."""

    def __init__(self, upstream, delay=0.0):
        self.dir = short_tmpdir("nq-proxy-")
        self.socket = str(self.dir / "proxy.sock")
        self.upstream = upstream
        self.delay = delay
        self.holding = False
        self.generation = 0
        self.connections = 0
        self.stop = threading.Event()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.socket)
        os.chmod(self.socket, 0o777)
        self.srv.listen(128)
        self.srv.settimeout(0.1)
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self):
        self.holding = True
        self.generation += 1

    def release(self):
        self.holding = False

    def close(self):
        self.stop.set()
        self.srv.close()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._relay, args=(c, self.generation), daemon=True).start()

    def _relay(self, c, generation):
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            u.connect(self.upstream)
        except OSError:
            c.close()
            return
        ends = {c: u, u: c}
        try:
            while not self.stop.is_set():
                if self.holding or generation != self.generation:
                    time.sleep(0.05)  # held: read nothing, send nothing, ever
                    continue
                ready, _, _ = select.select(list(ends), [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if self.delay:
                        time.sleep(self.delay)
                    ends[s].sendall(data)
        except OSError:
            pass
        finally:
            c.close()
            u.close()


def assert_none_lost(jobs, ids):
    """Every job ended completed or failed (with a reason), none is left
    active or waiting, and no job was made up."""
    completed, failed = jobs.ids("completed"), jobs.ids("failed")
    assert completed | failed == set(ids), (
        "%d jobs neither completed nor failed" % len(set(ids) - completed - failed))
    assert not (completed & failed)
    assert jobs.count("active") == 0 and jobs.count("wait") == 0
    for i in failed:
        assert jobs.job(i).get("failedReason"), "job %s failed without a reason" % i
