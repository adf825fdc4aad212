# SPDX-License-Identifier: MIT
"""Redis misbehaving under load: killed (its AOF kept), paused, slow, and
black-holed. Each run counts every job through Redis: all end completed or
failed with a reason, none is lost."""
import os
import signal
import time

import pytest

from conftest import wait_for
from faults import RedisProxy, assert_none_lost
from test_worker_jobs import Jobs, ats_total, noop_queue, wait_all_done
from test_worker_recovery import aof_redis_state


@pytest.fixture
def aof_redis():
    yield from aof_redis_state()


def run_daemon(daemon_factory, jobs, socket_path, **keys):
    d = daemon_factory()
    d.redis_socket = socket_path
    d.write_config(noop_queue(jobs, **keys))
    d.start()
    return d


def test_redis_sigkill_with_aof_under_load(daemon_factory, aof_redis, redis_server):
    """SIGKILL, not a shutdown: with appendfsync always, what Redis
    acknowledged survives, and the workers reconnect and finish."""
    srv = aof_redis["server"]
    jobs = Jobs(redis_server, socket_path=srv.socket)
    n = 3000
    ids = jobs.add({"sleep_ms": 5}, n=n)
    run_daemon(daemon_factory, jobs, srv.socket, processes=2, concurrency=20)
    wait_for(lambda: jobs.count("completed") > 300, timeout=20, what="some progress")
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    aof_redis["restart"]()
    jobs = Jobs(redis_server, name=jobs.name, socket_path=aof_redis["server"].socket)
    assert jobs.finished() < n, "finished before the kill: nothing tested"
    wait_all_done(jobs, n)
    assert_none_lost(jobs, ids)
    assert jobs.count("failed") == 0
    print("\nredis SIGKILLed mid-run: %d fetches beyond the first" % (ats_total(jobs, ids) - n))


def test_redis_paused_then_resumed(daemon_factory, redis_server):
    """SIGSTOP for 3 s (a stuck host, a long fork): nothing answers, nothing
    is refused; after SIGCONT the run finishes."""
    jobs = Jobs(redis_server)
    n = 2000
    ids = jobs.add({"sleep_ms": 5}, n=n)
    proxy = RedisProxy(redis_server.socket)
    try:
        d = run_daemon(daemon_factory, jobs, proxy.socket, processes=2, concurrency=20)
        wait_for(lambda: jobs.count("completed") > 200, timeout=20, what="some progress")
        proxy.hold()  # the proxy, not the shared server: other tests use it
        time.sleep(3)
        proxy.release()
        held_at = jobs.finished()
        assert held_at < n, "finished before the pause: nothing tested"
        # A held connection never answers again: the worker must notice
        # (its own deadlines) and connect anew.
        wait_all_done(jobs, n)
        assert_none_lost(jobs, ids)
        assert jobs.count("failed") == 0
        assert proxy.connections > 2, "the workers never reconnected"
        assert d.proc.poll() is None
    finally:
        proxy.close()


def test_redis_server_stopped_with_sigstop(daemon_factory, aof_redis, redis_server):
    """The server process itself stopped (SIGSTOP) for 3 s, then continued:
    the connections survive and the run finishes."""
    srv = aof_redis["server"]
    jobs = Jobs(redis_server, socket_path=srv.socket)
    n = 2000
    ids = jobs.add({"sleep_ms": 5}, n=n)
    run_daemon(daemon_factory, jobs, srv.socket, processes=2, concurrency=20)
    wait_for(lambda: jobs.count("completed") > 200, timeout=20, what="some progress")
    os.kill(srv.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(3)
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)
    assert jobs.finished() < n, "finished before the pause: nothing tested"
    wait_all_done(jobs, n)
    assert_none_lost(jobs, ids)
    assert jobs.count("failed") == 0


def test_fifty_ms_each_way(daemon_factory, redis_server):
    """Every chunk waits 50 ms each way (a far region): slow, not wrong."""
    jobs = Jobs(redis_server)
    n = 500
    ids = jobs.add({"sleep_ms": 1}, n=n)
    proxy = RedisProxy(redis_server.socket, delay=0.05)
    try:
        run_daemon(daemon_factory, jobs, proxy.socket, processes=1, concurrency=50)
        wait_all_done(jobs, n)
        assert_none_lost(jobs, ids)
        assert jobs.count("failed") == 0
    finally:
        proxy.close()
