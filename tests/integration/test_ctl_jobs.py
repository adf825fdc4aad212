# SPDX-License-Identifier: MIT
"""notifyqctl's queue commands (send, job, failed, clean, counts, and the
Redis half of pause/resume) against a real redis-server. They need no daemon:
each test writes a config whose redis.socket is the fixture's. Jobs are
failed or completed by tests/interop/nq_driver, which runs the real store
with the noop handler's rules."""
import datetime
import json
import os
import socket
import subprocess
import threading

import pytest

from conftest import BUILD, NOTIFYQCTL, short_tmpdir, wait_for

DRIVER = BUILD / "tests" / "interop" / "nq_driver"

CONFIG = """\
redis:
  socket: {redis}
control:
  socket: {control}
queues:
  email:
    handler: noop
    attempts: 3
  sms:
    handler: noop
    bullmq_queue: texts
"""


def iso(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


class Ctl:
    """notifyqctl -c CONFIG, and a look at Redis under the BullMQ prefix."""

    def __init__(self, cfg, redis, redis_socket):
        self.cfg = cfg
        self.r = redis
        self.redis_socket = redis_socket

    def run(self, *args, input=None, cfg=None):
        return subprocess.run([str(NOTIFYQCTL), "-c", str(cfg or self.cfg), *map(str, args)],
                              capture_output=True, text=True, timeout=30, input=input)

    def ok(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def json(self, *args, **kw):
        return json.loads(self.ok(*args, "--json", **kw))

    def fails(self, rc, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == rc, "exit %d, stdout %r, stderr %r" % (p.returncode, p.stdout,
                                                                       p.stderr)
        assert p.stderr.startswith("notifyqctl: "), p.stderr
        return p.stderr

    def send(self, queue="email", data="{}", *opts):
        return self.ok("send", queue, "--data", data, *opts).strip()

    def k(self, *parts, queue="email"):
        return ":".join(("bull", queue) + parts)

    def job(self, job_id, queue="email"):
        return self.r.hgetall(self.k(job_id, queue=queue))

    def process(self, count, queue="email"):
        p = subprocess.run([str(DRIVER), "-s", self.redis_socket, "-q", queue, "process",
                            str(count)], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr


@pytest.fixture
def ctl(tmp_path, redis_server):
    r = redis_server.client(decode_responses=True)
    r.flushall()
    cfg = tmp_path / "notifyq.yaml"
    cfg.write_text(CONFIG.format(redis=redis_server.socket, control=tmp_path / "none.sock"))
    return Ctl(cfg, r, redis_server.socket)


@pytest.fixture
def failed3(ctl):
    """Three failed jobs (1, 2, 3: f1..f3) and a completed one (4)."""
    for i in range(1, 4):
        ctl.send("email", '{"fail":"permanent"}', "--name", "f%d" % i)
    ctl.send("email", '{"ok":1}', "--name", "ok")
    ctl.process(4)
    return ctl


# ---- send ------------------------------------------------------------------------

def test_send_writes_a_bullmq_job(ctl):
    assert ctl.send("email", '{"to":"a@b.c"}') == "1"
    h = ctl.job("1")
    assert h["name"] == "email"  # the queue's name when --name is not given
    assert h["data"] == '{"to":"a@b.c"}'
    assert json.loads(h["opts"]) == {"attempts": 0}  # as Node writes an unset attempts
    assert h["delay"] == "0" and h["priority"] == "0"
    assert ctl.r.lrange(ctl.k("wait"), 0, -1) == ["1"]
    assert ctl.r.zrange(ctl.k("marker"), 0, -1) == ["0"]
    assert [e[1]["event"] for e in ctl.r.xrange(ctl.k("events"))] == ["added", "waiting"]


def test_send_options_become_bullmq_opts(ctl):
    p = ctl.json("send", "email", "--data", '{"n":1}', "--name", "welcome", "--priority", "5",
                 "--attempts", "4", "--backoff", "exponential:2s:0.5", "--job-id", "w-1")
    assert p == {"queue": "email", "bullmq_queue": "email", "id": "w-1", "status": "added"}
    h = ctl.job("w-1")
    assert h["name"] == "welcome" and h["priority"] == "5"
    assert json.loads(h["opts"]) == {
        "attempts": 4, "priority": 5, "jobId": "w-1",
        "backoff": {"type": "exponential", "delay": 2000, "jitter": 0.5}}
    assert ctl.r.zrange(ctl.k("prioritized"), 0, -1) == ["w-1"]

    assert ctl.send("email", "{}", "--delay", "1h", "--backoff", "fixed:1s") == "2"
    opts = json.loads(ctl.job("2")["opts"])
    assert opts["delay"] == 3600000 and opts["backoff"] == {"type": "fixed", "delay": 1000}
    assert ctl.r.zrange(ctl.k("delayed"), 0, -1) == ["2"]


def test_send_same_job_id_adds_nothing(ctl):
    ctl.send("email", '{"v":1}', "--job-id", "once")
    p = ctl.run("send", "email", "--data", '{"v":2}', "--job-id", "once")
    assert p.returncode == 0 and p.stdout == "once\n"
    assert "already exists" in p.stderr
    assert ctl.json("send", "email", "--data", "{}", "--job-id", "once")["status"] == "duplicated"
    assert ctl.job("once")["data"] == '{"v":1}'


def test_send_data_from_a_file_and_stdin_is_stored_as_given(ctl, tmp_path):
    f = tmp_path / "data.json"
    f.write_text('{\n  "to": "a@b.c",\n  "n": 1.50\n}\n')
    job_id = ctl.send("email", "@%s" % f)
    assert ctl.job(job_id)["data"] == f.read_text()
    job_id = ctl.ok("send", "email", "--data", "@-", input='["x"]').strip()
    assert ctl.job(job_id)["data"] == '["x"]'


@pytest.mark.parametrize("args, message", [
    (["--data", '{"to":'], "--data:1:6: invalid JSON: "),
    (["--data", "hello"], "--data:1:5: invalid JSON: "),
    ([], "--data JSON or --data @FILE is required"),
    (["--data", "{}", "--priority", "2097152"], "--priority: must be an integer 0..2097151"),
    (["--data", "{}", "--attempts", "0"], "--attempts: must be an integer 1.."),
    (["--data", "{}", "--delay", "soon"], "--delay: not a duration: 'soon'"),
    (["--data", "{}", "--backoff", "linear:1s"], "--backoff: expected fixed:D or exponential"),
    (["--data", "{}", "--backoff", "exponential:1s:2"], "--backoff: expected"),
    (["--data", "{}", "--job-id", "42"], "custom job id '42' must not be an integer"),
    (["--data", "{}", "--limit", "3"], "option '--limit' does not apply"),
    (["--data", "{}", "--bogus"], "unknown option '--bogus'"),
    (["--data"], "option '--data' needs a value"),
    (["--data", "@/nonexistent/x.json"], "--data @/nonexistent/x.json: No such file"),
])
def test_send_refuses_bad_input_before_touching_redis(ctl, args, message):
    err = ctl.fails(64, "send", "email", *args)
    assert message in err
    assert ctl.r.dbsize() == 0


def test_send_names_the_line_and_column_of_bad_json_in_a_file(ctl, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{\n  "a": 1,\n  "b": [1, 2,,]\n}\n')
    assert ctl.fails(64, "send", "email", "--data", "@%s" % f).startswith(
        "notifyqctl: %s:3:14: invalid JSON: " % f)


def test_send_caps_data_at_1_mib(ctl, tmp_path):
    f = tmp_path / "big.json"
    f.write_text('"%s"' % ("x" * (1 << 20)))
    assert "job data is limited to 1048576 bytes" in ctl.fails(64, "send", "email", "--data",
                                                               "@%s" % f)
    f.write_text('"%s"' % ("x" * ((1 << 20) - 2)))  # exactly 1 MiB
    assert ctl.send("email", "@%s" % f) == "1"


# ---- queues, configuration, connection ---------------------------------------------

def test_queue_names_map_to_bullmq_queues(ctl):
    assert ctl.json("send", "sms", "--data", "{}") == {
        "queue": "sms", "bullmq_queue": "texts", "id": "1", "status": "added"}
    assert ctl.r.exists(ctl.k("1", queue="texts"))
    assert ctl.json("counts", "--bullmq-queue", "texts")["queue"] == "sms"
    p = ctl.json("send", "--bullmq-queue", "other", "--data", "{}")
    assert (p["queue"], p["bullmq_queue"]) == ("other", "other")
    assert ctl.job("1", queue="other")["name"] == "other"


def test_unknown_queue_lists_the_configured_ones(ctl):
    err = ctl.fails(64, "counts", "nosuch")
    assert "unknown queue 'nosuch'; %s has: email, sms" % ctl.cfg in err
    assert "--bullmq-queue NAME" in err
    assert "not a BullMQ queue name" in ctl.fails(64, "counts", "--bullmq-queue", "a:b")


QUEUE_COMMANDS = [["send", "email", "--data", "{}"], ["job", "show", "email", "1"],
                  ["job", "remove", "email", "1"], ["job", "retry", "email", "1"],
                  ["job", "promote", "email", "1"], ["failed", "list", "email"],
                  ["failed", "retry", "email", "--all"], ["failed", "purge", "email"],
                  ["clean", "email", "--state", "completed", "--grace", "0"],
                  ["counts", "email"], ["pause", "email"], ["resume", "email"]]


@pytest.mark.parametrize("args", QUEUE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_unreachable_redis_exits_2_naming_it(ctl, tmp_path, args):
    d = short_tmpdir()
    refused = str(d / "dead.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(refused)  # a socket file nobody listens on
    try:
        for path, why in ((refused, "connection refused"),
                          (str(d / "none.sock"), "no such file or directory")):
            cfg = tmp_path / ("r-%s.yaml" % why.split()[0])
            cfg.write_text(CONFIG.format(redis=path, control=tmp_path / "none.sock"))
            err = ctl.fails(2, *args, cfg=cfg)
            assert err == "notifyqctl: redis unix:%s: %s\n" % (path, why)
    finally:
        os.unlink(refused)
        os.rmdir(d)


def test_unreadable_config_exits_2(ctl, tmp_path):
    err = ctl.fails(2, "counts", "email", cfg=tmp_path / "missing.yaml")
    assert "missing.yaml" in err and "Redis address comes from the configuration" in err


def test_socket_option_is_refused_by_queue_commands(ctl):
    p = subprocess.run([str(NOTIFYQCTL), "-s", "/tmp/x.sock", "counts", "email"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 64 and "use -c FILE" in p.stderr


def test_usage_errors(ctl):
    assert "sub-command missing" in ctl.fails(64, "job")
    assert "unknown sub-command 'bogus'" in ctl.fails(64, "failed", "bogus", "email")
    assert "QUEUE is missing" in ctl.fails(64, "counts")
    assert "too few arguments" in ctl.fails(64, "job", "show", "email")
    assert "too many arguments" in ctl.fails(64, "counts", "email", "extra")


def test_help_lists_the_queue_commands(ctl):
    out = subprocess.run([str(NOTIFYQCTL), "--help"], capture_output=True, text=True).stdout
    for cmd in ("send QUEUE", "job CMD QUEUE ID", "failed CMD QUEUE", "clean QUEUE",
                "counts QUEUE"):
        assert "\n  %s " % cmd in out
    assert ctl.ok("send", "--help").startswith("Usage: notifyqctl send QUEUE --data")
    assert "notifyqctl job promote QUEUE ID" in ctl.ok("job", "--help")


# ---- job show, remove, retry, promote -------------------------------------------------

def test_job_show_waiting(ctl):
    ctl.send("email", '{"to":"a@b.c"}', "--name", "welcome", "--priority", "7")
    out = ctl.ok("job", "show", "email", "1")
    ts = int(ctl.job("1")["timestamp"])
    assert "job:            1\n" in out
    assert "queue:          email (BullMQ queue email)\n" in out
    assert "state:          prioritized\n" in out
    assert "name:           welcome\n" in out
    assert "attempts:       0 made, 0 started, of 3\n" in out  # the queue's default
    assert "created:        %s (%d)\n" % (iso(ts), ts) in out
    assert 'data:           {"to":"a@b.c"}\n' in out


def test_job_show_json_of_a_failed_job(failed3):
    j = failed3.json("job", "show", "email", "2")
    h = failed3.job("2")
    assert set(j) == {
        "queue", "bullmq_queue", "id", "state", "name", "data", "opts", "attempts",
        "attempts_made", "attempts_started", "stalled_count", "priority", "delay_ms",
        "created_at", "created_at_ms", "processed_at", "processed_at_ms", "finished_at",
        "finished_at_ms", "processed_by", "progress", "returnvalue", "failed_reason",
        "stacktrace", "deferred_failure", "deduplication_id", "scheduler_id", "parent",
        "invalid"}
    assert (j["id"], j["state"], j["name"]) == ("2", "failed", "f2")
    assert j["data"] == {"fail": "permanent"}
    assert j["attempts_made"] == 1 and j["attempts_started"] == 1 and j["attempts"] == 3
    assert j["failed_reason"] == "noop: permanent failure"
    assert j["stacktrace"] == json.loads(h["stacktrace"]) and j["stacktrace"]
    for key, field in (("created", "timestamp"), ("processed", "processedOn"),
                       ("finished", "finishedOn")):
        assert j[key + "_at_ms"] == int(h[field])
        assert j[key + "_at"] == iso(int(h[field]))
    assert j["returnvalue"] is None and j["progress"] == 0
    out = failed3.ok("job", "show", "email", "2")
    assert "failed reason:  noop: permanent failure\n" in out
    assert "stacktrace:\n  [1] noop: permanent failure\n" in out


def test_job_show_completed_has_its_returnvalue(failed3):
    j = failed3.json("job", "show", "email", "4")
    assert j["state"] == "completed" and j["returnvalue"] == {"ok": True}
    assert 'returnvalue:    {"ok":true}\n' in failed3.ok("job", "show", "email", "4")


def test_job_not_found_exits_1(ctl):
    for sub in ("show", "remove", "retry", "promote"):
        assert ctl.fails(1, "job", sub, "email", "404") == (
            "notifyqctl: job 404 not found in email\n")


def test_job_remove(ctl):
    ctl.send()
    assert ctl.ok("job", "remove", "email", "1") == "job 1 removed from email\n"
    assert not ctl.r.exists(ctl.k("1")) and ctl.r.llen(ctl.k("wait")) == 0
    ctl.send()
    assert ctl.json("job", "remove", "email", "2") == {
        "queue": "email", "bullmq_queue": "email", "id": "2", "removed": True}


def test_job_remove_refuses_an_active_job(ctl):
    ctl.send()
    ctl.r.lmove(ctl.k("wait"), ctl.k("active"), "RIGHT", "LEFT")
    ctl.r.set(ctl.k("1", "lock"), "a-worker-token", px=30000)
    assert "job 1 of email is active (locked by a worker)" in ctl.fails(
        1, "job", "remove", "email", "1")
    assert ctl.r.exists(ctl.k("1"))


def test_job_retry(failed3):
    assert failed3.ok("job", "retry", "email", "1") == "job 1 of email moved back to wait\n"
    assert failed3.r.lrange(failed3.k("wait"), 0, -1) == ["1"]
    assert "finishedOn" not in failed3.job("1")
    assert failed3.fails(1, "job", "retry", "email", "4") == (
        "notifyqctl: job 4 of email is completed, not failed\n")


def test_job_promote(ctl):
    ctl.send("email", "{}", "--delay", "1h")
    assert ctl.fails(1, "job", "promote", "email", "404") == (
        "notifyqctl: job 404 not found in email\n")
    assert ctl.json("job", "promote", "email", "1")["promoted"] is True
    assert ctl.r.lrange(ctl.k("wait"), 0, -1) == ["1"] and ctl.job("1")["delay"] == "0"
    assert ctl.fails(1, "job", "promote", "email", "1") == (
        "notifyqctl: job 1 of email is waiting, not delayed\n")


# ---- failed list, retry, purge ----------------------------------------------------------

def test_failed_list_newest_first(failed3):
    lines = failed3.ok("failed", "list", "email").splitlines()
    assert lines[0].split() == ["ID", "NAME", "FINISHED", "ATTEMPTS", "REASON"]
    rows = [line.split(None, 4) for line in lines[1:]]
    assert [r[0] for r in rows] == ["3", "2", "1"]
    fin = int(failed3.job("3")["finishedOn"])
    assert rows[0] == ["3", "f3", iso(fin), "1/3", "noop: permanent failure"]


def test_failed_list_pages_and_json(failed3):
    j = failed3.json("failed", "list", "email", "--limit", "1", "--offset", "1")
    assert (j["total"], j["offset"], j["limit"]) == (3, 1, 1)
    assert len(j["jobs"]) == 1
    job = j["jobs"][0]
    assert set(job) == {"id", "name", "finished_at", "finished_at_ms", "attempts_made",
                        "attempts", "failed_reason"}
    assert (job["id"], job["name"], job["attempts_made"]) == ("2", "f2", 1)
    out = failed3.ok("failed", "list", "email", "--limit", "2")
    assert out.endswith("(2 shown, from offset 0, of 3 failed jobs)\n")
    assert "--limit is at most 1000" in failed3.fails(64, "failed", "list", "email",
                                                      "--limit", "1001")


def test_failed_list_shows_the_first_line_of_a_reason(failed3):
    failed3.r.hset(failed3.k("3"), "failedReason", "smtp: 550\nat line two")
    assert failed3.ok("failed", "list", "email").splitlines()[1].endswith("smtp: 550")
    j = failed3.json("failed", "list", "email")
    assert j["jobs"][0]["failed_reason"] == "smtp: 550\nat line two"


def test_failed_list_empty(ctl):
    assert ctl.ok("failed", "list", "email") == "no failed jobs in email\n"
    assert ctl.json("failed", "list", "email")["jobs"] == []


def test_failed_retry_one_and_all(failed3):
    assert failed3.ok("failed", "retry", "email", "2") == "job 2 of email moved back to wait\n"
    assert failed3.json("failed", "retry", "email", "--all") == {
        "queue": "email", "bullmq_queue": "email", "id": None, "retried": 2}
    assert failed3.r.zcard(failed3.k("failed")) == 0
    assert sorted(failed3.r.lrange(failed3.k("wait"), 0, -1)) == ["1", "2", "3"]
    assert "give a job ID or --all" in failed3.fails(64, "failed", "retry", "email")
    assert "give a job ID or --all" in failed3.fails(64, "failed", "retry", "email", "1",
                                                     "--all")


def test_failed_purge(failed3):
    assert failed3.ok("failed", "purge", "email", "--grace", "1h") == (
        "0 failed jobs deleted from email (older than 1h)\n")
    assert failed3.json("failed", "purge", "email") == {
        "queue": "email", "bullmq_queue": "email", "state": "failed", "grace_ms": 0,
        "deleted": 3}
    assert not failed3.r.exists(failed3.k("1")) and failed3.r.zcard(failed3.k("failed")) == 0
    assert failed3.r.exists(failed3.k("4"))  # completed jobs are not touched


# ---- clean, counts --------------------------------------------------------------------

def test_clean_by_state_grace_and_limit(ctl):
    for _ in range(3):
        ctl.send("email", "{}", "--delay", "1h")
    ctl.send()
    assert ctl.ok("clean", "email", "--state", "delayed", "--grace", "1h") == (
        "0 delayed jobs deleted from email (older than 1h)\n")
    assert ctl.json("clean", "email", "--state", "delayed", "--grace", "0", "--limit", "2")[
        "deleted"] == 2
    assert ctl.r.zcard(ctl.k("delayed")) == 1
    assert ctl.ok("clean", "email", "--state", "waiting", "--grace", "0") == (
        "1 wait job deleted from email\n")
    assert ctl.r.llen(ctl.k("wait")) == 0


def test_clean_completed(failed3):
    assert failed3.json("clean", "email", "--state", "completed", "--grace", "0")[
        "deleted"] == 1
    assert not failed3.r.exists(failed3.k("4"))


@pytest.mark.parametrize("args, message", [
    (["--state", "active", "--grace", "0"], "--state: 'active' is not completed, failed"),
    (["--state", "failed"], "--state and --grace are required"),
    (["--grace", "1h"], "--state and --grace are required"),
    (["--state", "failed", "--grace", "1y"], "--grace: not a duration: '1y'"),
    (["--state", "failed", "--grace", "0", "--limit", "0"], "--limit: must be an integer 1.."),
])
def test_clean_usage_errors(ctl, args, message):
    assert message in ctl.fails(64, "clean", "email", *args)


def test_counts(failed3):
    failed3.send("email", "{}", "--delay", "1h")
    failed3.send("email", "{}", "--priority", "2")
    failed3.send()
    assert failed3.json("counts", "email") == {
        "queue": "email", "bullmq_queue": "email", "waiting": 1, "active": 0, "delayed": 1,
        "prioritized": 1, "completed": 1, "failed": 3, "waiting_children": 0,
        "paused": False}
    assert failed3.ok("counts", "email") == (
        "email (BullMQ queue email)\nwaiting      1\nactive       0\ndelayed      1\n"
        "prioritized  1\ncompleted    1\nfailed       3\n")


# ---- pause, resume ---------------------------------------------------------------------

def test_pause_without_a_daemon_sets_bullmqs_pause(ctl):
    p = ctl.run("pause", "sms")
    assert p.returncode == 0 and p.stdout == "sms: paused\n"
    assert "is notifyqd running?" in p.stderr and "paused in Redis" in p.stderr
    assert ctl.r.hget(ctl.k("meta", queue="texts"), "paused") == "1"
    assert ctl.json("counts", "sms")["paused"] is True
    assert ctl.ok("pause", "sms") == "sms: paused (it already was)\n"
    assert ctl.json("resume", "sms") == {"queue": "sms", "bullmq_queue": "texts", "state": "ok",
                                         "changed": True, "daemon": None}
    assert not ctl.r.hexists(ctl.k("meta", queue="texts"), "paused")
    assert "unknown queue 'nosuch'" in ctl.fails(64, "pause", "nosuch")


def test_pause_tells_a_running_daemon_too(daemon_factory, redis_server):
    r = redis_server.client(decode_responses=True)
    r.flushall()
    d = daemon_factory({"email": 1, "sms": 1})
    d.start()
    d.wait_ready()

    def ctl(*args):
        return subprocess.run([str(NOTIFYQCTL), "-c", str(d.cfg), *args], capture_output=True,
                              text=True, timeout=10)

    p = ctl("pause", "email", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["daemon"] == {"queue": "email", "state": "paused"}
    assert r.hget("bull:email:meta", "paused") == "1"
    assert d.queue("email")["state"] == "paused" and d.queue("sms")["state"] != "paused"
    p = ctl("resume", "email")
    assert (p.returncode, p.stdout, p.stderr) == (0, "email: ok\n", "")
    assert not r.hexists("bull:email:meta", "paused")
    wait_for(lambda: d.queue("email")["state"] != "paused", timeout=3, what="email resumed")
    # -s knows only the daemon: Redis is not touched
    assert d.ctl("pause", "sms").returncode == 0
    assert d.queue("sms")["state"] == "paused" and not r.hexists("bull:sms:meta", "paused")
    assert d.ctl("resume", "sms").returncode == 0


def test_pause_refused_by_the_daemon_exits_1_but_redis_is_paused(ctl, tmp_path):
    d = short_tmpdir()
    sock = str(d / "control.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(sock)
    srv.listen(1)
    requests = []

    def serve():
        conn, _ = srv.accept()
        with conn:
            requests.append(json.loads(conn.makefile("rb").readline()))
            conn.sendall(b'{"ok":false,"error":"unknown queue \'email\'"}\n')

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        cfg = tmp_path / "fake.yaml"
        cfg.write_text(CONFIG.format(redis=ctl.redis_socket, control=sock))
        err = ctl.fails(1, "pause", "email", cfg=cfg)
        assert err.startswith("notifyqctl: unknown queue 'email'\n")
        assert "paused in Redis all the same" in err
        assert requests == [{"cmd": "pause", "queue": "email"}]
        assert ctl.r.hget(ctl.k("meta"), "paused") == "1"
    finally:
        t.join(timeout=5)
        srv.close()
        os.unlink(sock)
        os.rmdir(d)


def test_options_may_precede_the_command(ctl):
    ctl.send()
    p = subprocess.run([str(NOTIFYQCTL), "--json", "-c", str(ctl.cfg), "counts", "email"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and json.loads(p.stdout)["waiting"] == 1
    p = subprocess.run([str(NOTIFYQCTL), "job", "show", "email", "1", "-c", str(ctl.cfg)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0 and "state:          waiting\n" in p.stdout
