# SPDX-License-Identifier: MIT
"""Logs a person reads (issue 8): one info line per finished job attempt,
naming the queue, the job id, what happened, the provider's id and how long
it took, in plain words; never the message's body, subject or a secret."""
import re

from conftest import wait_for
from test_worker_jobs import Jobs, wait_all_done

import pytest


@pytest.fixture
def jobs(redis_server):
    return Jobs(redis_server)


def one_line(d, pattern):
    """The one log line matching pattern (a job's line appears exactly once)."""
    lines = [l for l in d.log_text().splitlines() if re.search(pattern, l)]
    assert len(lines) == 1, "want one line /%s/, log has:\n%s" % (pattern, d.log_text()[-3000:])
    return lines[0]


def test_each_finished_job_logs_one_plain_line(daemon_factory, jobs, redis_server, tmp_path):
    mail = Jobs(redis_server)
    spool = tmp_path / "spool"
    d = daemon_factory({
        jobs.name: {"handler": "noop", "bullmq_queue": jobs.name},
        mail.name: {"handler": "email", "bullmq_queue": mail.name,
                    "provider": "{type: file, spool_dir: %s}" % spool},
    })
    d.start()
    d.wait_ready(timeout=10)

    [sent] = mail.add({"to": "ada@example.org", "subject": "Private subject line",
                       "text": "the body: secret code 481516"})
    [bad] = mail.add({"subject": "no recipient", "text": "another body"})
    [perm] = jobs.add({"fail": "permanent"}, {"attempts": 3})
    [done] = jobs.add({})
    [retry] = jobs.add({"fail": "retryable"},
                       {"attempts": 2, "backoff": {"type": "fixed", "delay": 100}})
    wait_all_done(mail, 2)
    wait_all_done(jobs, 3)

    rv = mail.job(sent)["returnvalue"]
    message_id = re.search(r'"messageId":"([^"]+)"', rv).group(1)
    wait_for(lambda: d.log_has(r"queue %s, job %s: " % (mail.name, sent)), timeout=5,
             what="the delivered job's line")
    line = one_line(d, r"queue %s, job %s: " % (mail.name, sent))
    assert re.search(r"queue %s, job %s: delivered in \d+ ms, provider id %s$"
                     % (mail.name, sent, re.escape(message_id)), line), line

    wait_for(lambda: d.log_has(r"job %s: completed" % done), timeout=5, what="noop's line")
    line = one_line(d, r"queue %s, job %s: " % (jobs.name, done))
    assert re.search(r"queue %s, job %s: completed in \d+ ms$" % (jobs.name, done), line), line

    wait_for(lambda: d.log_has(r"job %s: failed" % bad), timeout=5, what="bad job's line")
    line = one_line(d, r"queue %s, job %s: " % (mail.name, bad))
    assert line.endswith("queue %s, job %s: failed without being run: data.to: required"
                         % (mail.name, bad)), line

    wait_for(lambda: d.log_has(r"job %s: failed" % perm), timeout=5, what="permanent's line")
    line = one_line(d, r"queue %s, job %s: " % (jobs.name, perm))
    assert re.search(r"failed for good on attempt 1 after \d+ ms: noop: permanent failure$",
                     line), line

    wait_for(lambda: d.log_has(r"job %s: failed for good" % retry), timeout=5,
             what="the retried job's last line")
    first = one_line(d, r"queue %s, job %s: attempt 1 " % (jobs.name, retry))
    assert re.search(r"attempt 1 failed after \d+ ms, trying again in 0\.1 s: "
                     r"noop: retryable failure$", first), first
    last = one_line(d, r"queue %s, job %s: failed" % (jobs.name, retry))
    assert re.search(r"failed for good on attempt 2 after \d+ ms: noop: retryable failure$",
                     last), last

    log = d.log_text()
    for secret in ("secret code 481516", "Private subject line", "another body"):
        assert secret not in log
    # No jargon: say what happened.
    assert "unrun" not in log
