# SPDX-License-Identifier: MIT
"""Script-level tests of the queue store: our Lua scripts against a real
redis-server leave exactly BullMQ 6.7.0's layout (../shared/BULLMQ-LAYOUT.md):
keys, types, fields, scores, markers and events."""
import pytest

from queue_helpers import q, qserver, now_ms  # noqa: F401  (fixtures)

P32 = 4294967296


def test_add_standard_job(q):
    t = now_ms()
    assert q.add("plain", '{"a":1}', ts=t) == ["1", "added"]
    assert q.r.hgetall(q.k("1")) == {"name": "plain", "data": '{"a":1}',
                                      "opts": '{"attempts":0}', "timestamp": str(t),
                                      "delay": "0", "priority": "0"}
    assert q.r.lrange(q.k("wait"), 0, -1) == ["1"]
    assert q.r.zrange(q.k("marker"), 0, -1, withscores=True) == [("0", 0.0)]
    assert q.r.get(q.k("id")) == "1"
    assert q.r.hget(q.k("meta"), "opts.maxLenEvents") == "10000"
    assert q.events() == [{"event": "added", "jobId": "1", "name": "plain"},
                          {"event": "waiting", "jobId": "1"}]


def test_add_prioritized_and_delayed(q):
    t = now_ms()
    q.add("p", priority=5, ts=t)
    q.add("p1", priority=1, ts=t)
    assert q.r.zrange(q.k("prioritized"), 0, -1, withscores=True) == [
        ("2", 1 * P32 + 2), ("1", 5 * P32 + 1)]
    assert q.r.get(q.k("pc")) == "2"
    q.add("d", delay=60000, ts=t)
    due = t + 60000
    assert q.r.zscore(q.k("delayed"), "3") == due * 4096
    assert q.r.zscore(q.k("marker"), "1") == due
    assert q.r.hget(q.k("3"), "delay") == "60000"
    assert q.events()[-1] == {"event": "delayed", "jobId": "3", "delay": str(due)}
    # a second job due in the same ms keeps FIFO order
    q.add("d2", delay=60000, ts=t)
    assert q.r.zscore(q.k("delayed"), "4") == due * 4096 + 1


def test_custom_id_not_added_twice(q):
    assert q.add(job_id="order-1", data='{"v":1}') == ["order-1", "added"]
    assert q.add(job_id="order-1", data='{"v":2}') == ["order-1", "duplicated"]
    assert q.r.hget(q.k("order-1"), "data") == '{"v":1}'
    assert q.r.get(q.k("id")) == "2"  # burnt by the duplicate too
    assert q.events()[-1] == {"event": "duplicated", "jobId": "order-1"}
    assert q.r.llen(q.k("wait")) == 1


def test_deduplication_with_ttl(q):
    assert q.add(dedup="dd1", ttl=30000) == ["1", "added"]
    assert q.add(dedup="dd1", ttl=30000) == ["1", "deduplicated"]
    assert q.r.get(q.k("de:dd1")) == "1"
    assert 0 < q.r.pttl(q.k("de:dd1")) <= 30000
    assert q.r.hget(q.k("1"), "deid") == "dd1"
    assert q.events()[-1] == {"event": "deduplicated", "jobId": "1",
                              "deduplicationId": "dd1", "deduplicatedJobId": "2"}
    # the TTL key survives completion
    _, [j], _, _ = q.fetch()
    q.work([j.complete()])
    assert q.r.get(q.k("de:dd1")) == "1"


def test_simple_dedup_released_when_job_ends(q):
    q.add(dedup="dd2")
    assert q.r.pttl(q.k("de:dd2")) == -1
    _, [j], _, _ = q.fetch()
    q.work([j.complete()])
    assert not q.r.exists(q.k("de:dd2"))
    assert q.add(dedup="dd2")[1] == "added"


def test_dedup_replace_removes_delayed_owner(q):
    q.add(dedup="r1", delay=60000, data='{"v":1}')
    assert q.add(dedup="r1", delay=60000, replace=True, data='{"v":2}') == ["2", "added"]
    assert not q.r.exists(q.k("1"))
    assert q.r.zrange(q.k("delayed"), 0, -1) == ["2"]
    assert {"event": "removed", "jobId": "1", "prev": "delayed"} in q.events()


def test_fetch_leaves_a_chain_marker_only_when_jobs_are_left(q):
    for _ in range(3):
        q.add("a")
    q.add("p", priority=3)
    q.r.delete(q.k("marker"))
    q.fetch(1)  # wait still holds two
    assert q.r.zrange(q.k("marker"), 0, -1, withscores=True) == [("0", 0.0)]
    q.r.delete(q.k("marker"))
    q.fetch(2)  # wait is empty, prioritized holds one
    assert q.r.zrange(q.k("marker"), 0, -1, withscores=True) == [("0", 0.0)]
    q.r.delete(q.k("marker"))
    q.fetch(5)  # takes the last one
    assert not q.r.exists(q.k("marker"))


def test_fetch_counts_ats_and_survives_a_garbled_one(q):
    q.add("a")
    q.add("b")
    q.r.hset(q.k("1"), "ats", "3")
    q.r.hset(q.k("2"), "ats", "garbled")
    codes, jobs, status, _ = q.fetch(2)
    assert status == 0 and [j.id for j in jobs] == ["1", "2"]
    assert [j.h["ats"] for j in jobs] == ["4", "1"]
    assert q.r.hget(q.k("1"), "ats") == "4" and q.r.hget(q.k("2"), "ats") == "1"


def test_a_garbled_events_cap_falls_back_to_the_default(q):
    q.add("a")
    q.r.hset(q.k("meta"), "opts.maxLenEvents", "lots")
    codes, [j], status, _ = q.fetch(1)
    assert status == 0
    assert q.work([j.complete()])[0] == [0]
    assert q.event_names()[-3:] == ["active", "completed", "drained"]


def test_fetch_order_lock_and_fields(q):
    t = now_ms()
    q.add("a", ts=t)
    q.add("p5", priority=5, ts=t)
    q.add("b", ts=t)
    q.add("p1", priority=1, ts=t)
    q.add("lifo", lifo=True, ts=t)
    q.r.delete(q.k("events"))
    codes, jobs, status, _ = q.fetch(5, now=t + 10, name="notifyq-1", prefix="inc9:")
    assert codes == [] and status == 0
    # wait first (lifo at the tail runs first), then priority order
    assert [j.id for j in jobs] == ["5", "1", "3", "4", "2"]
    assert [j.token for j in jobs] == ["inc9:%d" % i for i in range(1, 6)]
    assert q.r.lrange(q.k("active"), 0, -1) == ["2", "4", "3", "1", "5"]
    for j in jobs:
        assert q.r.get(q.k(j.id + ":lock")) == j.token
        assert 29000 < q.r.pttl(q.k(j.id + ":lock")) <= 30000
        h = q.r.hgetall(q.k(j.id))
        assert h["processedOn"] == str(t + 10) and h["ats"] == "1" and h["pb"] == "notifyq-1"
        assert j.h["processedOn"] == str(t + 10) and j.h["ats"] == "1"
    assert q.events() == [{"event": "active", "jobId": i, "prev": "waiting"}
                          for i in ["5", "1", "3", "4", "2"]]
    assert q.r.zscore(q.k("marker"), "0") == 0  # left by the adds
    assert q.r.exists(q.k("pc"))
    q.fetch(1)  # finds prioritized empty
    assert not q.r.exists(q.k("pc"))


def test_complete_with_fetch_next_then_drained(q):
    q.add("a")
    q.add("b")
    _, [a], _, _ = q.fetch()
    t = now_ms()
    codes, [b], status, _ = q.work([a.complete('{"ok":1}')], n=1, now=t)
    assert codes == [0] and b.id == "2" and status == 0
    h = q.r.hgetall(q.k("1"))
    assert h["returnvalue"] == '{"ok":1}' and h["finishedOn"] == str(t) and h["atm"] == "1"
    assert q.r.zrange(q.k("completed"), 0, -1, withscores=True) == [("1", t)]
    assert not q.r.exists(q.k("1:lock"))
    assert q.r.lrange(q.k("active"), 0, -1) == ["2"]
    codes, jobs, status, value = q.work([b.complete()], n=1)
    assert codes == [0] and jobs == [] and status == 1 and value == 0
    names = q.event_names()
    assert names[-2:] == ["completed", "drained"]
    assert q.events()[-2] == {"event": "completed", "jobId": "2",
                              "returnvalue": '{"ok":true}', "prev": "active"}


def test_many_finishes_and_fetches_per_call(q):
    for i in range(10):
        q.add("j%d" % i)
    _, jobs, _, _ = q.fetch(4)
    codes, more, _, _ = q.work([j.complete() for j in jobs], n=4)
    assert codes == [0] * 4 and len(more) == 4
    assert q.r.zcard(q.k("completed")) == 4
    assert q.r.llen(q.k("active")) == 4 and q.r.llen(q.k("wait")) == 2
    assert q.r.smembers(q.k("stalled")) == set()


def test_large_batches_rewrite_active_in_order(q):
    for i in range(20):
        q.add("j%d" % i)
    _, first, _, _ = q.fetch(5, prefix="other:")  # stay active throughout
    _, jobs, _, _ = q.fetch(12)
    fins = [j.complete() for j in jobs[:10]]
    fins[3][1] = "stolen"               # -6: stays active
    fins[7][0] = "404"                  # -1
    before = q.r.lrange(q.k("active"), 0, -1)
    codes, more, _, _ = q.work(fins, n=2)
    assert codes == [0, 0, 0, -6, 0, 0, 0, -1, 0, 0]
    done = {f[0] for i, f in enumerate(fins) if codes[i] == 0}
    left = [x for x in before if x not in done]
    assert q.r.lrange(q.k("active"), 0, -1) == [m.id for m in reversed(more)] + left
    assert q.r.zcard(q.k("completed")) == 8
    assert all(not q.r.exists(q.k(i + ":lock")) for i in done)
    assert q.r.exists(q.k(jobs[3].id + ":lock"))


def test_lock_errors_as_bullmq(q):
    q.add("a")
    q.add("b")
    _, [a, b], _, _ = q.fetch(2)
    bad = a.complete()
    bad[1] = "someone-else"
    q.r.delete(q.k("2:lock"))
    missing = b.complete()
    ghost = list(a.complete())
    ghost[0] = "404"
    codes, _, _, _ = q.work([bad, missing, ghost])
    assert codes == [-6, -2, -1]
    # nothing moved
    assert q.r.zcard(q.k("completed")) == 0 and q.r.llen(q.k("active")) == 2
    q.r.lrem(q.k("active"), 0, "1")
    assert q.work([a.complete()])[0] == [-3]


def test_retry_stores_progress_atomically(q):
    # A partly done job (an email that reached some recipients) keeps what it
    # did in progress, written with the retry; '' leaves progress alone.
    q.add("x", opts='{"attempts":3}')
    _, [j], _, _ = q.fetch()
    t = now_ms()
    prog = '{"recipients":[{"to":"a@example.org","status":"sent"}]}'
    assert q.work([j.retry_later(100, "boom", progress=prog)], now=t)[0] == [0]
    assert q.r.hget(q.k("1"), "progress") == prog
    assert {"event": "progress", "jobId": "1", "data": prog} in q.events()
    _, [j2], _, _ = q.fetch(now=t + 101)
    assert j2.h["progress"] == prog
    assert q.work([j2.retry_later(100, "again")], now=t + 102)[0] == [0]
    assert q.r.hget(q.k("1"), "progress") == prog


def test_retry_later_then_final_failure(q):
    q.add("x", opts='{"attempts":2}')
    _, [j], _, _ = q.fetch()
    t = now_ms()
    codes, _, _, _ = q.work([j.retry_later(200, "boom 1")], now=t)
    assert codes == [0]
    h = q.r.hgetall(q.k("1"))
    assert h["atm"] == "1" and h["failedReason"] == "boom 1" and h["delay"] == "200"
    assert "finishedOn" not in h
    assert q.r.zscore(q.k("delayed"), "1") == (t + 200) * 4096
    assert q.r.zscore(q.k("marker"), "1") == t + 200
    assert q.events()[-1] == {"event": "delayed", "jobId": "1", "delay": str(t + 200)}
    assert "failed" not in q.event_names()
    # due: promoted by the next fetch
    _, [j2], _, _ = q.fetch(now=t + 201)
    assert j2.id == "1" and j2.h["delay"] == "0" and j2.h["ats"] == "2"
    assert {"event": "waiting", "jobId": "1", "prev": "delayed"} in q.events()
    codes, _, _, _ = q.work([j2.fail("boom 2", keep="")], now=t + 300)
    h = q.r.hgetall(q.k("1"))
    assert h["atm"] == "2" and h["failedReason"] == "boom 2" and h["finishedOn"] == str(t + 300)
    assert q.r.zscore(q.k("failed"), "1") == t + 300
    ev = q.events()
    assert ev[-3:-1] == [{"event": "failed", "jobId": "1", "failedReason": "boom 2",
                          "prev": "active"},
                         {"event": "retries-exhausted", "jobId": "1", "attemptsMade": "2"}]


def test_permanent_failure_drops_defa_and_skips_exhausted(q):
    q.add("x", opts='{"attempts":5}')
    q.r.hset(q.k("1"), "defa", "job stalled more than allowable limit")
    _, [j], _, _ = q.fetch()
    assert j.h["defa"] == "job stalled more than allowable limit"
    assert q.work([j.fail(j.h["defa"], exhausted=False)])[0] == [0]
    assert not q.r.hexists(q.k("1"), "defa")
    assert "retries-exhausted" not in q.event_names()


def test_retry_now_respects_priority_and_lifo(q):
    q.add("p", priority=3)
    _, [j], _, _ = q.fetch()
    q.work([j.retry_now()])
    assert q.r.zscore(q.k("prioritized"), "1") is not None
    assert q.r.hget(q.k("1"), "atm") == "1"
    assert q.events()[-1] == {"event": "waiting", "jobId": "1", "prev": "active"}


def test_rate_limited_and_returned_spend_no_attempt(q):
    q.add("a")
    q.add("b")
    _, [a, b], _, _ = q.fetch(2)
    t = now_ms()
    q.work([a.rate_limited(1500, engage=True), b.returned()], now=t)
    assert q.r.hget(q.k("1"), "atm") is None and q.r.hget(q.k("2"), "atm") is None
    assert q.r.zscore(q.k("delayed"), "1") == (t + 1500) * 4096
    assert q.r.lrange(q.k("wait"), 0, -1) == ["2"]
    assert q.r.get(q.k("limiter")) == "9007199254740991"
    assert 0 < q.r.pttl(q.k("limiter")) <= 1500
    _, jobs, status, ttl = q.fetch(1, limit_max=10, limit_ms=1000)
    assert jobs == [] and status == 2 and 0 < ttl <= 1500


def test_retention_by_count_age_and_at_once(q):
    for i in range(5):
        q.add("j%d" % i)
    _, jobs, _, _ = q.fetch(5)
    t = now_ms()
    q.work([j.complete(keep="2:0:1000") for j in jobs[:3]], now=t)
    assert q.r.zrange(q.k("completed"), 0, -1) == ["2", "3"]
    assert not q.r.exists(q.k("1"))
    q.work([jobs[3].complete(keep="0")], now=t)
    assert not q.r.exists(q.k("4")) and q.r.zscore(q.k("completed"), "4") is None
    assert "completed" in q.event_names()
    # age: everything finished more than 1 s before now goes
    q.work([jobs[4].complete(keep="-1:1000:1000")], now=t + 5000)
    assert q.r.zrange(q.k("completed"), 0, -1) == ["5"]


def test_worker_rate_limiter(q):
    for i in range(5):
        q.add("j%d" % i)
    _, jobs, status, _ = q.fetch(5, limit_max=2, limit_ms=1000)
    assert len(jobs) == 2 and status == 0
    assert q.r.get(q.k("limiter")) == "2" and 0 < q.r.pttl(q.k("limiter")) <= 1000
    _, jobs, status, ttl = q.fetch(5, limit_max=2, limit_ms=1000)
    assert jobs == [] and status == 2 and 0 < ttl <= 1000
    q.r.hset(q.k("meta"), mapping={"max": 3, "duration": 1000})  # global max wins
    _, jobs, _, _ = q.fetch(5, limit_max=2, limit_ms=1000)
    assert len(jobs) == 1


def test_pause_resume_and_global_concurrency(q):
    q.add("a")
    assert q.script("pause", "1") == 1
    assert not q.r.exists(q.k("marker")) and q.r.hget(q.k("meta"), "paused") == "1"
    _, jobs, status, _ = q.fetch()
    assert jobs == [] and status == 3
    q.add("b")  # no "0" marker while paused
    assert not q.r.exists(q.k("marker"))
    assert q.script("pause", "0") == 1
    assert q.r.zscore(q.k("marker"), "0") == 0
    assert q.event_names().count("paused") == 1 and q.event_names().count("resumed") == 1
    q.r.hset(q.k("meta"), "concurrency", 1)
    _, [a], _, _ = q.fetch(5)
    _, jobs, status, _ = q.fetch(5)
    assert jobs == [] and status == 4  # maxed, not paused: a finish frees a slot
    q.r.delete(q.k("marker"))
    # A finish that frees a slot it does not take marks the queue ready for
    # the workers waiting on the marker; one that takes it does not.
    q.add("c")
    codes, _, _, _ = q.work([a.complete()])
    assert codes == [0] and q.r.zscore(q.k("marker"), "0") == 0
    _, [b], _, _ = q.fetch(1)
    q.r.delete(q.k("marker"))
    codes, [c], status, _ = q.work([b.complete()], n=5)
    assert codes == [0] and c.id == "3" and status == 0
    assert not q.r.exists(q.k("marker"))


def test_extend_locks(q):
    q.add("a")
    q.add("b")
    _, [a, b], _, _ = q.fetch(2, lock_ms=1000)
    q.r.sadd(q.k("stalled"), "1", "2")
    assert q.script("extend", 60000, a.id, a.token, b.id, "wrong") == [1, 0]
    assert q.r.pttl(q.k("1:lock")) > 59000
    assert q.r.smembers(q.k("stalled")) == {"2"}


def test_stalled_check_requeues_then_defers_failure(q):
    q.add("a")
    _, [a], _, _ = q.fetch(lock_ms=30000)
    assert q.script("stalled", now_ms(), 30000, 1) == [[], []]
    assert q.r.smembers(q.k("stalled")) == {"1"}
    assert q.script("stalled", now_ms(), 30000, 1) == []  # guarded for the interval
    q.r.delete(q.k("stalled-check"), q.k("1:lock"))
    assert q.script("stalled", now_ms(), 30000, 1) == [["1"], []]
    assert q.r.lrange(q.k("wait"), 0, -1) == ["1"] and q.r.llen(q.k("active")) == 0
    assert q.r.hget(q.k("1"), "stc") == "1"
    assert q.event_names()[-2:] == ["waiting", "stalled"]
    _, [a], _, _ = q.fetch()
    q.r.delete(q.k("stalled-check"))
    q.script("stalled", now_ms(), 30000, 1)
    q.r.delete(q.k("stalled-check"), q.k("1:lock"))
    assert q.script("stalled", now_ms(), 30000, 1) == [["1"], ["1"]]
    assert q.r.hget(q.k("1"), "defa") == "job stalled more than allowable limit"


def test_recover_only_the_dead_incarnation(q):
    for i in range(3):
        q.add("j%d" % i)
    _, dead, _, _ = q.fetch(2, prefix="dead:")
    _, live, _, _ = q.fetch(1, prefix="dead2:")  # a prefix that extends the dead one's
    r = q.script("recover", now_ms(), "dead:", 1, "SIGSEGV", 3, "")
    assert sorted(r[0]) == ["1", "2"] and r[1] == []
    assert q.r.lrange(q.k("active"), 0, -1) == [live[0].id]
    assert q.r.hget(q.k("1"), "stc") == "1" and q.r.hget(q.k("1"), "nqcrash") == "1"
    # the same job in flight in three deaths by signal is a poison job
    for n in (2, 3):
        q.r.lrem(q.k("wait"), 0, "1")
        q.r.rpush(q.k("wait"), "1")
        _, [j], _, _ = q.fetch(1, prefix="dead:")
        assert j.id == "1"
        r = q.script("recover", now_ms(), "dead:", 10, "SIGSEGV", 3, "")
    assert r == [[], ["1"]]
    h = q.r.hgetall(q.k("1"))
    assert h["failedReason"] == "crashed 3 workers (SIGSEGV)" and q.r.zscore(q.k("failed"), "1")
    # a clean exit does not count as a crash
    _, [k], _, _ = q.fetch(1, prefix="x:")
    q.script("recover", now_ms(), "x:", 10, "", 3, "")
    assert q.r.hget(q.k(k.id), "nqcrash") in (None, "1")


def test_recover_lets_max_crashes_not_max_stalled_decide_deaths_by_signal(q):
    def die_with(job_id, signal, max_crashes):
        q.r.lrem(q.k("wait"), 0, job_id)
        q.r.rpush(q.k("wait"), job_id)
        _, [j], _, _ = q.fetch(1, prefix="dead:")
        assert j.id == job_id
        return q.script("recover", now_ms(), "dead:", 1, signal, max_crashes, "")

    for i in range(3):
        q.add("j%d" % i)
    # By signal: past max_stalled 1, yet no deferred failure until max_crashes.
    assert die_with("1", "SIGSEGV", 3) == [["1"], []]
    assert die_with("1", "SIGSEGV", 3) == [["1"], []]
    assert q.r.hget(q.k("1"), "stc") == "2" and q.r.hget(q.k("1"), "defa") is None
    assert die_with("1", "SIGSEGV", 3) == [[], ["1"]]
    # No signal: BullMQ's stalled limit.
    die_with("2", "", 3)
    assert q.r.hget(q.k("2"), "defa") is None
    die_with("2", "", 3)
    assert q.r.hget(q.k("2"), "defa") == "job stalled more than allowable limit"
    # max_crashes 0 never fails a crashing job, so the stalled limit still does.
    die_with("3", "SIGKILL", 0)
    die_with("3", "SIGKILL", 0)
    assert q.r.hget(q.k("3"), "defa") == "job stalled more than allowable limit"


def test_recover_in_release_mode_puts_back_without_a_stall(q):
    for i in range(3):
        q.add("j%d" % i)
    _, lost, _, _ = q.fetch(2, prefix="lost:")
    _, [other], _, _ = q.fetch(1, prefix="lost2:")
    n_events = len(q.events())
    r = q.script("recover", now_ms(), "lost:", 1, "", 3, "", "1")
    assert sorted(r[0]) == sorted(j.id for j in lost) and r[1] == []
    assert q.r.lrange(q.k("active"), 0, -1) == [other.id]
    assert sorted(q.r.lrange(q.k("wait"), 0, -1)) == sorted(j.id for j in lost)
    for j in lost:
        h = q.r.hgetall(q.k(j.id))
        assert "stc" not in h and "nqcrash" not in h and "defa" not in h
        assert not q.r.exists(q.k(j.id + ":lock"))
    new = q.events()[n_events:]
    assert [e["event"] for e in new] == ["waiting", "waiting"]
    assert all(e["prev"] == "active" for e in new)


def test_admin_scripts(q):
    q.add("a")
    q.add("d", delay=60000)
    assert q.script("state", "2")[0] == "delayed"
    assert q.script("promote", "2") == 0 and q.script("promote", "2") == -3
    assert q.r.hget(q.k("2"), "delay") == "0"
    assert q.script("counts") == [2, 0, 0, 0, 0, 0, 0, 0, 0]
    _, [a, b], _, _ = q.fetch(2)
    assert q.script("remove", "1") == 0  # locked
    assert q.script("progress", "1", '{"pct":40}') == 0
    assert q.events()[-1] == {"event": "progress", "jobId": "1", "data": '{"pct":40}'}
    q.work([a.fail(), b.complete()])
    assert q.script("state", "1")[0] == "failed"
    assert q.script("retry", "one", "failed", "1", "") == 1
    assert q.script("state", "1")[0] == "waiting"
    h = q.r.hgetall(q.k("1"))
    assert "failedReason" not in h and "finishedOn" not in h and h["atm"] == "1"
    _, [a], _, _ = q.fetch()
    q.work([a.fail()])
    assert q.script("retry", "all", "failed", now_ms(), "") == 1
    assert q.r.lrange(q.k("wait"), 0, -1) == ["1"]
    assert q.script("remove", "1") == 1 and not q.r.exists(q.k("1"))
    assert q.events()[-1] == {"event": "removed", "jobId": "1", "prev": "wait"}
    assert q.script("remove", "1") == -1
    assert q.script("clean", "completed", 0, 0, now_ms() + 1) == ["2"]
    assert q.events()[-1] == {"event": "cleaned", "count": "1"}
    assert q.script("counts") == [0] * 9


def test_scheduler_every_adds_next_iteration(q):
    t = now_ms()
    first = t - 10
    sid = "every-1s"
    q.r.zadd(q.k("repeat"), {sid: first})
    q.r.hset(q.k("repeat:" + sid), mapping={"name": "tick", "every": 1000, "data": '{"t":1}',
                                             "opts": '{"attempts":2}', "ic": 1})
    jid = "repeat:%s:%d" % (sid, first)
    q.add("tick", job_id=jid, ts=first)
    q.r.hset(q.k(jid), "rjk", sid)
    _, [j], _, _ = q.fetch()
    nxt = first + 1000
    r = q.script("scheduler", t, sid, j.id, "")
    assert r == ["repeat:%s:%d" % (sid, nxt), "added"]
    h = q.r.hgetall(q.k(r[0]))
    assert h["rjk"] == sid and h["name"] == "tick" and h["data"] == '{"t":1}'
    assert q.r.zscore(q.k("repeat"), sid) == nxt
    assert q.r.zscore(q.k("delayed"), r[0]) is not None
    assert q.r.hget(q.k("repeat:" + sid), "ic") == "2"
    import json
    opts = json.loads(h["opts"])
    assert opts["repeat"]["every"] == 1000 and opts["jobId"] == r[0]
    assert opts["repeatJobKey"] == sid and opts["attempts"] == 2
    # a stale iteration does nothing
    assert q.script("scheduler", t, sid, j.id, "") == ["", "stale"]


def test_scheduler_pattern_takes_next_time_from_caller(q):
    t = now_ms()
    sid = "cron-1"
    q.r.zadd(q.k("repeat"), {sid: t})
    q.r.hset(q.k("repeat:" + sid), mapping={"name": "c", "pattern": "0 * * * *",
                                             "tz": "Europe/Paris", "ic": 1, "limit": 2})
    jid = "repeat:%s:%d" % (sid, t)
    q.add("c", job_id=jid)
    with pytest.raises(Exception, match="pattern needs next ms"):
        q.script("scheduler", t, sid, jid, "")
    nxt = t + 3600000
    assert q.script("scheduler", t, sid, jid, nxt) == ["repeat:%s:%d" % (sid, nxt), "added"]
    import json
    opts = json.loads(q.r.hget(q.k("repeat:%s:%d" % (sid, nxt)), "opts"))
    assert opts["repeat"] == {"pattern": "0 * * * *", "tz": "Europe/Paris", "count": 2,
                              "limit": 2}
    # the limit of 2 iterations is reached
    assert q.script("scheduler", t, sid, "repeat:%s:%d" % (sid, nxt), nxt + 3600000) == \
        ["", "done"]


def test_flow_child_flags(q):
    import json
    for pid, flags in (("pc", {"cpof": True}), ("pi", {"idof": True}), ("pn", {})):
        q.r.hset(q.k(pid), mapping={"name": "parent", "data": "{}", "opts": "{}",
                                     "priority": 0, "delay": 0})
        q.r.zadd(q.k("waiting-children"), {pid: 1})
        kids = []
        for n in range(2):
            _, status = q.add("kid", job_id="%s:k:%d" % (pid, n))
            kid = q.k("%s:k:%d" % (pid, n))
            q.r.hset(kid, mapping={"parentKey": q.k(pid),
                                   "parent": json.dumps({"id": pid, "queueKey": "bull:tq",
                                                         **flags})})
            q.r.sadd(q.k(pid + ":dependencies"), kid)
            kids.append(kid)
    _, jobs, _, _ = q.fetch(6)
    by = {j.id: j for j in jobs}
    # cpof: a failed child releases the parent at once, its reason kept
    q.work([by["pc:k:0"].fail("nope")])
    assert q.r.hget(q.k("pc:failed"), q.k("pc:k:0")) == "nope"
    assert q.r.zscore(q.k("waiting-children"), "pc") is None
    assert "pc" in q.r.lrange(q.k("wait"), 0, -1)
    # idof: the dependency is dropped; the parent goes once the rest completes
    q.work([by["pi:k:0"].fail("nope")])
    assert q.r.zscore(q.k("waiting-children"), "pi") is not None
    q.work([by["pi:k:1"].complete('{"v":1}')])
    assert q.r.hget(q.k("pi:processed"), q.k("pi:k:1")) == '{"v":1}'
    assert q.r.zscore(q.k("waiting-children"), "pi") is None
    assert {"event": "waiting", "jobId": "pi", "prev": "waiting-children"} in q.events()
    # no flag: a failed child leaves the parent waiting for its children
    q.work([by["pn:k:0"].fail("nope"), by["pn:k:1"].complete()])
    assert q.r.zscore(q.k("waiting-children"), "pn") is not None
    assert q.r.sismember(q.k("pn:dependencies"), q.k("pn:k:0"))


# ---- a job key that is not a hash (issue 9 item 9) -------------------------

FOREIGN = "job key held a string, not a job hash; kept as bull:tq:%s:foreign"


def assert_failed_foreign(q, job_id, value="junk"):
    h = q.r.hgetall(q.k(job_id))
    assert h["failedReason"] == FOREIGN % job_id and "finishedOn" in h
    assert q.r.zscore(q.k("failed"), job_id) is not None
    assert q.r.get(q.k(job_id + ":foreign")) == value
    assert not q.r.exists(q.k(job_id + ":lock"))
    assert job_id not in q.r.lrange(q.k("active"), 0, -1)
    assert {"event": "failed", "jobId": job_id, "failedReason": FOREIGN % job_id,
            "prev": "waiting"} in q.events() or any(
        e.get("event") == "failed" and e.get("jobId") == job_id for e in q.events())


def test_fetch_fails_a_foreign_job_key_and_keeps_its_neighbours(q):
    for i in range(3):
        q.add("j%d" % i)
    q.r.delete(q.k("2"))
    q.r.set(q.k("2"), "junk")
    codes, jobs, status, _ = q.work((), 3, foreign=True)
    assert [j.id for j in jobs] == ["1", "3"] and status == 0
    assert q.last_foreign == ["2", FOREIGN % "2"]
    assert sorted(q.r.lrange(q.k("active"), 0, -1)) == ["1", "3"]
    for j in jobs:
        assert q.r.get(q.k(j.id + ":lock")) == j.token
    assert_failed_foreign(q, "2")
    # the neighbours finish normally, and the failed entry is a readable job
    codes, _, _, _ = q.work([j.complete() for j in jobs])
    assert codes == [0, 0]
    assert q.r.zcard(q.k("completed")) == 2
    # retention deletes the kept value with its job
    q.script("remove", "2")
    assert not q.r.exists(q.k("2")) and not q.r.exists(q.k("2:foreign"))


def test_finish_on_a_foreign_job_key_fails_it_alone(q):
    for i in range(3):
        q.add("j%d" % i)
    _, jobs, _, _ = q.fetch(3)
    q.r.delete(q.k("2"))
    q.r.set(q.k("2"), "junk")
    codes, _, _, _ = q.work([j.complete() for j in jobs])
    assert codes == [0, -7, 0]
    assert q.r.zrange(q.k("completed"), 0, -1) == ["1", "3"]
    assert_failed_foreign(q, "2")
    assert q.r.llen(q.k("active")) == 0


def test_delayed_foreign_job_key_fails_when_due(q):
    q.add("a", delay=1)
    q.add("b", delay=1)
    q.r.delete(q.k("1"))
    q.r.set(q.k("1"), "junk")
    time_now = now_ms() + 10
    codes, jobs, status, _ = q.work((), 5, now=time_now, foreign=True)
    assert [j.id for j in jobs] == ["2"]
    assert q.r.zcard(q.k("delayed")) == 0
    assert_failed_foreign(q, "1")


def test_stalled_check_and_recover_fail_a_foreign_job_key(q):
    for i in range(4):
        q.add("j%d" % i)
    _, jobs, _, _ = q.fetch(2, prefix="dead:")
    for j in jobs:
        q.r.delete(q.k(j.id))
        q.r.set(q.k(j.id), "junk")
    r = q.script("recover", now_ms(), "dead:", 1, "SIGKILL", 3, "")
    assert r[0] == [] and sorted(r[1]) == ["1", "2"]
    for j in jobs:
        assert_failed_foreign(q, j.id)
    _, [c], _, _ = q.fetch(1, lock_ms=30000)
    q.script("stalled", now_ms(), 30000, 1)
    q.r.delete(q.k("stalled-check"), q.k(c.id + ":lock"), q.k(c.id))
    q.r.set(q.k(c.id), "junk")
    assert q.script("stalled", now_ms(), 30000, 1) == [[], []]
    assert_failed_foreign(q, c.id)
    assert q.r.llen(q.k("active")) == 0 and q.r.lrange(q.k("wait"), 0, -1) == ["4"]


def test_admin_scripts_refuse_a_foreign_job_key(q):
    q.add("a", delay=60000)
    q.add("b")
    _, [b], _, _ = q.fetch()
    q.work([b.fail()])
    for jid in ("1", "2"):
        q.r.delete(q.k(jid))
        q.r.set(q.k(jid), "junk")
    assert q.script("promote", "1") == -9
    assert q.r.zscore(q.k("delayed"), "1") is not None
    assert q.script("retry", "one", "failed", "2", "") == -9
    assert q.r.zscore(q.k("failed"), "2") is not None
    assert q.script("retry", "all", "failed", now_ms(), "") == 0
    assert q.script("progress", "1", "5") == -9
    assert q.r.get(q.k("1")) == "junk"


# ---- finishes sent again after a lost reply (issue 9 item 11) ---------------

def resent(t):
    return t[:9] + [t[9] + "r"] + t[10:]


def test_a_resent_finish_is_found_applied_not_refused(q):
    for i in range(5):
        q.add("j%d" % i)
    _, [a, b, c, d, e], _, _ = q.fetch(5)
    first = [a.complete(), b.fail(), c.retry_later(60000), d.complete(keep="0"),
             e.rate_limited(60000)]
    assert q.work(first)[0] == [0, 0, 0, 0, 0]
    # Sent again as a worker does after the reply was lost: found applied.
    assert q.work([resent(f) for f in first])[0] == [1, 1, 1, 1, 1]
    # Without the flag, as BullMQ answers: the lock is gone.
    assert q.work([first[0], first[3]])[0] == [-2, -1]
    # A finish that was never applied is still refused when sent again.
    q.add("late")
    _, [f], _, _ = q.fetch(1)
    q.r.delete(q.k(f.id + ":lock"))
    assert q.work([resent(f.complete())])[0] == [-2]
    assert q.r.lrange(q.k("active"), 0, -1) == [f.id]


def test_dedup_keep_last_if_active_job_is_created_when_the_owner_ends(q):
    """BullMQ's producer keeps the job added while the dedup owner is active
    in dn:<id>; our finish creates it (issue 14 item 6)."""
    assert q.add(dedup="d1") == ["1", "added"]
    _, [a], _, _ = q.fetch()
    q.r.hset(q.k("dn:d1"), mapping={
        "name": "next", "data": '{"n":3}', "jid": "",
        "opts": '{"delay":5000,"priority":0,"de":{"id":"d1","keepLastIfActive":true}}'})
    q.r.hdel(q.k("dn:d1"), "jid")
    q.r.incr(q.k("id"))  # ids burnt by the deduplicated adds
    t = now_ms()
    assert q.work([a.complete()], now=t)[0] == [0]
    assert not q.r.exists(q.k("dn:d1"))
    h = q.r.hgetall(q.k("3"))
    assert (h["name"], h["data"], h["deid"], h["delay"]) == ("next", '{"n":3}', "d1", "5000")
    assert h["timestamp"] == str(t)
    assert q.r.zscore(q.k("delayed"), "3") == (t + 5000) * 4096
    assert q.r.get(q.k("de:d1")) == "3" and q.r.pttl(q.k("de:d1")) == -1
    assert q.event_names()[-4:] == ["added", "delayed", "completed", "drained"]
    # a job without dedup, or with no follow-up waiting, touches no dn: key
    q.add("plain")
    _, [p], _, _ = q.fetch()
    assert q.work([p.complete()])[0] == [0]


def test_add_and_flows_do_not_trip_on_foreign_keys(q):
    import json
    import redis as redis_mod
    q.r.set(q.k("1"), "junk")  # where the next automatic id would go
    with pytest.raises(redis_mod.exceptions.ResponseError, match="holds a string"):
        q.add("a")
    assert q.r.get(q.k("1")) == "junk" and q.r.llen(q.k("wait")) == 0
    assert q.add("b") == ["2", "added"]
    # children whose parent key holds a string end; the parent is skipped
    q.add("c")
    q.r.set(q.k("par"), "junk")
    for kid in ("2", "3"):
        q.r.hset(q.k(kid), mapping={"parentKey": q.k("par"), "parent": json.dumps(
            {"id": "par", "queueKey": "bull:tq", "fpof": True})})
        q.r.sadd(q.k("par:dependencies"), q.k(kid))
    _, [b, c], _, _ = q.fetch(2)
    assert q.work([b.complete(), c.fail()])[0] == [0, 0]
    assert q.r.zscore(q.k("completed"), "2") is not None
    assert q.r.zscore(q.k("failed"), "3") is not None and q.r.get(q.k("par")) == "junk"
