# SPDX-License-Identifier: MIT
"""The master under an operator's worst day (issue 9): a hung worker, idle
and greedy control-socket clients; and what it logs about its directories."""
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess

from conftest import pid_alive, short_tmpdir, wait_for
from test_control import NOBODY, ctl_for_nobody  # noqa: F401 (a fixture)
from test_worker_jobs import Jobs, noop_queue


def lock_owner(jobs, job_id):
    """The pid in a job's lock token ("host:pid:incarnation:n"), or None."""
    token = jobs.r.get(jobs.base + job_id + ":lock")
    return int(token.split(":")[1]) if token else None


def test_hung_worker_is_unresponsive_then_replaced_and_its_job_taken_back(
        daemon_factory, redis_server):
    jobs = Jobs(redis_server)
    d = daemon_factory(noop_queue(jobs, processes=1, concurrency=2, unresponsive_after="2s",
                                  kill_after="5s"))
    d.start()
    d.wait_ready(timeout=10)
    [job] = jobs.add({"sleep_ms": 600000})
    old = d.worker(jobs.name, 0)["pid"]
    wait_for(lambda: lock_owner(jobs, job) == old, timeout=10, what="the job locked by the worker")
    os.kill(old, signal.SIGSTOP)
    try:
        wait_for(lambda: d.worker(jobs.name, 0)["state"] == "unresponsive", timeout=20,
                 what="the stopped worker shown unresponsive")
        st = d.ctl("status")
        row = [l.split() for l in st.stdout.splitlines() if l.startswith(jobs.name)]
        if d.worker(jobs.name, 0)["pid"] == old:  # not replaced in the meantime
            assert st.returncode == 1, st.stdout
            assert row and row[0][-1] == "degraded", st.stdout

        def replaced():
            w = d.worker(jobs.name, 0)
            return w if w.get("pid") not in (None, old) else None

        new = wait_for(replaced, timeout=30, what="a new worker in the hung one's slot")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(old, signal.SIGCONT)
    assert new["last_exit"] == {"signal": "SIGKILL"}
    assert not pid_alive(old)
    assert d.log_has(r"worker %s/0 \(pid %d\) has sent nothing for .*: unresponsive"
                     % (jobs.name, old))
    assert d.log_has(r"worker %s/0 \(pid %d\) has sent nothing for .*: killing it"
                     % (jobs.name, old))
    # The replacement took the hung worker's job back and runs it.
    wait_for(lambda: lock_owner(jobs, job) == new["pid"], timeout=20,
             what="the job locked by the replacement")
    wait_for(lambda: d.queue(jobs.name)["state"] == "ok", timeout=10)
    assert d.queue(jobs.name)["restarts"] == 1


def test_a_worker_that_resumes_in_time_is_kept(daemon_factory, redis_server):
    jobs = Jobs(redis_server)
    d = daemon_factory(noop_queue(jobs, processes=1, unresponsive_after="2s", kill_after="0"))
    d.start()
    d.wait_ready(timeout=10)
    pid = d.worker(jobs.name, 0)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: d.worker(jobs.name, 0)["state"] == "unresponsive", timeout=20)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: d.worker(jobs.name, 0)["state"] == "running", timeout=10)
    assert d.worker(jobs.name, 0)["pid"] == pid
    assert d.log_has(r"\(pid %d\) responds again after" % pid)


def hold_connections_as_nobody(path, n, ready, done):
    """Forks a child (as nobody) that opens n connections to path, writes
    how many it got on `ready`, then how many the daemon closed by itself
    once `done` is readable (or after 60 s)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            conns = []
            for _ in range(n):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                conns.append(s)
            os.write(ready, b"%d\n" % len(conns))
            closed = 0
            for s in conns:
                s.settimeout(60)
                try:
                    data = s.recv(4096)
                except OSError:
                    continue
                # EOF, or a refusal line followed by EOF.
                if data == b"" or (b'"refused":true' in data and s.recv(4096) == b""):
                    closed += 1
            os.write(done, b"%d\n" % closed)
        finally:
            os._exit(0)
    return pid


def test_idle_connections_cannot_lock_root_out(daemon_factory, ctl_for_nobody):
    d = daemon_factory()
    d.write_config(text=d.config_text().replace("control:\n", "control:\n  group: nogroup\n"))
    d.start()
    d.wait_ready()
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    child = hold_connections_as_nobody(d.sock, 64, ready_w, done_w)
    os.close(ready_w)
    os.close(done_w)
    try:
        with os.fdopen(ready_r) as f:
            assert int(f.readline()) == 64
        # Every slot but root's is taken (the 60 that were let in and the 4
        # turned away count alike to the client: connect() succeeds).
        r = d.ctl("status")
        assert r.returncode == 0, r.stderr
        nobody = subprocess.run([str(ctl_for_nobody), "-s", d.sock, "status"], capture_output=True,
                                text=True, timeout=10, user=NOBODY.pw_uid,
                                group=NOBODY.pw_gid, extra_groups=[])
        if nobody.returncode != 0:  # not already past the idle timeout
            assert nobody.returncode == 2, nobody.stderr
            assert "too many connections" in nobody.stderr
        # The daemon closes the idle ones by itself.
        with os.fdopen(done_r) as f:
            assert int(f.readline()) == 64
    finally:
        os.waitpid(child, 0)
    assert d.log_has(r"control socket: \d+ connections open, refusing pid \d+ uid %d"
                     % NOBODY.pw_uid)
    assert d.ctl("status").returncode == 0


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def test_unread_pipelined_replies_do_not_grow_the_master(notifyqd):
    n = 20000
    data = b'{"cmd":"status"}\n' * n
    one = len(json.dumps(notifyqd.status())) + 1
    before = rss_kib(notifyqd.pid)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(notifyqd.sock)
        s.setblocking(False)
        sent = 0
        # Send without reading until the master stops taking requests: it
        # stops reading once its unsent replies pass a small cap.
        while sent < len(data):
            try:
                sent += s.send(data[sent:sent + 65536])
            except BlockingIOError:
                if not select.select([], [s], [], 2)[1]:
                    break
        assert sent < len(data), "all %d requests were taken in unread" % n
        grown = rss_kib(notifyqd.pid) - before
        # Unbounded, the master would hold every reply: about n * one bytes.
        assert grown * 1024 < n * one / 4, (grown, n * one)
        # Every request is still answered once the replies are read.
        buf, replies = b"", 0
        while replies < n:
            r, w, _ = select.select([s], [s] if sent < len(data) else [], [], 10)
            assert r or w, "no progress after %d replies" % replies
            if w:
                with contextlib.suppress(BlockingIOError):
                    sent += s.send(data[sent:sent + 65536])
            if r:
                chunk = s.recv(1 << 20)
                assert chunk, "closed after %d replies" % replies
                buf += chunk
                lines = buf.split(b"\n")
                buf = lines.pop()
                for line in lines:
                    assert line.startswith(b'{"ok":true'), (replies, line[:80])
                replies += len(lines)
        assert replies == n and buf == b""


def test_created_run_directory_is_named_right(daemon_factory):
    d = daemon_factory()
    parent = short_tmpdir("nq-run-")
    try:
        d.sock = str(parent / "notifyq" / "control.sock")
        d.write_config()
        d.start()
        d.wait_ready()
        assert d.log_has(r"created %s$" % (parent / "notifyq"))
        assert not d.log_has(r"created %s$" % parent)
    finally:
        d.stop()
        shutil.rmtree(parent, ignore_errors=True)
