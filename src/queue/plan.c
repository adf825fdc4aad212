/* SPDX-License-Identifier: MIT */
/*
 * What a finished job becomes (BullMQ's worker-side retry rule, §8.3/§14);
 * see store.h.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "queue/backoff.h"
#include "queue/job.h"
#include "queue/store.h"

const char *nq_job_fail_unrun_reason_borrow(const struct nq_job *job)
{
    if (job->defa)
        return job->defa;
    return nq_job_invalid_reason_borrow(job);
}

static int plan_failure(const struct nq_job *job, const struct nq_outcome *o,
                        const struct nq_queue_cfg *q, double rnd, struct nq_finish *f)
{
    uint32_t attempts = nq_job_attempts(job, q->attempts);
    uint32_t made = job->atm + 1;
    const char *reason = o->reason ? o->reason : "";
    struct nq_keep keep;

    f->text = strdup(reason);
    f->stacktrace = nq_job_stacktrace_append_new(job, reason);
    if (!f->text || !f->stacktrace)
        return -ENOMEM;
    if (o->kind == NQ_OUTCOME_RETRY && made < attempts) {
        struct nq_backoff b;
        /* The queue's cap goes with the queue's backoff: a job's own
         * backoff means what it means in BullMQ. */
        uint64_t max_ms = job->opts.has_backoff ? 0 : q->backoff.max_ms;
        nq_job_backoff(job, &q->backoff, &b);
        f->delay_ms =
            o->retry_after_ms ? o->retry_after_ms : nq_backoff_delay_ms(&b, job->atm, max_ms, rnd);
        f->kind = f->delay_ms ? NQ_FINISH_RETRY_LATER : NQ_FINISH_RETRY_NOW;
        return 0;
    }
    /* BullMQ emits retries-exhausted whenever attemptsMade reaches attempts. */
    f->kind = made >= attempts ? NQ_FINISH_FAILED : NQ_FINISH_FAILED_EARLY;
    nq_job_keep(job, true, &q->retention.failed, &keep);
    return nq_keep_format(&keep, f->keep, sizeof(f->keep)) < 0 ? -ENOBUFS : 0;
}

int nq_finish_plan(const struct nq_job *job, const struct nq_outcome *o,
                   const struct nq_queue_cfg *q, double rnd, struct nq_finish *ret)
{
    struct nq_finish f = { .job = job };
    struct nq_keep keep;
    int r = 0;

    switch (o->kind) {
    case NQ_OUTCOME_OK:
        f.kind = NQ_FINISH_COMPLETED;
        f.text = strdup(o->result_json ? o->result_json : "null");
        nq_job_keep(job, false, &q->retention.completed, &keep);
        if (!f.text)
            r = -ENOMEM;
        else if (nq_keep_format(&keep, f.keep, sizeof(f.keep)) < 0)
            r = -ENOBUFS;
        break;
    case NQ_OUTCOME_RETRY:
    case NQ_OUTCOME_PERMANENT:
        r = plan_failure(job, o, q, rnd, &f);
        break;
    case NQ_OUTCOME_RATE_LIMITED:
        f.kind = NQ_FINISH_RATE_LIMITED;
        f.delay_ms = o->retry_after_ms ? o->retry_after_ms : 1000;
        f.engage_limiter = q->rate_limit.max > 0;
        break;
    case NQ_OUTCOME_RETURN:
        f.kind = NQ_FINISH_RETURNED;
        break;
    }
    if (r >= 0 && o->progress_json && o->kind != NQ_OUTCOME_OK && o->kind != NQ_OUTCOME_RETURN &&
        !(f.progress = strdup(o->progress_json)))
        r = -ENOMEM;
    if (r < 0) {
        nq_finish_done(&f);
        return r;
    }
    *ret = f;
    return 0;
}

void nq_finish_done(struct nq_finish *f)
{
    free(f->text);
    free(f->stacktrace);
    free(f->progress);
    *f = (struct nq_finish){ 0 };
}
