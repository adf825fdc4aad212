# SPDX-License-Identifier: MIT
"""Faults between a worker and Redis that used to be misreported (issue 9):
a finish whose reply was lost after Redis applied it, and a job whose key
someone overwrote with a string."""
import os
import socket
import threading
import time

from conftest import short_tmpdir, wait_for
from test_worker_jobs import DONE_TIMEOUT, Jobs, noop_queue, wait_all_done


def parse_command(buf):
    """One RESP multibulk command at the start of buf: (args, length), or
    None while it is incomplete."""
    if not buf:
        return None
    if not buf.startswith(b"*"):
        raise AssertionError("proxy: not a multibulk command: %r" % buf[:40])
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    n, pos, args = int(buf[1:end]), end + 2, []
    for _ in range(n):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(buf[pos + 1:end])
        start = end + 2
        if len(buf) < start + size + 2:
            return None
        args.append(buf[start:start + size])
        pos = start + size + 2
    return args, pos


def is_work_with_finishes(args):
    """Our work script's call (EVALSHA sha 1 meta base ARGV2..ARGV10 ...)
    carrying K >= 1 finishes: 14 + 11 K arguments, K its ARGV[10]."""
    if len(args) < 25 or args[0].upper() != b"EVALSHA" or not args[13].isdigit():
        return False
    k = int(args[13])
    return k >= 1 and len(args) == 14 + 11 * k


class DropReplyProxy:
    """A unix-socket proxy to Redis. The first `times` work calls carrying
    finishes reach Redis and run, but their reply never comes back: the
    connection is closed after Redis had time to run the call."""

    def __init__(self, target, times):
        self.dir = short_tmpdir("nq-proxy-")
        self.path = str(self.dir / "proxy.sock")
        self.target = target
        self.left = times
        self.dropped = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _take(self):
        with self.lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True

    def _serve(self, client):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.connect(self.target)
        state = {"drop": False}

        def replies():
            while True:
                try:
                    data = server.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                if not state["drop"]:
                    try:
                        client.sendall(data)
                    except OSError:
                        break

        threading.Thread(target=replies, daemon=True).start()
        buf = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buf += data
                while True:
                    cmd = parse_command(buf)
                    if cmd is None:
                        break
                    args, used = cmd
                    raw, buf = buf[:used], buf[used:]
                    if is_work_with_finishes(args) and self._take():
                        state["drop"] = True  # before Redis can answer
                        server.sendall(raw)
                        time.sleep(0.3)  # Redis runs it meanwhile
                        with self.lock:
                            self.dropped += 1
                        return
                    server.sendall(raw)
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def stop(self):
        self.stopping = True
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def counters(d, name):
    return d.queue(name)["counters"]


def test_finishes_applied_before_a_lost_reply_are_counted_not_refused(daemon_factory,
                                                                        redis_server):
    """Redis runs three work calls whose replies are lost: their finishes go
    again, are found applied, and are counted as completed, not logged as
    refused with an expired lock."""
    proxy = DropReplyProxy(redis_server.socket, times=3)
    try:
        jobs = Jobs(redis_server)
        n = 60
        ids = jobs.add({"sleep_ms": 20}, n=n)
        d = daemon_factory(noop_queue(jobs, processes=1, concurrency=4))
        d.redis_socket = proxy.path
        d.write_config(noop_queue(jobs, processes=1, concurrency=4))
        d.start()
        wait_all_done(jobs, n)
        assert proxy.dropped == 3
        assert jobs.ids("completed") == set(ids)
        wait_for(lambda: counters(d, jobs.name)["completed"] >= n, timeout=10,
                 what="counters.completed == %d" % n)
        c = counters(d, jobs.name)
        assert (c["completed"], c["failed"]) == (n, 0)
        assert not d.log_has(r"finish refused"), d.log_text()[-3000:]
        assert d.log_has(r"applied by a call whose reply was lost")
    finally:
        proxy.stop()


def test_a_job_key_overwritten_with_a_string_fails_alone(daemon_factory, redis_server):
    """A string where a job's hash should be: that job fails with a reason
    (its value kept aside), its neighbours complete, the worker counts it."""
    jobs = Jobs(redis_server)
    jobs.pause()
    ids = jobs.add(n=5)
    bad = ids[2]
    jobs.r.delete(jobs.base + bad)
    jobs.r.set(jobs.base + bad, "not a job")
    d = daemon_factory(noop_queue(jobs, processes=1, concurrency=5))
    d.start()
    d.wait_ready(timeout=10)
    jobs.pause(False)
    wait_all_done(jobs, 5)
    assert jobs.ids("completed") == set(ids) - {bad}
    assert jobs.ids("failed") == {bad}
    reason = jobs.job(bad)["failedReason"]
    assert reason == "job key held a string, not a job hash; kept as %s%s:foreign" % (
        jobs.base, bad)
    assert jobs.r.get(jobs.base + bad + ":foreign") == "not a job"
    assert jobs.count("active") == 0
    wait_for(lambda: counters(d, jobs.name)["completed"] == 4, timeout=DONE_TIMEOUT,
             what="4 completed")
    assert counters(d, jobs.name)["failed"] == 1
    d.wait_for_log(r"job %s: failed without being run: job key held a string" % bad)
