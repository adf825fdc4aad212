#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The broadcast figure of issue 10 (not a test): one broadcast job of N
recipients (10,000 by default) added to a running notifyqd, fanned out by
its broadcast queue into jobs of an email queue whose file provider writes
each message into a spool directory; the time from the add to the last
delivery (N jobs completed, N files in the spool), and on the way the time
the fan-out itself took (the broadcast completed). Also the CPU seconds
notifyqd's processes and redis-server spent in each run (from /proc).

notifyqd runs in the foreground against a private redis-server on a unix
socket, both in a temp dir (the spool too: say where /tmp is when quoting
the figures, or set SPOOL_IN). The email queue has PROCS processes of CONC jobs each (2 and
100 by default: one process per core on a 2-core machine).

    bench/broadcast.py NOTIFYQD [REPS [N]]        (3 runs of 10,000)

Prints a Markdown table; exits non-zero only when a run did not deliver
exactly N messages.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PROCS = int(os.environ.get("PROCS", "2"))
CONC = int(os.environ.get("CONC", "100"))
BATCH = int(os.environ.get("BATCH", "100"))
# The spool's parent directory (default: the run's temp dir under /tmp);
# e.g. SPOOL_IN=/dev/shm to see what the disk's fsyncs cost.
SPOOL_IN = os.environ.get("SPOOL_IN")
TICK = os.sysconf("SC_CLK_TCK")


def config(d):
    text = """redis:
  socket: {d}/redis.sock
control:
  socket: {d}/control.sock
state_dir: {d}/state
log_level: warning
queues:
  news:
    handler: broadcast
    broadcast: {{batch: {batch}}}
  email:
    handler: email
    processes: {procs}
    concurrency: {conc}
    provider: {{type: file, spool_dir: {spool}}}
""".format(d=d, batch=BATCH, procs=PROCS, conc=CONC, spool=spool_dir(d))
    with open(os.path.join(d, "notifyq.yaml"), "w") as f:
        f.write(text)


def spool_dir(d):
    return os.path.join(SPOOL_IN, os.path.basename(d)) if SPOOL_IN else d + "/spool"


def start_redis(d):
    p = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", d + "/redis.sock",
                          "--save", "", "--appendonly", "no", "--dir", d],
                         stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(d + "/redis.sock")
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return p
        except OSError:
            time.sleep(0.02)
    p.kill()
    sys.exit("redis-server did not start")


class Redis:
    """Just enough of the protocol for this script (no redis-py needed)."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def __call__(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)
        return self.read()

    def read(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError("unexpected reply %r" % line)


def add_script():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lua = os.path.join(root, "src", "queue", "lua")
    with open(os.path.join(lua, "common.lua")) as f, open(os.path.join(lua, "add.lua")) as g:
        return f.read() + g.read()


def status(d):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(d + "/control.sock")
        s.sendall(b'{"cmd":"status"}\n')
        return json.loads(s.makefile().readline())


def ready(d):
    try:
        st = status(d)
    except (OSError, ValueError):
        return False
    return st.get("state") == "running" and all(
        q["processes"]["running"] == q["processes"]["configured"] for q in st["queues"])


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def children(ppid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(ppid)], capture_output=True,
                         text=True).stdout
    return [int(x) for x in out.split()]


def one_run(notifyqd, n):
    d = tempfile.mkdtemp(prefix="nq-bcast-bench-")
    redis = start_redis(d)
    daemon = None
    try:
        config(d)
        daemon = subprocess.Popen([notifyqd, "-f", "-c", d + "/notifyq.yaml"],
                                  stdout=subprocess.DEVNULL, stderr=open(d + "/log", "w"))
        deadline = time.monotonic() + 20
        while not ready(d):
            if time.monotonic() > deadline or daemon.poll() is not None:
                sys.exit("notifyqd did not start: " + open(d + "/log").read()[-2000:])
            time.sleep(0.05)
        r = Redis(d + "/redis.sock")
        sha = r("SCRIPT", "LOAD", add_script())
        data = json.dumps({"queue": "email", "subject": "News", "text": "Hello from Acme",
                           "templateVariables": {"team": "Acme"},
                           "recipients": [{"to": "user%d@example.org" % i,
                                           "vars": {"name": "User %d" % i}} for i in range(n)]},
                          separators=(",", ":"))
        pids = [daemon.pid] + children(daemon.pid)
        cpu0, rcpu0 = cpu_ticks(pids), cpu_ticks([redis.pid])
        t0 = time.monotonic()
        r("EVALSHA", sha, 1, "bull:news:meta", "bull:news:", "", "newsletter", data,
          '{"attempts":0}', int(time.time() * 1000), 0, 0, "", "", 0, "", "")
        fanned = None
        while True:
            if fanned is None and r("ZCARD", "bull:news:completed") == 1:
                fanned = time.monotonic() - t0
            done = r("ZCARD", "bull:email:completed") + r("ZCARD", "bull:email:failed")
            if done >= n:
                break
            if time.monotonic() - t0 > 300:
                sys.exit("not done after 300 s: %d of %d" % (done, n))
            time.sleep(0.005)
        took = time.monotonic() - t0
        if fanned is None:
            fanned = took
        cpu = (cpu_ticks(pids) - cpu0) / TICK
        rcpu = (cpu_ticks([redis.pid]) - rcpu0) / TICK
        files = len(os.listdir(spool_dir(d)))
        completed = r("ZCARD", "bull:email:completed")
        if files != n or completed != n:
            sys.exit("run delivered %d files, %d jobs completed, of %d" % (files, completed, n))
        return took, fanned, cpu, rcpu
    finally:
        if daemon:
            daemon.terminate()
            daemon.wait(timeout=30)
        redis.terminate()
        redis.wait()
        shutil.rmtree(spool_dir(d), ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    notifyqd = sys.argv[1]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    runs = [one_run(notifyqd, n) for _ in range(reps)]
    load = os.getloadavg()
    print("| broadcast of %d recipients, batch %d, email x %d processes x %d, file spool in %s |"
          " median | runs |" % (n, BATCH, PROCS, CONC, SPOOL_IN or tempfile.gettempdir()))
    print("|---|---|---|")
    for i, what in enumerate(("enqueue -> last delivery (s)", "fan-out done (s)",
                              "notifyqd CPU (s)", "redis-server CPU (s)")):
        vals = [r[i] for r in runs]
        print("| %s | %.2f | %s |" % (what, statistics.median(vals),
                                      ", ".join("%.2f" % v for v in vals)))
    print("\n%d cores, load average %.1f %.1f %.1f at the end" % (os.cpu_count(), *load))


if __name__ == "__main__":
    main()
