/* SPDX-License-Identifier: MIT */
/*
 * The webhook handler: each job becomes one Standard Webhooks event POSTed
 * to the queue's `webhook.url` (providers/webhook.h has the bytes), through
 * this worker's transport (transfer/transfer.h): up to `concurrency`
 * requests in flight at once on reused connections. It is also the door
 * for generic jobs: the app's endpoint does the work, notifyq gives it
 * retries, rate limits and supervision.
 *
 * Outcomes: sent -> completed with {"ok":true,"provider":"webhook",
 * "messageId":"msg_...","status":N}; retry -> retried with the backoff (or
 * the endpoint's Retry-After); unknown (timeout or reset after the request
 * was sent) -> retried, its failedReason saying "possible duplicate", and
 * the completed job's returnvalue then carries "unknownAttempts": N (how
 * many earlier attempts may have reached the endpoint; its stacktrace keeps
 * their reasons); rate (429, or 502/503/504 with Retry-After) -> delayed by
 * Retry-After (else the queue's backoff delay) without spending an attempt;
 * permanent (410, other 4xx) -> failed now.
 *
 * Job data: any JSON, sent as is as the event's data; the job's name is the
 * event's type.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "handlers/handler.h"
#include "providers/http.h"
#include "providers/webhook.h"
#include "transfer/transfer.h"

/* In failedReason, what marks an attempt that may have reached the endpoint
 * (http.c's classify_common writes it). */
#define UNKNOWN_MARK "(possible duplicate)"
#define RATE_WAIT_MIN_MS 1000

struct webhook {
    const struct nq_queue_cfg *q;
    struct nq_webhook wh;
    struct nq_transfer *t;
    struct nq_http_send_opts opts;
};

struct webhook_call {
    struct webhook *h;
    struct nq_handler_call *call;
    struct nq_http_send *send;
    char id[NQ_WEBHOOK_ID_SIZE];
    unsigned earlier_unknown;
};

static void webhook_free(void *state)
{
    struct webhook *h = state;

    if (!h)
        return;
    nq_transfer_free(h->t);
    nq_transfer_global_done();
    nq_webhook_done(&h->wh);
    free(h);
}

static int webhook_init(const struct nq_handler_env *env, void **ret_state, struct nq_err *err)
{
    const struct nq_webhook_cfg *c = &env->queue->webhook;
    struct webhook *h;
    int r;

    if (!c->url || !c->secret)
        return nq_err_set(err, -EINVAL, "webhook: url and secret are required");
    h = calloc(1, sizeof(*h));
    if (!h)
        return nq_err_set(err, -ENOMEM, "out of memory");
    if (nq_transfer_global_init() < 0) {
        free(h);
        return nq_err_set(err, -EIO, "webhook: cannot initialise libcurl");
    }
    h->q = env->queue;
    h->opts = (struct nq_http_send_opts){ .connect_timeout_ms = c->connect_timeout_ms,
                                          .timeout_ms = c->timeout_ms };
    r = nq_webhook_init(&h->wh, c->url, c->secret, err);
    if (r < 0) {
        webhook_free(h);
        return r;
    }
    r = nq_transfer_new(env->base, env->queue->concurrency, &h->t);
    if (r < 0) {
        webhook_free(h);
        return nq_err_set(err, r, "webhook: cannot make the transport: %s", strerror(-r));
    }
    *ret_state = h;
    return 0;
}

static int webhook_validate(void *state, struct nq_job *job, struct nq_err *err)
{
    (void) state;
    if (job->data_raw && !job->data_valid)
        return nq_err_set(err, -EINVAL, "data: not valid JSON");
    return 0;
}

/* Earlier attempts that ended "unknown", from the job's stacktrace (one
 * failedReason per attempt, BullMQ's list). */
static unsigned count_unknown(const struct nq_job *job)
{
    json_t *st = job->stacktrace ? json_loads(job->stacktrace, 0, NULL) : NULL;
    unsigned n = 0;
    size_t i;
    json_t *v;

    json_array_foreach (st, i, v) {
        if (json_is_string(v) && strstr(json_string_value(v), UNKNOWN_MARK))
            n++;
    }
    json_decref(st);
    return n;
}

static char *sent_json(const struct webhook_call *wc, const struct nq_http_verdict *v)
{
    json_t *o = json_pack("{s:b,s:s,s:s,s:i}", "ok", 1, "provider", "webhook", "messageId", wc->id,
                          "status", (json_int_t) v->status);
    char *s;

    if (!o)
        return NULL;
    if (wc->earlier_unknown &&
        json_object_set_new(o, "unknownAttempts", json_integer(wc->earlier_unknown)) < 0) {
        json_decref(o);
        return NULL;
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void on_verdict(const struct nq_http_verdict *v, void *userdata)
{
    struct webhook_call *wc = userdata;
    struct nq_handler_call *call = wc->call;
    nq_autofree char *result = NULL;
    struct nq_outcome o = { .reason = v->reason, .retry_after_ms = v->retry_after_ms };

    switch (v->cls) {
    case NQ_REPLY_SENT:
        result = sent_json(wc, v);
        o = result ? (struct nq_outcome){ .kind = NQ_OUTCOME_OK, .result_json = result }
                   : (struct nq_outcome){ .kind = NQ_OUTCOME_RETRY, .reason = "out of memory" };
        break;
    case NQ_REPLY_RETRY:
    case NQ_REPLY_UNKNOWN:
        o.kind = NQ_OUTCOME_RETRY;
        break;
    case NQ_REPLY_RATE:
        o.kind = NQ_OUTCOME_RATE_LIMITED;
        if (!o.retry_after_ms)
            o.retry_after_ms = wc->h->q->backoff.delay_ms > RATE_WAIT_MIN_MS
                                   ? wc->h->q->backoff.delay_ms
                                   : RATE_WAIT_MIN_MS;
        break;
    case NQ_REPLY_PERMANENT:
    case NQ_REPLY_DEAD:
        o.kind = NQ_OUTCOME_PERMANENT;
        break;
    }
    call->handler_data = NULL;
    free(wc);
    nq_handler_call_done(call, &o);
}

static int webhook_start(void *state, struct nq_handler_call *call)
{
    struct webhook *h = state;
    struct nq_job *job = call->job;
    struct webhook_call *wc = calloc(1, sizeof(*wc));
    const struct nq_delivery d = { .queue = h->q->name,
                                   .job_id = job->id,
                                   .attempt = job->atm + 1,
                                   .job_timestamp_ms = job->timestamp };
    const struct nq_webhook_event ev = { .type = job->name,
                                         .data_json = job->data_raw,
                                         .data_len = job->data_len,
                                         .timestamp_ms = job->timestamp };
    struct nq_err err = { { 0 } };
    int r;

    if (!wc)
        return -ENOMEM;
    wc->h = h;
    wc->call = call;
    wc->earlier_unknown = count_unknown(job);
    if (nq_webhook_id(&d, wc->id) < 0) {
        free(wc);
        return -ENOMEM;
    }
    r = nq_http_send_start(h->t, &nq_webhook_provider, &h->wh, &ev, &d, &h->opts, on_verdict, wc,
                           &wc->send, &err);
    if (r == -EINVAL) {
        struct nq_outcome o = { .kind = NQ_OUTCOME_PERMANENT, .reason = nq_err_str(&err) };

        free(wc);
        nq_handler_call_done(call, &o);
        return 0;
    }
    if (r < 0) {
        free(wc);
        return r;
    }
    call->handler_data = wc;
    return 0;
}

static void webhook_cancel(void *state, struct nq_handler_call *call)
{
    struct webhook_call *wc = call->handler_data;

    (void) state;
    if (!wc)
        return;
    nq_http_send_cancel(wc->send);
    free(wc);
    call->handler_data = NULL;
}

const struct nq_handler_ops nq_handler_webhook = {
    .kind = NQ_HANDLER_WEBHOOK,
    .init = webhook_init,
    .free = webhook_free,
    .validate = webhook_validate,
    .start = webhook_start,
    .cancel = webhook_cancel,
};
