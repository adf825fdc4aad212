# SPDX-License-Identifier: MIT
"""The smtp provider end to end: real notifyqd workers submit email jobs to
Debian's python3-aiosmtpd, started here on 127.0.0.1 at a free port, in
plain, STARTTLS + AUTH (a self-signed certificate this file makes with
openssl, trusted through ca_file) and implicit TLS modes. The server
records every transaction (envelope, raw message, the connection it came
on) and answers each RCPT and each message from a per-test script, so the
tests see per-recipient results, retries that skip the recipients already
reached, a dropped connection after DATA (an unknown, counted retry), and
header injection refused before anything is sent."""
import asyncio
import email
import email.policy
import json
import socket
import ssl
import subprocess
import threading
import time

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from test_worker_jobs import Jobs, wait_all_done

USER, PASSWORD = "notifyq@example.org", "s3cret-pw"

# The implicit-TLS server takes AUTH without STARTTLS (see smtp_server).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Sink:
    """An aiosmtpd handler that records and answers by script.
    rcpt(addr, n) -> None (250) or a reply line, n counting that address's
    RCPTs; data(n) -> None (250), a reply line, or "drop" (close the
    connection without a reply), n counting messages."""

    def __init__(self, rcpt=None, data=None):
        self.rcpt_script = rcpt or (lambda addr, n: None)
        self.data_script = data or (lambda n: None)
        self.lock = threading.Lock()
        self.rcpt_seen = {}
        self.messages = []  # delivered (250): {peer, mail_from, rcpt_tos, msg, raw, tls, auth}
        self.data_calls = 0
        self.commands = []  # (peer, "RCPT a@b") in order

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            n = self.rcpt_seen.get(address, 0)
            self.rcpt_seen[address] = n + 1
            self.commands.append((session.peer, "RCPT " + address))
        reply = self.rcpt_script(address, n)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            n = self.data_calls
            self.data_calls += 1
        reply = self.data_script(n)
        if reply == "drop":
            server.transport.close()
            return "250 2.0.0 never seen"
        if reply:
            return reply
        with self.lock:
            self.messages.append({
                "peer": session.peer, "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos), "raw": envelope.content,
                "msg": email.message_from_bytes(envelope.content, policy=email.policy.default),
                "tls": server.transport.get_extra_info("ssl_object") is not None,
                "auth": session.authenticated})
        return "250 2.0.0 Ok: queued as Q%d" % n

    def to(self, addr):
        return [m for m in self.messages if addr in m["rcpt_tos"]]


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER and \
        auth_data.password.decode() == PASSWORD
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("smtp-tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(key), str(crt)


def tls_context(cert):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert[1], cert[0])
    return ctx


def tls_probe(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            t.recv(1024)


@pytest.fixture
def smtp_server():
    made = []

    def make(sink, mode="plain", cert=None):
        port = free_port()
        kw = {}
        if mode == "starttls":
            kw = dict(tls_context=tls_context(cert), require_starttls=True,
                      auth_required=True, auth_require_tls=True, authenticator=authenticator)
        elif mode == "implicit":
            # aiosmtpd counts only STARTTLS as TLS for auth_require_tls;
            # this connection is TLS from its first byte.
            kw = dict(ssl_context=tls_context(cert), auth_required=True, auth_require_tls=False,
                      authenticator=authenticator)
        elif mode == "auth-plain-text":  # no STARTTLS offered at all
            kw = dict(auth_require_tls=False, authenticator=authenticator)
        c = Controller(sink, hostname="127.0.0.1", port=port, **kw)
        if mode == "implicit":
            # aiosmtpd's readiness probe would wrap its socket with the
            # server's context; probe as a client that skips verification.
            c._trigger_server = lambda: tls_probe(port)
        c.start()
        made.append(c)
        return port

    yield make
    for c in made:
        c.stop()


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


def start(daemon_factory, jobs, provider, concurrency=1, attempts_backoff=True):
    d = daemon_factory({jobs.name: {"handler": "email", "bullmq_queue": jobs.name,
                                    "concurrency": concurrency, "provider": provider}})
    d.start()
    d.wait_ready(timeout=10)
    return d


RETRY = {"attempts": 3, "backoff": {"type": "fixed", "delay": 100}}


def rv(jobs, jid):
    h = jobs.job(jid)
    assert h.get("returnvalue"), h.get("failedReason")
    return json.loads(h["returnvalue"])


# -- modes ----------------------------------------------------------------------------


def test_plain_delivers_with_headers_and_multipart_body(daemon_factory, jobs, smtp_server):
    sink = Sink()
    port = smtp_server(sink)
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', tls: none, "
          "from: 'Shop <shop@example.com>'}" % port)
    [jid] = jobs.add({"to": ["Zoë <zoe@example.org>", "bob@example.org"],
                      "cc": "carol@example.org", "bcc": "audit@example.org",
                      "replyTo": "help@example.com", "subject": "Grüße, order 7",
                      "text": "Hello Zoë\nline 2", "html": "<p>Hello Zoë</p>"})
    wait_all_done(jobs, 1)
    out = rv(jobs, jid)
    [m] = sink.messages
    msg = m["msg"]
    assert m["mail_from"] == "shop@example.com"
    assert sorted(m["rcpt_tos"]) == ["audit@example.org", "bob@example.org",
                                     "carol@example.org", "zoe@example.org"]
    assert msg["Subject"] == "Grüße, order 7"
    assert str(msg["From"]) == "Shop <shop@example.com>"
    assert str(msg["To"]) == "Zoë <zoe@example.org>, bob@example.org"
    assert str(msg["Cc"]) == "carol@example.org"
    assert str(msg["Reply-To"]) == "help@example.com"
    assert msg["Bcc"] is None and b"audit@" not in m["raw"]
    assert msg["Date"] is not None
    assert msg["Message-ID"] == "<%s>" % out["messageId"]
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert text.get_content() == "Hello Zoë\r\nline 2"
    assert html.get_content_type() == "text/html"
    assert "Hello Zoë" in html.get_content()
    assert out["provider"] == "smtp" and out["ok"] is True
    assert sorted((r["to"], r["status"]) for r in out["recipients"]) == [
        ("audit@example.org", "sent"), ("bob@example.org", "sent"),
        ("carol@example.org", "sent"), ("zoe@example.org", "sent")]
    assert all(r["id"] == out["messageId"] and r["reason"] is None for r in out["recipients"])
    assert not m["tls"]


def test_starttls_with_auth_and_connection_reuse(daemon_factory, jobs, smtp_server, cert,
                                                 tmp_path):
    sink = Sink()
    port = smtp_server(sink, "starttls", cert)
    pw = tmp_path / "smtp.password"
    pw.write_text(PASSWORD + "\n")
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', username: '%s', "
          "password_file: %s, ca_file: %s, from: app@example.com}" % (port, USER, pw, cert[1]))
    n = 20
    ids = jobs.add({"to": "user@example.org", "subject": "hi", "text": "body"}, n=n)
    wait_all_done(jobs, n)
    assert jobs.ids("completed") == set(ids)
    assert len(sink.messages) == n
    assert all(m["tls"] and m["auth"] for m in sink.messages)
    # One worker, concurrency 1: every message on the one connection.
    assert len({m["peer"] for m in sink.messages}) == 1
    assert len({m["msg"]["Message-ID"] for m in sink.messages}) == n


def test_wrong_password_fails_permanently(daemon_factory, jobs, smtp_server, cert):
    sink = Sink()
    port = smtp_server(sink, "starttls", cert)
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', username: '%s', "
          "password: wrong, ca_file: %s}" % (port, USER, cert[1]))
    [jid] = jobs.add({"to": "user@example.org", "text": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid}
    assert h["atm"] == "1"
    assert h["failedReason"].startswith("smtp: AUTH refused")
    assert "wrong" not in h["failedReason"]
    assert sink.messages == []


def test_implicit_tls(daemon_factory, jobs, smtp_server, cert, tmp_path):
    sink = Sink()
    port = smtp_server(sink, "implicit", cert)
    pw = tmp_path / "smtp.password"
    pw.write_text(PASSWORD)
    start(daemon_factory, jobs, "{type: smtp, url: 'smtps://127.0.0.1:%d', username: '%s', "
          "password_file: %s, ca_file: %s}" % (port, USER, pw, cert[1]))
    [jid] = jobs.add({"to": "user@example.org", "subject": "tls", "text": "x"})
    wait_all_done(jobs, 1)
    assert rv(jobs, jid)["recipients"][0]["status"] == "sent"
    [m] = sink.messages
    assert m["tls"] and m["auth"]


def test_untrusted_certificate_is_not_sent_to(daemon_factory, jobs, smtp_server, cert):
    sink = Sink()
    port = smtp_server(sink, "implicit", cert)
    # No ca_file: the system's CAs do not know the test certificate.
    start(daemon_factory, jobs, "{type: smtp, url: 'smtps://127.0.0.1:%d'}" % port)
    [jid] = jobs.add({"to": "user@example.org", "text": "x"}, {"attempts": 1})
    wait_all_done(jobs, 1)
    assert jobs.ids("failed") == {jid}
    assert "nothing sent" in jobs.job(jid)["failedReason"]
    assert sink.messages == []


def test_starttls_required_refuses_a_server_without_it(daemon_factory, jobs, smtp_server,
                                                       tmp_path):
    sink = Sink()
    port = smtp_server(sink, "auth-plain-text")
    pw = tmp_path / "smtp.password"
    pw.write_text(PASSWORD)
    # tls defaults to starttls for smtp://
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', username: '%s', "
          "password_file: %s}" % (port, USER, pw))
    [jid] = jobs.add({"to": "user@example.org", "text": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid}
    assert h["atm"] == "1"  # permanent: no retry
    assert "does not offer STARTTLS" in h["failedReason"]
    assert sink.messages == [] and sink.commands == []


# -- replies --------------------------------------------------------------------------


def test_451_then_250_delivers_once(daemon_factory, jobs, smtp_server):
    sink = Sink(data=lambda n: "451 4.3.0 try later" if n == 0 else None)
    port = smtp_server(sink)
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', tls: none}" % port)
    [jid] = jobs.add({"to": "user@example.org", "text": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}
    assert h["atm"] == "2"
    assert json.loads(h["stacktrace"]) == ["smtp: message: 451 4.3.0 try later"]
    assert len(sink.messages) == 1 and sink.data_calls == 2


def test_550_for_one_of_three_fails_only_it_and_a_retry_skips_the_others(
        daemon_factory, jobs, smtp_server):
    def rcpt(addr, n):
        if addr == "gone@example.org":
            return "550 5.1.1 No such user"
        if addr == "busy@example.org" and n == 0:
            return "450 4.2.1 Mailbox busy"
        return None

    sink = Sink(rcpt=rcpt)
    port = smtp_server(sink)
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', tls: none}" % port)
    [jid] = jobs.add({"to": ["ok@example.org", "gone@example.org", "busy@example.org"],
                      "subject": "three", "text": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    out = rv(jobs, jid)
    assert h["atm"] == "2"
    by = {r["to"]: r for r in out["recipients"]}
    assert by["ok@example.org"]["status"] == "sent"
    assert by["busy@example.org"]["status"] == "sent"
    assert by["gone@example.org"]["status"] == "dead"
    assert by["gone@example.org"]["reason"] == \
        "smtp: RCPT gone@example.org: 550 5.1.1 No such user"
    assert by["gone@example.org"]["id"] is None
    # Each address got the message once; the retry asked only for busy@.
    assert len(sink.to("ok@example.org")) == 1 and len(sink.to("busy@example.org")) == 1
    assert sink.rcpt_seen == {"ok@example.org": 1, "gone@example.org": 1,
                              "busy@example.org": 2}
    # What the first attempt settled was in progress, where apps see it.
    prog = json.loads(h["progress"])
    assert {r["to"]: r["status"] for r in prog["recipients"]} == {
        "ok@example.org": "sent", "gone@example.org": "dead"}


def test_every_recipient_dead_fails_the_job_listing_them(daemon_factory, jobs, smtp_server):
    sink = Sink(rcpt=lambda addr, n: "550 5.1.1 No such user")
    port = smtp_server(sink)
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', tls: none}" % port)
    [jid] = jobs.add({"to": ["a@example.org", "b@example.org"], "text": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid} and h["atm"] == "1"
    assert h["failedReason"] == "smtp: RCPT a@example.org: 550 5.1.1 No such user"
    prog = json.loads(h["progress"])
    assert [(r["to"], r["status"]) for r in prog["recipients"]] == [
        ("a@example.org", "dead"), ("b@example.org", "dead")]
    assert sink.messages == []


def test_drop_after_data_is_an_unknown_retry_and_counted(daemon_factory, jobs, smtp_server):
    sink = Sink(data=lambda n: "drop" if n == 0 else None)
    port = smtp_server(sink)
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', tls: none}" % port)
    [jid] = jobs.add({"to": "user@example.org", "text": "x"}, RETRY)
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("completed") == {jid}
    assert h["atm"] == "2"
    [reason] = json.loads(h["stacktrace"])
    assert reason == "smtp: connection lost after the whole message was sent (possible duplicate)"
    out = rv(jobs, jid)
    assert out["unknownAttempts"] == 1
    assert sink.data_calls == 2 and len(sink.messages) == 1


def test_header_injection_fails_naming_the_field_and_sends_nothing(daemon_factory, jobs,
                                                                   smtp_server):
    sink = Sink()
    port = smtp_server(sink)
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', tls: none}" % port)
    [a] = jobs.add({"to": "user@example.org", "text": "x",
                    "subject": "hi\r\nBcc: victim@example.net"}, RETRY)
    [b] = jobs.add({"to": "user@example.org", "text": "x", "tenantId": "t1\nX-Evil: 1"}, RETRY)
    [c] = jobs.add({"to": "Eve\r\n <user@example.org>", "text": "x"}, RETRY)
    # Raw bytes, as a producer with a broken encoder would write them.
    bad_utf8 = b'{"to":"user@example.org","text":"x","subject":"caf\xc3"}'
    d = jobs._add(keys=[jobs.base + "meta"],
                  args=[jobs.base, "", "job", bad_utf8, json.dumps(RETRY),
                        int(time.time() * 1000), 0, 0, "", "", 0, "", ""])[0]
    [ok] = jobs.add({"to": "user@example.org", "text": "fine"}, RETRY)
    wait_all_done(jobs, 5)
    assert jobs.ids("failed") == {a, b, c, d}
    def field(jid, name):  # the job's data is not UTF-8: no hgetall
        return jobs.r.hget(jobs.base + jid, name)

    assert field(d, "failedReason") == "data.subject: not valid JSON: invalid UTF-8 at offset 50"
    assert jobs.job(a)["failedReason"] == "data.subject: must be one line"
    assert jobs.job(b)["failedReason"] == \
        "data.tenantId: contains CR or LF (header injection); nothing was sent"
    assert jobs.job(c)["failedReason"].startswith("data.to: invalid address")
    assert all(field(j, "atm") == "1" for j in (a, b, c, d))
    # Only the good job reached the server, and the worker kept going.
    [m] = sink.messages
    assert m["msg"].get_content().strip() == "fine"
    assert sink.rcpt_seen == {"user@example.org": 1}


def test_a_thousand_emails_land_once_each_on_reused_connections(daemon_factory, jobs,
                                                                smtp_server):
    sink = Sink()
    port = smtp_server(sink)
    start(daemon_factory, jobs, "{type: smtp, url: 'smtp://127.0.0.1:%d', tls: none, "
          "from: app@example.com}" % port, concurrency=10)
    n = 1000
    p = jobs.r.pipeline(transaction=False)
    now = int(time.time() * 1000)
    for i in range(n):
        data = json.dumps({"to": "user%d@example.org" % i, "subject": "Order %d ✓" % i,
                           "text": "Dear user %d" % i, "html": "<b>user %d</b>" % i})
        jobs._add(keys=[jobs.base + "meta"], args=[jobs.base, "", "job", data, "{}", now, 0, 0,
                                                   "", "", 0, "", ""], client=p)
    ids = [res[0] for res in p.execute()]
    wait_all_done(jobs, n, timeout=120)
    assert jobs.ids("completed") == set(ids)
    assert len(sink.messages) == n
    seen = set()
    for m in sink.messages:
        msg = m["msg"]
        [rcpt] = m["rcpt_tos"]
        i = int(rcpt[len("user"):rcpt.index("@")])
        assert i not in seen
        seen.add(i)
        assert msg["To"] == rcpt and msg["From"] == "app@example.com"
        assert msg["Subject"] == "Order %d ✓" % i
        text, html = msg.iter_parts()
        assert text.get_content().strip() == "Dear user %d" % i
        assert html.get_content().strip() == "<b>user %d</b>" % i
        assert msg["X-Notifyq-Job-Id"] == ids[i]
    # Connections are kept and reused: at most one per transfer in flight.
    assert len({m["peer"] for m in sink.messages}) <= 10
