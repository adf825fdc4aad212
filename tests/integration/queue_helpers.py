# SPDX-License-Identifier: MIT
"""Helpers for the queue store's script-level tests: a private redis-server on
a unix socket in a temp dir, and our Lua scripts (src/queue/lua, each prefixed
with common.lua exactly as the build embeds them) called by EVALSHA."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LUA_DIR = os.path.join(ROOT, "src", "queue", "lua")


def wait_for(pred, timeout=5.0, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("condition not met within %.1fs" % timeout)


class RedisServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nq-redis-")
        self.socket = os.path.join(self.dir, "redis.sock")
        self.proc = subprocess.Popen(
            [os.environ.get("NOTIFYQ_REDIS_SERVER") or "redis-server", "--port", "0", "--unixsocket", self.socket,
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.socket))
        self.client = redis.Redis(unix_socket_path=self.socket, decode_responses=True)
        wait_for(self.client.ping)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def qserver():
    s = RedisServer()
    yield s
    s.stop()


@pytest.fixture
def q(qserver):
    qserver.client.flushall()
    return Queue(qserver.client, "bull", "tq")


def script_source(name):
    with open(os.path.join(LUA_DIR, "common.lua")) as f:
        common = f.read()
    with open(os.path.join(LUA_DIR, name + ".lua")) as f:
        return common + f.read()


class Queue:
    """One queue and the scripts that act on it, in our wire format."""

    def __init__(self, r, prefix, name):
        self.r = r
        self.base = "%s:%s:" % (prefix, name)
        self._scripts = {}
        self.seq = 1

    def k(self, suffix):
        return self.base + suffix

    def script(self, name, *args):
        if name not in self._scripts:
            self._scripts[name] = self.r.register_script(script_source(name))
        return self._scripts[name](keys=[self.base + "meta"], args=[self.base, *args])

    # -- add ---------------------------------------------------------------
    def add(self, name="job", data="{}", opts='{"attempts":0}', job_id="", ts=None, delay=0,
            priority=0, lifo=False, dedup="", ttl=0, extend=False, replace=False):
        ts = ts if ts is not None else now_ms()
        return self.script("add", job_id, name, data, opts, ts, delay, priority,
                           "1" if lifo else "", dedup, ttl, "1" if extend else "",
                           "1" if replace else "")

    # -- work --------------------------------------------------------------
    def work(self, finishes=(), n=0, now=None, lock_ms=30000, prefix="w1:", name="",
             limit_max=0, limit_ms=0, foreign=False):
        now = now if now is not None else now_ms()
        args = [now, lock_ms, prefix, self.seq, n, name, limit_max, limit_ms, len(finishes)]
        self.seq += n
        for f in finishes:
            assert len(f) == 11, f
            args.extend(f)
        codes, jobs, status, value, self.last_foreign = self.script("work", *args)
        assert foreign or self.last_foreign == [], self.last_foreign
        out = []
        for i in range(0, len(jobs), 3):
            h = jobs[i + 2]
            out.append(Job(jobs[i], jobs[i + 1], dict(zip(h[::2], h[1::2]))))
        return codes, out, status, value

    def fetch(self, n=1, **kw):
        return self.work((), n, **kw)

    def events(self):
        return [dict(e[1]) for e in self.r.xrange(self.k("events"))]

    def event_names(self):
        return [e["event"] for e in self.events()]


class Job:
    def __init__(self, id, token, h):
        self.id, self.token, self.h = id, token, h

    def atm(self):
        return int(self.h.get("atm", 0))

    # finish tuples: id, token, kind, atm after, deid, p1, p2, p3, p4, flow child,
    # progress ('' leaves it)
    def _t(self, fields, progress=""):
        return fields + ["p" if "parentKey" in self.h else "", progress]

    def complete(self, rv='{"ok":true}', keep=""):
        return self._t([self.id, self.token, "C", self.atm() + 1, self.h.get("deid", ""), rv,
                        keep, "", ""])

    def fail(self, reason="boom", exhausted=True, keep="", stack='["boom"]'):
        return self._t([self.id, self.token, "F" if exhausted else "P", self.atm() + 1,
                self.h.get("deid", ""), reason, stack, keep, "d" if "defa" in self.h else ""])

    def retry_later(self, delay, reason="boom", progress=""):
        return self._t([self.id, self.token, "D", self.atm() + 1, "", reason, '["boom"]',
                        delay, ""], progress)

    def retry_now(self, reason="boom"):
        return self._t([self.id, self.token, "W", self.atm() + 1, "", reason, '["boom"]',
                self.h.get("priority", "0"), ""])

    def rate_limited(self, delay, engage=False):
        return self._t([self.id, self.token, "L", "", "", "", "", delay, "1" if engage else ""])

    def returned(self):
        return self._t([self.id, self.token, "R", "", "", "", "", self.h.get("priority", "0"),
                        ""])


def now_ms():
    return int(time.time() * 1000)
