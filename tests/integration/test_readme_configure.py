# SPDX-License-Identifier: MIT
"""The README's first config delivers something a reader can see (issue 8):
its minimal file, pointed at a private Redis, control socket and spool
directory (the only lines changed), runs; the README's `notifyqctl send`
completes, and the spool directory it names then holds the message."""
import re
import shlex
import subprocess
import uuid

from conftest import NOTIFYQCTL, REPO, wait_for


def readme_configure():
    text = (REPO / "README").read_text()
    section = text.split("\nConfigure\n---------\n", 1)[1].split("\n\n\n", 1)[0]
    blocks = re.findall(r"(?:^    .*\n|^\n)+", section, re.M)
    config = next(b for b in blocks if "queues:" in b)
    send = next(l.strip() for l in section.splitlines() if l.strip().startswith("notifyqctl send"))
    return "\n".join(l[4:] for l in config.splitlines()) + "\n", send


def test_the_first_config_delivers_a_file_to_look_at(daemon_factory, redis_server, tmp_path):
    config, send = readme_configure()
    assert "handler: email" in config and "type: file" in config
    spool_readme = re.search(r"spool_dir: (\S+)", config).group(1)
    assert "ls %s/" % spool_readme in (REPO / "README").read_text()  # says where to look
    queue = "email-" + uuid.uuid4().hex[:6]
    spool = tmp_path / "spool"
    d = daemon_factory()
    text = config.replace("url: redis://127.0.0.1:6379", "socket: %s" % redis_server.socket)
    text = text.replace("socket: /run/notifyq/control.sock", "socket: %s" % d.sock)
    text = text.replace("spool_dir: %s" % spool_readme, "spool_dir: %s" % spool)
    text = text.replace("  email:", "  %s:" % queue) + "state_dir: %s\n" % d.state_dir
    assert text.count(str(spool)) == 1 and text.count(redis_server.socket) == 1
    d.write_config(text=text)
    d.start()
    d.wait_ready(timeout=10)

    args = shlex.split(send)
    assert args[:3] == ["notifyqctl", "send", "email"]
    r = subprocess.run([str(NOTIFYQCTL), "-c", str(d.cfg), "send", queue, *args[3:]],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.strip()
    files = wait_for(lambda: list(spool.glob("%s.%s.*.eml" % (queue, job_id))), timeout=10,
                     what="the message in the spool")
    eml = files[0].read_bytes().decode()
    assert "To: ada@example.org\r\n" in eml and "Subject: Hello\r\n" in eml
    r = subprocess.run([str(NOTIFYQCTL), "-c", str(d.cfg), "job", "show", queue, job_id],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "completed" in r.stdout and str(files[0]) in r.stdout, r.stdout
