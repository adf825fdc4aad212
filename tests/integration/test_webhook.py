# SPDX-License-Identifier: MIT
"""The webhook handler end to end: real notifyqd workers POST jobs to a
receiver this file runs (python's http.server on 127.0.0.1, a free port),
which checks every request the way a Standard Webhooks receiver does
(signature over id.timestamp.body with the decoded whsec_ key, timestamp
within 5 minutes, constant-time compare) and answers from a per-test script:
2xx, 500, 429 with Retry-After in both forms, 410, a stall past the client's
timeout, and held replies to see requests in flight together."""
import base64
import email.utils
import hashlib
import hmac
import http.server
import json
import subprocess
import threading
import time

import pytest

from conftest import NOTIFYQD, wait_for
from test_worker_jobs import Jobs, wait_all_done

# The spec's test vector secret (PROVIDERS.md section 12).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[len("whsec_"):])


def verify(headers, body):
    """What a Standard Webhooks receiver checks; returns a reason or None."""
    wid = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not (wid and ts and sigs):
        return "missing header"
    if abs(int(ts) - time.time()) > 300:
        return "timestamp out of tolerance"
    mac = hmac.new(KEY, b"%s.%s.%s" % (wid.encode(), ts.encode(), body), hashlib.sha256)
    want = base64.b64encode(mac.digest()).decode()
    for s in sigs.split(" "):
        version, _, sig = s.partition(",")
        if version == "v1" and hmac.compare_digest(sig, want):
            return None
    return "bad signature"


class Receiver:
    """A webhook endpoint. `script(n, req)` decides the reply to the n-th
    request (0-based): (status, headers) or "stall" (hold the connection
    until the test ends). Requests are recorded with their verification."""

    def __init__(self, script=None):
        self.script = script or (lambda n, req: (200, {}))
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body, "t": time.monotonic()}
                req["problem"] = verify(req["headers"], body)
                with recv.lock:
                    n = len(recv.requests)
                    recv.requests.append(req)
                    recv.in_flight += 1
                    recv.max_in_flight = max(recv.max_in_flight, recv.in_flight)
                try:
                    reply = recv.script(n, req)
                    if reply == "stall":
                        recv.release.wait(30)
                        self.close_connection = True
                        return
                    status, headers = reply
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                finally:
                    with recv.lock:
                        recv.in_flight -= 1

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hooks/notifyq" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_in_flight(self, n, timeout=20):
        """Blocks a handler until n requests are being handled at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.release.is_set():
            with self.lock:
                if self.in_flight >= n:
                    return True
            time.sleep(0.01)
        return False

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(script=None):
        r = Receiver(script)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


def start(daemon_factory, jobs, url, timeout="30s", **keys):
    webhook = "{url: '%s', secret: %s, timeout: %s}" % (url, SECRET, timeout)
    d = daemon_factory({jobs.name: {"handler": "webhook", "bullmq_queue": jobs.name,
                                    "webhook": webhook, **keys}})
    d.start()
    d.wait_ready(timeout=10)
    return d


def event_names(jobs, jid):
    return [e["event"] for e in jobs.events(jid)]


# -- requests -------------------------------------------------------------------------


def test_a_job_is_posted_signed_and_completes(daemon_factory, jobs, receiver):
    recv = receiver(lambda n, req: (204, {}))
    start(daemon_factory, jobs, recv.url)
    [jid] = jobs.add({"orderId": 7, "items": ["a", "b"]}, name="order.paid")
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}, h.get("failedReason")
    [req] = recv.requests
    assert req["problem"] is None
    assert req["path"] == "/hooks/notifyq"
    assert req["headers"]["content-type"] == "application/json"
    wid = req["headers"]["webhook-id"]
    assert wid.startswith("msg_") and "." not in wid and len(wid) == 36
    env = json.loads(req["body"])
    assert env["type"] == "order.paid"
    assert env["data"] == {"orderId": 7, "items": ["a", "b"]}
    # The job's creation time, as JavaScript's toISOString() writes it.
    ts = int(h["timestamp"])
    assert env["timestamp"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts // 1000)) + \
        ".%03dZ" % (ts % 1000)
    assert json.loads(h["returnvalue"]) == {"ok": True, "provider": "webhook",
                                            "messageId": wid, "status": 204}


def test_500_is_retried_then_sent_with_the_same_webhook_id(daemon_factory, jobs, receiver):
    recv = receiver(lambda n, req: (500, {}) if n == 0 else (200, {}))
    start(daemon_factory, jobs, recv.url)
    [jid] = jobs.add({"x": 1}, {"attempts": 3, "backoff": {"type": "fixed", "delay": 100}})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}
    assert h["atm"] == "2"
    assert json.loads(h["stacktrace"]) == ["webhook: HTTP 500"]
    a, b = recv.requests
    assert a["problem"] is None and b["problem"] is None
    assert a["headers"]["webhook-id"] == b["headers"]["webhook-id"]
    assert json.loads(h["returnvalue"])["status"] == 200


def test_429_with_retry_after_delays_without_spending_an_attempt(daemon_factory, jobs,
                                                                 receiver):
    def script(n, req):
        if n == 0:
            return 429, {"Retry-After": "1"}
        if n == 1:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return 429, {"Retry-After": when}
        return 200, {}

    recv = receiver(script)
    start(daemon_factory, jobs, recv.url)
    # One attempt only: had a 429 spent it, the job would have failed.
    [jid] = jobs.add({"x": 1}, {"attempts": 1})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}, h.get("failedReason")
    assert h["atm"] == "1"
    assert event_names(jobs, jid).count("delayed") == 2
    first, second, third = recv.requests
    # Retry-After is a lower bound on the wait: 1 s, then an HTTP-date >= 1 s away.
    assert second["t"] - first["t"] >= 0.9
    assert third["t"] - second["t"] >= 0.9
    assert len({r["headers"]["webhook-id"] for r in recv.requests}) == 1


def test_a_stall_past_the_timeout_is_an_unknown_retry_and_counted(daemon_factory, jobs,
                                                                  receiver):
    recv = receiver(lambda n, req: "stall" if n == 0 else (200, {}))
    start(daemon_factory, jobs, recv.url, timeout="500ms")
    [jid] = jobs.add({"x": 1}, {"attempts": 3, "backoff": {"type": "fixed", "delay": 100}})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}
    assert h["atm"] == "2"
    [reason] = json.loads(h["stacktrace"])
    assert reason == "webhook: timeout after the request was sent (possible duplicate)"
    rv = json.loads(h["returnvalue"])
    assert rv["unknownAttempts"] == 1
    a, b = recv.requests
    assert a["headers"]["webhook-id"] == b["headers"]["webhook-id"]


def test_a_stall_on_the_last_attempt_fails_saying_possible_duplicate(daemon_factory, jobs,
                                                                     receiver):
    recv = receiver(lambda n, req: "stall")
    start(daemon_factory, jobs, recv.url, timeout="300ms")
    [jid] = jobs.add({"x": 1}, {"attempts": 1})
    wait_all_done(jobs, 1)
    assert jobs.job(jid)["failedReason"] == \
        "webhook: timeout after the request was sent (possible duplicate)"
    assert len(recv.requests) == 1


def test_410_and_other_4xx_fail_at_once_with_a_reason(daemon_factory, jobs, receiver):
    recv = receiver(lambda n, req: (410, {}) if json.loads(req["body"])["data"]["k"] == "gone"
                    else (422, {}))
    start(daemon_factory, jobs, recv.url)
    [gone] = jobs.add({"k": "gone"}, {"attempts": 5})
    [bad] = jobs.add({"k": "bad"}, {"attempts": 5})
    wait_all_done(jobs, 2)
    g, b = jobs.job(gone), jobs.job(bad)
    assert jobs.ids("failed") == {gone, bad}
    assert g["failedReason"] == "webhook: HTTP 410 Gone (the endpoint is gone: fix or remove it)"
    assert b["failedReason"] == "webhook: HTTP 422"
    assert g["atm"] == "1" and b["atm"] == "1"
    assert len(recv.requests) == 2


def test_a_refused_connection_is_retried_as_nothing_sent(daemon_factory, jobs):
    # A port nobody listens on: bind one, note it, close it.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    start(daemon_factory, jobs, "http://127.0.0.1:%d/" % port)
    [jid] = jobs.add({"x": 1}, {"attempts": 2, "backoff": {"type": "fixed", "delay": 50}})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert h["atm"] == "2"
    assert h["failedReason"].startswith("webhook: ") and "(nothing sent)" in h["failedReason"]
    assert "possible duplicate" not in h["stacktrace"]


def test_one_worker_keeps_many_requests_in_flight(daemon_factory, jobs, receiver):
    n = 12

    def script(i, req):
        # Nobody is answered before n requests are in at once: only a worker
        # running them concurrently gets any reply at all.
        recv.wait_in_flight(n)
        return 200, {}

    recv = receiver(script)
    d = start(daemon_factory, jobs, recv.url, processes=1, concurrency=n)
    jobs.add({"x": 1}, n=n)
    wait_all_done(jobs, n)
    assert jobs.count("completed") == n
    assert recv.max_in_flight == n
    assert len(d.workers(jobs.name)) == 1
    assert all(r["problem"] is None for r in recv.requests)
    assert len({r["headers"]["webhook-id"] for r in recv.requests}) == n


def test_drain_cancels_requests_in_flight_and_returns_the_jobs(daemon_factory, jobs, receiver):
    recv = receiver(lambda n, req: "stall")
    d = start(daemon_factory, jobs, recv.url, concurrency=3)
    ids = jobs.add({"x": 1}, {"attempts": 2}, n=3)
    wait_for(lambda: len(recv.requests) == 3, timeout=20, what="3 requests in")
    assert d.stop() == 0  # drain_timeout 2s passes with the three stalled
    d.proc = None
    # Returned to wait, no attempt spent, nothing failed.
    assert jobs.count("wait") == 3 and jobs.count("failed") == 0
    assert all(jobs.job(i).get("atm", "0") == "0" for i in ids)


# -- configuration ------------------------------------------------------------------


def check_config(tmp_path, text):
    p = tmp_path / "notifyq.yaml"
    p.write_text(text)
    return subprocess.run([str(NOTIFYQD), "-t", "-c", str(p)], capture_output=True, text=True,
                          timeout=10)


@pytest.mark.parametrize("webhook,want", [
    ("{url: 'http://h/'}", ":4:14: queues.hooks.webhook.secret: required key is missing"),
    ("{url: 'http://h/', secret: whsec_abc, tls: 1}",
     ":4:52: queues.hooks.webhook.tls: unknown key"),
    ("{url: 'http://h/', secret_file: /nonexistent/s}", "queues.hooks.webhook.secret_file"),
])
def test_bad_webhook_config_is_refused_naming_the_key(tmp_path, webhook, want):
    r = check_config(tmp_path, "queues:\n  hooks:\n    handler: webhook\n    webhook: %s\n"
                     % webhook)
    assert r.returncode == 1
    assert want in r.stdout + r.stderr
