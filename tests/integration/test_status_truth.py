# SPDX-License-Identifier: MIT
"""notifyqctl status tells the truth (issues 8 and 9): Redis down at start is
not healthy, a queue where every job fails or a backlog grows past the
config's health thresholds is unhealthy, and the exit status says so."""
import shutil

from conftest import Redis, short_tmpdir, wait_for
from test_worker_jobs import Jobs, noop_queue, wait_all_done

HEALTH = "health:\n  max_waiting: %d\n  max_failure_rate: %s\n"


def row(d, name):
    """The status table's row of queue name, as {column: cell}."""
    r = d.ctl("status")
    lines = [l.split() for l in r.stdout.splitlines()]
    header = next(l for l in lines if l[:1] == ["QUEUE"])
    return r.returncode, dict(zip(header, next(l for l in lines if l[:1] == [name])))


def test_redis_down_at_start_is_not_connected_yet(daemon_factory, redis_server):
    down = short_tmpdir("nq-down-")
    jobs = Jobs(redis_server)
    d = daemon_factory()
    d.redis_socket = str(down / "redis.sock")
    d.write_config(noop_queue(jobs, processes=2))
    d.start()
    later = None
    try:
        def connecting():
            st = d.try_status()
            q = st and st["queues"][0]
            return q if q and q["state"] == "connecting" and all(
                w.get("redis") == "connecting" for w in q["workers"]) else None

        q = wait_for(connecting, timeout=10, what="the queue connecting")
        assert all(w["note"] == "not connected to Redis yet" for w in q["workers"])
        rc, r = row(d, jobs.name)
        assert rc == 1 and r["STATE"] == "connecting"
        v = d.ctl("status", "-v")
        assert v.returncode == 1
        assert [l.split()[5] for l in v.stdout.splitlines()
                if l.startswith(jobs.name + "/")] == ["connecting", "connecting"]
        # Redis comes up: the same workers connect and the queue is ok.
        pids = sorted(w["pid"] for w in q["workers"])
        later = Redis(down)
        wait_for(lambda: d.queue(jobs.name)["state"] == "ok", timeout=20,
                 what="the queue ok once Redis is up")
        assert sorted(w["pid"] for w in d.workers(jobs.name)) == pids
        assert {w["redis"] for w in d.workers(jobs.name)} == {"connected"}
        assert d.ctl("status").returncode == 0
    finally:
        d.stop()
        if later:
            later.stop()
        shutil.rmtree(down, ignore_errors=True)


def test_redis_lost_later_is_disconnected(daemon_factory, redis_server):
    own = short_tmpdir("nq-lost-")
    srv = Redis(own)
    try:
        wait_for(srv.ping, timeout=5, what="redis-server")
        jobs = Jobs(redis_server, socket_path=srv.socket)
        d = daemon_factory()
        d.redis_socket = srv.socket
        d.write_config(noop_queue(jobs))
        d.start()
        d.wait_ready(timeout=10)
        assert d.queue(jobs.name)["state"] == "ok"
        srv.stop()
        wait_for(lambda: d.queue(jobs.name)["state"] == "disconnected", timeout=20)
        assert d.workers(jobs.name)[0]["redis"] == "disconnected"
        assert d.ctl("status").returncode == 1
        d.stop()
    finally:
        srv.stop()
        shutil.rmtree(own, ignore_errors=True)


def test_every_job_failing_is_unhealthy(daemon_factory, redis_server):
    jobs = Jobs(redis_server)
    d = daemon_factory()
    d.write_config(noop_queue(jobs), extra=HEALTH % (0, "0.5"))
    d.start()
    d.wait_ready(timeout=10)
    assert row(d, jobs.name)[0] == 0
    jobs.add({"fail": "permanent"}, n=3)
    wait_all_done(jobs, 3)
    wait_for(lambda: d.queue(jobs.name)["counters"]["failed"] == 3, timeout=10)
    q = d.queue(jobs.name)
    assert q["state"] == "unhealthy"
    assert q["health"]["failing"] is True and q["health"]["failure_rate"] == 1.0
    assert q["health"]["attempts_5m"] == 3
    rc, r = row(d, jobs.name)
    assert rc == 1
    assert (r["FAIL%"], r["ERR/MIN"], r["OK/MIN"], r["STATE"]) == ("100%", "3", "0", "unhealthy")
    # Successes bring the rate under the bound.
    jobs.add({}, n=4)
    wait_all_done(jobs, 7)
    wait_for(lambda: d.queue(jobs.name)["state"] == "ok", timeout=10)
    assert row(d, jobs.name)[0] == 0


def test_a_backlog_over_max_waiting_is_unhealthy(daemon_factory, redis_server):
    jobs = Jobs(redis_server)
    d = daemon_factory()
    d.write_config(noop_queue(jobs), extra=HEALTH % (3, "1"))
    d.start()
    d.wait_ready(timeout=10)
    jobs.pause(True)  # paused in Redis: jobs pile up
    jobs.add({}, n=3)
    wait_for(lambda: (d.queue(jobs.name)["jobs"] or {}).get("waiting") == 3, timeout=10)
    assert d.queue(jobs.name)["state"] == "ok"
    jobs.add({})
    wait_for(lambda: d.queue(jobs.name)["state"] == "unhealthy", timeout=10)
    assert d.queue(jobs.name)["health"]["backlog"] is True
    rc, r = row(d, jobs.name)
    assert rc == 1 and r["WAITING"] == "4"
    jobs.pause(False)
    wait_all_done(jobs, 4)
    wait_for(lambda: d.queue(jobs.name)["state"] == "ok", timeout=10)


def test_backlog_of_a_queue_without_a_handler_yet_shows(daemon_factory, redis_server):
    jobs = Jobs(redis_server)
    d = daemon_factory()
    d.write_config({jobs.name: {"handler": "export", "bullmq_queue": jobs.name,
                                "processes": 2}}, extra=HEALTH % (5, "0.5"))
    d.start()
    d.wait_ready(timeout=10)
    jobs.add({}, n=3)
    wait_for(lambda: (d.queue(jobs.name)["jobs"] or {}).get("waiting") == 3, timeout=10,
             what="3 waiting counted")
    q = d.queue(jobs.name)
    assert q["state"] == "idle"
    assert [w["redis"] for w in q["workers"]] == ["connected", None]
    rc, r = row(d, jobs.name)
    assert rc == 0 and r["WAITING"] == "3" and r["STATE"] == "idle"
    # Nothing takes them: past max_waiting the queue is unhealthy.
    jobs.add({}, n=3)
    wait_for(lambda: d.queue(jobs.name)["state"] == "unhealthy", timeout=10)
    rc, r = row(d, jobs.name)
    assert rc == 1 and r["WAITING"] == "6"
    assert jobs.count("wait") == 6 and jobs.count("active") == 0
