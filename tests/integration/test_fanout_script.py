# SPDX-License-Identifier: MIT
"""The fanout script (a broadcast's batch) against a real Redis: its jobs are
what the add script, which writes what Node's Queue.add writes, makes for
the same custom-id adds, key by key and event by event; an id already
there is left alone; the broadcast's progress moves in the same call; a
broadcast that is gone adds nothing; a paused target gets no marker."""
from queue_helpers import Queue, now_ms, q, qserver  # noqa: F401 (fixtures)


def fanout(target, bcast, pid, progress, jobs, ts):
    args = [ts, bcast.base, pid, progress]
    for j in jobs:
        args.extend(j)
    return target.script("fanout", *args)


def dump(queue, ids):
    r = queue.r
    return {
        "jobs": {i: r.hgetall(queue.k(i)) for i in ids},
        "wait": r.lrange(queue.k("wait"), 0, -1),
        "marker": r.zrange(queue.k("marker"), 0, -1, withscores=True),
        "id": r.get(queue.k("id")),
        "meta": r.hgetall(queue.k("meta")),
        "events": queue.events(),
    }


def broadcast_job(bcast):
    [bid, _] = bcast.add("news", '{"queue":"tq"}')
    return bid


def test_fanout_adds_what_add_adds(q):
    bcast, twin = Queue(q.r, "bull", "bc"), Queue(q.r, "bull", "twin")
    bid = broadcast_job(bcast)
    t = now_ms()
    jobs = [("bcast-x-%d" % i, "news", '{"to":"u%d@example.org"}' % i,
             '{"attempts":0,"jobId":"bcast-x-%d"}' % i) for i in range(3)]
    assert fanout(q, bcast, bid, "42.5", jobs, t) == [3, []]
    for jid, name, data, opts in jobs:
        assert twin.add(name, data, opts, job_id=jid, ts=t) == [jid, "added"]
    ids = [j[0] for j in jobs]
    assert dump(q, ids) == dump(twin, ids)
    assert q.r.lrange(q.k("wait"), 0, -1) == ids[::-1]  # FIFO: the first runs first
    assert q.r.hget(bcast.k(bid), "progress") == "42.5"
    assert bcast.events()[-1] == {"event": "progress", "jobId": bid, "data": "42.5"}


def test_an_id_already_there_is_left_alone(q):
    bcast = Queue(q.r, "bull", "bc")
    bid = broadcast_job(bcast)
    t = now_ms()
    assert q.add("old", '{"v":1}', job_id="c-1") == ["c-1", "added"]
    got = fanout(q, bcast, bid, "100", [("c-1", "n", '{"v":2}', "{}"),
                                        ("c-2", "n", '{"v":3}', "{}")], t)
    assert got == [1, ["c-1"]]
    assert q.r.hget(q.k("c-1"), "data") == '{"v":1}'
    assert q.r.get(q.k("id")) == "3"  # burnt by every add, as BullMQ's
    assert q.r.lrange(q.k("wait"), 0, -1) == ["c-2", "c-1"]
    assert {"event": "duplicated", "jobId": "c-1"} in q.events()
    # Again: nothing is added twice.
    assert fanout(q, bcast, bid, "100", [("c-2", "n", '{"v":3}', "{}")], t) == [0, ["c-2"]]
    assert q.r.llen(q.k("wait")) == 2


def test_a_broadcast_that_is_gone_adds_nothing(q):
    bcast = Queue(q.r, "bull", "bc")
    assert fanout(q, bcast, "nope", "50", [("c-1", "n", "{}", "{}")], now_ms()) == -1
    assert q.r.keys(q.base + "*") == []
    assert not q.r.exists(bcast.k("nope"))


def test_a_paused_target_gets_its_jobs_but_no_marker(q):
    bcast = Queue(q.r, "bull", "bc")
    bid = broadcast_job(bcast)
    q.script("pause", "1")
    assert fanout(q, bcast, bid, "100", [("c-1", "n", "{}", "{}")], now_ms()) == [1, []]
    assert q.r.lrange(q.k("wait"), 0, -1) == ["c-1"]
    assert not q.r.exists(q.k("marker"))
