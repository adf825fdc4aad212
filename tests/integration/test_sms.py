# SPDX-License-Identifier: MIT
"""The SMS providers end to end: real notifyqd workers send sms jobs to one
mock server this file runs (python's http.server on 127.0.0.1, a free port)
that speaks Twilio's Messages API, Vonage's SMS API and a generic JSON
gateway. It checks what the real APIs check (Basic auth whose user is the
path's account SID, api_key/api_secret, content type, required fields, E.164
numbers) and answers in their shapes, from a per-test script: success, 400
with the provider's error body, 401, 429 with Retry-After (seconds and
HTTP-date), 500, a connection reset after the request, a stall past the
client's timeout (PROVIDERS.md sections 8, 9a and 14)."""
import email.utils
import http.server
import json
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import NOTIFYQD, wait_for
from test_worker_jobs import Jobs, wait_all_done

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-test-token"
VKEY, VSECRET = "abcd1234", "vonage-test-secret"
BEARER = "gateway-token"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def twilio_error(code, status, message):
    return status, {"code": code, "message": message,
                    "more_info": "https://www.twilio.com/docs/errors/%d" % code,
                    "status": status}


class Mock:
    """`script(n, req)` decides the reply to the n-th request that passed
    the checks: (status, json body[, headers]), "reset" or "stall"; None
    means the API's success reply."""

    def __init__(self, script=None):
        self.script = script or (lambda n, req: None)
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        mock = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body, headers=None, ctype="application/json"):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = {"path": self.path, "body": body,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "t": time.monotonic()}
                if self.path.startswith("/2010-04-01/"):
                    return self.twilio(req)
                if self.path == "/sms/json":
                    return self.vonage(req)
                if self.path == "/send":
                    return self.gateway(req)
                return self.reply(404, {"code": 20404, "message": "not found", "status": 404})

            def scripted(self, req, success):
                with mock.lock:
                    n = len(mock.requests)
                    mock.requests.append(req)
                r = mock.script(n, req)
                if r is None:
                    return self.reply(*success)
                if r == "stall":
                    mock.release.wait(30)
                    self.close_connection = True
                    return None
                if r == "reset":  # RST after the whole request was read
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return None
                return self.reply(*r)

            def twilio(self, req):
                m = re.fullmatch(r"/2010-04-01/Accounts/([^/]+)/Messages\.json", self.path)
                auth = req["headers"].get("authorization", "")
                want = "Basic " + __import__("base64").b64encode(
                    ("%s:%s" % (m.group(1) if m else "", TOKEN)).encode()).decode()
                if not m or auth != want:
                    return self.reply(*twilio_error(20003, 401, "Authenticate"),
                                      {"WWW-Authenticate": 'Basic realm="Twilio API"'})
                if req["headers"].get("content-type") != "application/x-www-form-urlencoded":
                    return self.reply(*twilio_error(21609, 400, "bad content type"))
                f = urllib.parse.parse_qs(req["body"].decode(), strict_parsing=True)
                req["form"] = {k: v[0] for k, v in f.items()}
                to = req["form"].get("To")
                if not to:
                    return self.reply(*twilio_error(21604, 400, "A 'To' phone number is required."))
                if not E164.match(to):
                    return self.reply(*twilio_error(21211, 400, "The 'To' number %s is not a "
                                                    "valid phone number." % to))
                if "From" not in req["form"] and "MessagingServiceSid" not in req["form"]:
                    return self.reply(*twilio_error(21603, 400, "A 'From' phone number is "
                                                    "required."))
                if not req["form"].get("Body"):
                    return self.reply(*twilio_error(21602, 400, "Message body is required."))
                if to == "+15005550001":
                    return self.reply(*twilio_error(21211, 400, "The 'To' number %s is not a "
                                                    "valid phone number." % to))
                if to == "+15005550004":
                    return self.reply(*twilio_error(21610, 400, "Attempt to send to unsubscribed "
                                                    "recipient"))
                if to == "+15005550002":  # a long message whose cut falls inside a character
                    return self.reply(*twilio_error(21620, 400, "x" * 119 + "\u00e9" * 10))
                if to == "+15005550003":
                    return self.reply(*twilio_error(21408, 400, "Permission to send an SMS has "
                                                    "not been enabled for the region"))
                if to == "+15005550009":
                    return self.reply(*twilio_error(21614, 400, "'To' number is not a valid "
                                                    "mobile number"))
                sid = "SM%032x" % (len(mock.requests) + 1)
                return self.scripted(req, (201, {"sid": sid, "status": "queued",
                                                 "error_code": None, "num_segments": "1",
                                                 "to": to, "account_sid": m.group(1)}))

            def vonage(self, req):
                if req["headers"].get("content-type") != "application/x-www-form-urlencoded":
                    return self.reply(200, {"message-count": "1", "messages": [
                        {"status": "2", "error-text": "Missing api_key"}]})
                f = {k: v[0] for k, v in urllib.parse.parse_qs(req["body"].decode()).items()}
                req["form"] = f
                if f.get("api_key") != VKEY or f.get("api_secret") != VSECRET:
                    return self.reply(200, {"message-count": "1", "messages": [
                        {"status": "4", "error-text": "Bad Credentials"}]})
                for k in ("from", "to", "text"):
                    if not f.get(k):
                        return self.reply(200, {"message-count": "1", "messages": [
                            {"status": "2", "error-text": "Missing %s param" % k}]})
                if not re.fullmatch(r"[1-9][0-9]{6,14}", f["to"]):
                    return self.reply(200, {"message-count": "1", "messages": [
                        {"status": "3", "error-text": "Invalid to param"}]})
                part = {"to": f["to"], "message-id": "0C0000002%07d" % len(mock.requests),
                        "status": "0", "remaining-balance": "15.53590000",
                        "message-price": "0.03330000", "network": "23410"}
                return self.scripted(req, (200, {"message-count": "1", "messages": [part]}))

            def gateway(self, req):
                if req["headers"].get("authorization") != "Bearer " + BEARER:
                    return self.reply(401, {"error": "unauthorized"})
                if req["headers"].get("content-type") != "application/json":
                    return self.reply(415, {"error": "json only"})
                try:
                    req["json"] = json.loads(req["body"])
                except ValueError:
                    return self.reply(400, {"error": "bad json"})
                if not E164.match(req["json"].get("to", "")) or not req["json"].get("text"):
                    return self.reply(422, {"error": "to and text required"})
                return self.scripted(req, (202, {"id": "gw-%d" % len(mock.requests)}))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mock():
    made = []

    def make(script=None):
        m = Mock(script)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


def twilio(m, **extra):
    keys = {"type": "twilio", "account_sid": SID, "auth_token": TOKEN,
            "from": "'+15005550006'", "base_url": "'%s'" % m.base, **extra}
    return "{%s}" % ", ".join("%s: %s" % kv for kv in keys.items())


def start(daemon_factory, jobs, provider):
    d = daemon_factory({jobs.name: {"handler": "sms", "bullmq_queue": jobs.name,
                                    "provider": provider}})
    d.start()
    d.wait_ready(timeout=10)
    return d


def events(jobs, jid):
    return [e["event"] for e in jobs.events(jid)]


RETRY = {"attempts": 3, "backoff": {"type": "fixed", "delay": 100}}


# -- twilio -------------------------------------------------------------------------


def test_twilio_sends_and_the_result_names_the_recipient_and_provider(daemon_factory, jobs,
                                                                      mock):
    m = mock()
    start(daemon_factory, jobs, twilio(m, default_region="US"))
    [jid] = jobs.add({"to": "(415) 555-0100", "body": "Your code is 123456"})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}, h.get("failedReason")
    [req] = m.requests
    assert req["path"] == "/2010-04-01/Accounts/%s/Messages.json" % SID
    assert req["form"] == {"To": "+14155550100", "From": "+15005550006",
                           "Body": "Your code is 123456"}
    rv = json.loads(h["returnvalue"])
    sid = "SM%032x" % 1
    assert rv == {"ok": True, "provider": "twilio", "messageId": sid,
                  "recipients": [{"to": "+14155550100", "status": "sent", "id": sid,
                                  "reason": None}],
                  "segments": 1, "encoding": "GSM-7"}


def test_twilio_dead_numbers_fail_at_once_and_show_in_the_result(daemon_factory, jobs, mock):
    m = mock()
    start(daemon_factory, jobs, twilio(m))
    [stop] = jobs.add({"to": "+15005550004", "body": "x"}, RETRY)
    [bad] = jobs.add({"to": "+15005550001", "body": "x"}, RETRY)
    wait_all_done(jobs, 2)
    assert jobs.ids("failed") == {stop, bad}
    for jid, code in ((stop, 21610), (bad, 21211)):
        h = jobs.job(jid)
        assert h["atm"] == "1"
        assert h["failedReason"].startswith("twilio: HTTP 400 code %d: " % code)
        [r] = json.loads(h["progress"])["recipients"]
        assert r["status"] == "dead" and r["id"] is None
        assert r["reason"] == h["failedReason"]
    assert json.loads(jobs.job(stop)["progress"])["recipients"][0]["to"] == "+15005550004"


def test_twilio_geo_permission_is_a_configuration_error_and_not_a_mobile_is_dead(
        daemon_factory, jobs, mock):
    m = mock()
    d = start(daemon_factory, jobs, twilio(m))
    [geo] = jobs.add({"to": "+15005550003", "body": "x"}, RETRY)
    [landline] = jobs.add({"to": "+15005550009", "body": "x"}, RETRY)
    wait_all_done(jobs, 2)
    g, ll = jobs.job(geo), jobs.job(landline)
    assert g["atm"] == "1" and ll["atm"] == "1"
    assert g["failedReason"] == "twilio: HTTP 400 code 21408: SMS not enabled for the To " \
        "region (configuration error)"
    assert json.loads(g["progress"])["recipients"][0]["status"] == "failed"
    assert json.loads(ll["progress"])["recipients"][0]["status"] == "dead"
    assert "refuses our configuration: twilio: HTTP 400 code 21408" in d.log_path.read_text()


def test_a_reason_cut_inside_a_character_stays_valid_utf8(daemon_factory, jobs, mock):
    m = mock()
    start(daemon_factory, jobs, twilio(m))
    [jid] = jobs.add({"to": "+15005550002", "body": "x"})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    # 120 bytes of the message were kept: 119 x and half an e-acute, dropped
    assert h["failedReason"] == "twilio: HTTP 400 code 21620: " + "x" * 119
    assert json.loads(h["progress"])["recipients"][0]["reason"] == h["failedReason"]


def test_twilio_bad_credentials_fail_with_an_alert(daemon_factory, jobs, mock):
    m = mock()
    d = start(daemon_factory, jobs, twilio(m, auth_token="wrong"))
    [jid] = jobs.add({"to": "+14155550100", "body": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert h["atm"] == "1"
    assert h["failedReason"] == "twilio: HTTP 401 code 20003: authentication failed " \
        "(configuration error)"
    assert json.loads(h["progress"])["recipients"][0]["status"] == "failed"
    log = d.log_path.read_text()
    assert "refuses our configuration: twilio: HTTP 401 code 20003" in log
    assert "wrong" not in log and TOKEN not in log


def test_twilio_429_delays_without_spending_an_attempt(daemon_factory, jobs, mock):
    def script(n, req):
        if n == 0:
            return twilio_error(20429, 429, "Too Many Requests") + ({"Retry-After": "1"},)
        if n == 1:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return twilio_error(20429, 429, "Too Many Requests") + ({"Retry-After": when},)
        return None

    m = mock(script)
    start(daemon_factory, jobs, twilio(m))
    [jid] = jobs.add({"to": "+14155550100", "body": "x"}, {"attempts": 1})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}, h.get("failedReason")
    assert h["atm"] == "1"
    assert events(jobs, jid).count("delayed") == 2
    a, b, c = m.requests
    assert b["t"] - a["t"] >= 0.9 and c["t"] - b["t"] >= 0.9


def test_twilio_500_reset_and_stall_are_retried(daemon_factory, jobs, mock):
    # The 500 closes its connection: libcurl resends by itself a request
    # whose reused connection was reset before any reply, so the reset must
    # come on a fresh one to reach the provider's classifier.
    replies = [twilio_error(20500, 500, "Internal Server Error") + ({"Connection": "close"},),
               "reset", "stall"]
    m = mock(lambda n, req: replies[n] if n < len(replies) else None)
    start(daemon_factory, jobs, twilio(m, timeout="1s"))
    [jid] = jobs.add({"to": "+14155550100", "body": "x"},
                     {"attempts": 4, "backoff": {"type": "fixed", "delay": 100}})
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}, h.get("failedReason")
    assert h["atm"] == "4"
    first, second, third = json.loads(h["stacktrace"])
    assert first == "twilio: HTTP 500 code 20500: Internal Server Error"
    assert second == "twilio: connection lost after the request was sent (possible duplicate)"
    assert third == "twilio: timeout after the request was sent (possible duplicate)"
    assert len(m.requests) == 4


def test_invalid_numbers_and_long_texts_fail_without_a_request(daemon_factory, jobs, mock):
    m = mock()
    start(daemon_factory, jobs, twilio(m, max_segments=1))
    [national] = jobs.add({"to": "415 555 0100", "body": "x"})
    [long] = jobs.add({"to": "+14155550100", "body": "\u4f60" * 71})
    wait_all_done(jobs, 2)
    assert jobs.job(national)["failedReason"] == \
        'data.to: "415 555 0100" is not a phone number in international form: no country ' \
        'code (write it as +<country code><number>)'
    assert jobs.job(long)["failedReason"] == \
        "data.body: 2 segments (UCS-2, 71 units) is more than the provider's max_segments 1"
    assert m.requests == []


# -- vonage -------------------------------------------------------------------------


def vonage(m, secret=VSECRET):
    return "{type: vonage, api_key: %s, api_secret: %s, from: ACME, base_url: '%s', " \
        "default_region: GB}" % (VKEY, secret, m.base)


def test_vonage_sends_unicode_and_classifies_part_statuses(daemon_factory, jobs, mock):
    throttled_once = []

    def script(n, req):
        if req["form"]["to"] == "447700900002":
            return 200, {"message-count": "1", "messages": [
                {"to": "447700900002", "status": "7", "error-text": "Number barred."}]}
        if req["form"]["to"] == "447700900004":  # part 1 accepted, part 2 barred
            return 200, {"message-count": "2", "messages": [
                {"to": "447700900004", "message-id": "0C00000000000001", "status": "0"},
                {"to": "447700900004", "status": "7", "error-text": "Number barred."}]}
        if req["form"]["to"] == "447700900003" and not throttled_once:
            throttled_once.append(n)
            return 200, {"message-count": "1", "messages": [
                {"to": "447700900003", "status": "1", "error-text": "Throughput Rate Exceeded"}]}
        return None

    m = mock(script)
    start(daemon_factory, jobs, vonage(m))
    [ok] = jobs.add({"to": "07700 900001", "body": "Grüße \u4f60"})
    [barred] = jobs.add({"to": "+44 7700 900002", "body": "x"}, RETRY)
    [half] = jobs.add({"to": "+447700900004", "body": "x" * 200}, RETRY)
    wait_all_done(jobs, 3)
    [throttled] = jobs.add({"to": "+447700900003", "body": "x"}, {"attempts": 1})
    wait_all_done(jobs, 4)
    h = jobs.job(ok)
    assert jobs.ids("completed") == {ok, throttled}, jobs.job(barred).get("failedReason")
    first = m.requests[0]["form"]
    assert first["to"] == "447700900001" and first["type"] == "unicode"
    assert first["from"] == "ACME" and first["client-ref"] == ok
    rv = json.loads(h["returnvalue"])
    assert rv["provider"] == "vonage" and rv["encoding"] == "UCS-2"
    assert rv["recipients"][0]["status"] == "sent" and rv["messageId"].startswith("0C")
    b = jobs.job(barred)
    assert b["atm"] == "1" and b["failedReason"] == "vonage: status 7: number barred: " \
        "Number barred."
    assert json.loads(b["progress"])["recipients"][0]["status"] == "dead"
    hf = jobs.job(half)
    assert hf["atm"] == "1" and hf["failedReason"].endswith(
        "(some parts were accepted: a resend repeats them)")
    assert json.loads(hf["progress"])["segments"] == 2
    t = jobs.job(throttled)
    assert t["atm"] == "1" and events(jobs, throttled).count("delayed") >= 1


def test_vonage_bad_credentials_fail(daemon_factory, jobs, mock):
    m = mock()
    start(daemon_factory, jobs, vonage(m, secret="nope"))
    [jid] = jobs.add({"to": "+447700900001", "body": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert h["atm"] == "1"
    assert h["failedReason"] == "vonage: status 4: invalid credentials: Bad Credentials " \
        "(configuration error)"


# -- http ---------------------------------------------------------------------------


def test_http_gateway_gets_the_rendered_template(daemon_factory, jobs, mock):
    m = mock(lambda n, req: (503, {"error": "busy"}) if n == 0 else None)
    provider = ("{type: http, url: '%s/send', headers: {Authorization: 'Bearer %s'}, "
                "body_template: '{\"to\": \"{{to}}\", \"text\": \"{{body}}\", "
                "\"ref\": \"{{jobId}}\", \"parts\": {{segments}}}', default_region: DE}"
                % (m.base, BEARER))
    start(daemon_factory, jobs, provider)
    [jid] = jobs.add({"to": "030 1234567", "body": 'say "hi"\n'}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}, h.get("failedReason")
    assert json.loads(h["stacktrace"]) == ["http: HTTP 503"]
    assert m.requests[1]["json"] == {"to": "+49301234567", "text": 'say "hi"\n', "ref": jid,
                                     "parts": 1}
    rv = json.loads(h["returnvalue"])
    assert rv["provider"] == "http" and rv["messageId"] == "gw-1"  # 1 request before it


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize("provider,want", [
    ("{type: twilio, account_sid: AC1, from: ACME}",
     ":4:15: queues.sms.provider.auth_token_file: required by provider type twilio"),
    ("{type: vonage, api_key: k, api_secret: s, from: ACME, base_url: 'http://h/sms'}",
     ":4:79: queues.sms.provider.base_url: must be scheme, host and port only"),
    ("{type: http, url: 'http://h/', body_template: '{}', default_region: us}",
     ":4:83: queues.sms.provider.default_region: not a region of the table"),
])
def test_bad_sms_provider_config_is_refused_naming_the_key(tmp_path, provider, want):
    p = tmp_path / "notifyq.yaml"
    p.write_text("queues:\n  sms:\n    handler: sms\n    provider: %s\n" % provider)
    r = subprocess.run([str(NOTIFYQD), "-t", "-c", str(p)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert want in r.stdout + r.stderr
