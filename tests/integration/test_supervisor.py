# SPDX-License-Identifier: MIT
"""The master process: pre-fork, restart, crash-loop throttle, reload, drain."""
import os
import re
import signal
import time

from conftest import children_of, pid_alive, wait_for

QUEUES = {"email": 2, "sms": 1, "push": 3}


def test_status_lists_every_queue_with_its_processes(notifyqd):
    r = notifyqd.ctl("status", "--json")
    assert r.returncode == 0, r.stderr
    st = notifyqd.status()
    assert "ok" not in st
    assert st["pid"] == notifyqd.pid
    assert st["state"] == "running"
    assert {q["name"]: q["processes"]["configured"] for q in st["queues"]} == QUEUES
    for q in st["queues"]:
        assert q["processes"]["running"] == q["processes"]["configured"]
        assert q["handler"] == "noop"
        assert q["bullmq_queue"] == q["name"]
        assert q["restarts"] == 0
        assert sorted(w["slot"] for w in q["workers"]) == list(range(QUEUES[q["name"]]))
        assert set(q["counters"]) >= {"fetched", "completed", "failed", "retried"}
    pids = [w["pid"] for q in st["queues"] for w in q["workers"]]
    assert sorted(pids) == sorted(children_of(notifyqd.pid))


def test_human_status_has_a_row_per_queue(notifyqd):
    r = notifyqd.ctl("status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("QUEUE"))
    assert lines[header].split() == ["QUEUE", "HANDLER", "PROCS", "RESTARTS", "WAITING",
                                     "ACTIVE", "DELAYED", "DLQ", "IN-FLIGHT", "COMPLETED",
                                     "FAILED", "RETRIED", "OK/MIN", "ERR/MIN", "FAIL%", "STATE"]
    rows = [l.split() for l in lines[header + 1:] if l.strip()]
    assert {row[0]: row[2] for row in rows} == {n: "%d/%d" % (p, p) for n, p in QUEUES.items()}

    r = notifyqd.ctl("status", "-v")
    assert r.returncode == 0, r.stderr
    pids = {str(w["pid"]) for q in notifyqd.status()["queues"] for w in q["workers"]}
    worker_rows = [l.split() for l in r.stdout.splitlines() if re.match(r"\w+/\d+\s", l)]
    assert {row[1] for row in worker_rows} == pids


def test_killed_worker_is_replaced(notifyqd):
    old = notifyqd.worker("email", 1)
    t0 = time.monotonic()
    os.kill(old["pid"], signal.SIGKILL)

    def replaced():
        w = notifyqd.worker("email", 1)
        return w if w.get("pid") and w["pid"] != old["pid"] else None

    new = wait_for(replaced, timeout=2, what="a new pid in email/1")
    latency = time.monotonic() - t0
    q = notifyqd.queue("email")
    assert q["restarts"] == 1
    assert new["last_exit"] == {"signal": "SIGKILL"}
    assert pid_alive(new["pid"]) and not pid_alive(old["pid"])
    # The other slot was left alone.
    assert notifyqd.worker("email", 0)["pid"] != new["pid"]
    wait_for(lambda: notifyqd.queue("email")["processes"]["running"] == 2, timeout=2)
    # The replacement is "connecting" until it has talked to Redis.
    wait_for(lambda: notifyqd.queue("email")["state"] == "ok", timeout=5)
    assert notifyqd.ctl("status").returncode == 0
    print("restart latency after kill -9: %.0f ms" % (latency * 1000))


def test_sighup_with_broken_config_keeps_children(notifyqd):
    before = notifyqd.ready()
    pids = sorted(w["pid"] for q in before["queues"] for w in q["workers"])
    notifyqd.cfg.write_text(notifyqd.config_text() + "bogus_key: 1\n")
    line = len(notifyqd.config_text().splitlines()) + 1
    with notifyqd.log_contains(r"%s:%d:1: bogus_key" % (re.escape(str(notifyqd.cfg)), line)):
        notifyqd.sighup()
    st = notifyqd.status()
    assert st["state"] == "running"
    assert st["generation"] == before["generation"]
    assert sorted(w["pid"] for q in st["queues"] for w in q["workers"]) == pids
    assert all(pid_alive(p) for p in pids)
    assert notifyqd.ctl("status").returncode == 0


def test_sighup_converges_to_new_process_counts(notifyqd):
    gen = notifyqd.status()["generation"]
    notifyqd.write_config({"email": 3, "sms": 1, "push": 1})
    notifyqd.sighup()

    def converged():
        st = notifyqd.ready()
        if not st or st["generation"] == gen:
            return None
        counts = {q["name"]: q["processes"]["configured"] for q in st["queues"]}
        # The old generation has drained: the master's children are exactly
        # the workers status lists.
        pids = [w["pid"] for q in st["queues"] for w in q["workers"]]
        kids = notifyqd.track_children()
        if counts != {"email": 3, "sms": 1, "push": 1} or sorted(pids) != sorted(kids):
            return None
        return st

    wait_for(converged, timeout=8, what="3/1/1 workers")


def test_reload_shrinks_and_grows_back(notifyqd):
    notifyqd.write_config({"email": 1, "sms": 1, "push": 1})
    notifyqd.sighup()
    wait_for(lambda: len(notifyqd.track_children()) == 3 and notifyqd.ready()
             and notifyqd.queue("push")["processes"]["configured"] == 1,
             timeout=8, what="push down to 1")
    notifyqd.write_config({"email": 2, "sms": 1, "push": 3})
    notifyqd.sighup()
    wait_for(lambda: len(notifyqd.track_children()) == 6 and notifyqd.ready()
             and notifyqd.queue("push")["processes"]["configured"] == 3,
             timeout=8, what="push back to 3")


def test_sigterm_drains_every_child_and_exits_0(notifyqd):
    kids = notifyqd.track_children()
    assert len(kids) == sum(QUEUES.values())
    t0 = time.monotonic()
    assert notifyqd.stop(signal.SIGTERM, timeout=2 + 3) == 0   # drain_timeout 2s + grace
    print("drain took %.0f ms" % ((time.monotonic() - t0) * 1000))
    assert not [p for p in kids if pid_alive(p)]
    r = notifyqd.ctl("status")
    assert r.returncode == 2
    assert notifyqd.sock in r.stderr and "is notifyqd running?" in r.stderr


def test_sigint_is_a_graceful_stop_too(notifyqd):
    kids = notifyqd.track_children()
    assert notifyqd.stop(signal.SIGINT, timeout=5) == 0
    assert not [p for p in kids if pid_alive(p)]


def test_workers_have_a_process_title(notifyqd):
    # The master knows a child's pid at fork, a moment before the child has
    # set its title: wait for it rather than read it once.
    w = notifyqd.worker("push", 2)

    def title():
        with open("/proc/%d/cmdline" % w["pid"], "rb") as f:
            return f.read().split(b"\0")[0].decode()

    wait_for(lambda: title().startswith("notifyqd: worker push/2"), timeout=5,
             what="title of push/2 (now %r)" % title())


def test_quickly_dying_worker_is_throttled_and_crash_looping(daemon_factory):
    # Nothing in a skeleton worker exits by itself, so the test plays the OOM
    # killer: every process the crashy slot gets is SIGKILLed the moment it
    # appears. To the master that is a worker dying within min_uptime, again
    # and again; the restart delay must double (100, 200, 400, 800 ms).
    d = daemon_factory({"steady": 1, "crashy": 1})
    d.start()
    st = d.wait_ready()
    known = {w["pid"] for q in st["queues"] for w in q["workers"]}
    steady = d.worker("steady", 0)["pid"]
    victim = d.worker("crashy", 0)["pid"]
    delays = []
    for _ in range(5):
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        known.add(victim)
        new = wait_for(lambda: [p for p in children_of(d.pid) if p not in known], timeout=5,
                       interval=0.005, what="crashy restarted")
        delays.append(time.monotonic() - killed)
        victim = new[0]
        d.pids_seen.add(victim)
    os.kill(victim, signal.SIGKILL)
    known.add(victim)
    print("restart delays: %s" % ", ".join("%.0f ms" % (x * 1000) for x in delays))
    # The master may be late under load, never early: lower bounds prove the
    # doubling, the first (fast) restart proves it is not a flat long delay.
    assert delays[0] < 0.5, delays
    for i, delay in enumerate(delays):
        assert delay >= 0.095 * 2 ** i, delays
    q = d.queue("crashy")
    assert q["state"] == "crash-looping"
    assert q["restarts"] >= 5
    assert q["workers"][0]["last_exit"] == {"signal": "SIGKILL"}
    assert d.queue("steady")["state"] != "crash-looping"
    assert d.worker("steady", 0)["pid"] == steady
    r = d.ctl("status")
    assert r.returncode == 1
    assert re.search(r"^crashy\s.*crash-looping$", r.stdout, re.M), r.stdout
