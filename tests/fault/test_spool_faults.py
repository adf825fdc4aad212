# SPDX-License-Identifier: MIT
"""The file provider's spool on a full and on a read-only file system (a
small tmpfs the test mounts; needs root, as CI has): jobs retry with a
reason instead of completing without their file, and finish once the file
system is usable again."""
import json
import os
import subprocess

import pytest

from conftest import wait_for
from faults import assert_none_lost
from test_worker_jobs import Jobs, wait_all_done

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "spool"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0777", "tmpfs", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def email_queue(jobs, spool):
    return {jobs.name: {"handler": "email", "bullmq_queue": jobs.name, "concurrency": 4,
                        "attempts": 1000,
                        "backoff": "{type: fixed, delay: 100ms}",
                        "provider": "{type: file, spool_dir: %s}" % spool}}


def message(i):
    return {"to": "user%d@example.org" % i, "subject": "Hello %d" % i, "text": "x" * 2000}


def spooled(spool):
    return [f for f in os.listdir(spool) if not f.startswith(".")]


def test_full_spool_retries_then_delivers(daemon_factory, redis_server, small_fs):
    jobs = Jobs(redis_server)
    n = 300  # ~2.5 KiB each: far more than 256 KiB holds
    ids = [jobs.add(message(i), opts={"attempts": 1000, "backoff": {"type": "fixed",
                                                                     "delay": 100}})[0]
           for i in range(n)]
    d = daemon_factory(email_queue(jobs, small_fs))
    d.start()
    wait_for(lambda: d.log_has(r"No space left|ENOSPC|space"), timeout=20,
             what="the spool to fill")
    assert jobs.count("completed") < n
    # Every completed job's file is where its returnvalue says.
    for i in jobs.ids("completed"):
        path = json.loads(jobs.job(i)["returnvalue"])["path"]
        assert os.path.exists(path), path
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_fs)], check=True)
    wait_all_done(jobs, n)
    assert_none_lost(jobs, ids)
    assert jobs.count("failed") == 0
    assert len(spooled(small_fs)) == n


def test_read_only_spool_retries_then_delivers(daemon_factory, redis_server, small_fs):
    jobs = Jobs(redis_server)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    n = 20
    ids = [jobs.add(message(i), opts={"attempts": 1000, "backoff": {"type": "fixed",
                                                                     "delay": 100}})[0]
           for i in range(n)]
    d = daemon_factory(email_queue(jobs, small_fs))
    d.start()
    wait_for(lambda: d.log_has(r"[Rr]ead-only"), timeout=20, what="a read-only refusal")
    assert jobs.count("completed") == 0
    subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    wait_all_done(jobs, n)
    assert_none_lost(jobs, ids)
    assert jobs.count("failed") == 0
    assert len(spooled(small_fs)) == n
