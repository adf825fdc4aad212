# SPDX-License-Identifier: MIT
"""Mocks of the push providers' APIs on 127.0.0.1 (free ports), checking
requests the way the real services do (PROVIDERS.md sections 10, 11, 14)
and answering from a per-test script.

FcmMock: http.server serving both Google's OAuth2 token endpoint (the
jwt-bearer grant; the assertion's RS256 signature verified with the test
service account's public key; iss, scope, aud, iat, exp checked) and FCM
v1's send endpoint (a bearer it issued and not expired; exactly one target;
string data values; the message without its token at most 4096 bytes).

ApnsMock: HTTP/2 with prior knowledge (python3-h2; an HTTP/1.1 request is
refused), checking the ES256 provider token against the test key, the
topic, the push type, the priority, the apns-id form and the payload size."""
import base64
import http.server
import json
import re
import socket
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.exceptions import InvalidSignature

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_parts(token):
    h, c, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(c)), \
        (h + "." + c).encode(), b64url_decode(s)


def service_account(path, token_uri, project="demo-proj"):
    """Writes a service account's key file; returns the public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": project, "private_key_id": "kid-1",
        "private_key": pem, "client_email": "notifyq@%s.iam.gserviceaccount.com" % project,
        "client_id": "1", "token_uri": token_uri}))
    return key.public_key(), pem


class Mock:
    """A recorder and a script: script(kind, n, req) -> reply, where reply
    is (status, headers, body) or "stall" (hold until the test ends) or
    "reset" (close the connection without a reply)."""

    def __init__(self, script):
        self.script = script
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()

    def record(self, req):
        with self.lock:
            req["n"] = sum(1 for r in self.requests if r["kind"] == req["kind"])
            self.requests.append(req)
        return req["n"]

    def of(self, kind):
        with self.lock:
            return [r for r in self.requests if r["kind"] == kind]


class FcmMock(Mock):
    def __init__(self, public_key=None, script=None, expires_in=3599):
        super().__init__(script or (lambda kind, n, req: None))
        self.public_key = public_key
        self.expires_in = expires_in
        self.issued = {}  # access token -> expiry (monotonic)
        mock = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, headers, body):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = {"path": self.path, "body": body,
                       "headers": {k.lower(): v for k, v in self.headers.items()}}
                if self.path == "/token":
                    req["kind"] = "token"
                    out = mock.token(req)
                else:
                    req["kind"] = "send"
                    out = mock.send(req)
                if out == "stall":
                    mock.release.wait(30)
                    self.close_connection = True
                    return
                if out == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    return
                self.reply(*out)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.token_url = self.base_url + "/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def problem_of_assertion(self, req):
        form = urllib.parse.parse_qs(req["body"].decode())
        if req["headers"].get("content-type") != "application/x-www-form-urlencoded":
            return "content-type"
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return "grant_type"
        h, c, signed, sig = jwt_parts(form["assertion"][0])
        try:
            self.public_key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "Invalid JWT Signature."
        if h.get("alg") != "RS256" or c.get("scope") != SCOPE or c.get("aud") != self.token_url:
            return "bad claims"
        if not c.get("iss", "").endswith(".iam.gserviceaccount.com"):
            return "bad iss"
        if c["exp"] - c["iat"] > 3600 or abs(c["iat"] - time.time()) > 300:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
        req["claims"] = c
        return None

    def token(self, req):
        n = self.record(req)
        req["problem"] = self.problem_of_assertion(req)
        out = self.script("token", n, req)
        if out is not None:
            return out
        if req["problem"]:
            return 400, {"Content-Type": "application/json"}, json.dumps(
                {"error": "invalid_grant", "error_description": req["problem"]})
        tok = "ya29.c.mock%d" % n
        with self.lock:
            self.issued[tok] = time.monotonic() + self.expires_in
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"access_token": tok, "expires_in": self.expires_in, "token_type": "Bearer"})

    def problem_of_send(self, req):
        m = re.fullmatch(r"/v1/projects/([^/]+)/messages:send", req["path"])
        if not m:
            return 404, "NOT_FOUND", "bad path"
        auth = req["headers"].get("authorization", "")
        tok = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with self.lock:
            exp = self.issued.get(tok)
        if exp is None or exp < time.monotonic():
            return 401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
        if req["headers"].get("content-type") != "application/json":
            return 400, "INVALID_ARGUMENT", "content-type"
        msg = json.loads(req["body"]).get("message", {})
        req["message"] = msg
        if sum(k in msg for k in ("token", "topic", "condition")) != 1:
            return 400, "INVALID_ARGUMENT", "exactly one of token, topic, condition"
        for k, v in msg.get("data", {}).items():
            if not isinstance(v, str):
                return 400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value' (TYPE_STRING)"
        rest = {k: v for k, v in msg.items() if k != "token"}
        if len(json.dumps(rest, separators=(",", ":"), ensure_ascii=False).encode()) > 4096:
            return 400, "INVALID_ARGUMENT", "Message is too big"
        return None

    def send(self, req):
        n = self.record(req)
        p = self.problem_of_send(req)
        req["problem"] = p
        if p:
            status, st, text = p
            return status, {"Content-Type": "application/json"}, json.dumps(
                {"error": {"code": status, "message": text, "status": st}})
        out = self.script("send", n, req)
        if out is not None:
            return out
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"name": "projects/demo-proj/messages/0:%d%%31bd1c96" % n})

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def fcm_error(status, st, message, code=None):
    err = {"code": status, "message": message, "status": st}
    if code:
        err["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                           "errorCode": code}]
    return status, {"Content-Type": "application/json"}, json.dumps({"error": err})
