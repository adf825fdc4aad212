# SPDX-License-Identifier: MIT
"""Signals under load: reloads good and broken, 20 in a row, a fast stop,
and the master killed with SIGKILL then started again on its stale socket."""
import os
import signal
import time

from conftest import pid_alive, wait_for
from faults import assert_none_lost
from test_worker_jobs import Jobs, noop_queue, wait_all_done


def test_twenty_reloads_and_a_broken_one_under_load(daemon_factory, redis_server):
    jobs = Jobs(redis_server)
    n = 3000
    ids = jobs.add({"sleep_ms": 5}, n=n)
    d = daemon_factory(noop_queue(jobs, processes=2, concurrency=10))
    d.start()
    d.wait_ready()
    good = d.cfg.read_text()
    for _ in range(20):
        d.sighup()
        time.sleep(0.1)
    d.cfg.write_text(good + "  oops: [\n")
    d.sighup()
    d.wait_for_log(r"reload", timeout=5)
    time.sleep(0.3)
    d.cfg.write_text(good)
    assert d.proc.poll() is None, d.log_text()[-2000:]
    wait_all_done(jobs, n)
    assert_none_lost(jobs, ids)
    assert jobs.count("failed") == 0
    assert d.stop() == 0


def test_sigterm_then_sigquit_under_load_return_jobs_and_lose_none(daemon_factory,
                                                                  redis_server):
    """A drain, then a fast stop, each mid-run: what was in flight goes back
    to wait (no attempt spent), and a third start finishes everything."""
    jobs = Jobs(redis_server)
    n = 2000
    ids = jobs.add({"sleep_ms": 20}, n=n)
    for sig in (signal.SIGTERM, signal.SIGQUIT):
        d = daemon_factory(noop_queue(jobs, processes=2, concurrency=20))
        before = jobs.count("completed")
        d.start()
        d.wait_ready()
        wait_for(lambda: jobs.count("completed") > before + 100, timeout=20,
                 what="some progress")
        assert d.stop(sig) == 0
        assert jobs.count("active") == 0, "%s left jobs active" % signal.Signals(sig).name
    assert jobs.finished() < n, "finished before the stops: nothing tested"
    d = daemon_factory(noop_queue(jobs, processes=2, concurrency=20))
    d.start()
    wait_all_done(jobs, n)
    assert_none_lost(jobs, ids)
    assert jobs.count("failed") == 0


def test_master_sigkill_then_restart_on_the_stale_socket(daemon_factory, redis_server):
    """kill -9 of the master: its workers notice and leave, the control
    socket file stays behind, and a new master starts over it and finishes
    the run (the dead workers' jobs are taken back by the stalled check)."""
    jobs = Jobs(redis_server)
    n = 1000
    ids = jobs.add({"sleep_ms": 5}, n=n)
    d = daemon_factory(noop_queue(jobs, processes=2, concurrency=10,
                                  stalled_interval="1s", lock_duration="2s"))
    d.start()
    wait_for(lambda: jobs.count("completed") > 100, timeout=20, what="some progress")
    workers = d.track_children()
    d.kill(signal.SIGKILL)
    d.proc.wait()
    wait_for(lambda: not any(pid_alive(p) for p in workers), timeout=10,
             what="the orphaned workers to exit")
    assert os.path.exists(d.sock), "no stale socket left: nothing tested"
    d.expect_exit = 0
    d.start()
    d.wait_ready(timeout=10)
    wait_all_done(jobs, n)
    assert_none_lost(jobs, ids)
    assert jobs.count("failed") == 0
