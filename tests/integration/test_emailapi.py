# SPDX-License-Identifier: MIT
"""The email API providers end to end: real notifyqd workers send email
jobs to the mock APIs of emailapi_mock.py (SendGrid, Resend, Mailgun,
Postmark, SES; each checking auth, content type, required fields and limits
as the real one does, SES's SigV4 signature verified). For each provider:
success (the returnvalue lists every recipient with the provider's id), the
provider's 400-class error (failed at once with its reason), 401 (failed,
an alert in the log, the key never in it), 429 with Retry-After as seconds
and as an HTTP-date (delayed without spending an attempt), 500 (retried,
then sent), a reset and a stall (unknown: retried and counted), and a dead
address (Postmark's 406) in the failed job's recipients."""
import email.utils
import json
import time

import pytest

from emailapi_mock import API_KEY, AWS_SECRET, SERVER_TOKEN, MockAPI, postmark_error, \
    provider_block, resend_error, ses_error, sendgrid_error
from test_worker_jobs import Jobs, wait_all_done

PROVIDERS = ["sendgrid", "resend", "mailgun", "postmark", "ses"]
RETRY = {"attempts": 3, "backoff": {"type": "fixed", "delay": 100}}
JSON = {"Content-Type": "application/json"}

MAIL = {"to": ["Bob <bob@example.org>", "carol@example.org"], "bcc": "audit@example.org",
        "from": "App <app@example.com>", "subject": "Your code", "text": "123456",
        "html": "<b>123456</b>"}
RCPTS = ["bob@example.org", "carol@example.org", "audit@example.org"]

# Each provider's own error for a request it refuses (its 400-class shape).
BAD_REQUEST = {
    "sendgrid": ((400, JSON, sendgrid_error("Does not contain a valid address.", "to")),
                 "sendgrid: HTTP 400: Does not contain a valid address. (field to)"),
    "resend": (resend_error(422, "validation_error", "Invalid `to` field."),
               "resend: HTTP 422: validation_error: Invalid `to` field."),
    "mailgun": ((400, JSON, json.dumps({"message": "to parameter is not a valid address"})),
                "mailgun: HTTP 400: to parameter is not a valid address"),
    "postmark": (postmark_error(422, 300, "Invalid 'To' address: 'bob'."),
                 "postmark: HTTP 422: ErrorCode 300: Invalid 'To' address: 'bob'."),
    "ses": (ses_error(400, "MessageRejected", "Email address is not verified."),
            "ses: HTTP 400: MessageRejected: Email address is not verified."),
}


@pytest.fixture
def api():
    made = []

    def make(provider, script=None):
        a = MockAPI(provider, script)
        made.append(a)
        return a

    yield make
    for a in made:
        a.stop()


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


def start(daemon_factory, jobs, block):
    d = daemon_factory({jobs.name: {"handler": "email", "bullmq_queue": jobs.name,
                                    "provider": block}})
    d.start()
    d.wait_ready(timeout=10)
    return d


def rv(jobs, jid):
    h = jobs.job(jid)
    assert h.get("returnvalue"), h.get("failedReason")
    return json.loads(h["returnvalue"])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_message_is_sent_to_every_recipient_with_the_providers_id(
        daemon_factory, jobs, api, tmp_path, provider):
    a = api(provider)
    start(daemon_factory, jobs, provider_block(a, tmp_path))
    [jid] = jobs.add(MAIL)
    wait_all_done(jobs, 1)
    out = rv(jobs, jid)
    [req] = a.requests
    assert req["problem"] is None
    [sent] = a.sent
    assert sorted(sent["rcpts"]) == sorted(
        ["Bob <bob@example.org>" if provider != "sendgrid" else "bob@example.org",
         "carol@example.org", "audit@example.org"])
    assert out["ok"] is True and out["provider"] == provider
    assert out["messageId"] == sent["reply_id"]  # the provider's id, as its reply gave it
    assert [(r["to"], r["status"], r["provider"]) for r in out["recipients"]] == \
        [(x, "sent", provider) for x in RCPTS]
    assert all(r["id"] == out["messageId"] and r["reason"] is None for r in out["recipients"])
    if provider == "mailgun":
        assert out["messageId"] == "<%s@mg.example.com>" % sent["id"]  # brackets kept
        assert req["form"]["v:job_id"] == [jid]
    if provider == "resend":
        assert req["headers"]["idempotency-key"].startswith("notifyq-")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_providers_bad_request_fails_at_once_with_its_reason(
        daemon_factory, jobs, api, tmp_path, provider):
    reply, reason = BAD_REQUEST[provider]
    a = api(provider, lambda n, req: reply)
    start(daemon_factory, jobs, provider_block(a, tmp_path))
    [jid] = jobs.add(MAIL, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid}
    assert h["atm"] == "1"
    assert h["failedReason"] == reason
    assert len(a.requests) == 1
    progress = json.loads(h["progress"])
    assert [(r["to"], r["status"]) for r in progress["recipients"]] == \
        [(x, "failed") for x in RCPTS]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_wrong_credentials_fail_permanently_with_an_alert(daemon_factory, jobs, api, tmp_path,
                                                          provider):
    a = api(provider)
    block = json.loads(provider_block(a, tmp_path))
    for k in ("api_key_file", "server_token_file", "secret_access_key_file"):
        if k in block:
            wrong = tmp_path / "wrong.secret"
            wrong.write_text("not-the-right-credential\n")
            block[k] = str(wrong)
    d = start(daemon_factory, jobs, json.dumps(block))
    [jid] = jobs.add(MAIL, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid}
    assert h["atm"] == "1"
    assert h["failedReason"].startswith("%s: HTTP 40" % provider)
    assert a.sent == []
    d.wait_for_log(r"provider %s: .*every later job will fail the same way" % provider)
    log = d.log_text()
    for secret in ("not-the-right-credential", API_KEY, SERVER_TOKEN, AWS_SECRET):
        assert secret not in log and secret not in h["failedReason"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_delays_without_spending_an_attempt(daemon_factory, jobs, api, tmp_path, provider):
    def script(n, req):
        if n == 0:
            return 429, dict(JSON, **{"Retry-After": "1"}), "{}"
        if n == 1:
            return 429, dict(JSON, **{"Retry-After": email.utils.formatdate(time.time() + 2,
                                                                              usegmt=True)}), "{}"
        return None

    a = api(provider, script)
    start(daemon_factory, jobs, provider_block(a, tmp_path))
    # One attempt: had a 429 spent it, the job would have failed.
    [jid] = jobs.add(MAIL, {"attempts": 1})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}, h.get("failedReason")
    assert h["atm"] == "1"
    assert [e["event"] for e in jobs.events(jid)].count("delayed") == 2
    first, second, third = a.requests
    assert second["t"] - first["t"] >= 0.9
    assert third["t"] - second["t"] >= 0.9
    assert len(a.sent) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_500_is_retried_then_sent_once(daemon_factory, jobs, api, tmp_path, provider):
    a = api(provider, lambda n, req: (500, JSON, "{}") if n == 0 else None)
    start(daemon_factory, jobs, provider_block(a, tmp_path))
    [jid] = jobs.add(MAIL, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}
    assert h["atm"] == "2"
    assert json.loads(h["stacktrace"]) == ["%s: HTTP 500" % provider]
    assert len(a.sent) == 1
    assert all(r["problem"] is None for r in a.requests)


@pytest.mark.parametrize("provider,fault", [(p, f) for p in PROVIDERS
                                            for f in ("reset", "stall")])
def test_a_reset_or_stall_is_an_unknown_retry_and_counted(daemon_factory, jobs, api, tmp_path,
                                                          provider, fault):
    a = api(provider, lambda n, req: fault if n == 0 else None)
    start(daemon_factory, jobs, provider_block(a, tmp_path, timeout="1s"))
    [jid] = jobs.add(MAIL, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}, h.get("failedReason")
    assert h["atm"] == "2"
    [reason] = json.loads(h["stacktrace"])
    assert reason.startswith("%s: " % provider) and reason.endswith("(possible duplicate)")
    assert rv(jobs, jid)["unknownAttempts"] == 1
    assert len(a.requests) == 2 and len(a.sent) == 1


def test_resend_sends_the_same_idempotency_key_on_a_retry_and_nothing_twice(
        daemon_factory, jobs, api, tmp_path):
    # The first request is accepted, but its reply is lost: the retry
    # carries the same key and Resend replays the first reply.
    def script(n, req):
        if n == 0:
            a.success(req)
            return "reset"
        return None

    a = api("resend", script)
    start(daemon_factory, jobs, provider_block(a, tmp_path))
    [jid] = jobs.add(MAIL, RETRY)
    wait_all_done(jobs, 1)
    first, second = a.requests
    assert first["headers"]["idempotency-key"] == second["headers"]["idempotency-key"]
    assert first["body"] == second["body"]
    [sent] = a.sent
    assert rv(jobs, jid)["messageId"] == sent["reply_id"]
    # another job, another key
    [jid2] = jobs.add(MAIL)
    wait_all_done(jobs, 2)
    assert a.requests[2]["headers"]["idempotency-key"] != first["headers"]["idempotency-key"]
    assert len(a.sent) == 2


def test_postmark_inactive_recipient_is_dead_in_the_result(daemon_factory, jobs, api, tmp_path):
    a = api("postmark", lambda n, req: postmark_error(
        422, 406, "You tried to send to recipient(s) that have been marked as inactive."))
    start(daemon_factory, jobs, provider_block(a, tmp_path))
    [jid] = jobs.add({"to": "gone@example.org", "text": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid}
    assert h["atm"] == "1"
    assert "ErrorCode 406" in h["failedReason"]
    [r] = json.loads(h["progress"])["recipients"]
    assert r["to"] == "gone@example.org" and r["status"] == "dead"
    assert r["provider"] == "postmark"


def test_ses_signature_checks_out_with_a_session_token(daemon_factory, jobs, api, tmp_path):
    a = api("ses")
    tok = tmp_path / "session"
    tok.write_text("FwoGZXIvYXdzEBYaD-session\n")
    start(daemon_factory, jobs, provider_block(a, tmp_path, session_token_file=str(tok)))
    [jid] = jobs.add(MAIL)
    wait_all_done(jobs, 1)
    [req] = a.requests
    assert req["problem"] is None
    assert req["headers"]["x-amz-security-token"] == "FwoGZXIvYXdzEBYaD-session"
    assert "x-amz-security-token" in req["headers"]["authorization"]
    assert rv(jobs, jid)["recipients"][0]["status"] == "sent"


def test_too_many_recipients_fail_before_any_request(daemon_factory, jobs, api, tmp_path):
    a = api("postmark")
    start(daemon_factory, jobs, provider_block(a, tmp_path))
    [jid] = jobs.add({"to": ["u%d@example.org" % i for i in range(51)], "text": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid}
    assert h["failedReason"] == "postmark: 51 recipients: at most 50 per message"
    assert a.requests == []


def test_postmark_403_without_errorcode_is_retried_then_fails_with_an_alert(
        daemon_factory, jobs, api, tmp_path):
    html = (403, {"Content-Type": "text/html"}, "<html><body>Request blocked</body></html>")
    a = api("postmark", lambda n, req: html)
    d = start(daemon_factory, jobs, provider_block(a, tmp_path))
    [jid] = jobs.add({"to": "bob@example.org", "text": "x"},
                     {"attempts": 5, "backoff": {"type": "fixed", "delay": 100}})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid}
    assert h["atm"] == "3"
    assert h["failedReason"] == "postmark: HTTP 403: not from Postmark's API (no ErrorCode: a " \
        "network filter in front of it?) (attempt 3)"
    assert len(a.requests) == 3 and a.sent == []
    d.wait_for_log(r"provider postmark: .*\(attempt 3\): every later job will fail")
