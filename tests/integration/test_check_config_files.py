# SPDX-License-Identifier: MIT
"""Config files that used to hang or stall the loader (issue 9, items 4 and
5): nesting far beyond anything the config needs, and a FIFO or a device as
the config or as a `*_file` secret. Each is refused with the file named,
by `notifyqd -t` and by the master on SIGHUP, which keeps running."""
import os
import re

from conftest import DATA, NOTIFYQD, wait_for  # noqa: F401
from test_check_config import check

MINIMAL = (DATA / "good" / "minimal.yaml").read_text()


def nested_flow(depth):
    return "x_deep: " + "[" * depth + "]" * depth + "\n"


def nested_block(depth):
    lines = ["x_deep:"]
    for i in range(1, depth + 1):
        lines.append("  " * i + "k%d:" % i)
    lines[-1] += " 1"
    return "\n".join(lines) + "\n"


def test_deep_flow_nesting_is_refused_before_parsing_it(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(MINIMAL + nested_flow(60000))
    r = check(path)  # hung for seconds (quadratic) before the fix
    assert r.returncode == 1, r.stdout + r.stderr
    line = len(MINIMAL.splitlines()) + 1
    assert "%s:%d:40: mappings and lists nested deeper than 32 levels" % (path, line) \
        in r.stderr


def test_deep_block_nesting_is_refused_with_its_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text(MINIMAL + nested_block(40))
    r = check(path)
    assert r.returncode == 1
    # Under the root and x_deep, the mapping of key k32 is the 33rd level.
    line = len(MINIMAL.splitlines()) + 1 + 32
    assert "%s:%d:65: mappings and lists nested deeper than 32 levels" % (path, line) \
        in r.stderr


def test_nesting_within_the_bound_reaches_the_key_check(tmp_path):
    path = tmp_path / "ok-depth.yaml"
    path.write_text(MINIMAL + nested_flow(31))
    r = check(path)
    assert r.returncode == 1
    assert "nested deeper" not in r.stderr and "x_deep" in r.stderr


def test_a_fifo_as_the_config_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "notifyq.yaml"
    os.mkfifo(fifo)
    r = check(fifo)  # blocked in open() forever before the fix
    assert r.returncode == 1
    assert "%s: is a FIFO, not a regular file" % fifo in r.stderr


def test_a_device_as_the_config_is_refused():
    r = check("/dev/zero")
    assert r.returncode == 1
    assert "/dev/zero: is a character device, not a regular file" in r.stderr


def test_a_fifo_or_device_as_a_secret_file_is_refused(tmp_path):
    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    for secret, kind in ((fifo, "a FIFO"), ("/dev/zero", "a character device")):
        text = MINIMAL.replace("redis:\n", "redis:\n  password_file: %s\n" % secret)
        path = tmp_path / "with-secret.yaml"
        path.write_text(text)
        r = check(path)
        assert r.returncode == 1
        assert re.search(r"%s:3:3: redis.password_file: %s is %s, not a regular file"
                         % (re.escape(str(path)), re.escape(str(secret)), kind),
                         r.stderr), r.stderr


def test_sighup_onto_a_fifo_or_deep_config_keeps_the_master_answering(notifyqd):
    before = notifyqd.ready()
    good = notifyqd.cfg.read_text()
    notifyqd.cfg.unlink()
    os.mkfifo(notifyqd.cfg)
    with notifyqd.log_contains(r"%s: is a FIFO, not a regular file" % re.escape(
            str(notifyqd.cfg))):
        notifyqd.sighup()
    assert notifyqd.status()["generation"] == before["generation"]
    notifyqd.cfg.unlink()
    notifyqd.cfg.write_text(good + nested_flow(60000))
    with notifyqd.log_contains(r"nested deeper than 32 levels"):
        notifyqd.sighup()
    st = notifyqd.status()
    assert st["state"] == "running" and st["generation"] == before["generation"]
    assert notifyqd.ctl("status").returncode == 0
    notifyqd.cfg.write_text(good)
