# SPDX-License-Identifier: MIT
"""The exec handler end to end: real notifyqd workers run a real command per
job (scripts written by the tests) against a real Redis. Exit statuses to
outcomes, the job on stdin, the timeout killing a whole process group, the
output cap, a child that ignores its stdin, N children at once, drain, and
a missing program refused by notifyqd -t. In every test the worker itself
survives: its pid is the one it started with."""
import json
import os
import signal
import stat
import subprocess

import pytest

from conftest import NOTIFYQD, pid_alive, wait_for
from test_worker_jobs import DONE_TIMEOUT, Jobs, wait_all_done

RECORD = """#!/usr/bin/python3
# Saves the job it was given, then does what its data says.
import json, os, sys
job = json.load(sys.stdin)
d = job["data"]
with open(os.path.join(os.environ["OUT"], "%s-%d.json" % (job["id"], job["attemptsMade"])),
          "w") as f:
    json.dump(job, f)
sys.stdout.write(d.get("out", ""))
sys.stderr.write(d.get("err", ""))
sys.stdout.flush()
if d.get("signal"):
    os.kill(os.getpid(), d["signal"])
sys.exit(d.get("code", 0))
"""

# A child that starts a grandchild in its process group and waits for it.
SPAWNER = """#!/bin/sh
sleep 300 &
echo $! > "$OUT/grandchild.pid"
echo $$ > "$OUT/child.pid"
wait
"""

FLOOD = """#!/bin/sh
head -c 10485760 /dev/zero | tr '\\0' x
"""

IGNORE_STDIN = """#!/bin/sh
exec 0<&-
echo ignored
"""

# Marks itself started, waits (bounded) until N runs were started, and
# records how many runs were active when it started and when it left.
OVERLAP = """#!/usr/bin/python3
import json, os, sys, time
N = int(sys.argv[1])
job = json.load(sys.stdin)
out = os.environ["OUT"]
started, done = os.path.join(out, "started"), os.path.join(out, "done")
open(os.path.join(started, job["id"]), "w").close()
def active():
    return len(os.listdir(started)) - len(os.listdir(done))
at_start = active()
deadline = time.monotonic() + 30
while len(os.listdir(started)) < N and time.monotonic() < deadline:
    time.sleep(0.01)
with open(os.path.join(out, "seen-" + job["id"]), "w") as f:
    json.dump([at_start, active()], f)
open(os.path.join(done, job["id"]), "w").close()
"""

# Tells it started, then waits for the test's word (bounded).
WAIT_RELEASE = """#!/bin/sh
cat > /dev/null
echo $$ > "$OUT/started"
n=0
while [ ! -e "$OUT/release" ] && [ $n -lt 3000 ]; do sleep 0.01; n=$((n+1)); done
echo released
"""


def script(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return p


def exec_queue(jobs, argv, out, **keys):
    """A queue entry for Daemon: handler exec on jobs' BullMQ queue."""
    spec = "{argv: %s, env: {OUT: %s}%s}" % (
        json.dumps([str(a) for a in argv]), json.dumps(str(out)),
        "".join(", %s: %s" % (k, v) for k, v in keys.pop("exec", {}).items()))
    return {jobs.name: {"handler": "exec", "bullmq_queue": jobs.name, "exec": spec, **keys}}


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def start(daemon_factory, jobs, argv, out, **keys):
    d = daemon_factory(exec_queue(jobs, argv, out, **keys))
    d.start()
    d.wait_ready(timeout=10)
    return d, d.worker(jobs.name, 0)["pid"]


def same_worker(d, jobs, pid):
    """The worker that started is the one still serving, never restarted."""
    q = d.queue(jobs.name)
    assert q["workers"][0]["pid"] == pid, q
    assert q["restarts"] == 0, q


def test_exit_statuses_map_to_outcomes_and_stdin_is_the_job(daemon_factory, jobs, tmp_path,
                                                            out):
    prog = script(tmp_path, "record.py", RECORD)
    d, pid = start(daemon_factory, jobs, [prog], out, concurrency=4)
    fixed = {"type": "fixed", "delay": 10}
    [ok] = jobs.add({"out": '{"sent": true, "id": "m-1"}', "to": "ann@example.org"},
                    {"attempts": 3, "backoff": fixed}, name="welcome")
    [text] = jobs.add({"out": "queued as 42\n"})
    [temp] = jobs.add({"code": 75, "err": "server busy\n"}, {"attempts": 2, "backoff": fixed})
    [bad] = jobs.add({"code": 1, "err": "bad address\nmore\n"}, {"attempts": 3, "backoff": fixed})
    [sig] = jobs.add({"signal": 9}, {"attempts": 2, "backoff": fixed})
    wait_all_done(jobs, 5)

    assert jobs.ids("completed") == {ok, text}
    assert jobs.ids("failed") == {temp, bad, sig}
    assert json.loads(jobs.job(ok)["returnvalue"]) == {"sent": True, "id": "m-1"}
    assert json.loads(jobs.job(text)["returnvalue"]) == "queued as 42"
    h = jobs.job(temp)
    assert h["atm"] == "2", h
    assert h["failedReason"] == "exec: exit status 75 (EX_TEMPFAIL): stderr: server busy"
    h = jobs.job(bad)
    assert h["atm"] == "1", h  # permanent: no retry although attempts remain
    assert h["failedReason"] == "exec: exit status 1: stderr: bad address more"
    h = jobs.job(sig)
    assert h["atm"] == "2", h
    assert "killed by signal 9 (SIGKILL)" in h["failedReason"]

    # stdin held what was enqueued, on every attempt.
    stored = jobs.job(ok)
    seen = json.loads((out / ("%s-0.json" % ok)).read_text())
    assert seen == {"id": ok, "name": "welcome", "data": json.loads(stored["data"]),
                    "opts": json.loads(stored["opts"]), "attemptsMade": 0}
    assert json.loads((out / ("%s-1.json" % temp)).read_text())["attemptsMade"] == 1
    same_worker(d, jobs, pid)


def test_timeout_kills_the_child_and_its_children(daemon_factory, jobs, tmp_path, out):
    prog = script(tmp_path, "spawner.sh", SPAWNER)
    d, pid = start(daemon_factory, jobs, [prog], out, exec={"timeout": "500ms"})
    [jid] = jobs.add({})
    wait_for(lambda: (out / "grandchild.pid").exists() and (out / "child.pid").exists(),
             timeout=DONE_TIMEOUT, what="the child and grandchild started")
    child = int((out / "child.pid").read_text())
    grandchild = int((out / "grandchild.pid").read_text())
    wait_all_done(jobs, 1)
    h = jobs.job(jid)
    assert jobs.ids("failed") == {jid}
    assert h["failedReason"] == "exec: timed out after 500ms, its process group was killed"
    wait_for(lambda: not pid_alive(child) and not pid_alive(grandchild), timeout=10,
             what="child %d and grandchild %d gone" % (child, grandchild))
    same_worker(d, jobs, pid)


def test_10mb_on_stdout_is_cut_and_reported(daemon_factory, jobs, tmp_path, out):
    prog = script(tmp_path, "flood.sh", FLOOD)
    d, pid = start(daemon_factory, jobs, [prog], out)
    [jid] = jobs.add({})
    wait_all_done(jobs, 1)
    assert jobs.ids("completed") == {jid}
    rv = json.loads(jobs.job(jid)["returnvalue"])
    assert rv["truncated"] is True
    assert rv["stdoutBytes"] == 10 * 1024 * 1024
    assert rv["stdout"] == "x" * (1 << 20)
    same_worker(d, jobs, pid)


def test_a_child_that_ignores_stdin_completes(daemon_factory, jobs, tmp_path, out):
    prog = script(tmp_path, "ignore.sh", IGNORE_STDIN)
    d, pid = start(daemon_factory, jobs, [prog], out, concurrency=2)
    # Far more than a pipe holds: the worker's write must not wait for it.
    ids = jobs.add({"blob": "y" * (2 << 20)}, n=4)
    wait_all_done(jobs, 4)
    assert jobs.ids("completed") == set(ids)
    assert all(json.loads(jobs.job(i)["returnvalue"]) == "ignored" for i in ids)
    same_worker(d, jobs, pid)


def test_concurrency_n_runs_n_children_at_once(daemon_factory, jobs, tmp_path, out):
    n = 4
    (out / "started").mkdir()
    (out / "done").mkdir()
    prog = script(tmp_path, "overlap.py", OVERLAP)
    d, pid = start(daemon_factory, jobs, [prog, str(n)], out, concurrency=n)
    ids = jobs.add({}, n=3 * n)
    wait_all_done(jobs, len(ids))
    assert jobs.ids("completed") == set(ids)
    seen = [json.loads((out / ("seen-" + i)).read_text()) for i in ids]
    # Never more than N at once, and N reached: the first N all started
    # before any of them could leave.
    assert max(max(s) for s in seen) == n, seen
    assert all(s[0] <= n for s in seen), seen
    same_worker(d, jobs, pid)


def test_drain_lets_children_finish_then_kills_and_returns_the_rest(daemon_factory, jobs,
                                                                   tmp_path, out):
    prog = script(tmp_path, "wait.sh", WAIT_RELEASE)
    d = daemon_factory(exec_queue(jobs, [prog], out, concurrency=1, drain_timeout="30s"))
    d.start()
    d.wait_ready(timeout=10)
    [jid] = jobs.add({})
    wait_for(lambda: (out / "started").exists(), timeout=DONE_TIMEOUT, what="child started")
    d.kill(signal.SIGTERM)
    d.wait_for_log(r"drain requested, draining \(1 job in flight\)", timeout=10)
    (out / "release").touch()
    assert d.proc.wait(timeout=20) == 0
    assert jobs.ids("completed") == {jid}
    assert json.loads(jobs.job(jid)["returnvalue"]) == "released"

    # Past drain_timeout the child is killed and its job goes back to wait.
    (out / "release").unlink()
    (out / "started").unlink()
    d2 = daemon_factory(exec_queue(jobs, [prog], out, concurrency=1, drain_timeout="500ms"))
    d2.start()
    d2.wait_ready(timeout=10)
    [jid2] = jobs.add({}, {"attempts": 3})
    wait_for(lambda: (out / "started").exists() and (out / "started").read_text().strip(),
             timeout=DONE_TIMEOUT, what="child started")
    child = int((out / "started").read_text())
    assert d2.stop(signal.SIGTERM, timeout=20) == 0
    assert jobs.count("active") == 0
    assert jobs.r.lrange(jobs.base + "wait", 0, -1) == [jid2]
    assert jobs.job(jid2).get("atm", "0") == "0"
    wait_for(lambda: not pid_alive(child), timeout=10, what="child %d killed" % child)


def check(cfg):
    return subprocess.run([str(NOTIFYQD), "-t", "-c", str(cfg)], capture_output=True, text=True,
                          timeout=10)


@pytest.mark.parametrize("argv0,why", [
    ("/nonexistent/notify-hook", "No such file or directory"),
    ("{data}", "not an executable file"),
    ("notify-hook", "must be an absolute path"),
])
def test_a_missing_program_is_a_config_error_at_t(tmp_path, argv0, why):
    data = tmp_path / "data.txt"
    data.write_text("not a program\n")
    cfg = tmp_path / "notifyq.yaml"
    cfg.write_text("queues:\n  hooks:\n    handler: exec\n    exec:\n      argv: [%s, --x]\n"
                   % argv0.format(data=data))
    r = check(cfg)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "%s:5:14: queues.hooks.exec.argv[0]: " % cfg in r.stderr
    assert why in r.stderr
    os.chmod(data, 0o755)
    if argv0 == "{data}":
        assert check(cfg).returncode == 0
