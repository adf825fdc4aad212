#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The supervisor's own figures (issue 3), measured from outside: time from
exec to READY=1, RSS of the master and of each worker (ps -o rss), and the
restart latency after kill -9 of a worker (from the kill to the control
socket reporting a new, running pid in that slot).

notifyqd runs in the foreground with three noop queues (2, 1 and 3
processes) against a private redis-server on a unix socket, with this
script as its service manager on NOTIFY_SOCKET. Not a test: it prints a
Markdown table, and exits non-zero only when something did not work.

    bench/supervisor.py NOTIFYQD [STARTS [KILLS]]     (5 starts, 10 kills)
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

QUEUES = {"email": 2, "sms": 1, "push": 3}


def config(d):
    lines = ["redis:", "  socket: %s/redis.sock" % d, "control:",
             "  socket: %s/control.sock" % d, "state_dir: %s" % d, "queues:"]
    for name, n in QUEUES.items():
        lines += ["  %s:" % name, "    handler: noop", "    processes: %d" % n]
    with open(os.path.join(d, "notifyq.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


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


def status(d):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        s.connect(d + "/control.sock")
        s.sendall(b'{"cmd":"status"}\n')
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def rss_kib(pid):
    out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def start(binary, d):
    """Starts notifyqd; returns (process, seconds from exec to READY=1)."""
    path = d + "/notify.sock"
    if os.path.exists(path):
        os.unlink(path)
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ns.settimeout(10)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "-f", "-c", d + "/notifyq.yaml"], env=env,
                         stderr=open(d + "/notifyqd.log", "ab"))
    try:
        while True:
            msg = ns.recv(4096).decode()
            if "READY=1" in msg.splitlines():
                return p, time.monotonic() - t0
    except socket.timeout:
        p.kill()
        sys.exit("no READY=1 within 10 s; see %s/notifyqd.log" % d)
    finally:
        ns.close()


def stop(p):
    p.send_signal(signal.SIGTERM)
    if p.wait(timeout=40) != 0:
        sys.exit("notifyqd exited %d on SIGTERM" % p.returncode)


def restart_latency(d, queue, slot):
    old = worker(status(d), queue, slot)["pid"]
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    while time.monotonic() - t0 < 5:
        w = worker(status(d), queue, slot)
        if w.get("pid") and w["pid"] != old and w.get("state") not in (None, "starting"):
            return time.monotonic() - t0
        time.sleep(0.002)
    sys.exit("%s/%d was not replaced within 5 s" % (queue, slot))


def worker(st, queue, slot):
    q = next(q for q in st["queues"] if q["name"] == queue)
    return next(w for w in q["workers"] if w["slot"] == slot)


def fmt(xs, unit, scale=1.0):
    xs = sorted(x * scale for x in xs)
    return "%.1f %s (%.1f–%.1f)" % (statistics.median(xs), unit, xs[0], xs[-1])


def main():
    binary = sys.argv[1]
    starts = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    kills = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    d = tempfile.mkdtemp(prefix="nq-sup-", dir="/tmp")
    redis = start_redis(d)
    try:
        config(d)
        ready = []
        for _ in range(starts):
            p, t = start(binary, d)
            ready.append(t)
            stop(p)
        p, _ = start(binary, d)
        time.sleep(1.5)  # a metrics frame from every worker
        st = status(d)
        master = rss_kib(st["pid"])
        workers = [rss_kib(w["pid"]) for q in st["queues"] for w in q["workers"]]
        lat = []
        for i in range(kills):
            time.sleep(5.5)  # past min_uptime: a stable child, restarted at once
            lat.append(restart_latency(d, "email", i % 2))
        stop(p)
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(d, ignore_errors=True)
    n = sum(QUEUES.values())
    print("| figure (3 noop queues, %d workers) | median (min–max) |" % n)
    print("|---|---|")
    print("| exec → READY=1 (%d starts) | %s |" % (starts, fmt(ready, "ms", 1000)))
    print("| master RSS | %.1f MiB |" % (master / 1024))
    print("| worker RSS (%d workers) | %s |" % (n, fmt(workers, "MiB", 1 / 1024)))
    print("| kill -9 → replacement running (%d kills) | %s |" % (kills, fmt(lat, "ms", 1000)))


if __name__ == "__main__":
    main()
