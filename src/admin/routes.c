/* SPDX-License-Identifier: MIT */
/*
 * The /api/v1 routes: queues (from the config, the snapshot and Redis) and
 * their jobs (queue/admin.h, the functions notifyqctl uses). Every request
 * body is checked whole before anything is written: a malformed or
 * mistyped one is a 400 naming the field, and nothing is enqueued.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "admin/admin.h"
#include "admin/internal.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "queue/admin.h"

/* A page of GET .../jobs: BullMQ's getFailed(start, end) with end
 * inclusive, at most this many. */
#define API_LIST_MAX 1000
#define API_LIST_DEFAULT 100

static const struct nq_queue_cfg *find_queue(struct api *a, const char *name, size_t *ret_i)
{
    for (size_t i = 0; i < a->cfg->n_queues; i++)
        if (strcmp(a->cfg->queues[i].name, name) == 0) {
            *ret_i = i;
            return &a->cfg->queues[i];
        }
    return NULL;
}

/* The route's queue, or NULL with a 404 in rep. */
static const struct nq_queue_cfg *route_queue(struct api *a, const struct api_req *rq,
                                              struct api_reply *rep, size_t *ret_i)
{
    const struct nq_queue_cfg *q = find_queue(a, rq->params[0], ret_i);

    if (!q)
        api_error(rep, 404, NULL, "no such queue: %s", rq->params[0]);
    return q;
}

static const char *bullmq_name(const struct nq_queue_cfg *q)
{
    return q->bullmq_queue ? q->bullmq_queue : q->name;
}

static const struct nq_api_validator *validator;

void nq_api_set_validator(const struct nq_api_validator *v)
{
    validator = v;
}

void api_redis_close_all(struct api *a)
{
    for (size_t i = 0; a->redis && i < a->cfg->n_queues; i++)
        a->redis[i] = nq_admin_free(a->redis[i]);
    for (size_t i = 0; a->checkers && i < a->cfg->n_queues; i++)
        if (a->checkers[i]) {
            validator->free(a->checkers[i]);
            a->checkers[i] = NULL;
        }
}

/* The queue's checker, made on first use; NULL when there is none (no
 * validator, a handler that checks nothing, or one that cannot start: its
 * workers say why, and refuse the job when it runs). */
static void *checker_of(struct api *a, size_t i)
{
    struct nq_err err = { "" };
    int r;

    if (!validator || a->no_checker[i] || a->checkers[i])
        return a->checkers[i];
    r = validator->new (a->cfg, &a->cfg->queues[i], &a->checkers[i], &err);
    if (r < 0) {
        a->checkers[i] = NULL;
        a->no_checker[i] = true;
        if (r != -EOPNOTSUPP)
            nq_log(LOG_WARNING, "queue %s: jobs are not checked before they are added: %s",
                   a->cfg->queues[i].name, nq_err_str(&err));
    }
    return a->checkers[i];
}

/* The field an error names: "data.to" of "data.to: required". */
static void field_of(const char *msg, char *buf, size_t size)
{
    size_t n = strcspn(msg, ": ");

    (void) snprintf(buf, size, "%.*s", (int) (n < size ? n : size - 1), msg);
    if (strncmp(buf, "data", 4) != 0 && strncmp(buf, "name", 4) != 0)
        (void) snprintf(buf, size, "data");
}

/* What the queue's workers would say of this job before running it: true
 * when fine, false with a 400 in rep. */
static bool check_job(struct api *a, size_t i, const char *name, const char *data,
                      struct api_reply *rep)
{
    void *c = checker_of(a, i);
    struct nq_err err = { "" };
    struct nq_job *job;
    char field[64];
    int r;

    if (!c)
        return true;
    job = nq_job_new("new", 3);
    if (!job || nq_job_set_field(job, "name", 4, name, strlen(name)) < 0 ||
        nq_job_set_field(job, "data", 4, data, strlen(data)) < 0 || nq_job_decode(job) < 0) {
        nq_job_free(job);
        api_json(rep, 500, NULL);
        return false;
    }
    r = job->invalid[0] ? nq_err_set(&err, -EINVAL, "%s", job->invalid)
                        : validator->check(c, job, &err);
    nq_job_free(job);
    if (r == -EINVAL) {
        field_of(nq_err_str(&err), field, sizeof(field));
        api_error(rep, 400, field, "%s", nq_err_str(&err));
        return false;
    }
    if (r < 0) {
        api_error(rep, 500, NULL, "checking the job: %s", nq_err_str(&err));
        return false;
    }
    return true;
}

/* The queue's connection, made on first use; NULL with a 503 in rep. */
static struct nq_admin *redis_of(struct api *a, size_t i, struct api_reply *rep)
{
    struct nq_err err = { "" };
    int r;

    if (a->redis[i])
        return a->redis[i];
    r = nq_admin_connect(&a->cfg->redis, bullmq_name(&a->cfg->queues[i]), &a->redis[i], &err);
    if (r < 0) {
        api_error(rep, 503, NULL, "%s", nq_err_str(&err));
        return NULL;
    }
    return a->redis[i];
}

/* A failed store call: the reply for it; the connection is dropped when
 * the error may have left it unusable, and made again next time. */
static void store_failed(struct api *a, size_t i, int r, const struct nq_err *err,
                         struct api_reply *rep, const char *field)
{
    switch (r) {
    case -ENOENT:
        api_error(rep, 404, NULL, "%s", nq_err_str(err));
        return;
    case -EINVAL:
        api_error(rep, 400, field, "%s", nq_err_str(err));
        return;
    case -EBUSY:
    case -EPERM:
        api_error(rep, 409, NULL, "%s", nq_err_str(err));
        return;
    case -ENOMEM:
        api_json(rep, 500, NULL);
        return;
    default:
        a->redis[i] = nq_admin_free(a->redis[i]);
        api_error(rep, 503, NULL, "redis: %s", nq_err_str(err));
    }
}

/* ---- bodies ---- */

/* The body as a JSON object; NULL with a 400 in rep. An empty body is {}
 * when empty_ok. */
static json_t *body_object(const struct api_req *rq, struct api_reply *rep, bool empty_ok)
{
    json_error_t jerr;
    json_t *o;

    if (rq->body_len == 0 && empty_ok)
        return json_object();
    if (rq->body_len == 0) {
        api_error(rep, 400, NULL, "a JSON object body is required");
        return NULL;
    }
    o = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        api_error(rep, 400, NULL, "malformed JSON at line %d, column %d: %s", jerr.line,
                  jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        api_error(rep, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

/* Refuses keys of o not in allowed (NULL-terminated); prefix names o. */
static bool only_keys(json_t *o, const char *const *allowed, const char *prefix,
                      struct api_reply *rep)
{
    const char *k;
    json_t *v;

    json_object_foreach (o, k, v) {
        bool ok = false;
        char field[128];

        for (size_t i = 0; allowed[i]; i++)
            ok = ok || strcmp(k, allowed[i]) == 0;
        if (!ok) {
            (void) snprintf(field, sizeof(field), "%s%s", prefix, k);
            api_error(rep, 400, field, "unknown key");
            return false;
        }
    }
    return true;
}

/* An integer member in min..max; absent leaves *ret. */
static bool get_int(json_t *o, const char *key, const char *field, int64_t min, int64_t max,
                    int64_t *ret, struct api_reply *rep)
{
    json_t *v = json_object_get(o, key);

    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        api_error(rep, 400, field, "must be an integer in %" PRId64 "..%" PRId64, min, max);
        return false;
    }
    *ret = json_integer_value(v);
    return true;
}

static bool get_keep(json_t *o, const char *key, const char *field, struct nq_keep *ret,
                     struct api_reply *rep)
{
    json_t *v = json_object_get(o, key);

    if (!v)
        return true;
    if (json_is_boolean(v)) {
        ret->kind = json_is_true(v) ? NQ_KEEP_NONE : NQ_KEEP_ALL;
        return true;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *ret = (struct nq_keep){ .kind = json_integer_value(v) ? NQ_KEEP_LIMITED : NQ_KEEP_NONE,
                                 .count = json_integer_value(v) };
        return true;
    }
    api_error(rep, 400, field, "must be true, false or a count of jobs to keep");
    return false;
}

static bool get_backoff(json_t *o, struct nq_add_opts *ret, struct api_reply *rep)
{
    static const char *const keys[] = { "type", "delay", "jitter", NULL };
    json_t *v = json_object_get(o, "backoff"), *t, *j;
    int64_t delay = 0;

    if (!v)
        return true;
    ret->has_backoff = true;
    if (json_is_integer(v)) {
        ret->backoff.kind = NQ_BACKOFF_KIND_FIXED;
        return get_int(o, "backoff", "opts.backoff", 0, INT32_MAX, &delay, rep) &&
               (ret->backoff.delay_ms = (uint64_t) delay, true);
    }
    if (!json_is_object(v)) {
        api_error(rep, 400, "opts.backoff", "must be a delay in ms or {type, delay}");
        return false;
    }
    if (!only_keys(v, keys, "opts.backoff.", rep))
        return false;
    t = json_object_get(v, "type");
    if (!json_is_string(t) || (strcmp(json_string_value(t), "fixed") != 0 &&
                               strcmp(json_string_value(t), "exponential") != 0)) {
        api_error(rep, 400, "opts.backoff.type", "must be fixed or exponential");
        return false;
    }
    ret->backoff.kind = strcmp(json_string_value(t), "fixed") == 0 ? NQ_BACKOFF_KIND_FIXED
                                                                   : NQ_BACKOFF_KIND_EXPONENTIAL;
    if (!get_int(v, "delay", "opts.backoff.delay", 0, INT32_MAX, &delay, rep))
        return false;
    ret->backoff.delay_ms = (uint64_t) delay;
    j = json_object_get(v, "jitter");
    if (j && (!json_is_number(j) || json_number_value(j) < 0 || json_number_value(j) > 1)) {
        api_error(rep, 400, "opts.backoff.jitter", "must be a number in 0..1");
        return false;
    }
    ret->backoff.jitter = j ? json_number_value(j) : 0;
    return true;
}

/* BullMQ's JobsOptions, the subset notifyqctl send takes. */
static bool parse_opts(json_t *o, struct nq_add_opts *ret, struct api_reply *rep)
{
    static const char *const keys[] = { "attempts", "delay",   "priority",         "lifo",
                                        "jobId",    "backoff", "removeOnComplete", "removeOnFail",
                                        NULL };
    int64_t attempts = 0, delay = 0, priority = 0;
    json_t *v;

    if (!json_is_object(o)) {
        api_error(rep, 400, "opts", "must be an object");
        return false;
    }
    if (!only_keys(o, keys, "opts.", rep) ||
        !get_int(o, "attempts", "opts.attempts", 1, 1000000, &attempts, rep) ||
        !get_int(o, "delay", "opts.delay", 0, INT64_MAX / 2, &delay, rep) ||
        !get_int(o, "priority", "opts.priority", 0, NQ_JOB_PRIORITY_MAX, &priority, rep) ||
        !get_backoff(o, ret, rep) ||
        !get_keep(o, "removeOnComplete", "opts.removeOnComplete", &ret->remove_on_complete, rep) ||
        !get_keep(o, "removeOnFail", "opts.removeOnFail", &ret->remove_on_fail, rep))
        return false;
    ret->attempts = (uint32_t) attempts;
    ret->delay_ms = (uint64_t) delay;
    ret->priority = (uint32_t) priority;
    v = json_object_get(o, "lifo");
    if (v && !json_is_boolean(v)) {
        api_error(rep, 400, "opts.lifo", "must be true or false");
        return false;
    }
    ret->lifo = json_is_true(v);
    v = json_object_get(o, "jobId");
    if (v && (!json_is_string(v) || !json_string_length(v))) {
        api_error(rep, 400, "opts.jobId", "must be a non-empty string");
        return false;
    }
    ret->job_id = v ? json_string_value(v) : NULL;
    return true;
}

/* ---- replies ---- */

/* A stored JSON text as JSON, or as the string it is when it is not. */
static json_t *raw_json(const char *s)
{
    json_t *v;

    if (!s)
        return json_null();
    v = json_loads(s, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(s);
}

static json_t *ms_or_null(uint64_t ms)
{
    return ms ? json_integer((json_int_t) ms) : json_null();
}

static json_t *job_json(const struct nq_job *j, const char *state)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:o, s:o, "
                     "s:o, s:o}",
                     "id", j->id, "name", j->name ? j->name : "", "state", state, "data",
                     raw_json(j->data_raw), "opts", raw_json(j->opts_raw), "timestamp",
                     (json_int_t) j->timestamp, "processedOn", ms_or_null(j->processed_on),
                     "finishedOn", ms_or_null(j->finished_on), "attemptsMade", (json_int_t) j->atm,
                     "attemptsStarted", (json_int_t) j->ats, "delay", (json_int_t) j->delay_ms,
                     "priority", (json_int_t) j->priority, "failedReason",
                     j->failed_reason ? json_string(j->failed_reason) : json_null(), "returnvalue",
                     raw_json(j->returnvalue), "progress", raw_json(j->progress), "stacktrace",
                     raw_json(j->stacktrace));
}

/* The master's view of queue name in the snapshot: its status entry. */
static json_t *snapshot_queue(json_t *snap, const char *name)
{
    json_t *q;
    size_t i;

    json_array_foreach (json_object_get(json_object_get(snap, "status"), "queues"), i, q)
        if (json_is_string(json_object_get(q, "name")) &&
            strcmp(json_string_value(json_object_get(q, "name")), name) == 0)
            return q;
    return NULL;
}

static json_t *counts_json(const struct nq_counts *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "waiting", (json_int_t) c->waiting,
                     "active", (json_int_t) c->active, "prioritized", (json_int_t) c->prioritized,
                     "delayed", (json_int_t) c->delayed, "completed", (json_int_t) c->completed,
                     "failed", (json_int_t) c->failed, "waiting-children",
                     (json_int_t) c->waiting_children);
}

/* One queue as /api/v1 shows it: the config, the counts in Redis now,
 * the master's verdict and its workers. A Redis error is shown in the
 * entry ("redis_error") rather than failing the whole reply. */
static json_t *queue_json(struct api *a, size_t i, json_t *snap)
{
    const struct nq_queue_cfg *q = &a->cfg->queues[i];
    json_t *sq = snapshot_queue(snap, q->name);
    struct api_reply err_rep = { 0 };
    struct nq_admin *r = redis_of(a, i, &err_rep);
    struct nq_counts c = { 0 };
    struct nq_err err = { "" };
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", q->name, "handler",
                          nq_handler_name(q->handler), "bullmq_queue", bullmq_name(q), "processes",
                          (json_int_t) q->processes, "concurrency", (json_int_t) q->concurrency);
    int rc = r ? nq_admin_counts(r, &c, &err) : -ENOTCONN;

    if (!o)
        goto out;
    if (rc < 0 && r)
        store_failed(a, i, rc, &err, &err_rep, NULL);
    if (rc == 0 && (json_object_set_new(o, "counts", counts_json(&c)) < 0 ||
                    json_object_set_new(o, "paused", json_boolean(c.paused)) < 0))
        o = (json_decref(o), NULL);
    if (o && rc < 0 &&
        json_object_set(o, "redis_error", json_object_get(err_rep.json, "error")) < 0)
        o = (json_decref(o), NULL);
    if (o &&
        (json_object_set(o, "state", sq ? json_object_get(sq, "state") : json_null()) < 0 ||
         json_object_set(o, "workers", sq ? json_object_get(sq, "workers") : json_null()) < 0 ||
         json_object_set(o, "restarts", sq ? json_object_get(sq, "restarts") : json_null()) < 0 ||
         json_object_set(o, "per_minute", sq ? json_object_get(sq, "per_minute") : json_null()) <
             0))
        o = (json_decref(o), NULL);
out:
    json_decref(err_rep.json);
    return o;
}

void api_queues_list(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    json_auto_t *snap = api_snapshot_get(a);
    json_t *list = json_array();

    (void) rq;
    for (size_t i = 0; list && i < a->cfg->n_queues; i++)
        if (json_array_append_new(list, queue_json(a, i, snap)) < 0)
            list = (json_decref(list), NULL);
    api_json(rep, 200, list ? json_pack("{s:o}", "queues", list) : NULL);
}

void api_queue_get(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    json_auto_t *snap = api_snapshot_get(a);
    size_t i;

    if (route_queue(a, rq, rep, &i))
        api_json(rep, 200, queue_json(a, i, snap));
}

static void pause_or_resume(struct api *a, const struct api_req *rq, struct api_reply *rep,
                            bool pause)
{
    struct nq_err err = { "" };
    struct nq_admin *r;
    size_t i;
    int rc;

    if (!route_queue(a, rq, rep, &i) || !(r = redis_of(a, i, rep)))
        return;
    rc = nq_admin_pause(r, pause, &err);
    if (rc < 0)
        store_failed(a, i, rc, &err, rep, NULL);
    else
        api_json(rep, 200,
                 json_pack("{s:s, s:b, s:b}", "queue", rq->params[0], "paused", pause, "changed",
                           rc == 1));
}

void api_queue_pause(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    pause_or_resume(a, rq, rep, true);
}

void api_queue_resume(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    pause_or_resume(a, rq, rep, false);
}

void api_queue_clean(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    static const char *const keys[] = { "state", "grace", "limit", NULL };
    struct nq_err err = { "" };
    struct nq_admin *r;
    int64_t grace = 0, limit = 0;
    uint64_t n = 0;
    json_t *state;
    size_t i;
    int rc;

    if (!route_queue(a, rq, rep, &i))
        return;
    json_auto_t *o = body_object(rq, rep, false);
    if (!o || !only_keys(o, keys, "", rep) ||
        !get_int(o, "grace", "grace", 0, INT64_MAX / 2, &grace, rep) ||
        !get_int(o, "limit", "limit", 0, UINT32_MAX, &limit, rep))
        return;
    state = json_object_get(o, "state");
    if (!json_is_string(state)) {
        api_error(rep, 400, "state",
                  "required: completed, failed, delayed, wait, active, "
                  "paused or prioritized");
        return;
    }
    if (!(r = redis_of(a, i, rep)))
        return;
    rc = nq_admin_clean(r, json_string_value(state), (uint64_t) grace, (uint32_t) limit, &n, &err);
    if (rc < 0)
        store_failed(a, i, rc, &err, rep, "state");
    else
        api_json(rep, 200, json_pack("{s:I}", "removed", (json_int_t) n));
}

void api_jobs_add(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    static const char *const keys[] = { "name", "data", "opts", NULL };
    const char *key = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Idempotency-Key");
    struct nq_add_opts opts = { 0 };
    enum nq_add_status st;
    struct nq_err err = { "" };
    nq_autofree char *data = NULL, *id = NULL;
    struct nq_admin *r;
    json_t *name, *v;
    size_t i;
    int rc;

    if (!route_queue(a, rq, rep, &i))
        return;
    json_auto_t *o = body_object(rq, rep, false);
    if (!o || !only_keys(o, keys, "", rep))
        return;
    name = json_object_get(o, "name");
    if (!json_is_string(name) || !json_string_length(name)) {
        api_error(rep, 400, "name", "required: a non-empty string");
        return;
    }
    v = json_object_get(o, "data");
    if (v && !json_is_object(v)) {
        api_error(rep, 400, "data", "must be an object");
        return;
    }
    if (json_object_get(o, "opts") && !parse_opts(json_object_get(o, "opts"), &opts, rep))
        return;
    if (key && opts.job_id && strcmp(key, opts.job_id) != 0) {
        api_error(rep, 400, "Idempotency-Key", "differs from opts.jobId");
        return;
    }
    if (key && !*key) {
        api_error(rep, 400, "Idempotency-Key", "must not be empty");
        return;
    }
    if (key)
        opts.job_id = key;
    data = v ? json_dumps(v, JSON_COMPACT) : strdup("{}");
    if (!data) {
        api_json(rep, 500, NULL);
        return;
    }
    if (!check_job(a, i, json_string_value(name), data, rep) || !(r = redis_of(a, i, rep)))
        return;
    rc = nq_admin_add(r, json_string_value(name), data, &opts, &id, &st, &err);
    if (rc < 0) {
        store_failed(a, i, rc, &err, rep,
                     key           ? "Idempotency-Key"
                     : opts.job_id ? "opts.jobId"
                                   : "opts");
        return;
    }
    api_json(rep, st == NQ_ADD_ADDED ? 201 : 200,
             st == NQ_ADD_ADDED
                 ? json_pack("{s:s}", "id", id)
                 : json_pack("{s:s, s:s}", "id", id, "status",
                             st == NQ_ADD_DUPLICATED ? "duplicated" : "deduplicated"));
}

/* A query argument as an unsigned integer; absent leaves *ret. */
static bool query_uint(const struct api_req *rq, const char *key, uint64_t *ret,
                       struct api_reply *rep)
{
    const char *s = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
    char *end;

    if (!s)
        return true;
    errno = 0;
    *ret = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-') {
        api_error(rep, 400, key, "must be a non-negative integer");
        return false;
    }
    return true;
}

void api_jobs_list(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    const char *state = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "state");
    uint64_t start = 0, end;
    struct nq_err err = { "" };
    char **ids = NULL;
    struct nq_admin *r;
    json_t *jobs;
    size_t i, n = 0;
    int rc;

    if (!route_queue(a, rq, rep, &i))
        return;
    if (!state)
        state = "failed";
    if (strcmp(state, "failed") != 0 && strcmp(state, "completed") != 0) {
        api_error(rep, 400, "state", "must be failed or completed");
        return;
    }
    if (!query_uint(rq, "start", &start, rep))
        return;
    end = start + API_LIST_DEFAULT - 1;
    if (!query_uint(rq, "end", &end, rep))
        return;
    if (end < start || end - start >= API_LIST_MAX) {
        api_error(rep, 400, "end", "must be start..start+%d", API_LIST_MAX - 1);
        return;
    }
    if (!(r = redis_of(a, i, rep)))
        return;
    rc = nq_admin_list(r, state, start, end - start + 1, &ids, &n, &err);
    if (rc < 0) {
        store_failed(a, i, rc, &err, rep, "state");
        return;
    }
    jobs = json_array();
    for (size_t k = 0; jobs && k < n; k++) {
        struct nq_job *job = NULL;
        nq_autofree char *st = NULL;

        rc = nq_admin_job(r, ids[k], &job, &st, &err);
        if (rc == -ENOENT)
            continue; /* removed since the list was read */
        if (rc < 0) {
            jobs = (json_decref(jobs), NULL);
            store_failed(a, i, rc, &err, rep, NULL);
            break;
        }
        if (json_array_append_new(jobs, job_json(job, st)) < 0)
            jobs = (json_decref(jobs), NULL);
        nq_job_free(job);
    }
    ids = nq_strv_free(ids);
    if (rc >= 0 || rc == -ENOENT)
        api_json(rep, 200,
                 jobs ? json_pack("{s:s, s:I, s:I, s:o}", "state", state, "start",
                                  (json_int_t) start, "end", (json_int_t) end, "jobs", jobs)
                      : NULL);
}

void api_job_get(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    struct nq_err err = { "" };
    struct nq_job *job = NULL;
    nq_autofree char *st = NULL;
    struct nq_admin *r;
    size_t i;
    int rc;

    if (!route_queue(a, rq, rep, &i) || !(r = redis_of(a, i, rep)))
        return;
    rc = nq_admin_job(r, rq->params[1], &job, &st, &err);
    if (rc < 0) {
        store_failed(a, i, rc, &err, rep, NULL);
        return;
    }
    api_json(rep, 200, job_json(job, st));
    nq_job_free(job);
}

void api_job_delete(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    struct nq_err err = { "" };
    struct nq_admin *r;
    size_t i;
    int rc;

    if (!route_queue(a, rq, rep, &i) || !(r = redis_of(a, i, rep)))
        return;
    rc = nq_admin_remove(r, rq->params[1], &err);
    if (rc < 0)
        store_failed(a, i, rc, &err, rep, NULL);
    else
        api_json(rep, 200, json_pack("{s:s, s:b}", "id", rq->params[1], "removed", 1));
}

void api_job_retry(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    struct nq_err err = { "" };
    struct nq_admin *r;
    size_t i;
    int rc;

    if (!route_queue(a, rq, rep, &i) || !(r = redis_of(a, i, rep)))
        return;
    rc = nq_admin_retry(r, rq->params[1], &err);
    if (rc == -EINVAL)
        api_error(rep, 409, NULL, "%s", nq_err_str(&err));
    else if (rc < 0)
        store_failed(a, i, rc, &err, rep, NULL);
    else
        api_json(rep, 200, json_pack("{s:s, s:s}", "id", rq->params[1], "state", "waiting"));
}
