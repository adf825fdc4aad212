# SPDX-License-Identifier: MIT
"""notifyqd -t warns about what the file configures but nothing uses yet
(issue 8): each such section named, with the file; still exit 0. The master
logs the same warnings when it starts. postgres: is used (the delivery log):
-t warns only when its database cannot be reached (test_deliverylog.py has
the rest)."""
import subprocess

from conftest import NOTIFYQD

UNUSED = """\
templates: /etc/notifyq/templates
postgres:
  dsn: postgresql://notifyq@localhost:1/notifyq?connect_timeout=2
http:
  listen: 127.0.0.1:8089
  token_files: [%(token)s]
tenants:
  acme:
    rate_limit: {max: 10, duration: 1s}
queues:
  email: {handler: email}
  exports: {handler: export}
"""


def check(path):
    return subprocess.run([str(NOTIFYQD), "-t", "-c", str(path)], capture_output=True, text=True,
                          timeout=10)


def test_unused_sections_are_warned_about_and_still_pass(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token-value\n")
    cfg = tmp_path / "notifyq.yaml"
    cfg.write_text(UNUSED % {"token": token})
    r = check(cfg)
    assert r.returncode == 0, r.stderr
    warnings = [l for l in r.stderr.splitlines() if l.startswith("notifyqd: warning: ")]
    keys = [l.split(": ")[3] for l in warnings]
    # http is served now (the http child): no warning for it.
    assert keys == ["tenants", "queues.exports.handler", "postgres"], r.stderr
    for line in warnings:
        assert line.startswith("notifyqd: warning: %s: " % cfg), line
    assert "not used yet" in warnings[0]
    assert "cannot connect" in warnings[2]
    assert "s3cret" not in r.stderr and "notifyq@localhost" not in r.stderr
    assert r.stderr.rstrip().endswith("test is successful")


def test_a_config_that_uses_everything_it_sets_has_no_warning(tmp_path):
    cfg = tmp_path / "notifyq.yaml"
    cfg.write_text("queues:\n  email: {handler: email}\n  jobs: {handler: noop}\n")
    r = check(cfg)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr, r.stderr


def test_the_master_logs_them_when_it_starts(daemon_factory):
    d = daemon_factory({"jobs": 1}, extra="tenants:\n  acme:\n    rate_limit: {max: 10, duration: 1s}\n")
    d.start()
    d.wait_ready(timeout=10)
    d.wait_for_log(r"%s: tenants: configured but not used yet: per-tenant rate limits are not "
                   r"applied" % d.cfg, timeout=5)
