# SPDX-License-Identifier: MIT
"""The worker loop end to end: jobs added in BullMQ's layout (by our add
script, which writes what Node's Queue.add writes) are fetched, run by the
noop handler and finished by real notifyqd workers against a real Redis.
Outcomes, retries with backoff, permanent and unrun failures, concurrency,
pause, drain and stop, recycling.

The helpers at the top (Jobs, noop_queue, wait_all_done) are shared with
test_worker_recovery.py."""
import json
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import REPO, wait_for
from queue_helpers import script_source

# Every job a test adds must be finished within this; sanitizer builds are
# several times slower, so deadlines are generous and runs are short.
DONE_TIMEOUT = 60


class Jobs:
    """One BullMQ queue in the session's Redis: adds jobs as Queue.add does
    and reads their state. Queue names are unique per test, so tests share
    the server without flushing it."""

    def __init__(self, redis_server, name=None, prefix="bull", socket_path=None):
        import redis
        self.name = name or "wq-" + uuid.uuid4().hex[:8]
        self.base = "%s:%s:" % (prefix, self.name)
        self.r = redis.Redis(unix_socket_path=socket_path or redis_server.socket,
                             decode_responses=True)
        self._add = self.r.register_script(script_source("add"))

    def add(self, data="{}", opts=None, n=1, name="job", delay=0, priority=0):
        """Adds n jobs (pipelined); returns their ids."""
        opts = json.dumps(opts if opts is not None else {"attempts": 0})
        data = data if isinstance(data, str) else json.dumps(data)
        now = int(time.time() * 1000)
        ids = []
        for start in range(0, n, 1000):
            p = self.r.pipeline(transaction=False)
            for _ in range(start, min(n, start + 1000)):
                self._add(keys=[self.base + "meta"],
                          args=[self.base, "", name, data, opts, now, delay, priority, "", "", 0,
                                "", ""], client=p)
            ids.extend(res[0] for res in p.execute())
        return ids

    def job(self, job_id):
        return self.r.hgetall(self.base + job_id)

    def count(self, state):
        key = self.base + state
        if state in ("wait", "active"):
            return self.r.llen(key)
        return self.r.zcard(key)

    def ids(self, state):
        return set(self.r.zrange(self.base + state, 0, -1))

    def events(self, job_id=None):
        evs = [dict(e[1]) for e in self.r.xrange(self.base + "events")]
        return [e for e in evs if job_id is None or e.get("jobId") == job_id]

    def finished(self):
        return self.count("completed") + self.count("failed")

    def pause(self, paused=True):
        """What Node's Queue.pause()/resume() does, through our pause script."""
        s = self.r.register_script(script_source("pause"))
        return s(keys=[self.base + "meta"], args=[self.base, "1" if paused else "0"])


def noop_queue(jobs, **keys):
    """A queue entry for Daemon: noop handler on jobs' BullMQ queue."""
    return {jobs.name: {"handler": "noop", "bullmq_queue": jobs.name, **keys}}


def wait_all_done(jobs, n, timeout=DONE_TIMEOUT):
    return wait_for(lambda: jobs.finished() >= n, timeout=timeout, interval=0.05,
                    what="%d jobs finished" % n)


def ats_total(jobs, ids):
    """How many times these jobs were fetched, in total (BullMQ's `ats`)."""
    p = jobs.r.pipeline(transaction=False)
    for i in ids:
        p.hget(jobs.base + i, "ats")
    return sum(int(v or 0) for v in p.execute())


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


def start(daemon_factory, jobs, procs=1, env=None, **keys):
    d = daemon_factory(noop_queue(jobs, processes=procs, **keys))
    d.start(env=env)
    d.wait_ready(timeout=10)
    return d


# -- outcomes ---------------------------------------------------------------------


def test_noop_job_completes_with_ok_returnvalue(daemon_factory, jobs):
    d = start(daemon_factory, jobs)
    [jid] = jobs.add({"to": "x"})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}
    assert json.loads(h["returnvalue"]) == {"ok": True}
    assert h["atm"] == "1" and h["ats"] == "1"
    assert int(h["finishedOn"]) >= int(h["processedOn"]) >= int(h["timestamp"])
    assert h["pb"].startswith("notifyq-")
    names = [e["event"] for e in jobs.events(jid)]
    assert names[-2:] == ["active", "completed"]
    assert json.loads(jobs.events(jid)[-1]["returnvalue"]) == {"ok": True}
    assert jobs.count("active") == 0 and jobs.count("wait") == 0
    wait_for(lambda: d.queue(jobs.name)["counters"]["completed"] == 1, timeout=5,
             what="counters.completed == 1")
    c = d.queue(jobs.name)["counters"]
    assert (c["fetched"], c["failed"], c["retried"]) == (1, 0, 0)


def test_retryable_failure_backs_off_then_fails(daemon_factory, jobs):
    start(daemon_factory, jobs)
    t0 = time.monotonic()
    [jid] = jobs.add({"fail": "retryable"},
                     {"attempts": 3, "backoff": {"type": "exponential", "delay": 200}})
    wait_all_done(jobs, 1)
    took = time.monotonic() - t0
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid}
    assert h["failedReason"] == "noop: retryable failure"
    assert h["atm"] == "3" and h["ats"] == "3"
    assert len(json.loads(h["stacktrace"])) == 3
    names = [e["event"] for e in jobs.events(jid)]
    # Exponential 200 ms: delayed twice (200, then 400 ms), then failed for good.
    assert names.count("delayed") == 2 and names.count("failed") == 1
    assert names[-1] == "retries-exhausted"
    delays = [int(e["delay"]) for e in jobs.events(jid) if e["event"] == "delayed"]
    assert 150 <= delays[1] - delays[0] - 200 <= 1500  # the second wait is twice the first
    assert took >= 0.6


def test_permanent_failure_fails_at_once(daemon_factory, jobs):
    start(daemon_factory, jobs)
    [jid] = jobs.add({"fail": "permanent"}, {"attempts": 5})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert h["failedReason"] == "noop: permanent failure"
    assert h["atm"] == "1"
    names = [e["event"] for e in jobs.events(jid)]
    assert "delayed" not in names and "retries-exhausted" not in names
    assert names[-1] == "failed"


def test_bad_data_fails_unrun_with_a_reason_naming_the_field(daemon_factory, jobs):
    start(daemon_factory, jobs)
    bad_fail, bad_sleep, crash_off = jobs.add({"fail": "sometimes"}) + \
        jobs.add({"sleep_ms": -1}) + jobs.add({"crash": "segv"})
    [not_json] = jobs.add("{not json", {"attempts": 3})
    wait_all_done(jobs, 4)
    assert jobs.job(bad_fail)["failedReason"].startswith("data.fail: ")
    assert jobs.job(bad_sleep)["failedReason"].startswith("data.sleep_ms: ")
    # Crashing on purpose needs NOTIFYQ_TEST_CRASH=1 in notifyqd's environment.
    assert "NOTIFYQ_TEST_CRASH=1" in jobs.job(crash_off)["failedReason"]
    h = jobs.job(not_json)
    assert "data" in h["failedReason"] and h["atm"] == "1"
    assert jobs.ids("failed") == {bad_fail, bad_sleep, crash_off, not_json}


def test_deferred_failure_fails_unrun(daemon_factory, jobs):
    # A BullMQ stalled check leaves `defa` on a job stalled too often: the
    # next worker must fail it without running it (§8.5).
    [jid] = jobs.add({"sleep_ms": 60000}, {"attempts": 3})
    jobs.r.hset(jobs.base + jid, "defa", "job stalled more than allowable limit")
    start(daemon_factory, jobs)
    wait_all_done(jobs, 1, timeout=10)
    h = jobs.job(jid)
    assert h["failedReason"] == "job stalled more than allowable limit"
    assert "defa" not in h


def test_jobs_run_concurrently_without_blocking_the_loop(daemon_factory, jobs):
    start(daemon_factory, jobs, concurrency=25)
    t0 = time.monotonic()
    jobs.add({"sleep_ms": 500}, n=25)
    wait_all_done(jobs, 25, timeout=20)
    # One after the other they would take 12.5 s.
    assert time.monotonic() - t0 < 6
    assert jobs.count("completed") == 25


def test_finishes_are_batched(daemon_factory, jobs, redis_server):
    """Many finishes and fetches share one script call: far fewer calls than
    jobs (BullMQ makes one per job)."""
    start(daemon_factory, jobs, concurrency=50)
    r = redis_server.client()
    before = int(r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
    jobs.add({}, n=3000)
    wait_all_done(jobs, 3000)
    calls = int(r.info("commandstats")["cmdstat_evalsha"]["calls"]) - before - 3000  # adds
    print("3000 jobs took %d script calls on the worker side" % calls)
    assert calls < 3000 / 2


def work_fetch_sizes(r, base):
    """The fetch size (ARGV[6]) of every work call in the slow log."""
    sizes = []
    for e in r.slowlog_get(10000):
        args = [a.decode() if isinstance(a, bytes) else a for a in e["command"].split()] \
            if isinstance(e.get("command"), (bytes, str)) else []
        # EVALSHA sha 1 <base>meta <base> now lock prefix seq N ...
        if len(args) > 9 and args[0] == "EVALSHA" and args[4] == base:
            sizes.append(int(args[9]))
    return sizes


@pytest.mark.parametrize("concurrency,most", [(64, 32), (10, 10)])
def test_a_deep_queue_is_fetched_in_half_windows_by_two_calls(daemon_factory, jobs,
                                                               redis_server, concurrency, most):
    """Two work calls in flight, each fetching half the window, once the
    queue proves deep; a window of 10 keeps one call fetching all of it."""
    r = redis_server.client()
    jobs.pause()
    jobs.add({}, n=2000)
    start(daemon_factory, jobs, concurrency=concurrency)
    r.config_set("slowlog-max-len", 10000)
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()
    try:
        jobs.pause(False)
        wait_all_done(jobs, 2000)
        sizes = [n for n in work_fetch_sizes(r, jobs.base) if n > 0]
    finally:
        r.config_set("slowlog-log-slower-than", 10000)
    # The first fetch takes the whole window: the queue is not known deep yet.
    assert len(sizes) > 2 and sizes[0] == concurrency, sizes[:20]
    assert max(sizes[1:]) == most and sizes.count(most) > len(sizes) // 2, sizes[:20]
    assert jobs.r.zcard(jobs.base + "completed") == 2000


def test_locks_are_renewed_while_a_job_runs(daemon_factory, jobs):
    start(daemon_factory, jobs, lock_duration="1s", stalled_interval="1s")
    [jid] = jobs.add({"sleep_ms": 3500})
    wait_all_done(jobs, 1, timeout=20)
    h = jobs.job(jid)
    # Three lock durations long, yet never seen as stalled.
    assert jobs.ids("completed") == {jid}
    assert h["ats"] == "1" and "stc" not in h
    assert "stalled" not in [e["event"] for e in jobs.events(jid)]


def test_stalled_check_recovers_a_lost_hosts_job(daemon_factory, jobs):
    """The safety net for a host that vanished with its worker: a job left
    active without a lock is requeued by a stalled check (two runs apart,
    as BullMQ's) and completed."""
    [jid] = jobs.add({})
    assert jobs.r.lmove(jobs.base + "wait", jobs.base + "active", "RIGHT", "LEFT") == jid
    start(daemon_factory, jobs, stalled_interval="500ms")
    wait_all_done(jobs, 1, timeout=20)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}
    assert h["stc"] == "1"
    assert "stalled" in [e["event"] for e in jobs.events(jid)]


# -- pause ------------------------------------------------------------------------


def test_pause_from_control_socket_stops_fetching(daemon_factory, jobs):
    d = start(daemon_factory, jobs)
    assert d.ctl("pause", jobs.name).returncode == 0
    wait_for(lambda: d.worker(jobs.name, 0)["state"] == "paused", timeout=5, what="paused")
    [jid] = jobs.add({})
    time.sleep(1.0)
    assert jobs.count("wait") == 1 and jobs.finished() == 0
    assert d.ctl("resume", jobs.name).returncode == 0
    wait_all_done(jobs, 1, timeout=10)
    assert jobs.ids("completed") == {jid}


def test_pause_in_redis_stops_fetching_until_resume(daemon_factory, jobs):
    """Node's Queue.pause() sets meta `paused` and deletes the marker."""
    start(daemon_factory, jobs)
    jobs.pause(True)
    [jid] = jobs.add({})
    time.sleep(1.5)
    assert jobs.count("wait") == 1 and jobs.finished() == 0
    t0 = time.monotonic()
    jobs.pause(False)
    wait_all_done(jobs, 1, timeout=10)
    # Resume re-creates the marker, which wakes the blocked worker at once.
    assert time.monotonic() - t0 < 1.0
    assert jobs.ids("completed") == {jid}


def test_status_shows_the_queues_job_counts(daemon_factory, jobs):
    """Slot 0 reads the counts from Redis every ~2 s; status reports them
    (waiting includes prioritized jobs)."""
    d = start(daemon_factory, jobs, procs=2)

    def counts():
        return d.queue(jobs.name)["jobs"]

    jobs.add({"fail": "permanent"}, {"attempts": 5})
    jobs.add({})
    wait_all_done(jobs, 2)
    want = {"waiting": 0, "active": 0, "delayed": 0, "failed": 1, "completed": 1}
    wait_for(lambda: counts() == want, timeout=10, what="counts %r" % want)
    jobs.pause(True)
    jobs.add({}, n=3)
    jobs.add({}, priority=5)
    jobs.add({}, delay=600000)
    want = {"waiting": 4, "active": 0, "delayed": 1, "failed": 1, "completed": 1}
    wait_for(lambda: counts() == want, timeout=10, what="counts %r" % want)
    lines = [line.split() for line in d.ctl("status").stdout.splitlines()]
    header = next(x for x in lines if x[:1] == ["QUEUE"])
    row = dict(zip(header, next(x for x in lines if x[:1] == [jobs.name])))
    assert (row["WAITING"], row["ACTIVE"], row["DELAYED"], row["DLQ"]) == ("4", "0", "1", "1")
    assert jobs.finished() == 2
    jobs.pause(False)


def test_delayed_job_runs_when_due(daemon_factory, jobs):
    start(daemon_factory, jobs)
    time.sleep(0.3)  # the worker is blocked on the marker
    t0 = time.monotonic()
    [jid] = jobs.add({}, {"attempts": 0, "delay": 1200}, delay=1200)
    wait_all_done(jobs, 1, timeout=10)
    took = time.monotonic() - t0
    assert 1.1 <= took < 2.5, took
    assert jobs.ids("completed") == {jid}


# -- drain, stop, recycling ---------------------------------------------------------


def test_sigterm_under_load_exits_0_with_nothing_active_or_lost(daemon_factory, jobs):
    d = start(daemon_factory, jobs, procs=2, concurrency=20, drain_timeout="10s")
    ids = jobs.add({"sleep_ms": 50}, n=2000)
    wait_for(lambda: jobs.count("completed") > 200, timeout=20, what="some progress")
    assert d.stop(signal.SIGTERM, timeout=20) == 0
    assert jobs.count("active") == 0
    done = jobs.ids("completed")
    assert jobs.count("failed") == 0
    # In-flight jobs finished within drain_timeout; the rest still wait.
    assert len(done) + jobs.count("wait") == len(ids)
    assert done | set(jobs.r.lrange(jobs.base + "wait", 0, -1)) == set(ids)


def test_drain_timeout_returns_jobs_without_spending_an_attempt(daemon_factory, jobs):
    d = start(daemon_factory, jobs, concurrency=5, drain_timeout="1s")
    ids = jobs.add({"sleep_ms": 60000}, {"attempts": 2}, n=5)
    wait_for(lambda: jobs.count("active") == 5, timeout=10, what="5 active")
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t0 < 4
    assert jobs.count("active") == 0 and jobs.count("wait") == 5
    for i in ids:
        h = jobs.job(i)
        assert h.get("atm", "0") == "0", h
        assert not jobs.r.exists(jobs.base + i + ":lock")


def test_fast_stop_returns_jobs_at_once(daemon_factory, jobs):
    d = start(daemon_factory, jobs, concurrency=5, drain_timeout="30s")
    jobs.add({"sleep_ms": 60000}, n=5)
    wait_for(lambda: jobs.count("active") == 5, timeout=10, what="5 active")
    t0 = time.monotonic()
    assert d.stop(signal.SIGQUIT, timeout=10) == 0
    assert time.monotonic() - t0 < 3
    assert jobs.count("active") == 0 and jobs.count("wait") == 5


def test_max_jobs_recycling_under_load_loses_nothing(daemon_factory, jobs):
    d = start(daemon_factory, jobs, procs=2, concurrency=10, max_jobs=400)
    ids = jobs.add({"sleep_ms": 2}, n=4000)
    running = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            st = d.try_status()
            if st:
                running.append(st["queues"][0]["processes"]["running"])
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    try:
        wait_all_done(jobs, len(ids))
    finally:
        stop.set()
        t.join()
    q = d.queue(jobs.name)
    assert jobs.ids("completed") == set(ids)
    assert jobs.count("active") == 0 and jobs.count("failed") == 0
    assert q["recycles"] >= 3, q
    assert q["restarts"] == 0, q
    # The replacement starts before the old worker drains: never fewer.
    assert running and min(running) == 2, running
    assert d.log_has(r"recycled \(finished \d+ jobs, max_jobs 400\)")
    print("4000 jobs, max_jobs 400: %d recycles, %d duplicates"
          % (q["recycles"], ats_total(jobs, ids) - len(ids)))


def test_max_rss_recycles_without_losing_capacity(daemon_factory, jobs):
    # Every process is above 1 MiB: each is replaced about once a second.
    d = start(daemon_factory, jobs, procs=2, concurrency=5, max_rss=1)
    d.wait_for_log(r"recycled \(RSS \d+ MiB, max_rss 1 MiB\)", timeout=10)
    ids = jobs.add({"sleep_ms": 20}, n=300)
    wait_all_done(jobs, len(ids))
    assert jobs.ids("completed") == set(ids)
    q = d.queue(jobs.name)
    assert q["recycles"] >= 1 and q["restarts"] == 0
    assert q["processes"]["running"] == 2


def test_handler_that_cannot_start_exits_78(daemon_factory, jobs):
    """A handler whose configuration is unusable (here the file provider's
    spool_dir cannot be created) makes its worker exit 78, which the master
    treats as a broken configuration."""
    d = daemon_factory({jobs.name: {
        "handler": "email", "bullmq_queue": jobs.name,
        "provider": "{type: file, spool_dir: /dev/null/spool}"}})
    d.start()
    d.wait_for_log(r"handler email: provider file: spool_dir /dev/null/spool", timeout=10)
    d.wait_for_log(r"exited with status 78: it cannot run with this configuration", timeout=10)


BULLMQ = REPO / "tests" / "interop" / "node_modules" / "bullmq"
UPSERT_SCHEDULERS = """
const { Queue } = require(process.argv[1]);
(async () => {
  const q = new Queue(process.argv[2], { connection: { path: process.argv[3] } });
  await q.upsertJobScheduler('every', { every: 500 }, { name: 'tick', data: {} });
  await q.upsertJobScheduler('cron', { pattern: '* * * * * *' }, { name: 'cron', data: {} });
  await q.close();
})().catch(e => { console.error(e); process.exit(1); });
"""


@pytest.mark.skipif(not shutil.which("node") or not BULLMQ.is_dir(),
                    reason="needs node and tests/interop's bullmq (npm ci in tests/interop)")
def test_job_schedulers_advance_when_their_iterations_are_fetched(daemon_factory, jobs,
                                                                  redis_server):
    """BullMQ's own upsertJobScheduler (every 500 ms, and a cron pattern every
    second): each iteration our worker fetches gets its successor, so the
    schedules keep running with nothing but notifyq consuming the queue."""
    subprocess.run(["node", "-e", UPSERT_SCHEDULERS, str(BULLMQ), jobs.name,
                    redis_server.socket], check=True, timeout=30)
    start(daemon_factory, jobs)

    def done(prefix):
        return sorted(int(i.rsplit(":", 1)[1]) for i in jobs.ids("completed")
                      if i.startswith(prefix))

    wait_for(lambda: len(done("repeat:every:")) >= 4 and len(done("repeat:cron:")) >= 2,
             timeout=15, what="iterations of both schedulers completed")
    every, cron = done("repeat:every:"), done("repeat:cron:")
    # A late fetch (a slow sanitizer build) skips iterations, as BullMQ's
    # realignment does, but every iteration stays on the schedule's grid.
    assert all(b > a and (b - a) % 500 == 0 for a, b in zip(every, every[1:])), every
    assert all(t % 1000 == 0 for t in cron), cron
    assert all(b > a and (b - a) % 1000 == 0 for a, b in zip(cron, cron[1:])), cron
    # And the next iteration of each is waiting its turn (or just started).
    pending = jobs.r.zrange(jobs.base + "delayed", 0, -1) + \
        jobs.r.lrange(jobs.base + "wait", 0, -1) + jobs.r.lrange(jobs.base + "active", 0, -1)
    assert {i.rsplit(":", 1)[0] for i in pending} >= {"repeat:every", "repeat:cron"}
