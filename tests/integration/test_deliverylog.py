# SPDX-License-Identifier: MIT
"""The delivery log (issue 11) against a real PostgreSQL: migrations, every
status transition in order, the log agreeing with Redis, an outage with a
spool (and a worker killed during it), backpressure at spool_max, notifyqd -t
and notifyqctl notification."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import NOTIFYQCTL, NOTIFYQD, wait_for
from pg_helpers import pg_database, postgres_server  # noqa: F401 (fixtures)
from test_worker_jobs import DONE_TIMEOUT, Jobs, noop_queue, wait_all_done


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


def pg_extra(pg, db, **keys):
    lines = ["postgres:", "  dsn: %s" % pg.dsn(db)]
    lines += ["  %s: %s" % kv for kv in keys.items()]
    return "\n".join(lines) + "\n"


def migrate(pg, db, cfg_path=None, tmp_path=None):
    cfg = cfg_path or (tmp_path / "migrate.yaml")
    if not cfg_path:
        cfg.write_text("queues:\n  q: {handler: noop}\n" + pg_extra(pg, db))
    return subprocess.run([str(NOTIFYQD), "--migrate", "-c", str(cfg)], capture_output=True,
                          text=True, timeout=30)


@pytest.fixture
def logdb(postgres_server, pg_database, tmp_path):
    r = migrate(postgres_server, pg_database, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    return pg_database


def start(daemon_factory, jobs, pg, db, procs=1, pg_keys=None, **keys):
    d = daemon_factory(noop_queue(jobs, processes=procs, **keys),
                       extra=pg_extra(pg, db, **(pg_keys or {})))
    d.start()
    d.wait_ready(timeout=10)
    return d


def history(pg, db, queue, job_id):
    rows = pg.psql("SELECT e.attempt, e.status FROM notifyq.notification_events e "
                   "JOIN notifyq.notifications n ON n.id = e.notification_id "
                   "WHERE n.queue = '%s' AND n.job_id = '%s' "
                   "ORDER BY e.at, e.attempt, notifyq.status_phase(e.status)" % (queue, job_id),
                   db=db)
    return [(int(a), s) for a, s in rows]


def row(pg, db, queue, job_id, cols):
    rows = pg.psql("SELECT %s FROM notifyq.notifications WHERE queue = '%s' AND job_id = '%s'"
                   % (cols, queue, job_id), db=db)
    return rows[0] if rows else None


def wait_logged(pg, db, queue, n, status=None, timeout=30):
    cond = " AND status = '%s'" % status if status else ""
    q = "SELECT count(*) FROM notifyq.notifications WHERE queue = '%s'%s" % (queue, cond)
    return wait_for(lambda: int(pg.psql(q, db=db)[0][0]) >= n, timeout=timeout, interval=0.1,
                    what="%d rows logged" % n)


# -- migrations ---------------------------------------------------------------------

def test_migrations_from_empty_then_rerun_is_a_noop(postgres_server, pg_database, tmp_path):
    pg, db = postgres_server, pg_database
    r = migrate(pg, db, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "applied migration 0001" in r.stdout
    tables = {t for (t,) in pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = "
                                    "'notifyq'", db=db)}
    assert {"notifications", "delivery_attempts", "inapp_notifications",
            "schema_version"} <= tables
    assert pg.psql("SELECT version FROM notifyq.schema_version", db=db) == [["1"]]
    r = migrate(pg, db, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "nothing to do" in r.stdout and "applied" not in r.stdout
    assert pg.psql("SELECT count(*) FROM notifyq.schema_version", db=db) == [["1"]]


def test_an_unknown_newer_schema_is_refused(postgres_server, logdb, tmp_path, daemon_factory,
                                            jobs):
    pg, db = postgres_server, logdb
    pg.psql("INSERT INTO notifyq.schema_version (version) VALUES (7)", db=db)
    r = migrate(pg, db, tmp_path=tmp_path)
    assert r.returncode == 1
    assert "version 7, newer than this notifyqd knows (1)" in r.stderr
    assert pg.psql("SELECT max(version) FROM notifyq.schema_version", db=db) == [["7"]]
    # -t only warns; a worker refuses to start, naming both versions.
    t = subprocess.run([str(NOTIFYQD), "-t", "-c", str(tmp_path / "migrate.yaml")],
                       capture_output=True, text=True, timeout=30)
    assert t.returncode == 0, t.stderr
    assert "schema is at version 7, this notifyqd needs version 1" in t.stderr
    d = daemon_factory(noop_queue(jobs), extra=pg_extra(pg, db))
    d.start()
    d.wait_for_log(r"schema is at version 7, this notifyqd needs version 1", timeout=10)
    d.wait_for_log(r"exited with status 78", timeout=10)
    jobs.add(n=1)
    time.sleep(0.5)
    assert jobs.finished() == 0


def test_check_config_warns_when_unreachable_or_unmigrated(postgres_server, pg_database,
                                                           tmp_path):
    pg = postgres_server
    cfg = tmp_path / "t.yaml"
    base = "queues:\n  q: {handler: noop}\npostgres:\n  dsn: %s\n"
    cfg.write_text(base % ("host=%s port=1 user=postgres dbname=x connect_timeout=2" % pg.dir))
    r = subprocess.run([str(NOTIFYQD), "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert "warning: %s: postgres: postgres: cannot connect" % cfg in r.stderr
    cfg.write_text(base % pg.dsn(pg_database))
    r = subprocess.run([str(NOTIFYQD), "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert "schema is at version 0, this notifyqd needs version 1 (run notifyqd --migrate)" \
        in r.stderr
    assert migrate(pg, pg_database, cfg_path=cfg).returncode == 0
    r = subprocess.run([str(NOTIFYQD), "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


# -- transitions ---------------------------------------------------------------------

def test_sent_job_records_queued_active_sent(daemon_factory, jobs, postgres_server, logdb):
    pg, db = postgres_server, logdb
    start(daemon_factory, jobs, pg, db)
    data = {"to": "ada@example.org", "tenantId": "acme", "userId": "u1", "templateId": "welcome",
            "text": "secret body"}
    (jid,) = jobs.add(data=data)
    wait_logged(pg, db, jobs.name, 1, "sent")
    assert history(pg, db, jobs.name, jid) == [(0, "queued"), (1, "active"), (1, "sent")]
    assert row(pg, db, jobs.name, jid, "status, attempts, channel, tenant_id, user_id, "
               "recipient, template, body IS NULL, sent_at IS NOT NULL") == \
        ["sent", "1", "noop", "acme", "u1", "ada@example.org", "welcome", "t", "t"]
    att = pg.psql("SELECT attempt, outcome, duration_ms >= 0, started_at IS NOT NULL "
                  "FROM notifyq.delivery_attempts", db=db)
    assert att == [["1", "sent", "t", "t"]]


def test_retried_then_sent(daemon_factory, jobs, postgres_server, logdb):
    pg, db = postgres_server, logdb
    start(daemon_factory, jobs, pg, db)
    (jid,) = jobs.add(data={"fail": "retryable"},
                      opts={"attempts": 3, "backoff": {"type": "fixed", "delay": 1500}})
    wait_for(lambda: jid in jobs.ids("delayed"), timeout=10)
    jobs.r.hset(jobs.base + jid, "data", "{}")  # the next attempt succeeds
    wait_logged(pg, db, jobs.name, 1, "sent")
    assert history(pg, db, jobs.name, jid) == [
        (0, "queued"), (1, "active"), (1, "retrying"), (2, "active"), (2, "sent")]
    assert row(pg, db, jobs.name, jid, "status, attempts, last_error") == \
        ["sent", "2", "noop: failing retryably as asked"] or \
        row(pg, db, jobs.name, jid, "status, attempts")[:2] == ["sent", "2"]
    outcomes = pg.psql("SELECT attempt, outcome FROM notifyq.delivery_attempts ORDER BY 1",
                       db=db)
    assert outcomes == [["1", "retryable"], ["2", "sent"]]


def test_permanently_failed(daemon_factory, jobs, postgres_server, logdb):
    pg, db = postgres_server, logdb
    start(daemon_factory, jobs, pg, db)
    (jid,) = jobs.add(data={"fail": "permanent"}, opts={"attempts": 5})
    wait_logged(pg, db, jobs.name, 1, "failed")
    assert history(pg, db, jobs.name, jid) == [(0, "queued"), (1, "active"), (1, "failed")]
    status, attempts, err, failed_at = row(pg, db, jobs.name, jid,
                                           "status, attempts, last_error, failed_at IS NOT NULL")
    assert (status, attempts, failed_at) == ("failed", "1", "t")
    assert err == jobs.job(jid)["failedReason"]
    assert pg.psql("SELECT outcome FROM notifyq.delivery_attempts", db=db) == [["permanent"]]


def test_retries_exhausted(daemon_factory, jobs, postgres_server, logdb):
    pg, db = postgres_server, logdb
    start(daemon_factory, jobs, pg, db)
    (jid,) = jobs.add(data={"fail": "retryable"},
                      opts={"attempts": 3, "backoff": {"type": "fixed", "delay": 100}})
    wait_logged(pg, db, jobs.name, 1, "failed")
    assert history(pg, db, jobs.name, jid) == [
        (0, "queued"), (1, "active"), (1, "retrying"), (2, "active"), (2, "retrying"),
        (3, "active"), (3, "failed")]
    assert row(pg, db, jobs.name, jid, "status, attempts") == ["failed", "3"]


def test_a_late_event_never_moves_the_status_back(postgres_server, logdb):
    pg, db = postgres_server, logdb
    ev = lambda att, st, at: {"job_id": "1", "attempt": att, "status": st, "at": at}  # noqa
    rec = "SELECT notifyq.record_events('%s', 'q', 'noop')"
    batch = [ev(0, "queued", 1000), ev(1, "active", 2000), ev(1, "sent", 3000)]
    pg.psql(rec % json.dumps(batch), db=db)
    late = [ev(1, "retrying", 2500), ev(1, "active", 2000)]
    assert pg.psql(rec % json.dumps(late), db=db) == [["1"]]
    assert row(pg, db, "q", "1", "status, attempts, channel") == ["sent", "1", "noop"]
    # A replayed batch changes nothing.
    assert pg.psql(rec % json.dumps(batch), db=db) == [["0"]]
    assert pg.psql("SELECT count(*) FROM notifyq.notification_events", db=db) == [["4"]]


def test_recipients_hashed_and_bodies_stored_only_when_asked(daemon_factory, jobs,
                                                             postgres_server, logdb, tmp_path):
    pg, db = postgres_server, logdb
    key = tmp_path / "rkey"
    key.write_text("k3y\n")
    start(daemon_factory, jobs, pg, db,
          pg_keys={"recipients": "hash", "recipient_key_file": str(key), "store_bodies": "true"})
    (jid,) = jobs.add(data={"to": "ada@example.org", "text": "hello"})
    wait_logged(pg, db, jobs.name, 1, "sent")
    import hashlib
    import hmac
    want = hmac.new(b"k3y", b"ada@example.org", hashlib.sha256).hexdigest()
    rcpt, body = row(pg, db, jobs.name, jid, "recipient, body->>'text'")
    assert (rcpt, body) == (want, "hello")


# -- volume, outage, backpressure -------------------------------------------------

def test_the_log_agrees_with_redis(daemon_factory, jobs, postgres_server, logdb):
    pg, db = postgres_server, logdb
    n_ok, n_bad = 9500, 500
    start(daemon_factory, jobs, pg, db, procs=2, concurrency=50)
    ok = jobs.add(n=n_ok)
    bad = jobs.add(data={"fail": "permanent"}, n=n_bad)
    wait_all_done(jobs, n_ok + n_bad)
    wait_logged(pg, db, jobs.name, n_ok + n_bad, timeout=60)
    wait_for(lambda: int(pg.psql("SELECT count(*) FROM notifyq.notifications WHERE status IN "
                                 "('sent', 'failed')", db=db)[0][0]) == n_ok + n_bad,
             timeout=60)
    sent = {j for (j,) in pg.psql("SELECT job_id FROM notifyq.notifications "
                                  "WHERE status = 'sent'", db=db)}
    failed = {j for (j,) in pg.psql("SELECT job_id FROM notifyq.notifications "
                                    "WHERE status = 'failed'", db=db)}
    assert sent == jobs.ids("completed") == set(ok)
    assert failed == jobs.ids("failed") == set(bad)
    assert pg.psql("SELECT count(*) FROM notifyq.notification_events", db=db) == \
        [[str(3 * (n_ok + n_bad))]]


def spool_files(d):
    return list((d.state_dir / "deliverylog").glob("*.spool"))


def spooled(d):
    return sum(len(p.read_text().splitlines()) for p in spool_files(d))


def test_postgres_outage_spools_then_replays_everything(daemon_factory, jobs, postgres_server,
                                                        logdb):
    """PostgreSQL stops in the middle of 5,000 deliveries (each takes 20 ms,
    ten at a time: about ten seconds in all) and comes back 5 s later."""
    pg, db = postgres_server, logdb
    n = 5000
    d = start(daemon_factory, jobs, pg, db, concurrency=10)
    ids = jobs.add(n=n, data={"sleep_ms": 20})
    wait_for(lambda: jobs.finished() >= 500, timeout=DONE_TIMEOUT)
    pg.stop()
    stopped_at = jobs.finished()
    d.wait_for_log(r"delivery log: .*kept in the spool", timeout=10)
    time.sleep(5)
    assert jobs.finished() > stopped_at + 100  # deliveries went on without the database
    assert spooled(d) > 0
    pg.start()
    wait_all_done(jobs, n)
    assert jobs.count("completed") == n
    wait_logged(pg, db, jobs.name, n, "sent", timeout=60)
    sent = {j for (j,) in pg.psql("SELECT job_id FROM notifyq.notifications "
                                  "WHERE status = 'sent'", db=db)}
    assert sent == set(ids)
    assert pg.psql("SELECT count(*) FROM notifyq.notification_events", db=db) == [[str(3 * n)]]
    assert pg.psql("SELECT count(*) FROM notifyq.delivery_attempts WHERE outcome = 'sent'",
                   db=db) == [[str(n)]]
    wait_for(lambda: spooled(d) == 0, timeout=10)


def test_a_worker_killed_during_the_outage_loses_nothing(daemon_factory, jobs, postgres_server,
                                                         logdb):
    pg, db = postgres_server, logdb
    d = start(daemon_factory, jobs, pg, db, concurrency=20)
    pg.stop()
    ids = jobs.add(n=400)
    wait_all_done(jobs, 400)
    wait_for(lambda: spooled(d) == 2 * 400, timeout=10)
    (victim,) = d.workers(jobs.name)
    os.kill(victim["pid"], signal.SIGKILL)
    d.wait_for_log(r"took over %d events from %s\.0\.%d\.spool" % (2 * 400, jobs.name,
                                                                 victim["pid"]), timeout=30)
    pg.start()
    wait_logged(pg, db, jobs.name, 400, "sent", timeout=60)
    sent = {j for (j,) in pg.psql("SELECT job_id FROM notifyq.notifications", db=db)}
    assert sent == set(ids)
    wait_for(lambda: spooled(d) == 0, timeout=10)


def test_a_full_spool_stops_fetching_instead_of_dropping(daemon_factory, jobs, postgres_server,
                                                         logdb):
    pg, db = postgres_server, logdb
    d = start(daemon_factory, jobs, pg, db, concurrency=5, pg_keys={"spool_max": 100})
    pg.stop()
    jobs.add(n=200)
    d.wait_for_log(r"events wait in the spool \(spool_max\): fetching no jobs", timeout=30)
    time.sleep(1)
    done = jobs.finished()
    assert done < 200
    wait_for(lambda: "spool full" in d.worker(jobs.name, 0).get("note", ""), timeout=5)
    time.sleep(1)
    assert jobs.finished() == done  # stopped, not dropping
    pg.start()
    wait_all_done(jobs, 200)
    wait_logged(pg, db, jobs.name, 200, "sent", timeout=60)


# -- notifyqctl notification ---------------------------------------------------------

def test_notifyqctl_notification_prints_the_history(daemon_factory, jobs, postgres_server,
                                                    logdb):
    pg, db = postgres_server, logdb
    d = start(daemon_factory, jobs, pg, db)
    (jid,) = jobs.add(data={"fail": "retryable"},
                      opts={"attempts": 2, "backoff": {"type": "fixed", "delay": 100}})
    wait_logged(pg, db, jobs.name, 1, "failed")
    r = subprocess.run([str(NOTIFYQCTL), "-c", str(d.cfg), "notification", jobs.name, jid,
                        "--json"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    h = json.loads(r.stdout)
    assert (h["queue"], h["job_id"], h["status"], h["attempts"]) == (jobs.name, jid, "failed", 2)
    assert [(e["attempt"], e["status"]) for e in h["events"]] == [
        (0, "queued"), (1, "active"), (1, "retrying"), (2, "active"), (2, "failed")]
    assert [a["outcome"] for a in h["delivery_attempts"]] == ["retryable", "retryable"]
    r = subprocess.run([str(NOTIFYQCTL), "-c", str(d.cfg), "notification", jobs.name, jid],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "failed" in r.stdout and "retrying" in r.stdout
    r = subprocess.run([str(NOTIFYQCTL), "-c", str(d.cfg), "notification", jobs.name, "nope"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "no job nope" in r.stderr
