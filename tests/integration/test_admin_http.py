# SPDX-License-Identifier: MIT
"""The http child: the admin API, /health and /metrics, against a real
notifyqd and redis-server, over HTTP on a private loopback port (urllib)."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import NOTIFYQD, wait_for

ADMIN = "admin-token-0123456789"
READ = "read-token-9876543210"
Q = "apiq"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_section(tmp, port, extra=""):
    (tmp / "admin.token").write_text(ADMIN + "\n")
    (tmp / "read.token").write_text(READ)
    return ("http:\n  listen: 127.0.0.1:%d\n  tokens:\n"
            "    - {role: admin, file: %s}\n    - {role: read, file: %s}\n%s"
            % (port, tmp / "admin.token", tmp / "read.token", extra))


class Api:
    def __init__(self, port, scheme="http", context=None):
        self.base = "%s://127.0.0.1:%d" % (scheme, port)
        self.context = context

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        """Returns (status, headers, parsed body: JSON, or text)."""
        data = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.context) as r:
                status, hdrs, text = r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            status, hdrs, text = e.code, e.headers, e.read().decode()
        if hdrs.get("Content-Type", "").startswith("application/json"):
            return status, hdrs, json.loads(text)
        return status, hdrs, text

    def get(self, path, token=READ, **kw):
        return self.call("GET", path, token=token, **kw)

    def post(self, path, body=None, token=ADMIN, **kw):
        return self.call("POST", path, body=body, token=token, **kw)


def clear_queue(redis_server, name):
    r = redis_server.client()
    keys = list(r.scan_iter(match="bull:%s:*" % name))
    if keys:
        r.delete(*keys)


def start(daemon_factory, redis_server, queues=None, http_extra="", env=None):
    queues = queues or {Q: 2, "other": 1}
    for name in queues:
        clear_queue(redis_server, name)
    port = free_port()
    d = daemon_factory(queues)
    d.write_config(queues, extra=http_section(d.tmp, port, http_extra))
    d.start(env=env)
    d.wait_ready()
    api = Api(port)
    wait_for(lambda: http_ready(d, api), timeout=10, what="http child serving")
    return d, api


def http_ready(d, api):
    st = d.try_status()
    if not st or not st.get("http") or st["http"].get("state") != "running":
        return False
    try:
        # Serving, and a snapshot of the master's arrived that shows the
        # workers connected, as wait_ready() saw them (one comes a second).
        queues = api.get("/health", token=None)[2].get("queues")
        return queues if queues and "connecting" not in queues.values() else False
    except OSError:
        return False


@pytest.fixture
def served(daemon_factory, redis_server):
    return start(daemon_factory, redis_server)


def job_state(api, jid, queue=Q):
    st, _, body = api.get("/api/v1/queues/%s/jobs/%s" % (queue, jid))
    return body.get("state") if st == 200 else None


# ---- the child -----------------------------------------------------------------


def test_http_child_shows_in_status_like_a_worker(served):
    d, api = served
    st = d.status()
    h = st["http"]
    assert isinstance(h["pid"], int) and h["pid"] > 0
    assert h["state"] == "running"
    assert h["restarts"] == 0
    assert "127.0.0.1" in h["note"]
    with open("/proc/%d/cmdline" % h["pid"], "rb") as f:
        assert f.read().startswith(b"notifyqd: http")
    r = d.ctl("status")
    assert re.search(r"^http child: pid %d, .*running" % h["pid"], r.stdout, re.M), r.stdout
    r = d.ctl("--json", "status")
    assert json.loads(r.stdout)["http"]["pid"] == h["pid"]


def test_no_http_section_no_child(daemon_factory):
    d = daemon_factory({"solo": 1})
    d.start()
    st = d.wait_ready()
    assert st["http"] is None
    assert "http child" not in d.ctl("status").stdout


def test_killed_http_child_is_restarted_and_workers_are_untouched(served):
    d, api = served
    before = d.status()
    workers = {(q["name"], w["slot"]): w["pid"] for q in before["queues"] for w in q["workers"]}
    old = before["http"]["pid"]
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: (lambda h: h and h.get("pid") not in (None, old) and
                            h["state"] == "running" and h["pid"])(d.status()["http"]),
                   timeout=10, what="http child restarted")
    d.pids_seen.add(new)
    wait_for(lambda: http_ready(d, api), timeout=10, what="http serving again")
    after = d.status()
    assert after["http"]["restarts"] == 1
    assert after["http"]["last_exit"] == {"signal": "SIGKILL"}
    assert {(q["name"], w["slot"]): w["pid"] for q in after["queues"]
            for w in q["workers"]} == workers
    assert all(q["restarts"] == 0 for q in after["queues"])
    assert api.get("/health/live", token=None)[0] == 200


def test_sighup_replaces_the_http_child(served):
    d, api = served
    old = d.status()["http"]["pid"]
    d.sighup()
    new = wait_for(lambda: (lambda h: h and h.get("pid") not in (None, old) and
                            h["state"] == "running" and h["pid"])(d.status()["http"]),
                   timeout=10, what="new http child")
    d.pids_seen.add(new)
    wait_for(lambda: not os.path.exists("/proc/%d" % old) or
             open("/proc/%d/stat" % old).read().split()[2] == "Z", timeout=10,
             what="old http child gone")
    wait_for(lambda: http_ready(d, api), timeout=10, what="serving after reload")
    assert d.status()["http"]["restarts"] == 0


# ---- health --------------------------------------------------------------------


def test_health_and_liveness(served):
    d, api = served
    # The http child's view is the master's snapshot, sent every second: it
    # may still show the workers connecting for a tick after wait_ready().
    st, _, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
        api.get("/health", token=None)), timeout=5, what="/health to say healthy")
    assert st == 200, body
    assert body["status"] == "healthy" and body["reasons"] == []
    assert body["queues"] == {Q: "ok", "other": "ok"}
    st, _, body = api.get("/health/live", token=None)
    assert st == 200 and body == {"status": "live"}


def test_health_degrades_on_a_crash_loop_and_recovers(daemon_factory, redis_server):
    d, api = start(daemon_factory, redis_server,
                   {Q: 1, "crashy": {"processes": 1, "min_uptime": "1s"}})
    known = set()
    victim = d.worker("crashy", 0)["pid"]
    # The OOM killer's way (test_supervisor.py): every new process of the
    # slot is killed as soon as it appears, until the master calls it a loop.
    for _ in range(4):
        os.kill(victim, signal.SIGKILL)
        known.add(victim)
        victim = wait_for(lambda: (lambda w: w["pid"] if w.get("pid") and
                                   w["pid"] not in known else None)(d.worker("crashy", 0)),
                          timeout=10, interval=0.005, what="crashy restarted")
        d.pids_seen.add(victim)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: d.queue("crashy")["state"] == "crash-looping", timeout=10,
             what="crash-looping")

    def degraded():
        st, _, body = api.get("/health", token=None)
        return (st, body) if body.get("status") == "degraded" else None
    st, body = wait_for(degraded, timeout=10, what="/health degraded")
    assert st == 503
    assert any("crashy" in r and "crash-looping" in r for r in body["reasons"]), body
    assert body["queues"][Q] == "ok"

    def healthy():
        st, _, body = api.get("/health", token=None)
        return (st, body) if body.get("status") == "healthy" else None
    # Left alone, the worker stays up past min_uptime and the loop ends.
    st, body = wait_for(healthy, timeout=30, interval=0.2, what="/health healthy again")
    assert st == 200 and body["reasons"] == []


def test_health_unhealthy_over_max_waiting(daemon_factory, redis_server):
    d, api = start(daemon_factory, redis_server, {Q: {"processes": 1, "handler": "noop"}},
                   http_extra="health:\n  max_waiting: 3\n")
    assert api.post("/api/v1/queues/%s/pause" % Q)[0] == 200
    for i in range(5):
        assert api.post("/api/v1/queues/%s/jobs" % Q, {"name": "n%d" % i})[0] == 201

    def unhealthy():
        st, _, body = api.get("/health", token=None)
        return (st, body) if body.get("status") == "unhealthy" else None
    st, body = wait_for(unhealthy, timeout=15, interval=0.2, what="/health unhealthy")
    assert st == 503
    assert any("5 waiting, over health.max_waiting 3" in r for r in body["reasons"]), body


# ---- auth, limits ----------------------------------------------------------------


def test_auth_roles(served):
    d, api = served
    path = "/api/v1/queues/%s" % Q
    st, _, body = api.get(path, token=None)
    assert st == 401 and body["error"] == "a bearer token is required"
    st, _, body = api.get(path, token="not-a-token")
    assert st == 401 and body["error"] == "invalid token"
    st, _, body = api.call("GET", path, headers={"Authorization": "Basic " + READ})
    assert st == 401
    # A prefix of a real token is no token.
    assert api.get(path, token=READ[:-1])[0] == 401
    assert api.get(path, token=READ)[0] == 200
    assert api.get(path, token=ADMIN)[0] == 200
    for method, p in (("POST", path + "/pause"), ("POST", path + "/resume"),
                      ("POST", path + "/jobs"), ("POST", path + "/clean"),
                      ("DELETE", path + "/jobs/1"), ("POST", path + "/jobs/1/retry")):
        st, _, body = api.call(method, p, body={}, token=READ)
        assert st == 403, (method, p, body)
        st, _, body = api.call(method, p, body={}, token=None)
        assert st == 401, (method, p, body)
    # Tokens never reach the log.
    text = d.log_text()
    assert ADMIN not in text and READ not in text and "not-a-token" not in text


def test_rate_limit_per_token(daemon_factory, redis_server):
    d, api = start(daemon_factory, redis_server, {Q: 1},
                   http_extra="  rate_limit: {max: 3, duration: 1m}\n")
    path = "/api/v1/queues/%s" % Q
    for _ in range(3):
        assert api.get(path, token=READ)[0] == 200
    st, hdrs, body = api.get(path, token=READ)
    assert st == 429, body
    assert 1 <= int(hdrs["Retry-After"]) <= 60
    assert "rate limit" in body["error"]
    # Per token: the admin token has its own window; /health counts nowhere.
    assert api.get(path, token=ADMIN)[0] == 200
    assert api.get("/health", token=None)[0] == 200


def test_oversized_body_is_413_and_nothing_enqueued(daemon_factory, redis_server):
    d, api = start(daemon_factory, redis_server, {Q: 1}, http_extra="  max_body: 2048\n")
    big = {"name": "big", "data": {"blob": "x" * 4096}}
    st, _, body = api.post("/api/v1/queues/%s/jobs" % Q, big)
    assert st == 413 and "2048" in body["error"]
    assert redis_server.client().get("bull:%s:id" % Q) is None
    ok = {"name": "small", "data": {"blob": "x" * 1000}}
    assert api.post("/api/v1/queues/%s/jobs" % Q, ok)[0] == 201


def test_unknown_routes_and_methods(served):
    d, api = served
    st, _, body = api.get("/api/v1/nothing")
    assert st == 404 and body["error"] == "no such route"
    st, _, body = api.call("PUT", "/api/v1/queues/%s" % Q, token=ADMIN)
    assert st == 405 and "GET" in body["error"]


# ---- queues --------------------------------------------------------------------


def test_queues_list_and_get(served):
    d, api = served
    st, _, body = api.get("/api/v1/queues")
    assert st == 200
    names = [q["name"] for q in body["queues"]]
    assert names == [Q, "other"]
    st, _, q = api.get("/api/v1/queues/%s" % Q)
    assert st == 200
    assert q["handler"] == "noop" and q["processes"] == 2 and q["paused"] is False
    assert set(q["counts"]) >= {"waiting", "active", "delayed", "completed", "failed"}
    pids = sorted(w["pid"] for w in q["workers"])
    assert pids == sorted(w["pid"] for w in d.workers(Q))
    st, _, body = api.get("/api/v1/queues/nope")
    assert st == 404 and "nope" in body["error"]


def test_pause_and_resume(served, redis_server):
    d, api = served
    r = redis_server.client()
    st, _, body = api.post("/api/v1/queues/%s/pause" % Q)
    assert st == 200 and body == {"queue": Q, "paused": True, "changed": True}
    assert r.hget("bull:%s:meta" % Q, "paused") == b"1"
    assert api.get("/api/v1/queues/%s" % Q)[2]["paused"] is True
    st, _, body = api.post("/api/v1/queues/%s/pause" % Q)
    assert body["changed"] is False
    st, _, body = api.post("/api/v1/queues/%s/resume" % Q)
    assert st == 200 and body["paused"] is False and body["changed"] is True
    assert r.hget("bull:%s:meta" % Q, "paused") is None
    assert api.post("/api/v1/queues/nope/pause")[0] == 404


# ---- jobs ----------------------------------------------------------------------


def test_enqueue_and_get_a_job(served):
    d, api = served
    st, _, body = api.post("/api/v1/queues/%s/jobs" % Q,
                           {"name": "welcome", "data": {"to": "a@example.org"},
                            "opts": {"attempts": 3, "priority": 2,
                                     "backoff": {"type": "exponential", "delay": 100}}})
    assert st == 201, body
    jid = body["id"]
    assert list(body) == ["id"]
    wait_for(lambda: job_state(api, jid) == "completed", timeout=10, what="job completed")
    st, _, job = api.get("/api/v1/queues/%s/jobs/%s" % (Q, jid))
    assert job["name"] == "welcome" and job["data"] == {"to": "a@example.org"}
    assert job["opts"]["attempts"] == 3
    assert job["returnvalue"] == {"ok": True}
    assert job["attemptsMade"] == 1
    st, _, body = api.get("/api/v1/queues/%s/jobs/999999" % Q)
    assert st == 404, body
    assert api.get("/api/v1/queues/nope/jobs/%s" % jid)[0] == 404


def test_idempotency_key_enqueues_once(served, redis_server):
    d, api = served
    h = {"Idempotency-Key": "order-42-welcome"}
    st, _, a = api.post("/api/v1/queues/%s/jobs" % Q, {"name": "w"}, headers=h)
    assert st == 201 and a["id"] == "order-42-welcome"
    st, _, b = api.post("/api/v1/queues/%s/jobs" % Q, {"name": "w"}, headers=h)
    assert st == 200 and b == {"id": "order-42-welcome", "status": "duplicated"}
    # One job in the queue, whatever its state.
    counts = api.get("/api/v1/queues/%s" % Q)[2]["counts"]
    assert sum(counts.values()) == 1, counts
    assert redis_server.client().exists("bull:%s:order-42-welcome" % Q)
    st, _, body = api.post("/api/v1/queues/%s/jobs" % Q, {"name": "w", "opts": {"jobId": "x"}},
                           headers=h)
    assert st == 400 and body["field"] == "Idempotency-Key"


@pytest.mark.parametrize("payload,field", [
    ({"data": {}}, "name"),
    ({"name": 7}, "name"),
    ({"name": ""}, "name"),
    ({"name": "n", "data": [1, 2]}, "data"),
    ({"name": "n", "data": "text"}, "data"),
    ({"name": "n", "opts": []}, "opts"),
    ({"name": "n", "opts": {"attempts": "3"}}, "opts.attempts"),
    ({"name": "n", "opts": {"attempts": 0}}, "opts.attempts"),
    ({"name": "n", "opts": {"delay": -1}}, "opts.delay"),
    ({"name": "n", "opts": {"priority": 1.5}}, "opts.priority"),
    ({"name": "n", "opts": {"lifo": "yes"}}, "opts.lifo"),
    ({"name": "n", "opts": {"backoff": {"type": "linear"}}}, "opts.backoff.type"),
    ({"name": "n", "opts": {"removeOnComplete": "x"}}, "opts.removeOnComplete"),
    ({"name": "n", "opts": {"repeat": {}}}, "opts.repeat"),
    ({"name": "n", "extra": 1}, "extra"),
    ({"name": "n", "opts": {"jobId": "123"}}, "opts.jobId"),
])
def test_bad_job_bodies_are_400_naming_the_field(served, redis_server, payload, field):
    d, api = served
    st, _, body = api.post("/api/v1/queues/%s/jobs" % Q, payload)
    assert st == 400, body
    assert body["field"] == field, body
    assert redis_server.client().get("bull:%s:id" % Q) is None


@pytest.mark.parametrize("raw,why", [
    (b'{"name": ', "malformed JSON"),
    (b'[1, 2]', "must be a JSON object"),
    (b'{"name": "a", "name": "b"}', "malformed JSON"),
    (b'', "body is required"),
    (b'\xff\xfe', "malformed JSON"),
])
def test_malformed_json_is_400(served, redis_server, raw, why):
    d, api = served
    st, _, body = api.call("POST", "/api/v1/queues/%s/jobs" % Q, raw=raw, token=ADMIN)
    assert st == 400, body
    assert why in body["error"]
    assert redis_server.client().get("bull:%s:id" % Q) is None


def test_failed_jobs_list_retry_delete_and_clean(served, redis_server):
    d, api = served
    ids = []
    for i in range(3):
        st, _, body = api.post("/api/v1/queues/%s/jobs" % Q,
                               {"name": "bad%d" % i, "data": {"fail": "permanent"}})
        assert st == 201
        ids.append(body["id"])
    for jid in ids:
        wait_for(lambda: job_state(api, jid) == "failed", timeout=10, what="job failed")
    st, _, body = api.get("/api/v1/queues/%s/jobs?state=failed" % Q)
    assert st == 200
    assert sorted(j["id"] for j in body["jobs"]) == sorted(ids)
    assert all(j["failedReason"] for j in body["jobs"])
    st, _, body = api.get("/api/v1/queues/%s/jobs?state=failed&start=0&end=0" % Q)
    assert len(body["jobs"]) == 1
    for q, f in (("state=waiting", "state"), ("start=x", "start"), ("start=5&end=2", "end"),
                 ("end=-1", "end")):
        st, _, body = api.get("/api/v1/queues/%s/jobs?%s" % (Q, q))
        assert st == 400 and body["field"] == f, (q, body)
    # retry: back to wait (then it fails again, the data says so)
    first = api.get("/api/v1/queues/%s/jobs/%s" % (Q, ids[0]))[2]["finishedOn"]
    st, _, body = api.post("/api/v1/queues/%s/jobs/%s/retry" % (Q, ids[0]))
    assert st == 200 and body["id"] == ids[0]
    wait_for(lambda: (lambda j: j["state"] == "failed" and j["finishedOn"] != first)(
        api.get("/api/v1/queues/%s/jobs/%s" % (Q, ids[0]))[2]),
             timeout=10, what="retried job failed again")
    st, _, good = api.post("/api/v1/queues/%s/jobs" % Q, {"name": "good"})
    wait_for(lambda: job_state(api, good["id"]) == "completed", timeout=10, what="completed")
    st, _, body = api.post("/api/v1/queues/%s/jobs/%s/retry" % (Q, good["id"]))
    assert st == 409, body
    st, _, body = api.post("/api/v1/queues/%s/jobs/999999/retry" % Q)
    assert st == 404
    # delete
    st, _, body = api.call("DELETE", "/api/v1/queues/%s/jobs/%s" % (Q, ids[1]), token=ADMIN)
    assert st == 200 and body == {"id": ids[1], "removed": True}
    assert api.get("/api/v1/queues/%s/jobs/%s" % (Q, ids[1]))[0] == 404
    assert api.call("DELETE", "/api/v1/queues/%s/jobs/%s" % (Q, ids[1]), token=ADMIN)[0] == 404
    # clean
    for bad, f in (({}, "state"), ({"state": 3}, "state"), ({"state": "failed", "grace": "1"},
                                                              "grace"),
                   ({"state": "bogus"}, "state"), ({"state": "failed", "x": 1}, "x")):
        st, _, body = api.post("/api/v1/queues/%s/clean" % Q, bad)
        assert st == 400 and body.get("field") == f, (bad, body)
    st, _, body = api.post("/api/v1/queues/%s/clean" % Q, {"state": "failed", "grace": 0})
    assert st == 200 and body == {"removed": 2}, body
    assert redis_server.client().zcard("bull:%s:failed" % Q) == 0
    assert api.post("/api/v1/queues/nope/clean", {"state": "failed"})[0] == 404


# ---- metrics -------------------------------------------------------------------


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name:
            got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
            if got == want:
                return float(m.group(3))
    return None


def test_metrics_agree_with_redis_and_pass_promtool(daemon_factory, redis_server):
    d, api = start(daemon_factory, redis_server, http_extra="  rate_limit: {max: 0}\n")
    n_ok, n_bad, n_later, n_now = 1000, 50, 5, 3
    for i in range(n_ok):
        assert api.post("/api/v1/queues/%s/jobs" % Q, {"name": "ok%d" % i})[0] == 201
    for i in range(n_bad):
        assert api.post("/api/v1/queues/%s/jobs" % Q,
                        {"name": "bad%d" % i, "data": {"fail": "permanent"}})[0] == 201
    # Two attempts each: the first retried after a backoff (delayed) or at
    # once (retried), the second failed.
    for i in range(n_later):
        assert api.post("/api/v1/queues/%s/jobs" % Q,
                        {"name": "later%d" % i, "data": {"fail": "retryable"},
                         "opts": {"attempts": 2, "backoff": 50}})[0] == 201
    for i in range(n_now):
        assert api.post("/api/v1/queues/%s/jobs" % Q,
                        {"name": "now%d" % i, "data": {"fail": "retryable"},
                         "opts": {"attempts": 2, "backoff": 0}})[0] == 201
    n_failed = n_bad + n_later + n_now
    r = redis_server.client()

    def settled():
        st, hdrs, text = api.get("/metrics", token=None)
        got = [metric(text, "notifyq_jobs_finished_total", queue=Q, outcome=o)
               for o in ("completed", "failed", "retried", "delayed")]
        got.append(metric(text, "notifyq_jobs", queue=Q, state="completed"))
        got.append(metric(text, "notifyq_jobs", queue=Q, state="failed"))
        want = [n_ok, n_failed, n_now, n_later, n_ok, n_failed]
        return (st, hdrs, text) if got == want else None
    st, hdrs, text = wait_for(settled, timeout=20, interval=0.2, what="metrics settled")
    assert st == 200
    assert hdrs["Content-Type"].startswith("text/plain; version=0.0.4")
    # The gauges are what BullMQ's getJobCounts() reads: the sets in Redis.
    assert metric(text, "notifyq_jobs", queue=Q, state="completed") == r.zcard(
        "bull:%s:completed" % Q)
    assert metric(text, "notifyq_jobs", queue=Q, state="failed") == r.zcard("bull:%s:failed" % Q)
    assert metric(text, "notifyq_jobs", queue=Q, state="waiting") == r.llen("bull:%s:wait" % Q)
    attempts = n_ok + n_bad + 2 * (n_later + n_now)
    assert metric(text, "notifyq_job_duration_seconds_count", queue=Q) == attempts
    assert metric(text, "notifyq_job_duration_seconds_bucket", queue=Q, le="+Inf") == attempts
    assert metric(text, "notifyq_jobs_fetched_total", queue=Q) == attempts
    assert metric(text, "notifyq_worker_restarts_total", queue=Q) == 0
    assert metric(text, "notifyq_workers", queue=Q, state="running") == 2
    assert metric(text, "notifyq_jobs_in_flight", queue="other") == 0
    http_pid = d.status()["http"]["pid"]
    assert metric(text, "notifyq_process_resident_memory_bytes", child="http") > 0
    assert metric(text, "notifyq_process_resident_memory_bytes", child="%s/0" % Q) > 0
    assert metric(text, "notifyq_process_cpu_seconds_total", child="%s/0" % Q) > 0
    assert metric(text, "notifyq_process_cpu_seconds_total", child="http") is not None
    # The master's own view agrees (notifyqctl status --json).
    c = d.queue(Q)["counters"]
    assert (c["completed"], c["failed"], c["retried"], c["delayed"]) == (
        n_ok, n_failed, n_later + n_now, n_later)
    assert http_pid
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool missing: scripts/setup installs Debian's prometheus")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr


def test_metrics_auth_when_asked(daemon_factory, redis_server):
    d, api = start(daemon_factory, redis_server, {Q: 1}, http_extra="  metrics_auth: true\n")
    assert api.get("/metrics", token=None)[0] == 401
    st, _, text = api.get("/metrics", token=READ)
    assert st == 200 and "notifyq_jobs_finished_total" in text


# ---- config and TLS ----------------------------------------------------------------


def test_bad_http_config_is_refused_with_its_place(tmp_path, redis_server):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("redis:\n  socket: %s\nhttp:\n  tokens:\n    - {role: root, file: /x}\n"
                   "queues:\n  a:\n    handler: noop\n" % redis_server.socket)
    p = subprocess.run([str(NOTIFYQD), "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 1
    assert "bad.yaml:5:14: http.tokens[0].role: must be one of read, admin" in p.stderr, p.stderr


def test_tls(daemon_factory, redis_server, tmp_path):
    key, crt = tmp_path / "http.key", tmp_path / "http.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    clear_queue(redis_server, Q)
    port = free_port()
    d = daemon_factory({Q: 1})
    d.write_config({Q: 1}, extra=http_section(
        d.tmp, port, "  tls: {cert_file: %s, key_file: %s}\n" % (crt, key)))
    d.start()
    d.wait_ready()
    ctx = ssl.create_default_context(cafile=str(crt))
    api = Api(port, "https", ctx)
    wait_for(lambda: http_ready(d, api), timeout=10, what="https serving")
    st, _, body = api.get("/api/v1/queues/%s" % Q, token=READ)
    assert st == 200 and body["name"] == Q
    # Plain HTTP to the TLS port gets no API answer.
    with pytest.raises((OSError, urllib.error.URLError, http_client_errors())):
        Api(port).get("/health/live", token=None)


def http_client_errors():
    import http.client
    return http.client.HTTPException


def test_slow_client_is_timed_out(daemon_factory, redis_server):
    d, api = start(daemon_factory, redis_server, {Q: 1}, http_extra="  timeout: 1s\n")
    port = int(api.base.rsplit(":", 1)[1])
    # The socket's own timeout is only a backstop: the server closes first.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        data = s.recv(4096)
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), data
    assert api.get("/health/live", token=None)[0] == 200


def test_a_bad_payload_is_refused_by_the_queues_handler_before_it_is_written(
        daemon_factory, redis_server, tmp_path):
    queues = {"mail": {"handler": "email", "processes": 1,
                       "provider": "{type: file, spool_dir: %s}" % (tmp_path / "spool")}}
    d, api = start(daemon_factory, redis_server, queues)
    r = redis_server.client()
    st, _, body = api.post("/api/v1/queues/mail/jobs", {"name": "welcome",
                                                        "data": {"subject": "Hi", "text": "x"}})
    assert st == 400, body
    assert body["field"] == "data.to" and "required" in body["error"], body
    st, _, body = api.post("/api/v1/queues/mail/jobs", {"name": "welcome", "data": {
        "to": "not an address", "subject": "Hi", "text": "x"}})
    assert st == 400 and body["field"].startswith("data.to"), body
    assert r.get("bull:mail:id") is None and r.llen("bull:mail:wait") == 0
    st, _, body = api.post("/api/v1/queues/mail/jobs", {"name": "welcome", "data": {
        "to": "a@example.org", "subject": "Hi", "text": "hello"}})
    assert st == 201, body
    wait_for(lambda: job_state(api, body["id"], "mail") == "completed", timeout=10,
             what="mail sent to the spool")
