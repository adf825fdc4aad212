#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Webhook throughput of one worker process (issue 10's benchmark, notifyq
side only): N jobs on a `webhook` queue with `processes: 1` and
`concurrency: C`, POSTed to a local receiver that answers every request
204 after DELAY ms. Reports requests/s (first to last request the receiver
saw), the most requests the receiver had in flight at once, the worker's
CPU seconds (utime + stime from /proc) per 10,000 requests, and its RSS.

The receiver is an asyncio HTTP/1.1 server (keep-alive, no signature check:
the tests verify signatures; here it would cost the receiver more CPU than
the sender) in its own process on 127.0.0.1. notifyqd and a throw-away
redis-server run from a temp dir. Not a test and not in CI: it prints a
Markdown table, and exits non-zero only when something did not work.

    bench/webhook.py NOTIFYQD [N [CONCURRENCY [DELAY_MS]]]   (20000, 1000, 50)
"""
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# ---- the receiver (runs in a child: bench/webhook.py --serve PORT_FILE DELAY) ----

def serve(port_file, delay_ms):
    stats = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "first": 0.0, "last": 0.0,
             "connections": 0}
    delay = delay_ms / 1000.0
    reply = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"

    class Proto(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = b""
            stats["connections"] += 1

        def data_received(self, data):
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end].lower()
                i = head.find(b"content-length:")
                n = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0
                             else len(head)]) if i >= 0 else 0
                if len(self.buf) < end + 4 + n:
                    return
                self.buf = self.buf[end + 4 + n:]
                now = time.monotonic()
                stats["requests"] += 1
                stats["first"] = stats["first"] or now
                stats["in_flight"] += 1
                stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
                loop.call_later(delay, self.answer)

        def answer(self):
            stats["in_flight"] -= 1
            stats["last"] = time.monotonic()
            if not self.t.is_closing():
                self.t.write(reply)

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(Proto, "127.0.0.1", 0, backlog=4096, reuse_address=True))
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run_forever()
    stats["cpu_s"] = time.process_time()
    with open(port_file + ".stats", "w") as f:
        json.dump(stats, f)


# ---- the run ---------------------------------------------------------------------

def start_redis(d):
    p = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", d + "/redis.sock",
                          "--save", "", "--appendonly", "no", "--dir", d],
                         stdout=subprocess.DEVNULL)
    import redis
    r = redis.Redis(unix_socket_path=d + "/redis.sock", decode_responses=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            r.ping()
            return p, r
        except redis.exceptions.ConnectionError:
            time.sleep(0.02)
    p.kill()
    sys.exit("redis-server did not start")


def add_jobs(r, n):
    from queue_helpers import script_source
    add = r.register_script(script_source("add"))
    base = "bull:hooks:"
    data = json.dumps({"event": "order.paid", "orderId": 12345, "amount": "19.90"})
    opts = json.dumps({"attempts": 3, "removeOnComplete": True})
    now = int(time.time() * 1000)
    for start in range(0, n, 1000):
        p = r.pipeline(transaction=False)
        for _ in range(start, min(n, start + 1000)):
            add(keys=[base + "meta"], args=[base, "", "order.paid", data, opts, now, 0, 0, "",
                                            "", 0, "", ""], client=p)
        p.execute()


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


def worker_pid(d):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            q = next(q for q in status(d)["queues"] if q["name"] == "hooks")
            w = q["workers"][0]
            if w.get("pid") and w.get("state") not in (None, "starting"):
                return w["pid"]
        except (OSError, ValueError, StopIteration, IndexError, KeyError):
            pass
        time.sleep(0.05)
    sys.exit("no running worker; see %s/notifyqd.log" % d)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    conc = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    delay = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    d = tempfile.mkdtemp(prefix="nq-bench-webhook-")
    port_file = d + "/port"
    recv = subprocess.Popen([sys.executable, __file__, "--serve", port_file, str(delay)])
    redis_p, r = start_redis(d)
    nq = None
    try:
        deadline = time.monotonic() + 5
        while not os.path.exists(port_file) and time.monotonic() < deadline:
            time.sleep(0.02)
        port = int(open(port_file).read())
        with open(d + "/notifyq.yaml", "w") as f:
            f.write("\n".join([
                "redis:", "  socket: %s/redis.sock" % d,
                "control:", "  socket: %s/control.sock" % d,
                "state_dir: %s" % d,
                "queues:", "  hooks:", "    handler: webhook", "    processes: 1",
                "    concurrency: %d" % conc,
                "    webhook: {url: 'http://127.0.0.1:%d/hook', secret: %s}" % (port, SECRET),
            ]) + "\n")
        add_jobs(r, n)
        nq = subprocess.Popen([binary, "-f", "-c", d + "/notifyq.yaml"],
                              stderr=open(d + "/notifyqd.log", "ab"))
        pid = worker_pid(d)
        cpu0 = cpu_s(pid)
        rss_max = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            rss_max = max(rss_max, rss_kib(pid))
            left = r.llen("bull:hooks:wait") + r.llen("bull:hooks:active") + \
                r.zcard("bull:hooks:delayed")
            if left == 0:
                break
            time.sleep(0.1)
        else:
            sys.exit("not done within 600 s")
        cpu = cpu_s(pid) - cpu0
        failed = r.zcard("bull:hooks:failed")
        nq.send_signal(signal.SIGTERM)
        nq.wait(timeout=40)
        nq = None
        recv.send_signal(signal.SIGTERM)
        recv.wait(timeout=10)
        stats = json.load(open(port_file + ".stats"))
        span = stats["last"] - stats["first"]
        print("| figure | value |\n|---|---|")
        print("| jobs, concurrency, reply delay | %d, %d, %d ms |" % (n, conc, delay))
        print("| requests the receiver saw | %d (failed jobs: %d) |" % (stats["requests"], failed))
        print("| requests/s (first to last request) | %.0f |" % (stats["requests"] / span))
        print("| most requests in flight at once | %d |" % stats["max_in_flight"])
        print("| connections the receiver accepted | %d |" % stats["connections"])
        print("| worker CPU s per 10,000 requests | %.2f |" % (cpu * 10000 / stats["requests"]))
        print("| worker RSS, max sampled | %.1f MiB |" % (rss_max / 1024))
        print("| worker CPU / receiver CPU during the run | %.0f %% / %.0f %% of a core |"
              % (100 * cpu / span, 100 * stats["cpu_s"] / span))
        if failed or stats["requests"] < n:
            sys.exit(1)
    finally:
        if nq:
            nq.kill()
        if recv.poll() is None:
            recv.kill()
        redis_p.kill()
        redis_p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
