/* SPDX-License-Identifier: MIT */
/*
 * The noop handler: for tests, benchmarks and an operator's smoke test of a
 * queue's retry policy. A job completes at once with {"ok":true}, unless its
 * data (an object) says otherwise:
 *   "sleep_ms": N          take N ms first, on a libevent timer (the loop
 *                          keeps running other jobs meanwhile)
 *   "fail": "retryable"    fail retryably (backoff, then failed)
 *   "fail": "permanent"    fail at once, whatever attempts remain
 *   "crash": "segv"        raise SIGSEGV in the worker: an honest crash for
 *                          the poison-job tests. Only when the worker was
 *                          started with NOTIFYQ_TEST_CRASH=1 in its
 *                          environment; otherwise the job fails permanently.
 * Other data is ignored (its field table is open). Bad values of these
 * keys fail the job permanently with a reason naming the key. The data's
 * tree is built only for a job whose raw text may hold one of these keys:
 * benchmarks run noop jobs, and for them the tree cost more than all the
 * rest of the job.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "handlers/handler.h"

#define NOOP_SLEEP_MAX_MS (24ULL * 3600 * 1000)

static const struct nq_field noop_rows[] = {
    { "fail", NQ_FIELD_READ, NULL },
    { "sleep_ms", NQ_FIELD_READ, NULL },
    { "crash", NQ_FIELD_READ, NULL },
};

/* Open: benchmarks and smoke tests send any data; only these keys act. */
static const struct nq_field_table noop_fields = { "noop", noop_rows, NQ_ELEMENTSOF(noop_rows),
                                                   true };

struct noop {
    bool crash_enabled;
};

struct noop_call {
    struct event *timer;
    struct nq_handler_call *call;
};

enum noop_fail { NOOP_OK, NOOP_RETRYABLE, NOOP_PERMANENT };

static int noop_init(const struct nq_handler_env *env, void **ret_state, struct nq_err *err)
{
    struct noop *n = calloc(1, sizeof(*n));
    const char *crash = getenv("NOTIFYQ_TEST_CRASH");

    (void) env;
    if (!n)
        return nq_err_set(err, -ENOMEM, "out of memory");
    n->crash_enabled = crash && strcmp(crash, "1") == 0;
    *ret_state = n;
    return 0;
}

static void noop_free(void *state)
{
    free(state);
}

/* Whether the job's data may hold one of our keys. Unescaped, a key is its
 * name in quotes in the raw text; escaped ("\u0066ail") it has a backslash.
 * A false positive ("fail" as a value) only costs building the tree. Valid
 * data has no NUL byte (queue/jsoncheck.h), so strstr sees all of it; it is
 * 4x faster than memmem on the bench payload. */
static bool may_instruct(const struct nq_job *job)
{
    const char *d = job->data_raw;

    return job->data_valid && (memchr(d, '\\', job->data_len) || strstr(d, "\"fail\"") ||
                               strstr(d, "\"sleep_ms\"") || strstr(d, "\"crash\""));
}

/* The data of a job that may instruct us, if it is an object; else NULL:
 * nothing to do but complete. The worker validates before it starts a job,
 * so the tree, if needed, is built already. */
static json_t *instructions(struct nq_job *job)
{
    json_t *data = may_instruct(job) ? nq_job_data_borrow(job) : NULL;

    return json_is_object(data) ? data : NULL;
}

/* The parsed instructions of a job whose data passed noop_validate. */
static enum noop_fail job_fail(const json_t *data)
{
    const char *f = json_string_value(json_object_get(data, "fail"));

    if (!f)
        return NOOP_OK;
    return strcmp(f, "permanent") == 0 ? NOOP_PERMANENT : NOOP_RETRYABLE;
}

static uint64_t job_sleep_ms(const json_t *data)
{
    json_t *v = json_object_get(data, "sleep_ms");

    return v ? (uint64_t) json_integer_value(v) : 0;
}

static bool job_crash(const json_t *data)
{
    return json_object_get(data, "crash") != NULL;
}

static int noop_validate(void *state, struct nq_job *job, struct nq_err *err)
{
    struct noop *n = state;
    json_t *data, *fail, *sleep_ms, *crash;

    if (!may_instruct(job))
        return 0;
    data = nq_job_data_borrow(job);
    if (!data && job->data_valid)
        return nq_err_set(err, -ENOMEM, "out of memory");
    if (!json_is_object(data))
        return 0;
    fail = json_object_get(data, "fail");
    sleep_ms = json_object_get(data, "sleep_ms");
    crash = json_object_get(data, "crash");
    if (fail && !(json_is_string(fail) && (strcmp(json_string_value(fail), "retryable") == 0 ||
                                           strcmp(json_string_value(fail), "permanent") == 0)))
        return nq_err_set(err, -EINVAL, "data.fail: must be \"retryable\" or \"permanent\"");
    if (sleep_ms && !(json_is_integer(sleep_ms) && json_integer_value(sleep_ms) >= 0 &&
                      (uint64_t) json_integer_value(sleep_ms) <= NOOP_SLEEP_MAX_MS))
        return nq_err_set(err, -EINVAL, "data.sleep_ms: must be an integer 0..%llu",
                          (unsigned long long) NOOP_SLEEP_MAX_MS);
    if (crash && !(json_is_string(crash) && strcmp(json_string_value(crash), "segv") == 0))
        return nq_err_set(err, -EINVAL, "data.crash: must be \"segv\"");
    if (crash && !n->crash_enabled)
        return nq_err_set(err, -EINVAL,
                          "data.crash: test crashes are disabled (NOTIFYQ_TEST_CRASH=1 "
                          "in notifyqd's environment enables them)");
    return 0;
}

static void finish(struct nq_handler_call *call)
{
    json_t *data = instructions(call->job);
    struct nq_outcome o = { .kind = NQ_OUTCOME_OK, .result_json = "{\"ok\":true}" };

    if (data && job_crash(data)) {
        /* The default action, not a sanitizer's handler: the master must see
         * a death by SIGSEGV, as from a real crash. */
        (void) signal(SIGSEGV, SIG_DFL);
        (void) raise(SIGSEGV);
    }
    switch (data ? job_fail(data) : NOOP_OK) {
    case NOOP_OK:
        break;
    case NOOP_RETRYABLE:
        o = (struct nq_outcome){ .kind = NQ_OUTCOME_RETRY, .reason = "noop: retryable failure" };
        break;
    case NOOP_PERMANENT:
        o = (struct nq_outcome){ .kind = NQ_OUTCOME_PERMANENT,
                                 .reason = "noop: permanent failure" };
        break;
    }
    nq_handler_call_done(call, &o);
}

static void on_sleep_done(evutil_socket_t fd, short what, void *arg)
{
    struct noop_call *nc = arg;
    struct nq_handler_call *call = nc->call;

    (void) fd;
    (void) what;
    event_free(nc->timer);
    free(nc);
    call->handler_data = NULL;
    finish(call);
}

static int noop_start(void *state, struct nq_handler_call *call)
{
    json_t *data = instructions(call->job);
    uint64_t ms = data ? job_sleep_ms(data) : 0;
    struct noop_call *nc;
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };

    if (ms == 0) {
        finish(call);
        return 0;
    }
    nc = calloc(1, sizeof(*nc));
    if (!nc)
        return -ENOMEM;
    nc->call = call;
    nc->timer = evtimer_new(call->base, on_sleep_done, nc);
    if (!nc->timer || evtimer_add(nc->timer, &tv) < 0) {
        if (nc->timer)
            event_free(nc->timer);
        free(nc);
        return -ENOMEM;
    }
    call->handler_data = nc;
    return 0;
}

static void noop_cancel(void *state, struct nq_handler_call *call)
{
    struct noop_call *nc = call->handler_data;

    (void) state;
    if (!nc)
        return;
    event_free(nc->timer);
    free(nc);
    call->handler_data = NULL;
}

const struct nq_handler_ops nq_handler_noop = {
    .kind = NQ_HANDLER_NOOP,
    .fields = &noop_fields,
    .init = noop_init,
    .free = noop_free,
    .validate = noop_validate,
    .start = noop_start,
    .cancel = noop_cancel,
};
