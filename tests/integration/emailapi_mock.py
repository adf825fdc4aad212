# SPDX-License-Identifier: MIT
"""Mock email APIs for the integration tests: SendGrid, Resend, Mailgun,
Postmark and SES v2 on 127.0.0.1 at a free port (Debian's python3
http.server). Each checks what the real API checks (path, auth, content
type, required fields, recipient limits, body size; SES's SigV4 signature
recomputed with the test secret and its date within 15 minutes) and answers
in the provider's own shapes (PROVIDERS.md §3-§7, §14). A per-test script
can override the reply to the n-th request: (status, headers, body),
"reset" (close the connection after reading the request, no reply) or
"stall" (hold it until the test ends). Every request is recorded with what
the checks found ("problem", None when it passed)."""
import base64
import hashlib
import hmac
import http.server
import json
import socket
import struct
import threading
import time
import urllib.parse
import uuid

API_KEY = "test-api-key-0123456789"
SERVER_TOKEN = "pm-server-token-0123"
AWS_KEY_ID = "AKIDEXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_REGION = "eu-west-1"
DOMAIN = "mg.example.com"


def sendgrid_error(message, field=None):
    return json.dumps({"errors": [{"message": message, "field": field, "help": None}]})


def resend_error(status, name, message):
    return status, {"Content-Type": "application/json"}, json.dumps(
        {"statusCode": status, "message": message, "name": name})


def postmark_error(status, code, message):
    return status, {"Content-Type": "application/json"}, json.dumps(
        {"ErrorCode": code, "Message": message})


def ses_error(status, name, message):
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": name,
                    "x-amzn-RequestId": str(uuid.uuid4())}, json.dumps({"message": message})


JSON = {"Content-Type": "application/json"}


# -- checks: each returns (reply, recipients) where reply is None when the
# request is valid, else the error reply the real API gives.

def check_sendgrid(req):
    if req["method"] != "POST" or req["path"] != "/v3/mail/send":
        return (404, JSON, sendgrid_error("Not Found")), []
    if req["headers"].get("authorization") != "Bearer " + API_KEY:
        return (401, JSON, sendgrid_error(
            "The provided authorization grant is invalid, expired, or revoked")), []
    if not req["headers"].get("content-type", "").startswith("application/json"):
        return (400, JSON, sendgrid_error("Content-Type should be application/json.")), []
    if len(req["body"]) > 30 * 1024 * 1024:
        return (413, JSON, sendgrid_error("Payload Too Large")), []
    try:
        b = json.loads(req["body"])
    except ValueError:
        return (400, JSON, sendgrid_error("Bad Request", None)), []
    pers = b.get("personalizations") or []
    if not 1 <= len(pers) <= 1000:
        return (400, JSON, sendgrid_error("The personalizations field is required and must "
                                          "have at least one personalization.",
                                          "personalizations")), []
    rcpts = []
    for p in pers:
        if not p.get("to"):
            return (400, JSON, sendgrid_error("The to array is required for all "
                                              "personalization objects", "personalizations.to")), []
        for k in ("to", "cc", "bcc"):
            rcpts += [x["email"] for x in p.get(k, [])]
        if any(not isinstance(v, str) for v in p.get("custom_args", {}).values()):
            return (400, JSON, sendgrid_error("custom_args values must be strings",
                                              "custom_args")), []
    if len(rcpts) > 1000:
        return (400, JSON, sendgrid_error("too many recipients", "personalizations")), []
    if not (b.get("from") or {}).get("email"):
        return (400, JSON, sendgrid_error("The from object must be provided for every email "
                                          "send.", "from")), []
    types = [c.get("type") for c in b.get("content", [])]
    if not types or len(set(types)) != len(types) or \
            ("text/html" in types and "text/plain" in types and
             types.index("text/plain") > types.index("text/html")):
        return (400, JSON, sendgrid_error("The text/plain content type must be first",
                                          "content")), []
    return None, rcpts


def check_resend(req):
    if req["method"] != "POST" or req["path"] != "/emails":
        return resend_error(404, "not_found", "The requested endpoint does not exist."), []
    auth = req["headers"].get("authorization")
    if not auth:
        return resend_error(401, "missing_api_key", "Missing API key in the authorization "
                                                    "header."), []
    if auth != "Bearer " + API_KEY:
        return resend_error(403, "invalid_api_key", "API key is invalid"), []
    if not req["headers"].get("content-type", "").startswith("application/json"):
        return resend_error(422, "validation_error", "Invalid content type"), []
    key = req["headers"].get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 256:
        return resend_error(400, "invalid_idempotency_key", "The key must be between 1-256 "
                                                            "chars."), []
    try:
        b = json.loads(req["body"])
    except ValueError:
        return resend_error(422, "validation_error", "Invalid JSON"), []
    for field in ("from", "to", "subject"):
        if field not in b:
            return resend_error(422, "missing_required_field",
                                "Missing `%s` field." % field), []
    if not (b.get("html") or b.get("text")):
        return resend_error(422, "validation_error", "Missing `html` or `text` field."), []
    to = b["to"] if isinstance(b["to"], list) else [b["to"]]
    if len(to) > 50:
        return resend_error(422, "validation_error", "Too many recipients (max 50)."), []
    for t in b.get("tags", []):
        if not all(c.isalnum() or c in "_-" for c in t["name"] + t["value"]):
            return resend_error(422, "validation_error", "Tags must be ASCII letters, numbers, "
                                                         "underscores or dashes."), []
    return None, to + b.get("cc", []) + b.get("bcc", [])


def check_mailgun(req):
    if req["method"] != "POST" or not req["path"].startswith("/v3/"):
        return (404, JSON, json.dumps({"message": "not found"})), []
    auth = req["headers"].get("authorization", "")
    want = "Basic " + base64.b64encode(("api:" + API_KEY).encode()).decode()
    if auth != want:
        return (401, {"Content-Type": "text/plain"}, "Forbidden"), []
    if req["path"] != "/v3/%s/messages" % DOMAIN:
        return (404, JSON, json.dumps({"message": "Domain not found: %s" %
                                       req["path"].split("/")[2]})), []
    if req["headers"].get("content-type") != "application/x-www-form-urlencoded":
        return (400, JSON, json.dumps({"message": "unsupported content type"})), []
    form = urllib.parse.parse_qs(req["body"].decode(), keep_blank_values=True)
    for field in ("from", "to"):
        if field not in form:
            return (400, JSON, json.dumps({"message": "'%s' parameter is missing" % field})), []
    if not (form.get("text") or form.get("html")):
        return (400, JSON, json.dumps({"message": "Need at least one of 'text' or 'html' "
                                                  "parameters specified"})), []
    opts = sum(len(k) + len(v) for k, vs in form.items() for v in vs if k[:2] in
               ("o:", "h:", "v:", "t:"))
    if opts > 16 * 1024:
        return (400, JSON, json.dumps({"message": "o:, h:, v:, t: over 16 KB"})), []
    req["form"] = form
    return None, [a for k in ("to", "cc", "bcc") for v in form.get(k, []) for a in v.split(",")]


def check_postmark(req):
    if req["method"] != "POST" or req["path"] != "/email":
        return (404, JSON, ""), []
    if req["headers"].get("x-postmark-server-token") != SERVER_TOKEN:
        return postmark_error(401, 10, "The Server Token you provided in the "
                                       "X-Postmark-Server-Token request header was invalid."), []
    if req["headers"].get("accept") != "application/json" or \
            req["headers"].get("content-type") != "application/json":
        return postmark_error(422, 409, "JSON request required"), []
    try:
        b = json.loads(req["body"])
    except ValueError:
        return postmark_error(422, 402, "Invalid JSON"), []
    if not b.get("From"):
        return postmark_error(422, 300, "Invalid 'From' address: ''."), []
    if not b.get("To"):
        return postmark_error(422, 300, "Zero recipients specified"), []
    if not (b.get("TextBody") or b.get("HtmlBody")):
        return postmark_error(422, 300, "Provide either email TextBody or HtmlBody or both."), []
    rcpts = [a.strip() for k in ("To", "Cc", "Bcc") for a in b.get(k, "").split(",") if a.strip()]
    if len(rcpts) > 50:
        return postmark_error(422, 300, "Too many recipients (max 50)"), []
    return None, rcpts


def sigv4_problem(req):
    h = req["headers"]
    auth = h.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "MissingAuthenticationToken"
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    cred = parts.get("Credential", "").split("/")
    signed = parts.get("SignedHeaders", "").split(";")
    date = h.get("x-amz-date", "")
    if len(cred) != 5 or cred[0] != AWS_KEY_ID:
        return "InvalidClientTokenId"
    if "host" not in signed or "x-amz-date" not in signed:
        return "IncompleteSignature"
    try:
        t = time.mktime(time.strptime(date, "%Y%m%dT%H%M%SZ")) - time.timezone
    except ValueError:
        return "IncompleteSignature"
    if abs(t - time.time()) > 15 * 60:
        return "RequestExpired"
    if cred[1] != date[:8] or cred[2] != AWS_REGION or cred[3] != "ses" or \
            cred[4] != "aws4_request":
        return "SignatureDoesNotMatch"
    canon_headers = "".join("%s:%s\n" % (n, " ".join(h.get(n, "").split())) for n in signed)
    creq = "\n".join([req["method"], req["path"], "", canon_headers, ";".join(signed),
                      hashlib.sha256(req["body"]).hexdigest()])
    scope = "/".join(cred[1:])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + AWS_SECRET).encode()
    for part in cred[1:]:
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    want = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, parts.get("Signature", "")):
        return "SignatureDoesNotMatch"
    return None


def check_ses(req):
    if req["method"] != "POST" or req["path"] != "/v2/email/outbound-emails":
        return ses_error(404, "NotFoundException", "Unknown path"), []
    problem = sigv4_problem(req)
    if problem:
        return ses_error(403 if problem != "RequestExpired" else 400, problem,
                         "The request signature we calculated does not match the signature "
                         "you provided." if problem == "SignatureDoesNotMatch" else problem), []
    try:
        b = json.loads(req["body"])
    except ValueError:
        return ses_error(400, "BadRequestException", "Invalid JSON"), []
    dest = b.get("Destination") or {}
    rcpts = dest.get("ToAddresses", []) + dest.get("CcAddresses", []) + \
        dest.get("BccAddresses", [])
    if not b.get("FromEmailAddress") or not rcpts:
        return ses_error(400, "BadRequestException", "FromEmailAddress and Destination are "
                                                     "required"), []
    if len(rcpts) > 50:
        return ses_error(400, "MessageRejected", "Recipient count exceeds 50."), []
    simple = (b.get("Content") or {}).get("Simple")
    if not simple or not simple.get("Subject") or not simple.get("Body"):
        return ses_error(400, "BadRequestException", "Content.Simple needs Subject and Body"), []
    return None, rcpts


CHECKS = {"sendgrid": check_sendgrid, "resend": check_resend, "mailgun": check_mailgun,
          "postmark": check_postmark, "ses": check_ses}


class Server(http.server.ThreadingHTTPServer):
    # http.server's backlog of 5 drops connections a worker opens at once.
    request_queue_size = 256


class MockAPI:
    """One provider's API. `script(n, req)` -> None (the checks decide:
    the success reply or the error), a reply tuple, "reset" or "stall"."""

    def __init__(self, provider, script=None):
        self.provider = provider
        self.script = script or (lambda n, req: None)
        self.requests = []
        self.sent = []  # messages the API accepted (and would deliver)
        self.idempotency = {}  # resend: key -> (body, reply)
        self.lock = threading.Lock()
        self.release = threading.Event()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = {"method": "POST", "path": self.path, "body": body,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "t": time.monotonic()}
                req["error"], req["rcpts"] = CHECKS[api.provider](req)
                req["problem"] = req["error"] and req["error"][2]
                with api.lock:
                    n = len(api.requests)
                    api.requests.append(req)
                reply = api.script(n, req)
                if reply == "stall":
                    api.release.wait(30)
                    self.close_connection = True
                    return
                if reply == "reset":
                    # RST, not FIN: the client sees the connection reset.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if reply is None:
                    reply = req["error"] or api.success(req)
                status, headers, text = reply
                data = text.encode() if isinstance(text, str) else text
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def success(self, req):
        p = self.provider
        if p == "resend":
            key = req["headers"].get("idempotency-key")
            with self.lock:
                if key in self.idempotency:
                    body, reply = self.idempotency[key]
                    if body != req["body"]:
                        return resend_error(409, "invalid_idempotent_request",
                                            "Same idempotency key used with a different "
                                            "request payload.")
                    return reply  # replayed: nothing sent again
        mid = str(uuid.uuid4())
        # the id as the provider's reply carries it
        rid = {"sendgrid": mid.replace("-", "")[:22], "mailgun": "<%s@%s>" % (mid, DOMAIN),
               "ses": "0100018c" + mid.replace("-", "") + "-000000"}.get(p, mid)
        with self.lock:
            self.sent.append({"id": mid, "reply_id": rid, "rcpts": req["rcpts"], "req": req})
        if p == "sendgrid":
            return 202, {"X-Message-Id": rid}, ""
        if p == "resend":
            reply = (200, JSON, json.dumps({"id": rid}))
            if key:
                with self.lock:
                    self.idempotency[key] = (req["body"], reply)
            return reply
        if p == "mailgun":
            return 200, JSON, json.dumps({"id": rid, "message": "Queued. Thank you."})
        if p == "postmark":
            return 200, JSON, json.dumps({"To": ", ".join(req["rcpts"]),
                                          "SubmittedAt": "2024-01-01T12:00:00.0-05:00",
                                          "MessageID": rid, "ErrorCode": 0, "Message": "OK"})
        return 200, dict(JSON, **{"x-amzn-RequestId": str(uuid.uuid4())}), \
            json.dumps({"MessageId": rid})

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def provider_block(api, tmp_path, **extra):
    """The queue's provider block pointing at api, credentials in files."""
    p = api.provider
    keyfile = tmp_path / ("%s.secret" % p)
    block = {"type": p, "base_url": api.base_url}
    if p in ("sendgrid", "resend", "mailgun"):
        keyfile.write_text(API_KEY + "\n")
        block["api_key_file"] = str(keyfile)
    if p == "mailgun":
        block["domain"] = DOMAIN
    if p == "postmark":
        keyfile.write_text(SERVER_TOKEN + "\n")
        block["server_token_file"] = str(keyfile)
    if p == "ses":
        keyfile.write_text(AWS_SECRET + "\n")
        block.update(region=AWS_REGION, access_key_id=AWS_KEY_ID,
                     secret_access_key_file=str(keyfile))
    block.update(extra)
    return json.dumps(block)


def main():
    """python3 emailapi_mock.py PROVIDER DIR: serves one mock API (for the
    Node interop test). Prints the provider block (JSON, credentials in
    files under DIR) on the first line, then one JSON line per message the
    API accepted ({"id" as replied, "rcpts", "problem"}); stops when stdin
    closes."""
    import pathlib
    import sys

    api = MockAPI(sys.argv[1])
    print(provider_block(api, pathlib.Path(sys.argv[2])), flush=True)
    seen = 0

    def report():
        nonlocal seen
        with api.lock:
            new = api.sent[seen:]
            seen = len(api.sent)
        for m in new:
            print(json.dumps({"id": m["reply_id"], "rcpts": m["rcpts"],
                              "problem": m["req"]["problem"]}), flush=True)

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(0.05):
        report()
    report()
    api.stop()


if __name__ == "__main__":
    main()
