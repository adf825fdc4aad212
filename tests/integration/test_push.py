# SPDX-License-Identifier: MIT
"""The push providers end to end: real notifyqd workers deliver push jobs
through fcm and apns to the mocks of push_mocks.py, which check requests as
the real APIs do. For each reply: the job ends sent, delayed without an
attempt, retried, or failed with the provider's reason; dead tokens are in
the result; credentials never reach the log."""
import json
import subprocess
import time

import pytest

from conftest import NOTIFYQD
from push_mocks import FcmMock, fcm_error, service_account
from test_worker_jobs import Jobs, wait_all_done

RETRY = {"attempts": 3, "backoff": {"type": "fixed", "delay": 100}}


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


@pytest.fixture
def mocks():
    made = []
    yield made
    for m in made:
        m.stop()


def rv(jobs, jid):
    h = jobs.job(jid)
    assert h.get("returnvalue"), h.get("failedReason")
    return json.loads(h["returnvalue"])


def start(daemon_factory, jobs, provider, concurrency=1):
    d = daemon_factory({jobs.name: {"handler": "push", "bullmq_queue": jobs.name,
                                    "concurrency": concurrency, "provider": provider}})
    d.start()
    d.wait_ready(timeout=10)
    return d


# -- fcm ------------------------------------------------------------------------------


class Fcm:
    def __init__(self, tmp_path, mocks, script=None, expires_in=3599, timeout="10s"):
        self.sa = tmp_path / "service-account.json"
        self.mock = FcmMock(script=script, expires_in=expires_in)
        mocks.append(self.mock)
        self.mock.public_key, self.pem = service_account(self.sa, self.mock.token_url)
        self.provider = "{type: fcm, service_account_file: '%s', base_url: '%s', timeout: %s}" % (
            self.sa, self.mock.base_url, timeout)


def fcm_script(table):
    holder = {}

    def script(kind, n, req):
        if kind != "send":
            return None
        tok = req["message"]["token"]
        seen = holder.setdefault(tok, 0)
        holder[tok] = seen + 1
        replies = table.get(tok)
        if not replies:
            return None
        return replies[min(seen, len(replies) - 1)]
    return script


def test_fcm_sends_one_request_per_token_with_a_verified_oauth_token(daemon_factory, jobs,
                                                                     tmp_path, mocks):
    f = Fcm(tmp_path, mocks, fcm_script({
        "tok-gone": [fcm_error(404, "NOT_FOUND", "Requested entity was not found.",
                               "UNREGISTERED")],
        "tok-other": [fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch",
                                "SENDER_ID_MISMATCH")]}))
    d = start(daemon_factory, jobs, f.provider)
    [jid] = jobs.add({"tokens": ["tok-a", "tok-b", "tok-gone", "tok-other"],
                      "title": "New message", "body": "Bob: hi",
                      "data": {"chat_id": "17", "unread": 3},
                      "android": {"priority": "HIGH", "collapse_key": "chat-17"},
                      "apns": {"headers": {"apns-priority": "10"},
                               "payload": {"aps": {"badge": 3}}}}, RETRY)
    wait_all_done(jobs, 1)
    out = rv(jobs, jid)
    [tok] = f.mock.of("token")
    assert tok["problem"] is None
    assert tok["claims"]["iss"] == "notifyq@demo-proj.iam.gserviceaccount.com"
    sends = f.mock.of("send")
    assert len(sends) == 4 and all(s["problem"] is None for s in sends)
    assert {s["path"] for s in sends} == {"/v1/projects/demo-proj/messages:send"}
    m = next(s["message"] for s in sends if s["message"]["token"] == "tok-a")
    assert m == {"token": "tok-a", "notification": {"title": "New message", "body": "Bob: hi"},
                 "data": {"chat_id": "17", "unread": "3"},
                 "android": {"priority": "HIGH", "collapse_key": "chat-17"},
                 "apns": {"headers": {"apns-priority": "10"}, "payload": {"aps": {"badge": 3}}}}
    assert out["ok"] is True and out["provider"] == "fcm"
    r = {x["to"]: x for x in out["recipients"]}
    assert r["tok-a"]["status"] == "sent" and r["tok-a"]["id"].startswith("projects/demo-proj/")
    assert r["tok-b"]["status"] == "sent" and r["tok-b"]["reason"] is None
    assert r["tok-gone"]["status"] == "dead" and "UNREGISTERED" in r["tok-gone"]["reason"]
    assert r["tok-other"]["status"] == "dead" and "SENDER_ID_MISMATCH" in r["tok-other"]["reason"]
    assert out["messageId"] in (r["tok-a"]["id"], r["tok-b"]["id"])
    assert jobs.job(jid)["atm"] == "1"
    log = d.log_text()
    assert "ya29." not in log and "PRIVATE KEY" not in log


def test_fcm_access_token_is_cached_and_a_401_refreshes_it_once(daemon_factory, jobs, tmp_path,
                                                                mocks):
    def script(kind, n, req):
        # The first send's token is refused as a revoked one would be.
        if kind == "send" and n == 0:
            return fcm_error(401, "UNAUTHENTICATED",
                             "Request had invalid authentication credentials.")
        return None

    f = Fcm(tmp_path, mocks, script)
    start(daemon_factory, jobs, f.provider)
    [a] = jobs.add({"token": "tok-1", "body": "one"}, {"attempts": 1})
    wait_all_done(jobs, 1)
    [b] = jobs.add({"token": "tok-2", "body": "two"}, {"attempts": 1})
    wait_all_done(jobs, 2)
    assert rv(jobs, a)["recipients"][0]["status"] == "sent"
    assert rv(jobs, b)["recipients"][0]["status"] == "sent"
    # one token at the start, one after the 401, none for the second job
    assert len(f.mock.of("token")) == 2
    assert [s["headers"]["authorization"] for s in f.mock.of("send")] == [
        "Bearer ya29.c.mock0", "Bearer ya29.c.mock1", "Bearer ya29.c.mock1"]


def test_fcm_access_token_is_refreshed_before_it_expires(daemon_factory, jobs, tmp_path, mocks):
    f = Fcm(tmp_path, mocks, expires_in=2)
    start(daemon_factory, jobs, f.provider)
    [a] = jobs.add({"token": "tok-1", "body": "one"}, {"attempts": 1})
    wait_all_done(jobs, 1)
    time.sleep(2.2)  # past the token's life: the next send must not use it
    [b] = jobs.add({"token": "tok-2", "body": "two"}, {"attempts": 1})
    wait_all_done(jobs, 2)
    assert jobs.ids("completed") == {a, b}
    assert len(f.mock.of("token")) == 2
    assert all(s["problem"] is None for s in f.mock.of("send"))


def test_fcm_rate_retry_unknown_and_permanent(daemon_factory, jobs, tmp_path, mocks):
    ok = (200, {"Content-Type": "application/json"}, '{"name":"projects/demo-proj/messages/9"}')
    f = Fcm(tmp_path, mocks, fcm_script({
        "quota": [fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED")[:1]
                  + ({"Retry-After": "1", "Content-Type": "application/json"},
                     fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded",
                               "QUOTA_EXCEEDED")[2]), ok],
        "busy": [fcm_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL"), ok],
        "bad": [fcm_error(400, "INVALID_ARGUMENT", "Invalid android.ttl", "INVALID_ARGUMENT")],
        # curl resends once by itself when a reused connection dies: two resets
        "reset": ["reset", "reset", ok],
        "stall": ["stall", ok]}), timeout="1s")
    start(daemon_factory, jobs, f.provider, concurrency=5)
    [quota] = jobs.add({"token": "quota", "body": "x"}, {"attempts": 1})
    [busy, bad, reset, stall] = [jobs.add({"token": t, "body": "x"}, RETRY)[0]
                                 for t in ("busy", "bad", "reset", "stall")]
    wait_all_done(jobs, 5)
    assert jobs.ids("completed") == {quota, busy, reset, stall}
    assert jobs.ids("failed") == {bad}
    q = jobs.job(quota)
    assert q["atm"] == "1"  # the 429 spent no attempt
    assert [e["event"] for e in jobs.events(quota)].count("delayed") == 1
    assert jobs.job(busy)["atm"] == "2"
    assert json.loads(jobs.job(busy)["stacktrace"]) == [
        "fcm: HTTP 500 INTERNAL: Internal error encountered."]
    b = jobs.job(bad)
    assert b["atm"] == "1"
    assert b["failedReason"] == "fcm: HTTP 400 INVALID_ARGUMENT: Invalid android.ttl"
    for jid in (reset, stall):
        h = jobs.job(jid)
        assert h["atm"] in ("2", "3"), h.get("stacktrace")
        assert "possible duplicate" in json.loads(h["stacktrace"])[0]
        assert rv(jobs, jid)["unknownAttempts"] >= 1


def test_fcm_oversized_payload_fails_before_any_request(daemon_factory, jobs, tmp_path, mocks):
    f = Fcm(tmp_path, mocks)
    start(daemon_factory, jobs, f.provider)
    [jid] = jobs.add({"token": "tok-1", "body": "x", "data": {"blob": "y" * 5000}}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid} and h["atm"] == "1"
    assert h["failedReason"].startswith("fcm: payload: ")
    assert "over FCM's limit of 4096" in h["failedReason"]
    assert f.mock.of("send") == []


def test_fcm_refused_credentials_fail_the_job_and_alert(daemon_factory, jobs, tmp_path, mocks):
    f = Fcm(tmp_path, mocks)
    # Another key than the one the mock verifies with: Google's invalid_grant.
    f.mock.public_key, _ = service_account(tmp_path / "other.json", f.mock.token_url)
    d = start(daemon_factory, jobs, f.provider)
    [jid] = jobs.add({"tokens": ["tok-1", "tok-2"], "body": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid} and h["atm"] == "1"
    assert "invalid_grant" in h["failedReason"]
    assert "Invalid JWT Signature." in h["failedReason"]
    assert f.mock.of("send") == []
    log = d.log_text()
    assert "invalid_grant" in log and "check the service account" in log
    assert "PRIVATE KEY" not in log


# -- configuration ----------------------------------------------------------------------


def check_config(tmp_path, provider):
    p = tmp_path / "notifyq.yaml"
    p.write_text("queues:\n  push:\n    handler: push\n    provider: %s\n" % provider)
    return subprocess.run([str(NOTIFYQD), "-t", "-c", str(p)], capture_output=True, text=True,
                          timeout=10)


def test_fcm_config_is_checked_before_start(tmp_path):
    sa = tmp_path / "sa.json"
    service_account(sa, "http://127.0.0.1:1/token")
    r = check_config(tmp_path, "{type: fcm, service_account_file: '%s'}" % sa)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "service_account", "client_email": "x", "private_key": "nope"}')
    r = check_config(tmp_path, "{type: fcm, service_account_file: '%s'}" % bad)
    assert r.returncode == 1
    assert "queues.push.provider.service_account_file" in r.stderr + r.stdout
    assert "not an RSA key" in r.stderr + r.stdout
    r = check_config(tmp_path, "{type: fcm}")
    assert r.returncode == 1 and "service_account_file: required" in r.stderr + r.stdout
    r = check_config(tmp_path, "{type: fcm, service_account_file: '%s', key_id: X}" % sa)
    assert r.returncode == 1 and "not a key of provider type fcm" in r.stderr + r.stdout
    r = check_config(tmp_path, "{type: fcm, service_account_file: '%s', base_url: "
                     "'https://fcm.googleapis.com/v1'}" % sa)
    assert r.returncode == 1 and "queues.push.provider.base_url" in r.stderr + r.stdout


# -- apns -------------------------------------------------------------------------------


class Apns:
    """The mock over TLS (ALPN h2, its certificate as ca_file) unless h2c:
    then cleartext HTTP/2 with prior knowledge (a connection per request:
    Debian 12's curl 7.88 fails transfers reusing h2c connections)."""

    def __init__(self, tmp_path, mocks, script=None, timeout="10s", h2c=False):
        from push_mocks import ApnsMock, apns_key
        self.key_file = tmp_path / "AuthKey_ABC123DEFG.p8"
        pub = apns_key(self.key_file)
        self.mock = ApnsMock(pub, "ABC123DEFG", "DEF123GHIJ", "com.example.app", script,
                             tls_dir=None if h2c else tmp_path)
        mocks.append(self.mock)
        self.provider = ("{type: apns, key_file: '%s', key_id: ABC123DEFG, team_id: DEF123GHIJ, "
                         "topic: com.example.app, environment: sandbox, base_url: '%s', "
                         "timeout: %s%s}" % (self.key_file, self.mock.base_url, timeout,
                                             "" if h2c else ", ca_file: '%s'" % self.mock.ca_file))


def apns_script(table):
    seen = {}

    def script(kind, n, req):
        tok = req["token"]
        k = seen.setdefault(tok, 0)
        seen[tok] = k + 1
        replies = table.get(tok)
        return replies[min(k, len(replies) - 1)] if replies else None
    return script


def reason(status, why, **extra):
    return status, {}, json.dumps({"reason": why, **extra})


def test_apns_sends_over_http2_with_a_verified_provider_token(daemon_factory, jobs, tmp_path,
                                                              mocks):
    a = Apns(tmp_path, mocks, apns_script({
        "0bad": [reason(400, "BadDeviceToken")],
        "0dead": [reason(410, "Unregistered", timestamp=1700000000000)]}))
    d = start(daemon_factory, jobs, a.provider)
    [jid] = jobs.add({"tokens": ["0a01", "0a02", "0bad", "0dead"], "title": "New message",
                      "body": "hi", "data": {"chat_id": 17},
                      "apns": {"headers": {"apns-collapse-id": "chat-17"},
                               "payload": {"aps": {"badge": 3}}}}, RETRY)
    wait_all_done(jobs, 1)
    out = rv(jobs, jid)
    sends = a.mock.of("send")
    assert len(sends) == 4 and all(s["problem"] is None for s in sends)
    assert len({s["connection"] for s in sends}) == 1  # multiplexed on one connection
    assert len({s["headers"]["authorization"] for s in sends}) == 1  # one provider token
    s = next(s for s in sends if s["token"] == "0a01")
    h = s["headers"]
    assert h["apns-topic"] == "com.example.app" and h["apns-push-type"] == "alert"
    assert h["apns-priority"] == "10" and h["apns-collapse-id"] == "chat-17"
    assert json.loads(s["body"]) == {"aps": {"badge": 3, "alert": {"title": "New message",
                                                                   "body": "hi"}},
                                     "chat_id": "17"}
    r = {x["to"]: x for x in out["recipients"]}
    assert out["provider"] == "apns"
    assert r["0a01"]["status"] == "sent" and r["0a01"]["id"] == h["apns-id"]
    assert r["0a02"]["status"] == "sent"
    assert r["0bad"]["status"] == "dead" and r["0bad"]["reason"] == "apns: HTTP 400 BadDeviceToken"
    assert r["0dead"]["status"] == "dead" and "Unregistered" in r["0dead"]["reason"]
    assert "bearer" not in d.log_text() and "PRIVATE KEY" not in d.log_text()


def test_apns_rate_retry_unknown_and_permanent(daemon_factory, jobs, tmp_path, mocks):
    a = Apns(tmp_path, mocks, apns_script({
        "0429": [reason(429, "TooManyRequests"), None],
        "0500": [reason(500, "InternalServerError"), None],
        "0413": [reason(413, "PayloadTooLarge")],
        "0e5e7": ["reset", None],
        "05a11": ["stall", None]}), timeout="1s")
    start(daemon_factory, jobs, a.provider, concurrency=5)
    [rate] = jobs.add({"token": "0429", "body": "x"}, {"attempts": 1})
    [busy, big, reset, stall] = [jobs.add({"token": t, "body": "x"}, RETRY)[0]
                                 for t in ("0500", "0413", "0e5e7", "05a11")]
    wait_all_done(jobs, 5)
    assert jobs.ids("completed") == {rate, busy, reset, stall}, [
        (j, jobs.job(j).get("failedReason")) for j in (rate, busy, big, reset, stall)]
    assert jobs.ids("failed") == {big}
    assert jobs.job(rate)["atm"] == "1"
    assert [e["event"] for e in jobs.events(rate)].count("delayed") == 1
    assert json.loads(jobs.job(busy)["stacktrace"]) == ["apns: HTTP 500 InternalServerError"]
    assert jobs.job(big)["failedReason"] == "apns: HTTP 413 PayloadTooLarge"
    for jid in (reset, stall):
        h = jobs.job(jid)
        assert h["atm"] == "2", h.get("stacktrace")
        assert rv(jobs, jid)["recipients"][0]["status"] == "sent"


def test_apns_goaway_refused_stream_is_sent_on_a_new_connection(daemon_factory, jobs, tmp_path,
                                                                mocks):
    a = Apns(tmp_path, mocks, apns_script({"060a": ["goaway", None]}))
    start(daemon_factory, jobs, a.provider)
    [jid] = jobs.add({"token": "060a", "body": "x"}, RETRY)
    wait_all_done(jobs, 1)
    assert jobs.ids("completed") == {jid}, jobs.job(jid).get("failedReason")
    assert a.mock.connections >= 2
    assert "possible duplicate" not in jobs.job(jid).get("stacktrace", "")


def test_apns_refused_key_fails_with_an_alert(daemon_factory, jobs, tmp_path, mocks):
    from push_mocks import apns_key
    a = Apns(tmp_path, mocks)
    a.mock.public_key = apns_key(tmp_path / "other.p8")
    d = start(daemon_factory, jobs, a.provider)
    [jid] = jobs.add({"token": "0a01", "body": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert h["atm"] == "1"
    assert h["failedReason"].startswith("apns: HTTP 403 InvalidProviderToken")
    assert "InvalidProviderToken" in d.log_text()


def test_apns_over_cleartext_http2_with_prior_knowledge(daemon_factory, jobs, tmp_path, mocks):
    a = Apns(tmp_path, mocks, apns_script({"0bad": [reason(400, "BadDeviceToken")]}), h2c=True)
    start(daemon_factory, jobs, a.provider)
    [ok] = jobs.add({"token": "0a01", "body": "x"}, RETRY)
    wait_all_done(jobs, 1)
    [bad] = jobs.add({"token": "0bad", "body": "x"}, RETRY)
    wait_all_done(jobs, 2)
    assert rv(jobs, ok)["recipients"][0]["status"] == "sent"
    assert jobs.job(bad)["failedReason"] == "apns: HTTP 400 BadDeviceToken"
    sends = a.mock.of("send")
    assert len(sends) == 2 and all(s["problem"] is None for s in sends)
    # each on a connection of its own: curl 7.88 cannot reuse h2c ones


def test_apns_mock_refuses_http1(tmp_path, mocks):
    import urllib.request
    a = Apns(tmp_path, mocks, h2c=True)
    with pytest.raises(Exception):
        urllib.request.urlopen(urllib.request.Request(a.mock.base_url + "/3/device/0a01",
                                                      data=b"{}"), timeout=5)
    assert a.mock.h1_refused == 1


def test_apns_config_is_checked_before_start(tmp_path):
    from push_mocks import apns_key
    key = tmp_path / "k.p8"
    apns_key(key)
    ok = "{type: apns, key_file: '%s', key_id: K, team_id: T, topic: com.x}" % key
    r = check_config(tmp_path, ok)
    assert r.returncode == 0, r.stderr
    rsa_json = tmp_path / "sa.json"
    _, pem = service_account(rsa_json, "http://127.0.0.1:1/token")
    rsa = tmp_path / "rsa.pem"
    rsa.write_text(pem)
    r = check_config(tmp_path, ok.replace(str(key), str(rsa)))
    assert r.returncode == 1 and "queues.push.provider.key_file" in r.stderr + r.stdout
    r = check_config(tmp_path, "{type: apns, key_file: '%s', key_id: K, team_id: T}" % key)
    assert r.returncode == 1 and "topic: required" in r.stderr + r.stdout
    r = check_config(tmp_path, ok[:-1] + ", environment: staging}")
    assert r.returncode == 1 and "queues.push.provider.environment" in r.stderr + r.stdout


def test_fcm_retry_goes_only_to_tokens_not_yet_reached(daemon_factory, jobs, tmp_path, mocks):
    ok = (200, {"Content-Type": "application/json"}, '{"name":"projects/demo-proj/messages/7"}')
    f = Fcm(tmp_path, mocks, fcm_script({
        "busy": [fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.",
                           "UNAVAILABLE"), ok],
        "gone": [fcm_error(404, "NOT_FOUND", "Requested entity was not found.",
                           "UNREGISTERED")]}))
    start(daemon_factory, jobs, f.provider)
    [jid] = jobs.add({"tokens": ["tok-a", "busy", "gone"], "body": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert h["atm"] == "2"
    out = rv(jobs, jid)
    assert {x["to"]: x["status"] for x in out["recipients"]} == {
        "tok-a": "sent", "busy": "sent", "gone": "dead"}
    tokens = [s["message"]["token"] for s in f.mock.of("send")]
    assert sorted(tokens) == ["busy", "busy", "gone", "tok-a"]
    # the first attempt's progress kept what was settled
    assert "UNAVAILABLE" in json.loads(h["stacktrace"])[0]
