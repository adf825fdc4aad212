# SPDX-License-Identifier: MIT
"""The broadcast handler end to end: a broadcast job added in BullMQ's layout
to a real Redis, fanned out by a real notifyqd worker into jobs of another
queue, which real workers deliver (the email handler into its file spool,
or noop). Exactly one child job and one delivery per recipient, also when
the broadcast's worker is killed with SIGKILL half way and the broadcast
runs again; the progress reaches 100 with a progress event per batch; a
bad recipient list fails the broadcast with a reason and adds nothing."""
import hashlib
import json
import os
import signal

from conftest import wait_for
from queue_helpers import script_source
from test_worker_jobs import DONE_TIMEOUT, Jobs

N = 10000


def recipients(n):
    """n recipients; every third one brings its own variables."""
    return [{"to": "user%d@example.org" % i, **({"vars": {"name": "User %d" % i}}
                                                 if i % 3 == 0 else {})}
            for i in range(n)]


def config(bc, target, target_keys, batch=100, bc_keys=None):
    return {
        bc.name: {"handler": "broadcast", "bullmq_queue": bc.name,
                  "broadcast": "{batch: %d}" % batch, **(bc_keys or {})},
        target.name: {"bullmq_queue": target.name, **target_keys},
    }


def email_target(spool):
    return {"handler": "email", "concurrency": 200, "processes": 2,
            "provider": "{type: file, spool_dir: %s}" % spool}


def noop_target():
    return {"handler": "noop", "concurrency": 200}


def broadcast_data(target, n):
    return {"queue": target.name, "templateVariables": {"name": "friend", "team": "Acme"},
            "subject": "News for you", "text": "Hello from the team", "recipients": recipients(n)}


def child_ids(target):
    """Every job id of the target queue, in any state."""
    ids = set()
    for state in ("completed", "failed", "delayed", "prioritized"):
        ids |= target.ids(state)
    ids |= set(target.r.lrange(target.base + "wait", 0, -1))
    ids |= set(target.r.lrange(target.base + "active", 0, -1))
    return ids


def wait_broadcast_done(bc, bid, timeout=DONE_TIMEOUT):
    wait_for(lambda: bc.finished() >= 1, timeout=timeout, interval=0.05,
             what="the broadcast finished")
    h = bc.job(bid)
    assert bc.ids("completed") == {bid}, h.get("failedReason")
    return h, json.loads(h["returnvalue"])


def wait_delivered(target, n, timeout=DONE_TIMEOUT):
    wait_for(lambda: target.finished() >= n, timeout=timeout, interval=0.1,
             what="%d children finished" % n)


def progress_events(bc, bid):
    return [json.loads(e["data"]) for e in bc.events(bid) if e["event"] == "progress"]


def test_10000_recipients_make_10000_jobs_and_emails(daemon_factory, redis_server, tmp_path):
    bc, target = Jobs(redis_server), Jobs(redis_server)
    spool = tmp_path / "spool"
    d = daemon_factory(config(bc, target, email_target(spool)))
    d.start()
    d.wait_ready(timeout=10)
    [bid] = bc.add(broadcast_data(target, N), name="newsletter")
    h, rv = wait_broadcast_done(bc, bid)
    wait_delivered(target, N)

    assert json.loads(h["progress"]) == 100
    prefix = rv["jobIdPrefix"]
    assert rv == {"ok": True, "queue": target.name, "recipients": N, "added": N, "existing": 0,
                  "resumedAt": 0, "jobIdPrefix": prefix}
    want = {prefix + str(i) for i in range(N)}
    assert child_ids(target) == want
    assert target.ids("completed") == want and target.count("failed") == 0
    files = sorted(os.listdir(spool))
    assert len(files) == N and all(f.endswith(".eml") for f in files)

    # A progress event per batch, rising to 100 (what QueueEvents sees).
    prog = progress_events(bc, bid)
    assert len(prog) == N // 100 and prog == sorted(prog) and prog[-1] == 100

    # A child is an ordinary BullMQ job: its own id, the broadcast's name,
    # Node's opts for a custom id, the shared fields, its to and variables.
    c0, c1 = target.job(prefix + "0"), target.job(prefix + "1")
    assert c0["name"] == "newsletter"
    assert json.loads(c0["opts"]) == {"attempts": 0, "jobId": prefix + "0"}
    assert json.loads(c0["data"]) == {
        "subject": "News for you", "text": "Hello from the team", "to": "user0@example.org",
        "templateVariables": {"name": "User 0", "team": "Acme"}}
    assert json.loads(c1["data"])["templateVariables"] == {"name": "friend", "team": "Acme"}
    path = json.loads(c0["returnvalue"])["path"]
    with open(path, "rb") as f:
        head = f.read(4096)
    assert b"\r\nTo: user0@example.org\r\n" in head and b"\r\nSubject: News for you\r\n" in head


def test_killed_half_way_still_exactly_10000(daemon_factory, redis_server, tmp_path):
    """The broadcast's worker dies by SIGKILL part way through: the master
    has the broadcast taken back and run again, and it resumes at its
    progress. Redis is paused for writes around the kill, so the kill lands
    between two batches the test saw, wherever the scheduler put them."""
    bc, target = Jobs(redis_server), Jobs(redis_server)
    spool = tmp_path / "spool"
    d = daemon_factory(config(bc, target, email_target(spool), batch=10,
                              bc_keys={"min_uptime": "100ms"}))
    d.start()
    d.wait_ready(timeout=10)
    [bid] = bc.add(broadcast_data(target, N), name="newsletter")
    victim = d.worker(bc.name, 0)["pid"]
    wait_for(lambda: float(bc.r.hget(bc.base + bid, "progress") or 0) >= 40, timeout=30,
             interval=0.001, what="the broadcast under way")
    bc.r.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
    try:
        at_kill = float(bc.r.hget(bc.base + bid, "progress"))
        os.kill(victim, signal.SIGKILL)
    finally:
        bc.r.execute_command("CLIENT", "UNPAUSE")
    assert 0 < at_kill < 100
    h, rv = wait_broadcast_done(bc, bid)
    wait_delivered(target, N)

    assert h["stc"] == "1" or h.get("nqcrash") == "1"
    assert json.loads(h["progress"]) == 100
    assert 0 < rv["resumedAt"] < N
    assert rv["resumedAt"] + rv["added"] + rv["existing"] == N
    prefix = rv["jobIdPrefix"]
    want = {prefix + str(i) for i in range(N)}
    assert child_ids(target) == want
    assert target.ids("completed") == want and target.count("failed") == 0
    assert len(os.listdir(spool)) == N
    print("\nkilled at progress %.1f; the rerun resumed at recipient %d"
          % (at_kill, rv["resumedAt"]))


def test_a_second_run_adds_nothing_twice(daemon_factory, redis_server):
    """A completed broadcast retried (job.retry, notifyqctl failed retry...)
    finds its progress at 100 and adds nothing; with its progress reset it
    runs again but every child id is taken, so still nothing is added."""
    bc, target = Jobs(redis_server), Jobs(redis_server)
    d = daemon_factory(config(bc, target, noop_target()))
    d.start()
    d.wait_ready(timeout=10)
    [bid] = bc.add(broadcast_data(target, 500))
    wait_broadcast_done(bc, bid)
    wait_delivered(target, 500)
    for progress in ("100", "0"):
        bc.r.hset(bc.base + bid, "progress", progress)
        bc.r.zrem(bc.base + "completed", bid)
        bc.r.lpush(bc.base + "wait", bid)
        bc.r.zadd(bc.base + "marker", {"0": 0})
        wait_for(lambda: bc.finished() == 1, timeout=DONE_TIMEOUT, what="rerun finished")
        rv = json.loads(bc.job(bid)["returnvalue"])
        assert rv["added"] == 0
        assert rv["existing"] == (0 if progress == "100" else 500)
    assert target.count("completed") == 500


def test_bad_recipient_fails_the_broadcast_and_adds_nothing(daemon_factory, redis_server):
    bc, target = Jobs(redis_server), Jobs(redis_server)
    d = daemon_factory(config(bc, target, noop_target()))
    d.start()
    d.wait_ready(timeout=10)
    data = broadcast_data(target, 1000)
    data["recipients"][737] = {"to": "x@example.org", "vars": "not an object"}
    [bad] = bc.add(data, {"attempts": 3})
    unknown = broadcast_data(target, 3)
    unknown["queue"] = "no-such-queue"
    [lost] = bc.add(unknown)
    wait_for(lambda: bc.count("failed") == 2, timeout=DONE_TIMEOUT, what="both failed")
    assert bc.job(bad)["failedReason"] == "data.recipients[737].vars: must be an object"
    assert bc.job(bad)["atm"] == "1"  # failed for good on its first attempt
    assert bc.job(lost)["failedReason"] == \
        'data.queue: no queue "no-such-queue" in the configuration'
    assert bc.r.hget(bc.base + bad, "progress") is None
    assert target.r.exists(target.base + "id") == 0  # nothing was ever added
    assert child_ids(target) == set()
    # The worker goes on.
    [good] = bc.add(broadcast_data(target, 3))
    wait_for(lambda: good in bc.ids("completed"), timeout=DONE_TIMEOUT, what="a good one")
    wait_delivered(target, 3)


def test_scripts_flushed_from_redis_are_loaded_again(daemon_factory, redis_server):
    """SCRIPT FLUSH (or a Redis restart) between batches: the batch's call
    fails with NOSCRIPT, nothing of it is written, the worker loads the
    script again and sends the same batch; still one job per recipient."""
    bc, target = Jobs(redis_server), Jobs(redis_server)
    d = daemon_factory(config(bc, target, noop_target(), batch=10))
    d.start()
    d.wait_ready(timeout=10)
    fanout = hashlib.sha1(script_source("fanout").encode()).hexdigest()
    bc.r.script_flush()
    [bid] = bc.add(broadcast_data(target, 200))
    h, rv = wait_broadcast_done(bc, bid)
    assert rv["added"] == 200 and rv["existing"] == 0
    wait_delivered(target, 200)
    assert child_ids(target) == {rv["jobIdPrefix"] + str(i) for i in range(200)}
    assert json.loads(h["progress"]) == 100
    assert bc.r.script_exists(fanout) == [True]  # the worker loaded it again
