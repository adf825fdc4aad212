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
import datetime
import ipaddress
import re
import socket
import ssl
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
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


def apns_key(path):
    """Writes an APNs .p8 key (PKCS#8 EC P-256); returns the public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key.public_key()


def tls_cert(dir_path):
    """A self-signed certificate for 127.0.0.1 (its own CA); returns the
    certificate's and the key's paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, kp = dir_path / "mock.crt", dir_path / "mock.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return crt, kp


PUSH_TYPES = {"alert", "background", "voip", "liveactivity", "location", "complication",
              "fileprovider", "mdm", "pushtotalk"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ApnsMock(Mock):
    """APNs over HTTP/2: TLS with ALPN h2 when tls_dir is given (a
    certificate is made there: self.ca_file), else cleartext with prior
    knowledge. Script replies, besides
    (status, headers, body), "stall", "reset" (RST_STREAM after the
    request), and "goaway" (GOAWAY with {"reason":"Shutdown"} refusing this
    stream: it was not processed, and the connection closes)."""

    def __init__(self, public_key, key_id, team_id, topic, script=None, tls_dir=None):
        import h2.config  # noqa: F401 (python3-h2)
        super().__init__(script or (lambda kind, n, req: None))
        self.public_key, self.key_id, self.team_id, self.topic = public_key, key_id, team_id, topic
        self.connections = 0
        self.h1_refused = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.ctx = None
        if tls_dir:
            self.ca_file, key = tls_cert(tls_dir)
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(self.ca_file), str(key))
            self.ctx.set_alpn_protocols(["h2"])
        self.base_url = "%s://127.0.0.1:%d" % ("https" if tls_dir else "http",
                                               self.sock.getsockname()[1])
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.release.is_set():
            try:
                s, _ = self.sock.accept()
            except OSError:
                continue
            with self.lock:
                self.connections += 1
                cid = self.connections
            threading.Thread(target=self.serve, args=(s, cid), daemon=True).start()

    def problem(self, h, body):
        auth = h.get("authorization", "")
        if not auth.startswith("bearer "):
            return 403, "MissingProviderToken"
        try:
            hdr, claims, signed, sig = jwt_parts(auth[len("bearer "):])
            if len(sig) != 64:
                return 403, "InvalidProviderToken"
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                       int.from_bytes(sig[32:], "big"))
            self.public_key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return 403, "InvalidProviderToken"
        if hdr.get("alg") != "ES256" or hdr.get("kid") != self.key_id or \
                claims.get("iss") != self.team_id:
            return 403, "InvalidProviderToken"
        if claims.get("iat", 0) < time.time() - 3600:
            return 403, "ExpiredProviderToken"
        if h.get(":method") != "POST":
            return 405, "MethodNotAllowed"
        if not re.fullmatch(r"/3/device/[0-9a-fA-F]+", h.get(":path", "")):
            return 404, "BadPath"
        if "apns-topic" not in h:
            return 400, "MissingTopic"
        if h["apns-topic"] != self.topic:
            return 400, "DeviceTokenNotForTopic"
        if h.get("apns-push-type") not in PUSH_TYPES:
            return 400, "InvalidPushType"
        if h.get("apns-priority", "10") not in ("1", "5", "10"):
            return 400, "BadPriority"
        if "apns-id" in h and not UUID.fullmatch(h["apns-id"]):
            return 400, "BadMessageId"
        if not body:
            return 400, "PayloadEmpty"
        if len(body) > (5120 if h["apns-push-type"] == "voip" else 4096):
            return 413, "PayloadTooLarge"
        json.loads(body)
        return None

    def serve(self, s, cid):
        import h2.config
        import h2.connection
        import h2.events
        import h2.exceptions
        import h2.errors
        if self.ctx:
            try:
                s.settimeout(5)
                s = self.ctx.wrap_socket(s, server_side=True)
            except (OSError, ssl.SSLError):
                s.close()
                return
            if s.selected_alpn_protocol() != "h2":
                with self.lock:
                    self.h1_refused += 1
                s.close()
                return
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        streams = {}
        s.settimeout(0.2)
        closing = False
        try:
            while not self.release.is_set() and not closing:
                try:
                    data = s.recv(65535)
                except (socket.timeout, ssl.SSLWantReadError):
                    continue
                if not data:
                    break
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    with self.lock:
                        self.h1_refused += 1
                    break
                for ev in events:
                    if isinstance(ev, h2.events.RequestReceived):
                        streams[ev.stream_id] = {"headers": dict(ev.headers), "body": b""}
                    elif isinstance(ev, h2.events.DataReceived):
                        streams[ev.stream_id]["body"] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        closing |= self.answer(conn, ev.stream_id, streams.pop(ev.stream_id), cid)
                s.sendall(conn.data_to_send())
        except OSError:
            pass
        finally:
            s.close()

    def answer(self, conn, sid, st, cid):
        """Replies on stream sid; True when the connection is to close."""
        import h2.errors
        h = st["headers"]
        req = {"kind": "send", "headers": h, "path": h.get(":path"), "body": st["body"],
               "connection": cid, "token": h.get(":path", "").rpartition("/")[2]}
        n = self.record(req)
        p = self.problem(h, st["body"])
        req["problem"] = p
        out = ((p[0], {}, json.dumps({"reason": p[1]})) if p
               else self.script("send", n, req))
        if out is None:
            out = (200, {}, "")
        if out == "stall":
            return False
        if out == "reset":
            conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
            return False
        if out == "goaway":
            conn.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR,
                                  additional_data=b'{"reason":"Shutdown"}',
                                  last_stream_id=max(0, sid - 2))
            return False  # the client closes once its streams are done, as with APNs
        status, headers, body = out
        hs = [(":status", str(status)), ("apns-id", h.get("apns-id", "77e4d2a0-0000-4000-8000-000000000000"))]
        if body:
            hs.append(("content-type", "application/json"))
        hs += list(headers.items())
        conn.send_headers(sid, hs, end_stream=not body)
        if body:
            conn.send_data(sid, body.encode(), end_stream=True)
        return False

    def stop(self):
        self.release.set()
        self.sock.close()
