/* SPDX-License-Identifier: MIT */
/*
 * The broadcast handler: one job names a target queue and a list of
 * recipients; each recipient becomes an ordinary job of the target queue
 * (its rate limit, retries and failed set apply to each), added in batches
 * with addBulk semantics (queue/store.h nq_store_add_batch, through the
 * worker's door: handler.h nq_handler_add_batch_fn).
 *
 * Data:
 *   queue              required: the target, a queue of the configuration
 *                      (its name under `queues`, or its bullmq_queue),
 *                      not itself a broadcast queue
 *   recipients         required, non-empty: [{to, vars}, ...]; to a
 *                      non-empty string, vars an optional object
 *   templateVariables  optional object, merged with each recipient's vars
 *                      (the recipient's win) into its child's
 *                      templateVariables
 *   anything else      (templateId, subject, from, tenantId...) copied into
 *                      every child; `to` is refused (the recipients say it)
 * The whole job is checked before anything is added: a malformed recipient
 * fails the broadcast naming its index, a key the target's handler refuses
 * fails it naming the key; nothing is added then. Whether an address is a
 * valid address is the target handler's business, per child: one bad
 * address among 10,000 fails its own job, not the other 9,999.
 *
 * Identity: child i's job id is "bcast-<h>-<i>", h 20 hex digits of
 * SHA-256(queue, job id, job timestamp) of the broadcast. BullMQ's add of an
 * existing id is a no-op, so adding a batch twice adds nothing twice; a
 * broadcast added again with the same id is a new job (another timestamp),
 * hence new children.
 *
 * Progress: each batch is one atomic script call holding its adds and the
 * broadcast's new progress (a number, recipients added * 100 / total, in
 * the fewest digits that read back exactly), so the progress always says
 * exactly how far the fan-out got. A broadcast that runs again (a retry, a
 * crashed or drained worker) starts where its progress says: children
 * already added are not added again, even once they were delivered and
 * removed by the target's retention.
 *
 * Children get no options but their jobId ({"attempts":0,"jobId":...}, as
 * Node writes an add without options): the target queue's defaults
 * (attempts, backoff, retention) apply to each. Their name is the
 * broadcast's.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "handlers/handler.h"

#define TO_MAX 1024 /* bytes of a recipient's to */
#define BATCH_DEFAULT 100
#define TRANSIENT_RETRY_MS 250 /* Redis busy, loading or reconnecting */
#define TRANSIENT_TRIES 40     /* then the attempt fails: 10 s */
#define PREFIX_MAX 32          /* "bcast-" + 20 hex + "-" */

static const struct nq_field broadcast_rows[] = {
    { "queue", NQ_FIELD_READ, NULL },
    { "recipients", NQ_FIELD_READ, NULL },
    { "templateId", NQ_FIELD_READ, NULL },
    { "templateVariables", NQ_FIELD_READ, NULL },
    { "to", NQ_FIELD_REFUSED,
      "a broadcast sends to data.recipients; each child job gets one of them as its to" },
};

/* Open: the other keys are the children's. */
static const struct nq_field_table broadcast_fields = { "broadcast", broadcast_rows,
                                                        NQ_ELEMENTSOF(broadcast_rows), true };

struct broadcast {
    const struct nq_config *cfg;
    uint32_t batch;
    nq_handler_add_batch_fn add_batch;
    void *add_ctx;
    char *own_queue; /* BullMQ name, for the children's ids */
};

/* One broadcast in flight. */
struct bcall {
    struct broadcast *b;
    struct nq_handler_call *call; /* NULL once cancelled */
    struct nq_job *job;           /* borrowed from call: only while call is set */
    const char *target;           /* BullMQ name, borrowed from the config */
    json_t *shared;               /* the children's data but to, templateVariables */
    json_t *vars;                 /* the broadcast's templateVariables, or NULL */
    json_t *recipients;
    char prefix[PREFIX_MAX];
    size_t total, next, resumed, added, existing;
    /* The batch being added, kept until Redis confirmed it (sent again after
     * a transient error). */
    struct nq_add_job *jobs;
    char **data, **ids, **opts;
    size_t n;
    char progress[32];
    unsigned tries;
    bool in_flight;
    struct event *timer;
};

/* ---- checks ---------------------------------------------------------------- */

/* A queue of the configuration by its name or BullMQ name. */
static const struct nq_queue_cfg *queue_find(const struct nq_config *cfg, const char *name)
{
    const struct nq_queue_cfg *q = nq_config_queue(cfg, name);

    for (size_t i = 0; !q && i < cfg->n_queues; i++)
        if (strcmp(cfg->queues[i].bullmq_queue, name) == 0)
            q = &cfg->queues[i];
    return q;
}

static int target_check(const struct broadcast *b, const json_t *data,
                        const struct nq_queue_cfg **ret, struct nq_err *err)
{
    const json_t *v = json_object_get(data, "queue");
    const struct nq_queue_cfg *q;
    const struct nq_field_table *t;
    const struct nq_field *to;

    if (!v || json_is_null(v))
        return nq_err_set(err, -EINVAL,
                          "data.queue: required (the queue the recipients' "
                          "jobs go to)");
    if (!json_is_string(v))
        return nq_err_set(err, -EINVAL, "data.queue: must be a string");
    q = queue_find(b->cfg, json_string_value(v));
    if (!q)
        return nq_err_set(err, -EINVAL, "data.queue: no queue \"%.64s\" in the configuration",
                          json_string_value(v));
    if (q->handler == NQ_HANDLER_BROADCAST)
        return nq_err_set(err, -EINVAL,
                          "data.queue: %s is a broadcast queue; the target must deliver", q->name);
    t = nq_handler_fields(q->handler);
    to = t ? nq_field_find(t, "to") : NULL;
    if (t && !t->open && (!to || to->use == NQ_FIELD_REFUSED))
        return nq_err_set(err, -EINVAL,
                          "data.queue: %s jobs have no field to, which a broadcast sets",
                          t->handler);
    *ret = q;
    return 0;
}

/* key of the broadcast's data, as a key of every child of target t. */
static int shared_key_check(const struct nq_field_table *t, const char *key, const json_t *v,
                            struct nq_err *err)
{
    const struct nq_field *f = nq_field_find(&broadcast_fields, key);
    const struct nq_field *tf;

    if (f && f->use == NQ_FIELD_REFUSED && !json_is_null(v))
        return nq_err_set(err, -EINVAL, "data.%s: %s", key, f->why);
    if (!t || t->open || strcmp(key, "queue") == 0 || strcmp(key, "recipients") == 0)
        return 0;
    tf = nq_field_find(t, key);
    if (!tf)
        return nq_err_set(err, -EINVAL,
                          "data.%.64s: not a field of %s jobs, the broadcast's target (see "
                          "notifyq-jobs(7))",
                          key, t->handler);
    if (tf->use == NQ_FIELD_REFUSED && !json_is_null(v))
        return nq_err_set(err, -EINVAL, "data.%s: %s", key, tf->why);
    return 0;
}

static int to_check(const json_t *to, size_t i, struct nq_err *err)
{
    const char *s;
    size_t n;

    if (!to || json_is_null(to))
        return nq_err_set(err, -EINVAL, "data.recipients[%zu].to: required", i);
    if (!json_is_string(to))
        return nq_err_set(err, -EINVAL, "data.recipients[%zu].to: must be a string", i);
    s = json_string_value(to);
    n = json_string_length(to);
    if (n == 0)
        return nq_err_set(err, -EINVAL, "data.recipients[%zu].to: must not be empty", i);
    if (n > TO_MAX)
        return nq_err_set(err, -EINVAL, "data.recipients[%zu].to: longer than %d bytes", i, TO_MAX);
    for (size_t k = 0; k < n; k++)
        if ((unsigned char) s[k] < 0x20 || s[k] == 0x7f)
            return nq_err_set(err, -EINVAL,
                              "data.recipients[%zu].to: must not hold control characters", i);
    return 0;
}

static int recipient_check(const json_t *r, size_t i, struct nq_err *err)
{
    const char *key;
    json_t *v;

    if (!json_is_object(r))
        return nq_err_set(err, -EINVAL, "data.recipients[%zu]: must be an object {to, vars}", i);
    json_object_foreach ((json_t *) r, key, v) {
        if (strcmp(key, "to") != 0 && strcmp(key, "vars") != 0)
            return nq_err_set(err, -EINVAL,
                              "data.recipients[%zu].%.64s: not a field of a recipient (to, vars)",
                              i, key);
    }
    v = json_object_get(r, "vars");
    if (v && !json_is_null(v) && !json_is_object(v))
        return nq_err_set(err, -EINVAL, "data.recipients[%zu].vars: must be an object", i);
    return to_check(json_object_get(r, "to"), i, err);
}

static int recipients_check(const json_t *data, struct nq_err *err)
{
    const json_t *list = json_object_get(data, "recipients");
    const json_t *tv = json_object_get(data, "templateVariables");
    int r;

    if (tv && !json_is_null(tv) && !json_is_object(tv))
        return nq_err_set(err, -EINVAL, "data.templateVariables: must be an object");
    if (!list || json_is_null(list))
        return nq_err_set(err, -EINVAL, "data.recipients: required (a list of {to, vars})");
    if (!json_is_array(list) || json_array_size(list) == 0)
        return nq_err_set(err, -EINVAL, "data.recipients: must be a non-empty list of {to, vars}");
    for (size_t i = 0; i < json_array_size(list); i++)
        if ((r = recipient_check(json_array_get(list, i), i, err)) < 0)
            return r;
    return 0;
}

/* The whole job, before anything is added; *ret is the target. */
static int job_check(const struct broadcast *b, struct nq_job *job, const struct nq_queue_cfg **ret,
                     struct nq_err *err)
{
    const json_t *data = nq_job_data_borrow(job);
    const struct nq_field_table *t;
    const char *key;
    json_t *v;
    int r;

    if (!data && job->data_valid)
        return nq_err_set(err, -ENOMEM, "out of memory");
    if (!json_is_object(data))
        return nq_err_set(err, -EINVAL, "data: must be a JSON object");
    if ((r = target_check(b, data, ret, err)) < 0)
        return r;
    t = nq_handler_fields((*ret)->handler);
    json_object_foreach ((json_t *) data, key, v) {
        if ((r = shared_key_check(t, key, v, err)) < 0)
            return r;
    }
    if (t && !t->open && !nq_field_find(t, "templateVariables"))
        return nq_err_set(err, -EINVAL, "data.queue: %s jobs have no templateVariables",
                          t->handler);
    return recipients_check(data, err);
}

/* ---- the handler ------------------------------------------------------------- */

static int broadcast_init(const struct nq_handler_env *env, void **ret_state, struct nq_err *err)
{
    struct broadcast *b;

    if (!env->add_batch)
        return nq_err_set(err, -EINVAL, "broadcast: this worker cannot add jobs");
    b = calloc(1, sizeof(*b));
    if (!b || !(b->own_queue = strdup(env->queue->bullmq_queue ? env->queue->bullmq_queue
                                                               : env->queue->name))) {
        free(b);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    b->cfg = env->cfg;
    b->batch = env->queue->broadcast.batch ? env->queue->broadcast.batch : BATCH_DEFAULT;
    b->add_batch = env->add_batch;
    b->add_ctx = env->add_batch_ctx;
    *ret_state = b;
    return 0;
}

static void broadcast_free(void *state)
{
    struct broadcast *b = state;

    if (b)
        free(b->own_queue);
    free(b);
}

static int broadcast_validate(void *state, struct nq_job *job, struct nq_err *err)
{
    const struct nq_queue_cfg *target;

    return job_check(state, job, &target, err);
}

static void batch_clear(struct bcall *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->data[i]);
        free(c->ids[i]);
        free(c->opts[i]);
        c->data[i] = c->ids[i] = c->opts[i] = NULL;
    }
    c->n = 0;
}

static struct bcall *bcall_free(struct bcall *c)
{
    batch_clear(c);
    free(c->jobs);
    free(c->data);
    free(c->ids);
    free(c->opts);
    if (c->timer)
        event_free(c->timer);
    json_decref(c->shared);
    json_decref(c->vars);
    json_decref(c->recipients);
    free(c);
    return NULL;
}

/* Reports o (whose strings the caller owns) and forgets c. */
static void report(struct bcall *c, const struct nq_outcome *o)
{
    struct nq_handler_call *call = c->call;

    call->handler_data = NULL;
    bcall_free(c);
    nq_handler_call_done(call, o);
}

static void report_failure(struct bcall *c, enum nq_outcome_kind kind, const char *fmt, ...)
    NQ_PRINTF(3, 4);

static void report_failure(struct bcall *c, enum nq_outcome_kind kind, const char *fmt, ...)
{
    char why[320];
    struct nq_outcome o = { .kind = kind, .reason = why };
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    report(c, &o);
}

static void report_done(struct bcall *c)
{
    /* The queue's name may hold any byte but ':': jansson escapes it. */
    json_t *r = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:s}", "ok", 1, "queue", c->target,
                          "recipients", (json_int_t) c->total, "added", (json_int_t) c->added,
                          "existing", (json_int_t) c->existing, "resumedAt",
                          (json_int_t) c->resumed, "jobIdPrefix", c->prefix);
    char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
    struct nq_outcome o = { .kind = NQ_OUTCOME_OK, .result_json = text };

    json_decref(r);
    if (!text) {
        report_failure(c, NQ_OUTCOME_RETRY, "broadcast: out of memory");
        return;
    }
    report(c, &o);
    free(text);
}

/* "bcast-<20 hex>-": the broadcast's identity, whatever bytes its id has.
 * Returns 0 or -ENOMEM. */
static int prefix_make(const char *queue, const struct nq_job *job, char out[PREFIX_MAX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    char ts[24];
    int ok, n;

    if (!h)
        return -ENOMEM;
    (void) snprintf(ts, sizeof(ts), "%" PRIu64, job->timestamp);
    /* The NULs keep ("a", "bc") and ("ab", "c") apart. */
    ok = EVP_DigestInit_ex(h, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(h, queue, strlen(queue) + 1) &&
         EVP_DigestUpdate(h, job->id, strlen(job->id) + 1) && EVP_DigestUpdate(h, ts, strlen(ts)) &&
         EVP_DigestFinal_ex(h, md, NULL);
    EVP_MD_CTX_free(h);
    if (!ok)
        return -ENOMEM;
    n = snprintf(out, PREFIX_MAX, "bcast-");
    for (int i = 0; i < 10; i++)
        n += snprintf(out + n, PREFIX_MAX - (size_t) n, "%02x", md[i]);
    (void) snprintf(out + n, PREFIX_MAX - (size_t) n, "-");
    return 0;
}

/* done * 100 / total in the fewest digits that read back as the same
 * double, so that the resume point is exact: "40", "33.333333333333336". */
static void progress_format(size_t done, size_t total, char *buf, size_t size)
{
    double p = (double) done * 100.0 / (double) total;

    for (int prec = 3; prec <= 17; prec++) {
        (void) snprintf(buf, size, "%.*g", prec, p);
        if (strtod(buf, NULL) == p)
            return;
    }
}

/* Where a broadcast that ran before stopped: its progress, as a count. */
static size_t resume_point(const struct nq_job *job, size_t total)
{
    const char *s = job->progress;
    char *end;
    double p;

    if (!s || *s < '0' || *s > '9')
        return 0;
    p = strtod(s, &end);
    if (*end || !(p > 0))
        return 0;
    if (p >= 100)
        return total;
    double at = p * (double) total / 100.0 + 0.5;
    return at >= (double) total ? total : (size_t) at;
}

/* Child i's data: the shared fields, to, and the merged templateVariables. */
static char *child_data(struct bcall *c, size_t i)
{
    json_t *r = json_array_get(c->recipients, i);
    json_t *vars = json_object_get(r, "vars");
    json_t *tv;
    int k;

    /* c->shared is reused child after child: each sets both keys anew. */
    if (json_is_object(vars)) {
        tv = c->vars ? json_copy(c->vars) : json_object();
        if (!tv || json_object_update(tv, vars) < 0) {
            json_decref(tv);
            return NULL;
        }
        k = json_object_set_new(c->shared, "templateVariables", tv);
    } else if (c->vars) {
        k = json_object_set(c->shared, "templateVariables", c->vars);
    } else {
        k = 0;
        (void) json_object_del(c->shared, "templateVariables");
    }
    if (k < 0 || json_object_set(c->shared, "to", json_object_get(r, "to")) < 0)
        return NULL;
    return json_dumps(c->shared, JSON_COMPACT);
}

static void on_added(void *userdata, int r, char **ids, size_t n_ids);

static void send_batch(struct bcall *c)
{
    int r = c->b->add_batch(c->b->add_ctx, c->target, c->jobs, c->n, c->job->id, c->progress,
                            on_added, c);

    if (r == 0) {
        c->in_flight = true;
        return;
    }
    on_added(c, r, NULL, 0);
}

NQ_PRINTF(1, 2)
static char *strf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

/* Child i of the batch: recipient c->next + i. Returns 0 or -ENOMEM. */
static int child_make(struct bcall *c, size_t i)
{
    size_t k = c->next + i;
    const char *name = c->job->name ? c->job->name : "broadcast";

    c->n = i + 1; /* batch_clear frees what was made */
    c->data[i] = child_data(c, k);
    c->ids[i] = strf("%s%zu", c->prefix, k);
    /* Node's opts for an add without options but a custom id. */
    c->opts[i] = strf("{\"attempts\":0,\"jobId\":\"%s%zu\"}", c->prefix, k);
    if (!c->data[i] || !c->ids[i] || !c->opts[i])
        return -ENOMEM;
    c->jobs[i] = (struct nq_add_job){
        .id = c->ids[i], .name = name, .data_json = c->data[i], .opts_json = c->opts[i]
    };
    return 0;
}

/* Builds and sends the batch after c->next, or reports the end. */
static void next_batch(struct bcall *c)
{
    size_t n = c->total - c->next < c->b->batch ? c->total - c->next : c->b->batch;

    if (c->next >= c->total) {
        report_done(c);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (child_make(c, i) < 0) {
            report_failure(c, NQ_OUTCOME_RETRY, "broadcast: out of memory");
            return;
        }
    progress_format(c->next + n, c->total, c->progress, sizeof(c->progress));
    send_batch(c);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void) fd, (void) what;
    send_batch(arg);
}

static bool transient(int r)
{
    return r == -EAGAIN || r == -ECONNRESET || r == -ENOTCONN;
}

static void on_added(void *userdata, int r, char **ids, size_t n_ids)
{
    struct bcall *c = userdata;
    const struct timeval later = { 0, TRANSIENT_RETRY_MS * 1000L };

    (void) ids, (void) n_ids;
    c->in_flight = false;
    if (!c->call) {
        bcall_free(c); /* cancelled while the batch was out */
        return;
    }
    if (r == -ECANCELED)
        return; /* the worker is going away: its cancel follows */
    if (r >= 0) {
        c->added += (size_t) r;
        c->existing += c->n - (size_t) r;
        c->next += c->n;
        c->tries = 0;
        batch_clear(c);
        next_batch(c);
        return;
    }
    if (r == -ENOENT) {
        report_failure(c, NQ_OUTCOME_PERMANENT,
                       "broadcast: the job was removed while its recipients were being added "
                       "(%zu of %zu added)",
                       c->next, c->total);
        return;
    }
    if (transient(r) && ++c->tries <= TRANSIENT_TRIES) {
        (void) evtimer_add(c->timer, &later);
        return;
    }
    errno = -r;
    report_failure(c, NQ_OUTCOME_RETRY, "broadcast: adding jobs to queue %s: %m (%zu of %zu added)",
                   c->target, c->next, c->total);
}

/* The children's shared fields: data without queue and recipients. */
static json_t *shared_new(const json_t *data)
{
    json_t *s = json_copy((json_t *) data);

    if (s && (json_object_del(s, "queue") < 0 || json_object_del(s, "recipients") < 0)) {
        json_decref(s);
        return NULL;
    }
    return s;
}

static int bcall_new(struct broadcast *b, struct nq_handler_call *call,
                     const struct nq_queue_cfg *target, struct bcall **ret)
{
    struct bcall *c = calloc(1, sizeof(*c));
    json_t *data = nq_job_data_borrow(call->job);

    if (!c)
        return -ENOMEM;
    c->b = b;
    c->call = call;
    c->job = call->job;
    c->target = target->bullmq_queue;
    c->recipients = json_incref(json_object_get(data, "recipients"));
    c->total = json_array_size(c->recipients);
    c->vars = json_incref(json_object_get(data, "templateVariables"));
    if (json_is_null(c->vars))
        c->vars = (json_decref(c->vars), NULL);
    c->shared = shared_new(data);
    c->jobs = calloc(b->batch, sizeof(*c->jobs));
    c->data = calloc(b->batch, sizeof(char *));
    c->ids = calloc(b->batch, sizeof(char *));
    c->opts = calloc(b->batch, sizeof(char *));
    c->timer = evtimer_new(call->base, on_retry, c);
    if (!c->shared || !c->jobs || !c->data || !c->ids || !c->opts || !c->timer ||
        prefix_make(b->own_queue, call->job, c->prefix) < 0) {
        bcall_free(c);
        return -ENOMEM;
    }
    *ret = c;
    return 0;
}

static int broadcast_start(void *state, struct nq_handler_call *call)
{
    struct broadcast *b = state;
    const struct nq_queue_cfg *target;
    struct nq_err err = { "" };
    struct bcall *c;
    /* Validated: only the target is looked up again, not every recipient. */
    int r = target_check(b, nq_job_data_borrow(call->job), &target, &err);

    if (r < 0)
        return r;
    if ((r = bcall_new(b, call, target, &c)) < 0)
        return r;
    c->next = c->resumed = resume_point(call->job, c->total);
    if (c->resumed)
        nq_log(LOG_NOTICE, "job %s: broadcast resumes at recipient %zu of %zu (its progress)",
               call->job->id, c->resumed, c->total);
    call->handler_data = c;
    next_batch(c);
    return 0;
}

static void broadcast_cancel(void *state, struct nq_handler_call *call)
{
    struct bcall *c = call->handler_data;

    (void) state;
    if (!c)
        return;
    call->handler_data = NULL;
    c->call = NULL;
    c->job = NULL;
    if (!c->in_flight)
        bcall_free(c);
}

const struct nq_handler_ops nq_handler_broadcast = {
    .kind = NQ_HANDLER_BROADCAST,
    .fields = &broadcast_fields,
    .init = broadcast_init,
    .free = broadcast_free,
    .validate = broadcast_validate,
    .start = broadcast_start,
    .cancel = broadcast_cancel,
};
