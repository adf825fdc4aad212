# SPDX-License-Identifier: MIT
"""TLS to Redis (rediss://, redis.tls) against Debian's redis-server with
--tls-port, a CA and certificates this test makes with the openssl CLI.
Workers and notifyqctl run jobs over TLS with the right CA; a wrong CA, a
name the certificate does not hold, or a missing client certificate where
the server asks for one are refused with OpenSSL's reason (the log, the
worker's status note, notifyqctl's message and exit status), and nothing is
touched."""
import shutil
import subprocess

import pytest
import redis

from conftest import NOTIFYQCTL, REDIS_SERVER, Daemon, finish, short_tmpdir, wait_for
from test_redis_sentinel import free_ports


def openssl(d, *args):
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
            "-out", name + ".crt", "-days", "2", "-subj", "/CN=notifyq test " + name)


def make_cert(d, name, ca, san=None):
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
            name + ".csr", "-subj", "/CN=" + name)
    ext = []
    if san:
        (d / (name + ".ext")).write_text("subjectAltName=%s\n" % san)
        ext = ["-extfile", name + ".ext"]
    openssl(d, "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", *ext)


class TlsRedis:
    def __init__(self, d, auth_clients):
        self.dir = d
        self.port = free_ports(1)[0]
        self.socket = str(d / "redis.sock")
        self.proc = subprocess.Popen(
            # Both loopbacks (::1 where there is one: the "-"): an installed
            # Debian resolves localhost to ::1 first.
            [REDIS_SERVER, "--port", "0", "--bind", "127.0.0.1", "-::1",
             "--tls-port", str(self.port), "--tls-cert-file", str(d / "server.crt"),
             "--tls-key-file", str(d / "server.key"), "--tls-ca-cert-file", str(d / "ca.crt"),
             "--tls-auth-clients", "yes" if auth_clients else "no",
             # The test's own look at the data, without TLS.
             "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(d),
             "--logfile", str(d / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(unix_socket_path=self.socket, decode_responses=True)

        def up():
            try:
                return self.client.ping()
            except redis.RedisError:
                return self.proc.poll() is not None

        wait_for(up, timeout=10, what="redis-server with TLS")
        assert self.proc.poll() is None, (d / "redis.log").read_text()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def certs():
    d = short_tmpdir("nq-tls-")
    make_ca(d, "ca")
    make_ca(d, "other")
    make_cert(d, "server", "ca", "DNS:localhost,IP:127.0.0.1")
    make_cert(d, "client", "ca")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tls_redis(certs):
    r = TlsRedis(certs, auth_clients=False)
    yield r
    r.stop()


@pytest.fixture
def mtls_redis(certs):
    r = TlsRedis(certs, auth_clients=True)
    yield r
    r.stop()


def config(host, port, control, state, **tls):
    lines = ["redis:", "  url: rediss://%s:%d" % (host, port)]
    if tls:
        lines.append("  tls:")
        lines += ["    %s: %s" % kv for kv in tls.items()]
    lines += ["control:", "  socket: %s" % control, "state_dir: %s" % state, "queues:",
              "  email:", "    handler: noop"]
    return "\n".join(lines) + "\n"


def ctl(cfg, *args):
    return subprocess.run([str(NOTIFYQCTL), "-c", str(cfg), *args], capture_output=True,
                          text=True, timeout=30)


def make_daemon(tmp_path, host, port, **tls):
    d = Daemon(tmp_path / "daemon", "/nonexistent")
    d.write_config(text=config(host, port, d.sock, tmp_path / "state", **tls))
    return d


def runs_jobs(tmp_path, r, host, **tls):
    d = make_daemon(tmp_path, host, r.port, **tls)
    try:
        ids = []
        for i in range(5):
            p = ctl(d.cfg, "send", "email", "--data", '{"n":%d}' % i)
            assert p.returncode == 0, p.stderr
            ids.append(p.stdout.strip())
        assert r.client.llen("bull:email:wait") == 5
        d.start()
        d.wait_ready(timeout=10)
        wait_for(lambda: r.client.zcard("bull:email:completed") == 5, timeout=20,
                 what="5 jobs completed over TLS")
        assert sorted(r.client.zrange("bull:email:completed", 0, -1)) == sorted(ids)
        counts = ctl(d.cfg, "counts", "email", "--json")
        assert counts.returncode == 0 and '"completed": 5' in counts.stdout, counts.stderr
    finally:
        finish(d)


def refused(tmp_path, r, host, reason, **tls):
    """notifyqctl and a worker refuse the server, saying reason."""
    d = make_daemon(tmp_path, host, r.port, **tls)
    where = "redis %s:%d: TLS: " % (host, r.port)
    try:
        p = ctl(d.cfg, "send", "email", "--data", "{}")
        assert p.returncode == 2, p.stderr
        assert p.stderr.startswith("notifyqctl: " + where) and reason in p.stderr, p.stderr
        r.client.lpush("bull:email:wait", "1")
        d.start()

        def noted():
            st = d.try_status()
            w = st and st["queues"][0]["workers"]
            return w if w and w[0].get("note", "").startswith(where) else None

        w = wait_for(noted, timeout=10, what="the worker's note naming the TLS failure")
        assert reason in w[0]["note"] and w[0]["redis"] == "connecting"
        assert d.log_has("worker email/0: %s" % where.replace(".", r"\."))
        assert reason in d.log_text()
        assert r.client.lrange("bull:email:wait", 0, -1) == ["1"]
        assert r.client.keys("bull:email:*") == ["bull:email:wait"]
    finally:
        finish(d)


def test_tls_with_the_right_ca_by_name(tmp_path, tls_redis, certs):
    runs_jobs(tmp_path, tls_redis, "localhost", ca_file=certs / "ca.crt")


def test_tls_with_the_right_ca_by_ip_address(tmp_path, tls_redis, certs):
    runs_jobs(tmp_path, tls_redis, "127.0.0.1", ca_file=certs / "ca.crt")


def test_tls_with_a_wrong_ca_is_refused(tmp_path, tls_redis, certs):
    refused(tmp_path, tls_redis, "localhost", "certificate verify failed",
            ca_file=certs / "other.crt")


def test_tls_with_a_wrong_host_name_is_refused(tmp_path, tls_redis, certs):
    refused(tmp_path, tls_redis, "localhost", "certificate verify failed: hostname mismatch",
            ca_file=certs / "ca.crt", server_name="redis.example.org")


def test_tls_without_the_system_trusting_the_ca_is_refused(tmp_path, tls_redis):
    # No ca_file: the system's CAs, which do not know this one.
    refused(tmp_path, tls_redis, "localhost", "certificate verify failed")


def test_tls_verify_false_accepts_an_unknown_ca(tmp_path, tls_redis, certs):
    runs_jobs(tmp_path, tls_redis, "localhost", ca_file=certs / "other.crt", verify="false")


def test_mutual_tls_with_a_client_certificate(tmp_path, mtls_redis, certs):
    runs_jobs(tmp_path, mtls_redis, "localhost", ca_file=certs / "ca.crt",
              cert_file=certs / "client.crt", key_file=certs / "client.key")


def test_mutual_tls_without_a_client_certificate_is_refused(tmp_path, mtls_redis, certs):
    refused(tmp_path, mtls_redis, "localhost", "the server requires a client certificate",
            ca_file=certs / "ca.crt")
