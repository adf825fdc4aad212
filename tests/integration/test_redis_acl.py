# SPDX-License-Identifier: MIT
"""An ACL user with a password, as managed Redis hands them out: a real
redis-server whose default user is off and whose only user is `nq`. Workers
and notifyqctl's queue commands work with the right password; with a wrong
one they refuse clearly (the log, the worker's status note, notifyqctl's
message and exit status) and touch nothing."""
import shutil
import subprocess

import pytest
import redis

from conftest import NOTIFYQCTL, REDIS_SERVER, Daemon, finish, short_tmpdir, wait_for

ACL_CONF = """\
port 0
unixsocket {dir}/redis.sock
unixsocketperm 700
save ""
appendonly no
dir {dir}
logfile {dir}/redis.log
user nq on >s3cret-pw ~* &* +@all
user default off
"""


@pytest.fixture
def acl_redis():
    d = short_tmpdir("nq-acl-")
    (d / "redis.conf").write_text(ACL_CONF.format(dir=d))
    proc = subprocess.Popen([REDIS_SERVER, str(d / "redis.conf")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=str(d / "redis.sock"), username="nq",
                         password="s3cret-pw", decode_responses=True)

    def up():
        try:
            return client.ping()
        except redis.RedisError:
            return proc.poll() is not None

    try:
        wait_for(up, timeout=10, what="redis-server with ACL users")
        assert proc.poll() is None, (d / "redis.log").read_text()
        yield d, client
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


def config(sock, control, state, password_file):
    return """\
redis:
  socket: {sock}
  username: nq
  password_file: {pw}
control:
  socket: {control}
state_dir: {state}
queues:
  email:
    handler: noop
""".format(sock=sock, control=control, state=state, pw=password_file)


def write_config(tmp_path, d, name, password):
    pw = tmp_path / (name + ".pw")
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    cfg = tmp_path / (name + ".yaml")
    cfg.write_text(config(d / "redis.sock", tmp_path / "none.sock", tmp_path / "state", pw))
    return cfg


def ctl(cfg, *args):
    return subprocess.run([str(NOTIFYQCTL), "-c", str(cfg), *args], capture_output=True,
                          text=True, timeout=30)


def test_acl_user_with_the_right_password_runs_jobs(tmp_path, acl_redis):
    d, client = acl_redis
    cfg = write_config(tmp_path, d, "good", "s3cret-pw")
    ids = []
    for i in range(5):
        p = ctl(cfg, "send", "email", "--data", '{"n":%d}' % i)
        assert p.returncode == 0, p.stderr
        ids.append(p.stdout.strip())
    daemon = Daemon(tmp_path / "daemon", str(d / "redis.sock"))
    daemon.write_config(text=cfg.read_text().replace(str(tmp_path / "none.sock"), daemon.sock))
    try:
        daemon.start()
        daemon.wait_ready(timeout=10)
        wait_for(lambda: client.zcard("bull:email:completed") == 5, timeout=20,
                 what="5 jobs completed")
        assert sorted(client.zrange("bull:email:completed", 0, -1)) == sorted(ids)
        counts = ctl(cfg, "counts", "email", "--json")
        assert counts.returncode == 0, counts.stderr
        assert '"completed": 5' in counts.stdout
        assert "s3cret-pw" not in daemon.log_text()
    finally:
        finish(daemon)


def test_acl_user_with_a_wrong_password_is_refused_clearly(tmp_path, acl_redis):
    d, client = acl_redis
    cfg = write_config(tmp_path, d, "bad", "not-the-password")
    where = "redis unix:%s" % (d / "redis.sock")
    p = ctl(cfg, "send", "email", "--data", "{}")
    assert p.returncode == 2
    assert p.stderr.startswith("notifyqctl: %s: authentication failed: WRONGPASS" % where), \
        p.stderr
    assert "not-the-password" not in p.stderr
    assert client.keys("bull:*") == []

    client.xadd("probe", {"x": "1"})  # the server works for the right user
    client.delete("probe")
    client.lpush("bull:email:wait", "1")
    client.hset("bull:email:1", mapping={"name": "x", "data": "{}", "opts": "{}",
                                         "timestamp": "1", "attemptsMade": "0"})
    daemon = Daemon(tmp_path / "daemon", str(d / "redis.sock"))
    daemon.write_config(text=cfg.read_text().replace(str(tmp_path / "none.sock"), daemon.sock))
    try:
        daemon.start()

        def refused():
            st = daemon.try_status()
            w = st and st["queues"][0]["workers"]
            return w if w and w[0].get("note", "").startswith(where + ": authentication failed") \
                else None

        w = wait_for(refused, timeout=10, what="the worker's note naming the refusal")
        assert "WRONGPASS" in w[0]["note"] and w[0]["redis"] == "connecting"
        assert daemon.ctl("status").returncode != 0
        daemon.wait_for_log(r"worker email/0: %s: authentication failed: WRONGPASS"
                            % where.replace(".", r"\."))
        assert "not-the-password" not in daemon.log_text()
        # Nothing ran: the job still waits.
        assert client.lrange("bull:email:wait", 0, -1) == ["1"]
        assert client.zcard("bull:email:completed") == 0
    finally:
        finish(daemon)
