# SPDX-License-Identifier: MIT
"""The store's synchronous admin API (what notifyqctl's job commands use),
through tests/interop/nq_driver, against a real redis-server."""
import errno
import os
import subprocess

import pytest

from queue_helpers import q, qserver, now_ms  # noqa: F401  (fixtures)

BUILD = os.environ.get("NOTIFYQ_BUILD") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "_build")
DRIVER = os.path.join(BUILD, "tests", "interop", "nq_driver")


@pytest.fixture
def drv(q, qserver):
    def run(*args, ok=True):
        p = subprocess.run([DRIVER, "-s", qserver.socket, "-q", "tq", *map(str, args)],
                           capture_output=True, text=True, timeout=30)
        if ok:
            assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout.strip()
    return run


def test_unreachable_redis_is_a_clear_error(tmp_path):
    sock = str(tmp_path / "none.sock")
    p = subprocess.run([DRIVER, "-s", sock, "-q", "tq", "counts"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1
    assert p.stdout.startswith("error %d redis unix:%s: " % (errno.ENOENT, sock))


def test_add_show_counts_progress(drv, q):
    assert drv("add", "welcome", '{"to":"a@b.c"}', 0, 0, 3) == "1 added"
    assert drv("add", "later", "{}", 0, 60000) == "2 added"
    assert drv("add", "urgent", "{}", 2) == "3 added"
    assert drv("add", "x", "not json", ok=False).startswith(
        "error %d data is not valid JSON" % errno.EINVAL)
    assert drv("add", "x", "{}", 0, 0, 0, "42", ok=False) == (
        "error %d custom job id '42' must not be an integer" % errno.EINVAL)
    assert drv("job", "1") == '1 waiting welcome atm=0 ats=0 data={"to":"a@b.c"}'
    assert drv("job", "2").startswith("2 delayed later")
    assert drv("job", "3").startswith("3 prioritized urgent")
    assert drv("job", "404", ok=False) == "error %d job 404 not found" % errno.ENOENT
    assert drv("counts") == ("waiting=1 active=0 prioritized=1 delayed=1 completed=0 "
                             "failed=0 paused=0")
    assert drv("progress", "1", '{"pct":5}') == ""
    assert q.r.hget(q.k("1"), "progress") == '{"pct":5}'
    assert drv("progress", "1", "{bad", ok=False).startswith("error %d" % errno.EINVAL)


def test_pause_resume_promote(drv, q):
    drv("add", "later", "{}", 0, 60000)
    assert drv("pause") == "1" and drv("pause") == "0"
    assert q.r.hget(q.k("meta"), "paused") == "1"
    assert drv("counts").endswith("paused=1")
    assert drv("resume") == "1" and drv("resume") == "0"
    assert drv("promote", "1") == ""
    assert drv("job", "1").startswith("1 waiting")
    assert drv("promote", "1", ok=False) == "error %d job 1 is not delayed" % errno.EINVAL


def test_failed_list_retry_purge_remove_clean(drv, q):
    for i in range(3):
        drv("add", "bad%d" % i, '{"fail":"permanent"}')
    drv("add", "good", "{}")
    out = drv("-c", "4", "process", 4)
    assert sorted(out.split("\n")).count("4 C") == 1
    assert drv("list", "failed", 0, 10).split("\n") == ["3", "2", "1"]  # newest first
    assert drv("retry", "2") == ""
    assert drv("job", "2").startswith("2 waiting bad1 atm=1")
    assert drv("retry", "2", ok=False) == "error %d job 2 is not failed" % errno.EINVAL
    assert drv("retry-all", "failed") == "2"
    assert drv("counts").startswith("waiting=3 ")
    drv("process", 3)
    assert drv("purge", "failed") == "3"
    assert drv("counts") == ("waiting=0 active=0 prioritized=0 delayed=0 completed=1 "
                             "failed=0 paused=0")
    assert drv("clean", "completed", 3600000, 0) == "0"  # younger than the grace period
    assert drv("clean", "completed", 0, 0) == "1"
    assert drv("remove", "4", ok=False) == "error %d job 4 not found" % errno.ENOENT
    drv("add", "busy", "{}")
    q.r.set(q.k("5:lock"), "someone")
    assert drv("remove", "5", ok=False) == ("error %d job 5 is being processed (locked)"
                                            % errno.EBUSY)
    q.r.delete(q.k("5:lock"))
    assert drv("remove", "5") == "" and not q.r.exists(q.k("5"))
