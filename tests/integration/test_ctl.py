# SPDX-License-Identifier: MIT
"""notifyqctl against a scripted peer: replies a real notifyqd would rarely
give (degraded, refused, silent, garbage), and finding the socket from -c."""
import json
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import NOTIFYQCTL, short_tmpdir


def worker(slot, pid, last_exit=None):
    return {"slot": slot, "pid": pid, "uptime_s": 3725, "in_flight": slot, "state": "running",
            "last_exit": last_exit, "note": ""}


def status(state="ok", running=2, **extra):
    return {
        "ok": True, "version": "0.1.0", "pid": 4242, "uptime_s": 90061, "state": "running",
        "generation": 1,
        "queues": [{
            "name": "email", "handler": "noop", "bullmq_queue": "email", "state": state,
            "processes": {"configured": 2, "running": running}, "concurrency": 5,
            "restarts": 7, "recycles": 0,
            "workers": [worker(0, 1001), worker(1, 1002, {"signal": "SIGKILL"})][:running],
            "counters": {"fetched": 10, "completed": 8, "failed": 1, "retried": 1},
            "per_minute": {"completed": 4, "failed": 0, "retried": 0},
        }], **extra}


class FakeDaemon:
    """Answers each request line with the next scripted reply (bytes sent
    as-is, objects as one JSON line, None: say nothing)."""

    def __init__(self, *replies):
        self.dir = short_tmpdir()
        self.sock = str(self.dir / "control.sock")
        self.replies = list(replies)
        self.requests = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.sock)
        self.srv.listen(4)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.replies:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile("rb").readline()
                self.requests.append(json.loads(line))
                reply = self.replies.pop(0)
                if reply is None:
                    time.sleep(6)
                elif isinstance(reply, bytes):
                    conn.sendall(reply)
                else:
                    conn.sendall(json.dumps(reply).encode() + b"\n")

    def ctl(self, *args):
        return subprocess.run([str(NOTIFYQCTL), "-s", self.sock, *args], capture_output=True,
                              text=True, timeout=15)

    def close(self):
        self.srv.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fake():
    made = []

    def make(*replies):
        f = FakeDaemon(*replies)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def test_status_json_drops_ok_and_keeps_the_rest(fake):
    f = fake(status())
    r = f.ctl("status", "--json")
    assert r.returncode == 0, r.stderr
    want = status()
    del want["ok"]
    assert json.loads(r.stdout) == want
    assert f.requests == [{"cmd": "status"}]


def test_status_table(fake):
    f = fake(status())
    r = f.ctl("status", "-v")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "notifyqd 0.1.0, pid 4242, up 1d1h, running, generation 1"
    header = lines.index(next(l for l in lines if l.startswith("QUEUE")))
    assert lines[header + 1].split() == ["email", "noop", "2/2", "7", "-", "-", "-", "-",
                                         "1", "8", "1", "1", "4", "0", "-", "ok"]
    workers = [l.split() for l in lines if l.startswith("email/")]
    assert workers == [["email/0", "1001", "1h2m", "0", "running", "-", "-"],
                       ["email/1", "1002", "1h2m", "1", "running", "-", "SIGKILL"]]


def test_status_table_shows_errors_per_minute_and_the_failure_rate(fake):
    reply = status(state="unhealthy")
    reply["queues"][0]["per_minute"] = {"completed": 0, "failed": 3, "retried": 9}
    reply["queues"][0]["health"] = {"failure_rate": 0.75}
    f = fake(reply)
    r = f.ctl("status")
    assert r.returncode == 1
    lines = [l.split() for l in r.stdout.splitlines()]
    header = next(l for l in lines if l[:1] == ["QUEUE"])
    row = dict(zip(header, next(l for l in lines if l[:1] == ["email"])))
    assert (row["OK/MIN"], row["ERR/MIN"], row["FAIL%"], row["STATE"]) == ("0", "12", "75%",
                                                                          "unhealthy")


@pytest.mark.parametrize("reply", [status(state="degraded", running=1),
                                   status(state="crash-looping"),
                                   status(state="connecting"),
                                   status(state="disconnected"),
                                   status(state="unhealthy"),
                                   status(state="a-state-from-a-newer-daemon"),
                                   status(state="ok", running=1)])
def test_degraded_status_exits_1(fake, reply):
    f = fake(reply, reply)
    assert f.ctl("status").returncode == 1
    assert f.ctl("status", "--json").returncode == 1


def test_fewer_workers_while_draining_is_not_degraded(fake):
    f = fake(status(running=1, state="draining") | {"state": "draining"})
    assert f.ctl("status").returncode == 0


@pytest.mark.parametrize("state", ["ok", "idle", "paused"])
def test_healthy_states_exit_0(fake, state):
    assert fake(status(state=state)).ctl("status").returncode == 0


def test_connection_turned_away_is_unreachable(fake):
    f = fake({"ok": False, "error": "too many connections", "refused": True})
    r = f.ctl("status")
    assert r.returncode == 2
    assert r.stderr == ("notifyqctl: %s: too many connections: notifyqd turned this "
                        "connection away\n" % f.sock)


def test_refused_peer_is_unreachable(fake):
    f = fake({"ok": False, "error": "permission denied"})
    r = f.ctl("status")
    assert r.returncode == 2
    assert r.stderr == "notifyqctl: %s: permission denied: are you in group notifyq?\n" % f.sock


def test_daemon_error_exits_1_with_its_text(fake):
    f = fake({"ok": False, "error": "unknown queue 'x'"})
    r = f.ctl("pause", "x")
    assert r.returncode == 1
    assert r.stderr == "notifyqctl: unknown queue 'x'\n"
    assert f.requests == [{"cmd": "pause", "queue": "x"}]


@pytest.mark.parametrize("reply", [b"not json\n", b'{"no":"ok"}\n', b'{"ok":true'])
def test_garbage_reply_is_unreachable(fake, reply):
    f = fake(reply)
    r = f.ctl("status")
    assert r.returncode == 2
    assert f.sock in r.stderr


def test_silent_daemon_times_out_in_5s(fake):
    f = fake(None)
    t0 = time.monotonic()
    r = f.ctl("status")
    took = time.monotonic() - t0
    assert r.returncode == 2
    assert "no reply within 5 s" in r.stderr
    assert 4.5 < took < 7


def test_commands_send_their_requests(fake):
    f = fake({"ok": True, "queue": "sms", "state": "paused"}, {"ok": True}, {"ok": True},
             {"ok": True, "queues": []})
    assert f.ctl("pause", "sms").stdout == "sms: paused\n"
    assert f.ctl("reload").returncode == 0
    assert f.ctl("stop").returncode == 0
    assert f.ctl("metrics", "--json").stdout.strip() == '{\n  "queues": []\n}'
    assert f.requests == [{"cmd": "pause", "queue": "sms"}, {"cmd": "reload"}, {"cmd": "stop"},
                          {"cmd": "metrics"}]


def test_socket_comes_from_the_config(fake, tmp_path):
    f = fake(status())
    cfg = tmp_path / "notifyq.yaml"
    cfg.write_text("control:\n  socket: %s\nqueues:\n  email:\n    handler: noop\n" % f.sock)
    r = subprocess.run([str(NOTIFYQCTL), "-c", str(cfg), "status"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert f.requests == [{"cmd": "status"}]


def test_unreadable_config_names_the_error(tmp_path):
    cfg = tmp_path / "notifyq.yaml"
    cfg.write_text("queues:\n  email:\n    handler: nosuch\n")
    r = subprocess.run([str(NOTIFYQCTL), "-c", str(cfg), "status"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2
    assert "%s:3:" % cfg in r.stderr


def test_version_and_help():
    r = subprocess.run([str(NOTIFYQCTL), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("notifyqctl ")
    r = subprocess.run([str(NOTIFYQCTL), "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ("status", "metrics", "pause QUEUE", "resume QUEUE", "reload", "stop"):
        assert "\n  %s " % cmd in r.stdout
