# SPDX-License-Identifier: MIT
"""Redis Sentinel (redis.sentinel): one master, one replica and three
sentinels on private loopback ports. Workers and notifyqctl find the master
through the sentinels; `kill -9` of the master under load makes the
sentinels promote the replica, and the workers find it and carry on: every
job that was added (and had reached the replica: Redis replicates
asynchronously, see min-replicas-to-write in notifyq.yaml(5)) ends completed
or failed, read through BullMQ's layout on the new master."""
import os
import shutil
import signal
import socket
import subprocess

import pytest
import redis

from conftest import NOTIFYQCTL, REDIS_SERVER, Daemon, finish, short_tmpdir, wait_for

MASTER = "nqmaster"
JOBS_BEFORE = 240
JOBS_AFTER = 40


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Cluster:
    """The servers, each in its own directory, stopped by stop()."""

    def __init__(self, d):
        self.dir = d
        self.ports = free_ports(5)
        self.procs = {}

    def start_server(self, name, port, *args):
        (self.dir / name).mkdir()
        self.procs[name] = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir / name),
             "--logfile", str(self.dir / name / "redis.log"), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start_sentinel(self, i, port):
        d = self.dir / ("sentinel%d" % i)
        d.mkdir()
        (d / "sentinel.conf").write_text(
            "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"
            "sentinel monitor %s 127.0.0.1 %d 2\n"
            "sentinel down-after-milliseconds %s 1000\n"
            "sentinel failover-timeout %s 4000\n"
            "sentinel parallel-syncs %s 1\n"
            % (port, d, d / "sentinel.log", MASTER, self.ports[0], MASTER, MASTER, MASTER))
        self.procs["sentinel%d" % i] = subprocess.Popen(
            [REDIS_SERVER, str(d / "sentinel.conf"), "--sentinel"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self):
        self.start_server("master", self.ports[0], "--min-replicas-to-write", "1",
                          "--min-replicas-max-lag", "10")
        self.start_server("replica", self.ports[1], "--replicaof", "127.0.0.1",
                          str(self.ports[0]))
        for i in range(3):
            self.start_sentinel(i, self.ports[2 + i])

    def client(self, port):
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                           socket_timeout=5)

    def master_port(self):
        s = self.client(self.ports[2])
        try:
            addr = s.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
        except redis.RedisError:
            return None
        return int(addr[1]) if addr else None

    def replicated(self):
        """The replica has everything the master has."""
        m = self.client(self.ports[0]).info("replication")
        slaves = [v for k, v in m.items() if k.startswith("slave") and isinstance(v, dict)]
        return slaves and slaves[0].get("state") == "online" and \
            slaves[0]["offset"] == m["master_repl_offset"]

    def nodes(self):
        return ["127.0.0.1:%d" % p for p in self.ports[2:]]

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def cluster():
    c = Cluster(short_tmpdir("nq-sentinel-"))
    try:
        c.start()

        def ready():
            try:
                m = c.client(c.ports[0])
                if not c.replicated():
                    return False
                return all(int(c.client(p).info("sentinel")["sentinel_masters"]) == 1 and
                           c.client(p).execute_command("SENTINEL", "replicas", MASTER)
                           for p in c.ports[2:]) and m.ping()
            except (redis.RedisError, KeyError):
                return False

        wait_for(ready, timeout=30, interval=0.2, what="master, replica and 3 sentinels")
        yield c
    finally:
        c.stop()
        shutil.rmtree(c.dir, ignore_errors=True)


CONFIG = """\
redis:
  sentinel:
    master_name: {master}
    nodes: [{nodes}]
  connect_timeout: 1s
control:
  socket: {control}
state_dir: {state}
queues:
  email:
    handler: noop
    processes: 2
    concurrency: 4
"""


def ctl(cfg, *args):
    return subprocess.run([str(NOTIFYQCTL), "-c", str(cfg), *args], capture_output=True,
                          text=True, timeout=60)


def send(cfg, n, tag):
    ids = []
    for i in range(n):
        p = ctl(cfg, "send", "email", "--data", '{"sleep_ms": 40, "n": "%s%d"}' % (tag, i))
        assert p.returncode == 0, p.stderr
        ids.append(p.stdout.strip())
    return ids


def test_failover_under_load_loses_no_job(tmp_path, cluster):
    daemon = Daemon(tmp_path / "daemon", "/nonexistent")
    text = CONFIG.format(master=MASTER, nodes=", ".join(cluster.nodes()),
                         control=daemon.sock, state=tmp_path / "state")
    daemon.write_config(text=text)
    cfg = daemon.cfg
    try:
        ids = send(cfg, JOBS_BEFORE, "a")
        old = cluster.client(cluster.ports[0])
        assert old.llen("bull:email:wait") == JOBS_BEFORE
        wait_for(cluster.replicated, timeout=10, interval=0.05, what="replica in sync")
        daemon.start()
        daemon.wait_ready(timeout=15)
        daemon.wait_for_log(r"worker email/0: redis sentinel %s: command connection: "
                            r"the master is 127\.0\.0\.1:%d" % (MASTER, cluster.ports[0]))
        wait_for(lambda: old.zcard("bull:email:completed") >= 40, timeout=30,
                 what="jobs completing on the first master")
        # Under load: jobs in flight, finishes and fetches on the wire.
        wait_for(cluster.replicated, timeout=10, interval=0.01, what="replica in sync")
        cluster.procs["master"].send_signal(signal.SIGKILL)
        cluster.procs["master"].wait()
        wait_for(lambda: cluster.master_port() == cluster.ports[1], timeout=30, interval=0.1,
                 what="the sentinels promoting the replica")
        new = cluster.client(cluster.ports[1])
        daemon.wait_for_log(r"the master is 127\.0\.0\.1:%d" % cluster.ports[1], timeout=30)
        # notifyqctl finds the new master too.
        ids += send(cfg, JOBS_AFTER, "b")
        total = JOBS_BEFORE + JOBS_AFTER
        assert len(set(ids)) == total

        def finished():
            done = new.zcard("bull:email:completed") + new.zcard("bull:email:failed")
            return done == total

        wait_for(finished, timeout=90, interval=0.2, what="every job finished")
        for job_id in ids:
            assert new.zscore("bull:email:completed", job_id) is not None or \
                new.zscore("bull:email:failed", job_id) is not None, job_id
        assert new.llen("bull:email:wait") == 0 and new.llen("bull:email:active") == 0
        st = daemon.status()
        assert {w["redis"] for w in st["queues"][0]["workers"]} == {"connected"}
        counts = ctl(cfg, "counts", "email", "--json")
        assert counts.returncode == 0, counts.stderr
    finally:
        finish(daemon)


def test_no_sentinel_answering_is_a_clear_error(tmp_path):
    dead = free_ports(2)
    daemon = Daemon(tmp_path / "daemon", "/nonexistent")
    nodes = ", ".join("127.0.0.1:%d" % p for p in dead)
    daemon.write_config(text=CONFIG.format(master=MASTER, nodes=nodes, control=daemon.sock,
                                           state=tmp_path / "state"))
    try:
        p = ctl(daemon.cfg, "counts", "email")
        assert p.returncode == 2
        assert p.stderr.startswith("notifyqctl: redis sentinel %s: no sentinel named the "
                                   "master: sentinel 127.0.0.1:%d: " % (MASTER, dead[1])), p.stderr
        daemon.start()
        daemon.wait_for_log(r"worker email/\d: redis sentinel %s: command connection failed: "
                            r"no sentinel named the master: sentinel 127\.0\.0\.1:%d: "
                            % (MASTER, dead[1]), timeout=10)
        wait_for(lambda: {w.get("redis") for w in daemon.queue("email")["workers"]}
                 == {"connecting"}, timeout=10, what="both workers connecting")
        assert daemon.ctl("status").returncode != 0
    finally:
        finish(daemon)


def test_a_demoted_server_is_waited_for(tmp_path):
    """Without Sentinel: the server turns into a replica (REPLICAOF) under a
    connected worker. Writes are refused with READONLY; the worker drops the
    connection, tries again, and runs jobs once the server is a master again."""
    d = short_tmpdir("nq-demote-")
    port = free_ports(1)[0]
    a_sock = str(d / "a.sock")
    procs = [subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--unixsocket", a_sock, "--save", "", "--appendonly",
         "no", "--dir", str(d), "--logfile", str(d / "a.log")], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(d), "--dbfilename", "b.rdb",
         "--logfile", str(d / "b.log")], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)]
    a = redis.Redis(unix_socket_path=a_sock, decode_responses=True)
    daemon = Daemon(tmp_path / "daemon", a_sock, {"email": 1})
    try:
        wait_for(lambda: os.path.exists(a_sock) and a.ping(), timeout=10, what="server a")
        daemon.start()
        daemon.wait_ready(timeout=10)
        with daemon.log_contains(r"worker email/0: redis unix:\S+: command connection: the "
                                 r"server is a replica now, reconnecting", timeout=15):
            a.replicaof("127.0.0.1", port)
        wait_for(lambda: a.info("replication")["role"] == "slave", timeout=10, what="a replica")
        a.replicaof("NO", "ONE")
        wait_for(lambda: daemon.queue("email")["state"] == "ok", timeout=20,
                 what="the queue ok again")
        p = subprocess.run([str(NOTIFYQCTL), "-c", str(daemon.cfg), "send", "email", "--data",
                            "{}"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        wait_for(lambda: a.zscore("bull:email:completed", p.stdout.strip()) is not None,
                 timeout=20, what="the job completed on the server, a master again")
    finally:
        finish(daemon)
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)
