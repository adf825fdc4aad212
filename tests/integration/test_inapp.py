# SPDX-License-Identifier: MIT
"""The inapp handler (issue 11) against real PostgreSQL and Redis: a job
becomes one row of notifyq.inapp_notifications and one message on
notifyq:inapp:<tenant or _>:<user>; a job run again after a crash at
either point of the way (before the PUBLISH, or between the PUBLISH and
recording it) still gives one row and one message."""
import json
import time

import pytest

from conftest import wait_for
from pg_helpers import pg_database, postgres_server  # noqa: F401 (fixtures)
from test_deliverylog import logdb, pg_extra  # noqa: F401 (fixture)
from test_worker_jobs import Jobs, wait_all_done


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


def start(daemon_factory, jobs, pg, db, extra=""):
    d = daemon_factory({jobs.name: {"handler": "inapp", "bullmq_queue": jobs.name,
                                    "attempts": 3, "backoff": "{type: fixed, delay: 200}"}},
                       extra=pg_extra(pg, db) + extra)
    d.start()
    d.wait_ready(timeout=10)
    return d


class Listener:
    def __init__(self, jobs, pattern="notifyq:inapp:*"):
        self.p = jobs.r.pubsub()
        self.p.psubscribe(pattern)
        wait_for(lambda: self.p.get_message(timeout=0.1) is not None, timeout=5)

    def messages(self, wait=0.5):
        out, deadline = [], time.monotonic() + wait
        while time.monotonic() < deadline:
            m = self.p.get_message(timeout=0.05)
            if m and m["type"] == "pmessage":
                out.append((m["channel"], json.loads(m["data"])))
        return out


def add(jobs, job_id, data):
    s = jobs._add
    return s(keys=[jobs.base + "meta"],
             args=[jobs.base, job_id, "n", json.dumps(data), json.dumps({"attempts": 3}),
                   int(time.time() * 1000), 0, 0, "", "", 0, "", ""])[0]


DATA = {"userId": "u-42", "tenantId": "acme", "title": "Report ready", "body": "Download it",
        "type": "success", "metadata": {"reportId": "r-9"}}


def rows(pg, db):
    return pg.psql("SELECT id, job_id, tenant_id, user_id, title, body, type, metadata::text, "
                   "published_at IS NOT NULL FROM notifyq.inapp_notifications ORDER BY id", db=db)


def test_a_row_and_one_message(daemon_factory, jobs, postgres_server, logdb):
    pg, db = postgres_server, logdb
    lis = Listener(jobs)
    start(daemon_factory, jobs, pg, db)
    add(jobs, "n1", DATA)
    add(jobs, "n2", {"userId": 7, "title": "Hi", "body": ""})
    wait_all_done(jobs, 2)
    assert jobs.ids("completed") == {"n1", "n2"}, jobs.job("n1")
    r = rows(pg, db)
    assert [x[1:] for x in r] == [
        ["n1", "acme", "u-42", "Report ready", "Download it", "success", '{"reportId": "r-9"}',
         "t"],
        ["n2", "", "7", "Hi", "", "info", "", "t"]]
    assert json.loads(jobs.job("n1")["returnvalue"]) == {"id": int(r[0][0])}
    msgs = sorted(lis.messages(), key=lambda m: m[1]["id"])
    assert [c for c, _ in msgs] == ["notifyq:inapp:acme:u-42", "notifyq:inapp:_:7"]
    m = msgs[0][1]
    assert (m["id"], m["userId"], m["tenantId"], m["title"], m["body"], m["type"],
            m["metadata"]) == (int(r[0][0]), "u-42", "acme", "Report ready", "Download it",
                               "success", {"reportId": "r-9"})
    assert m["createdAt"]
    # the delivery log has them too
    assert pg.psql("SELECT job_id, status, channel FROM notifyq.notifications ORDER BY job_id",
                   db=db) == [["n1", "sent", "inapp"], ["n2", "sent", "inapp"]]


def test_crash_after_the_insert_before_the_publish(daemon_factory, jobs, postgres_server,
                                                  logdb):
    pg, db = postgres_server, logdb
    # What a run that died right after its INSERT leaves behind.
    (rid,) = pg.psql("INSERT INTO notifyq.inapp_notifications (queue, job_id, user_id, title, "
                     "body) VALUES ('%s', 'c1', 'u-42', 'Report ready', 'Download it') "
                     "RETURNING id" % jobs.name, db=db)[0]
    lis = Listener(jobs)
    start(daemon_factory, jobs, pg, db)
    add(jobs, "c1", DATA)
    wait_all_done(jobs, 1)
    msgs = lis.messages()
    assert len(msgs) == 1 and msgs[0][1]["id"] == int(rid)
    assert len(rows(pg, db)) == 1 and rows(pg, db)[0][8] == "t"
    assert json.loads(jobs.job("c1")["returnvalue"]) == {"id": int(rid)}


def test_crash_between_the_publish_and_recording_it(daemon_factory, jobs, postgres_server,
                                                   logdb):
    pg, db = postgres_server, logdb
    (rid,) = pg.psql("INSERT INTO notifyq.inapp_notifications (queue, job_id, user_id, title, "
                     "body) VALUES ('%s', 'c2', 'u-42', 'Report ready', 'Download it') "
                     "RETURNING id" % jobs.name, db=db)[0]
    # The script had set its marker with the PUBLISH; published_at never came.
    jobs.r.set(jobs.base + "nqpub:inapp:" + rid, "1", px=60000)
    lis = Listener(jobs)
    start(daemon_factory, jobs, pg, db)
    add(jobs, "c2", DATA)
    wait_all_done(jobs, 1)
    assert lis.messages() == []
    assert rows(pg, db)[0][8] == "t"
    assert jobs.ids("completed") == {"c2"}


def test_the_same_job_again_publishes_nothing_more(daemon_factory, jobs, postgres_server,
                                                   logdb):
    pg, db = postgres_server, logdb
    lis = Listener(jobs)
    start(daemon_factory, jobs, pg, db)
    add(jobs, "s1", DATA)
    wait_all_done(jobs, 1)
    first = json.loads(jobs.job("s1")["returnvalue"])
    jobs.r.delete(jobs.base + "s1")
    jobs.r.zrem(jobs.base + "completed", "s1")
    add(jobs, "s1", DATA)
    wait_all_done(jobs, 1)
    assert json.loads(jobs.job("s1")["returnvalue"]) == first
    assert len(lis.messages()) == 1
    assert len(rows(pg, db)) == 1


def test_bad_data_fails_naming_the_field(daemon_factory, jobs, postgres_server, logdb):
    pg, db = postgres_server, logdb
    start(daemon_factory, jobs, pg, db)
    add(jobs, "b1", {"title": "x", "body": "y"})
    add(jobs, "b2", {"userId": "u", "title": "x", "body": "y", "type": "loud"})
    add(jobs, "b3", {"userId": "u", "title": "x", "body": "y", "templateId": "t"})
    wait_all_done(jobs, 3)
    reasons = {j: jobs.job(j)["failedReason"] for j in ("b1", "b2", "b3")}
    assert reasons == {
        "b1": "data.userId: required, a string or an integer",
        "b2": "data.type: must be info, warning, error or success",
        "b3": "data.templateId: not supported by inapp jobs; send title and body"}
    assert rows(pg, db) == []


def test_database_away_retries_then_delivers(daemon_factory, jobs, postgres_server, logdb):
    pg, db = postgres_server, logdb
    lis = Listener(jobs)
    d = daemon_factory({jobs.name: {"handler": "inapp", "bullmq_queue": jobs.name}},
                       extra=pg_extra(pg, db))
    d.start()
    d.wait_ready(timeout=10)
    pg.stop()
    s = jobs._add
    s(keys=[jobs.base + "meta"],
      args=[jobs.base, "o1", "n", json.dumps(DATA),
            json.dumps({"attempts": 20, "backoff": {"type": "fixed", "delay": 300}}),
            int(time.time() * 1000), 0, 0, "", "", 0, "", ""])
    wait_for(lambda: int(jobs.job("o1").get("atm", 0)) >= 1, timeout=15)
    assert "inapp: storing the notification: postgres" in jobs.job("o1")["failedReason"]
    pg.start()
    wait_all_done(jobs, 1)
    assert jobs.ids("completed") == {"o1"}
    assert len(lis.messages()) == 1


def test_without_postgres_the_inapp_queue_idles_and_status_stays_ok(daemon_factory):
    """The shipped file has an inapp queue and no postgres: its worker must
    idle (jobs wait, backlog shown), not crash-loop into a degraded daemon."""
    d = daemon_factory({"inapp": {"handler": "inapp"}})
    d.start()
    d.wait_ready(timeout=10)
    q = d.queue("inapp")
    assert q["processes"]["running"] == 1
    assert q["state"] == "idle", q
    assert "needs postgres" in q["workers"][0].get("note", ""), q
    r = d.ctl("status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert d.log_has(r"handler inapp needs postgres")
