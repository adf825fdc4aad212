#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark (not a test) of issue 11's closing note: jobs/s of a noop queue
with the delivery log off and on, and the events per statement the log
wrote. One private redis-server (unix socket) and one throw-away PostgreSQL
cluster (initdb in a temp dir, unix socket, a private port; as `nobody` when
run as root), notifyqd from NOTIFYQ_BUILD (default _build; an -O2 build
without sanitizers gives the meaningful figures).

  bench/deliverylog.py            N=20000 jobs, concurrency 100, 3 reps each
  N=5000 REPS=1 bench/deliverylog.py

Each run: a fresh queue, N jobs added first, then notifyqd started; the time
from the first job started to the last finished (Redis's processedOn and
finishedOn) gives jobs/s. With the log on, the run also waits until every
job's row is `sent`, and reports how long after the last job that was, and
the events per call of notifyq.record_events (pg_stat_user_functions), and
the CPU time per job of the worker and of PostgreSQL (/proc)."""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
os.environ.setdefault("NOTIFYQ_BUILD", str(REPO / "_build"))

from conftest import NOTIFYQD, Redis, wait_for  # noqa: E402
from pg_helpers import Postgres  # noqa: E402
from test_worker_jobs import Jobs  # noqa: E402

N = int(os.environ.get("N", "20000"))
REPS = int(os.environ.get("REPS", "3"))
CONC = int(os.environ.get("CONC", "100"))


def config(tmp, redis, queue, dsn):
    text = ("redis:\n  socket: %s\ncontrol:\n  socket: %s/c.sock\nstate_dir: %s/state\n"
            "queues:\n  %s: {handler: noop, bullmq_queue: %s, concurrency: %d}\n"
            % (redis.socket, tmp, tmp, queue, queue, CONC))
    if dsn:
        text += "postgres:\n  dsn: %s\n" % dsn
    path = Path(tmp) / "nq.yaml"
    path.write_text(text)
    return path


TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """User + system CPU seconds of pid (0 if gone)."""
    try:
        f = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK
    except OSError:
        return 0.0


def children(ppid):
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == ppid:
                    out.append(int(p.name))
            except OSError:
                pass
    return out


def pg_cpu(pg):
    """CPU seconds of the cluster's processes so far (the postmaster's children)."""
    pid = int((Path(pg.data) / "postmaster.pid").read_text().split()[0])
    return sum(cpu_s(c) for c in children(pid)) + cpu_s(pid)


def run_once(redis, pg, db, log_on):
    class Srv:
        socket = redis.socket
    jobs = Jobs(Srv)
    jobs.add(n=N)
    tmp = tempfile.mkdtemp(prefix="nq-bench-")
    cfg = config(tmp, redis, jobs.name, pg.dsn(db) if log_on else None)
    pg_before = pg_cpu(pg)
    with open(Path(tmp) / "log", "wb") as log:
        proc = subprocess.Popen([str(NOTIFYQD), "-f", "-c", str(cfg)], stdout=log, stderr=log)
    try:
        wait_for(lambda: jobs.count("completed") >= N, timeout=600, interval=0.05)
        done_at = time.monotonic()
        p = jobs.r.pipeline(transaction=False)
        for jid in jobs.ids("completed"):
            p.hmget(jobs.base + jid, "processedOn", "finishedOn")
        times = p.execute()
        start = min(int(a) for a, _ in times)
        end = max(int(b) for _, b in times)
        rate = N / ((end - start) / 1000.0)
        lag = None
        if log_on:
            q = ("SELECT count(*) FROM notifyq.notifications WHERE queue = '%s' AND status = "
                 "'sent'" % jobs.name)
            wait_for(lambda: int(pg.psql(q, db=db)[0][0]) >= N, timeout=600, interval=0.05)
            lag = time.monotonic() - done_at
        worker_cpu = sum(cpu_s(c) for c in children(proc.pid))
        return rate, lag, worker_cpu / N * 1e6, (pg_cpu(pg) - pg_before) / N * 1e6
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        jobs.r.flushall()


def main():
    d = Path(tempfile.mkdtemp(prefix="nq-bredis-"))
    redis = Redis(d)
    pg = Postgres()
    try:
        wait_for(redis.ping, timeout=5)
        db = pg.create_db()
        subprocess.run([str(NOTIFYQD), "--migrate", "-c",
                        str(config(tempfile.mkdtemp(), redis, "x", pg.dsn(db)))],
                       check=True, capture_output=True)
        pg.psql("ALTER DATABASE %s SET track_functions = 'all'" % db)
        off, on, lags, cpu_off, cpu_on, pg_on = [], [], [], [], [], []
        for _ in range(REPS):  # alternate, so drift hits both alike
            rate, _, cpu, _ = run_once(redis, pg, db, False)
            off.append(rate)
            cpu_off.append(cpu)
            rate, lag, cpu, pgc = run_once(redis, pg, db, True)
            on.append(rate)
            lags.append(lag)
            cpu_on.append(cpu)
            pg_on.append(pgc)
        calls, = pg.psql("SELECT calls FROM pg_stat_user_functions WHERE funcname = "
                         "'record_events'", db=db)[0]
        rows, = pg.psql("SELECT count(*) FROM notifyq.notification_events", db=db)[0]
        events = 2 * N * REPS  # active (standing for queued too) and sent per job
        mo, mn = statistics.median(off), statistics.median(on)
        print("| noop, concurrency %d, %d jobs, %d reps | jobs/s median (min-max) |"
              % (CONC, N, REPS))
        print("|---|---|")
        print("| delivery log off | %.0f (%.0f-%.0f) |" % (mo, min(off), max(off)))
        print("| delivery log on | %.0f (%.0f-%.0f) |" % (mn, min(on), max(on)))
        print("| change | %+.1f %% |" % ((mn - mo) / mo * 100))
        print("| events per statement | %.1f (%d events, %s calls; %s history rows) |"
              % (events / max(int(calls), 1), events, calls, rows))
        print("| log complete after the last job | median %.2f s |" % statistics.median(lags))
        print("| worker CPU per job, log off / on | %.1f / %.1f us |"
              % (statistics.median(cpu_off), statistics.median(cpu_on)))
        print("| PostgreSQL CPU per job (2 events, 3 history rows), log on | %.1f us |"
              % statistics.median(pg_on))
    finally:
        redis.stop()
        pg.close()


if __name__ == "__main__":
    main()
