# SPDX-License-Identifier: MIT
"""Losing workers and Redis under load: fast recovery of a dead worker's jobs
(no waiting for lock expiry), poison jobs, and a Redis restart."""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import REDIS_SERVER, Redis, short_tmpdir, wait_for
from test_worker_jobs import DONE_TIMEOUT, Jobs, ats_total, noop_queue, wait_all_done


def live_workers(d, queue):
    st = d.try_status()
    if not st:
        return []
    return [w["pid"] for q in st["queues"] if q["name"] == queue for w in q["workers"]
            if w.get("pid") and w["state"] != "starting"]


def test_kill9_every_300ms_loses_no_job_and_takes_seconds(daemon_factory, redis_server):
    """10,000 jobs on 4 workers while a random worker is SIGKILLed every
    300 ms, with the default 30 s lock_duration and stalled_interval: every
    job completes, and the run takes seconds, not lock expiries, because the
    master has a sibling take the dead worker's jobs back at once. Kills are
    not what max_stalled and max_crashes guard against here, so those are
    raised: a job caught in two kills is not failed."""
    jobs = Jobs(redis_server)
    n = 10000
    ids = jobs.add({"sleep_ms": 10}, n=n)
    d = daemon_factory(noop_queue(jobs, processes=4, concurrency=10, min_uptime="100ms",
                                  max_stalled=1000, max_crashes=1000))
    t0 = time.monotonic()
    d.start()
    kills = 0
    while jobs.finished() < n and time.monotonic() - t0 < DONE_TIMEOUT:
        pids = live_workers(d, jobs.name)
        if pids:
            d.track_children()
            os.kill(random.choice(pids), signal.SIGKILL)
            kills += 1
        time.sleep(0.3)
    took = time.monotonic() - t0
    wait_all_done(jobs, n, timeout=5)
    dups = ats_total(jobs, ids) - n
    print("\n10,000 jobs, kill -9 every 300 ms: %.1f s, %d kills, %d duplicates (fetches "
          "beyond the first)" % (took, kills, dups))
    assert jobs.ids("completed") == set(ids)
    assert jobs.count("failed") == 0 and jobs.count("active") == 0 and jobs.count("wait") == 0
    assert kills >= 3
    assert took < 30, "%.1f s: jobs waited for lock expiry" % took
    assert len(re.findall(r"took back \d+ jobs? of", d.log_text())) >= 1


def test_dead_workers_jobs_are_back_in_wait_within_a_second(daemon_factory, redis_server):
    jobs = Jobs(redis_server)
    d = daemon_factory(noop_queue(jobs, processes=2, concurrency=5))
    d.start()
    d.wait_ready(timeout=10)
    ids = jobs.add({"sleep_ms": 600000}, n=10)
    wait_for(lambda: jobs.count("active") == 10, timeout=10, what="10 active")
    victim = d.worker(jobs.name, 0)["pid"]
    t0 = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    # Its 5 jobs leave active: the sibling took them (they are locked by it
    # again, or back in wait while it is full).
    wait_for(lambda: not [i for i in ids if (jobs.r.get(jobs.base + i + ":lock") or "")
                          .split(":")[1:2] == [str(victim)]],
             timeout=5, interval=0.01, what="the dead worker's locks gone")
    took = time.monotonic() - t0
    print("\nrecovered in %.3f s" % took)
    assert took < 1.0
    back = [i for i in ids if jobs.job(i).get("stc") == "1"]
    assert len(back) == 5
    for i in back:
        assert jobs.job(i).get("nqcrash") == "1"
        names = [e["event"] for e in jobs.events(i)]
        assert names[names.index("stalled") - 1] == "waiting"


def test_poison_job_fails_after_max_crashes(daemon_factory, redis_server):
    """A job that crashes every worker running it ends failed after
    max_crashes (3) deaths, and takes no other job with it: a job one crash
    away from max_crashes runs alone. With the default max_stalled (1): a
    death by signal is counted as a stall, but only max_crashes fails it."""
    jobs = Jobs(redis_server)
    d = daemon_factory(noop_queue(jobs, processes=2, concurrency=5, min_uptime="100ms"))
    env = d.env()
    env["NOTIFYQ_TEST_CRASH"] = "1"
    d.start(env=env)
    d.wait_ready(timeout=10)
    [poison] = jobs.add({"crash": "segv"}, {"attempts": 5})
    good = jobs.add({"sleep_ms": 5}, n=200)
    wait_all_done(jobs, 201)
    h = jobs.job(poison)
    assert jobs.ids("failed") == {poison}
    assert h["failedReason"] == "crashed 3 workers (SIGSEGV)"
    assert h["nqcrash"] == "3"
    assert jobs.ids("completed") == set(good)
    # Its neighbours ran alone before a third crash could count them.
    assert max(int(jobs.job(i).get("nqcrash", 0)) for i in good) < 3
    assert d.queue(jobs.name)["restarts"] == 3
    assert [e["event"] for e in jobs.events(poison)][-1] == "failed"


class AofRedis(Redis):
    """conftest's Redis, with AOF (fsync always) in its directory."""

    def answers(self):
        """Up, though perhaps still loading (PING gets -LOADING then)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(self.socket)
                s.sendall(b"PING\r\n")
                return s.recv(64)[:1] in (b"+", b"-")
        except OSError:
            return False

    def __init__(self, directory, extra=()):
        self.dir = directory
        self.socket = str(directory / "redis.sock")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", self.socket,
             "--unixsocketperm", "777", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(directory),
             "--logfile", str(directory / "redis.log"), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def aof_redis_state(extra=(), loading_ok=False):
    """A private redis-server with AOF, restartable in place; a restart
    returns once it loaded its data, or with loading_ok once it answers."""
    d = short_tmpdir("nq-aof-")

    def run():
        r = AofRedis(d, extra)
        up = r.answers if loading_ok else r.ping
        wait_for(lambda: r.proc.poll() is not None or up(), timeout=5, what="redis-server")
        assert r.proc.poll() is None, (d / "redis.log").read_text()
        return r

    state = {"server": run()}

    def restart():
        state["server"].stop()
        state["server"] = run()

    state["restart"] = restart
    yield state
    state["server"].stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def aof_redis():
    yield from aof_redis_state()


@pytest.fixture
def slow_loading_redis():
    """Loading each key of the AOF's RDB base takes 200 us (a debug config):
    10000 keys keep a restarted server answering -LOADING for ~2 s (it
    serves clients between every KiB it loads, not every 2 MiB)."""
    yield from aof_redis_state(("--key-load-delay", "200",
                                "--loading-process-events-interval-bytes", "1024"),
                               loading_ok=True)


def test_redis_restart_mid_run_workers_reconnect_and_finish(daemon_factory, aof_redis,
                                                           redis_server):
    srv = aof_redis["server"]
    jobs = Jobs(redis_server, socket_path=srv.socket)
    n = 3000
    ids = jobs.add({"sleep_ms": 20}, n=n)
    d = daemon_factory()
    d.redis_socket = srv.socket
    d.write_config(noop_queue(jobs, processes=2, concurrency=20))
    d.start()
    wait_for(lambda: jobs.count("completed") > 300, timeout=20, what="some progress")
    aof_redis["restart"]()
    restarted = jobs.count("completed")
    assert restarted < n, "finished before the restart: nothing tested"
    wait_all_done(jobs, n)
    assert jobs.ids("completed") == set(ids)
    assert jobs.count("active") == 0 and jobs.count("failed") == 0
    assert d.log_has(r"connection lost")
    print("\nredis restarted at %d/%d completed; %d duplicates"
          % (restarted, n, ats_total(jobs, ids) - n))


def test_redis_loading_its_aof_is_waited_for_not_a_script_error(daemon_factory,
                                                                slow_loading_redis, redis_server):
    srv = slow_loading_redis["server"]
    admin = srv.client()
    p = admin.pipeline(transaction=False)
    for i in range(10000):
        p.set("filler:%d" % i, "x")
    p.execute()
    admin.bgrewriteaof()  # the filler goes to the RDB base, whose keys load slowly
    wait_for(lambda: admin.info("persistence")["aof_rewrite_in_progress"] == 0 and
             admin.info("persistence")["aof_rewrite_scheduled"] == 0, timeout=10,
             what="AOF rewrite")
    jobs = Jobs(redis_server, socket_path=srv.socket)
    n = 1500
    ids = jobs.add({"sleep_ms": 20}, n=n)
    d = daemon_factory()
    d.redis_socket = srv.socket
    d.write_config(noop_queue(jobs, processes=2, concurrency=10))
    d.start()
    wait_for(lambda: jobs.count("completed") > 100, timeout=20, what="some progress")
    slow_loading_redis["restart"]()
    import redis

    def loaded():
        try:
            return jobs.count("completed") >= 0
        except redis.exceptions.BusyLoadingError:
            return False

    d.wait_for_log(r"command connection: server not ready: LOADING", timeout=10)
    wait_for(loaded, timeout=20, what="the AOF loaded")
    assert jobs.count("completed") < n, "finished before the restart: nothing tested"
    wait_all_done(jobs, n)
    assert jobs.ids("completed") == set(ids)
    assert jobs.count("active") == 0 and jobs.count("failed") == 0
    assert not d.log_has(r"script \w+: LOADING"), d.log_text()


def test_connections_killed_mid_run_lose_nothing(daemon_factory, redis_server):
    """Redis drops the workers' connections every 100 ms (CLIENT KILL), so
    replies get lost: finishes are sent again, and jobs a lost fetch locked
    for a worker are taken back by it, not left to lock expiry (30 s)."""
    jobs = Jobs(redis_server)
    n = 3000
    ids = jobs.add({"sleep_ms": 5}, n=n)
    d = daemon_factory(noop_queue(jobs, processes=2, concurrency=20))
    t0 = time.monotonic()
    d.start()
    admin = redis_server.client()
    kills = 0
    while jobs.finished() < n and time.monotonic() - t0 < DONE_TIMEOUT:
        kills += admin.client_kill_filter(_type="normal", skipme=True)
        time.sleep(0.1)
    took = time.monotonic() - t0
    wait_all_done(jobs, n, timeout=5)
    print("\n%d jobs, connections killed every 100 ms: %.1f s, %d connections killed, "
          "%d fetches beyond the first" % (n, took, kills, ats_total(jobs, ids) - n))
    assert jobs.ids("completed") == set(ids)
    assert jobs.count("failed") == 0 and jobs.count("active") == 0
    assert kills >= 10
    # Jobs a lost fetch locked never ran: released, not counted as stalls.
    p = jobs.r.pipeline(transaction=False)
    for i in ids:
        p.hget(jobs.base + i, "stc")
    assert not any(p.execute())
    assert took < 25, "%.1f s: jobs waited for lock expiry" % took
