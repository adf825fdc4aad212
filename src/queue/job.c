/* SPDX-License-Identifier: MIT */
/*
 * The job codec; see job.h. Field names and encodings are BULLMQ-LAYOUT.md §5.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "common/utf8.h"
#include "queue/job.h"
#include "queue/jsoncheck.h"

struct nq_job *nq_job_new(const char *id, size_t id_len)
{
    struct nq_job *job = calloc(1, sizeof(*job));

    if (!job)
        return NULL;
    job->id = strndup(id, id_len);
    if (!job->id) {
        free(job);
        return NULL;
    }
    job->opts.stack_trace_limit = -1;
    if (id_len > NQ_JOB_FIELD_MAX)
        snprintf(job->invalid, sizeof(job->invalid), "job id exceeds %u bytes", NQ_JOB_FIELD_MAX);
    return job;
}

static void opts_done(struct nq_job_opts *o)
{
    free(o->job_id);
    free(o->dedup_id);
    free(o->repeat.pattern);
    free(o->repeat.tz);
    free(o->repeat_job_key);
}

struct nq_job *nq_job_free(struct nq_job *job)
{
    if (!job)
        return NULL;
    char **strs[] = { &job->id,         &job->token,       &job->name,
                      &job->data_raw,   &job->opts_raw,    &job->processed_by,
                      &job->progress,   &job->returnvalue, &job->failed_reason,
                      &job->stacktrace, &job->defa,        &job->deid,
                      &job->rjk,        &job->parent_key,  &job->parent };
    for (size_t i = 0; i < NQ_ELEMENTSOF(strs); i++)
        /* cppcheck-suppress shadowVariable ; cppcheck 2.10 reads "f(*a[i]);" as a declaration */
        free(*strs[i]);
    json_decref(job->data_tree);
    opts_done(&job->opts);
    free(job);
    return NULL;
}

NQ_PRINTF(2, 3) static void set_invalid(struct nq_job *job, const char *fmt, ...)
{
    va_list ap;

    if (job->invalid[0])
        return; /* the first reason is the one worth reporting */
    va_start(ap, fmt);
    vsnprintf(job->invalid, sizeof(job->invalid), fmt, ap);
    va_end(ap);
}

/* Counters and times are written by workers; a garbled one reads as 0, as
 * parseInt's NaN does in Node's getters. */
static uint64_t parse_u64(const char *v, size_t len)
{
    char buf[32];
    char *end = NULL;
    uint64_t n = 0;
    size_t i = 0;

    /* Plain digits, as Lua and Node write most numbers: no strtod. */
    while (i < len && i < 19 && v[i] >= '0' && v[i] <= '9')
        n = n * 10 + (uint64_t) (v[i++] - '0');
    if (i == len && len > 0)
        return n;
    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, v, len);
    buf[len] = '\0';
    errno = 0;
    double d = strtod(buf, &end);
    if (errno || end == buf || !(d >= 0) || d >= 18446744073709551615.0)
        return 0;
    return (uint64_t) d;
}

static uint32_t parse_u32(const char *v, size_t len)
{
    uint64_t n = parse_u64(v, len);

    return n > UINT32_MAX ? UINT32_MAX : (uint32_t) n;
}

static int set_str(char **dst, const char *v, size_t len)
{
    char *s = malloc(len + 1);

    if (!s)
        return -ENOMEM;
    memcpy(s, v, len);
    s[len] = '\0';
    free(*dst);
    *dst = s;
    return 0;
}

enum field_kind { F_STR, F_U64, F_U32 };

struct field_desc {
    const char *name;
    enum field_kind kind;
    size_t offset;
};

#define STR(n, m)                                                                                  \
    {                                                                                              \
        n, F_STR, offsetof(struct nq_job, m)                                                       \
    }
#define U64(n, m)                                                                                  \
    {                                                                                              \
        n, F_U64, offsetof(struct nq_job, m)                                                       \
    }
#define U32(n, m)                                                                                  \
    {                                                                                              \
        n, F_U32, offsetof(struct nq_job, m)                                                       \
    }
static const struct field_desc fields[] = {
    STR("name", name),
    STR("opts", opts_raw),
    U64("timestamp", timestamp),
    U64("delay", delay_ms),
    U32("priority", priority),
    U64("processedOn", processed_on),
    U64("finishedOn", finished_on),
    STR("pb", processed_by),
    U32("atm", atm),
    U32("attemptsMade", atm), /* legacy name; getters accept it too */
    U32("ats", ats),
    U32("stc", stc),
    U32(NQ_JOB_FIELD_CRASHES, crashes),
    STR("progress", progress),
    STR("returnvalue", returnvalue),
    STR("failedReason", failed_reason),
    STR("stacktrace", stacktrace),
    STR("defa", defa),
    STR("deid", deid),
    STR("rjk", rjk),
    STR("parentKey", parent_key),
    STR("parent", parent),
};
#undef STR
#undef U64
#undef U32

int nq_job_set_field(struct nq_job *job, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    if (name_len == 4 && memcmp(name, "data", 4) == 0) {
        if (value_len > NQ_JOB_DATA_MAX) {
            set_invalid(job, "data exceeds %u bytes", NQ_JOB_DATA_MAX);
            return 0;
        }
        job->data_len = value_len;
        return set_str(&job->data_raw, value, value_len);
    }
    for (size_t i = 0; i < NQ_ELEMENTSOF(fields); i++) {
        const struct field_desc *f = &fields[i];
        if (strlen(f->name) != name_len || memcmp(f->name, name, name_len) != 0)
            continue;
        void *p = (char *) job + f->offset;
        switch (f->kind) {
        case F_STR:
            if (value_len > NQ_JOB_DATA_MAX) {
                set_invalid(job, "field %s exceeds %u bytes", f->name, NQ_JOB_DATA_MAX);
                return 0;
            }
            return set_str(p, value, value_len);
        case F_U64:
            *(uint64_t *) p = parse_u64(value, value_len);
            return 0;
        case F_U32:
            *(uint32_t *) p = parse_u32(value, value_len);
            return 0;
        }
    }
    return 0;
}

/* ---- opts ---------------------------------------------------------------- */

/* A JSON number as a non-negative integer (cjson may write 1e+14 style). */
static int json_u64(const json_t *v, uint64_t *ret)
{
    if (!json_is_number(v))
        return -EINVAL;
    double d = json_number_value(v);
    if (!isfinite(d))
        return -EINVAL;
    *ret = d <= 0 ? 0 : d >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t) d;
    return 0;
}

static int json_i64(const json_t *v, int64_t *ret)
{
    if (!json_is_number(v))
        return -EINVAL;
    double d = json_number_value(v);
    if (!isfinite(d) || d >= 9.2e18 || d <= -9.2e18)
        return -EINVAL;
    *ret = (int64_t) d;
    return 0;
}

static int opt_u64(struct nq_job *job, const json_t *o, const char *key, uint64_t *ret)
{
    const json_t *v = json_object_get(o, key);

    if (!v || json_is_null(v))
        return 0;
    if (json_u64(v, ret) < 0) {
        set_invalid(job, "opts.%s: not a number", key);
        return -EINVAL;
    }
    return 1;
}

static int opt_u32(struct nq_job *job, const json_t *o, const char *key, uint32_t *ret)
{
    uint64_t n = 0;
    int r = opt_u64(job, o, key, &n);

    if (r > 0)
        *ret = n > UINT32_MAX ? UINT32_MAX : (uint32_t) n;
    return r;
}

/* Strings: ids may be numbers in hand-written opts; keep their text. */
static int opt_str(struct nq_job *job, const json_t *o, const char *key, char **ret)
{
    const json_t *v = json_object_get(o, key);
    char buf[32];

    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v))
        return set_str(ret, json_string_value(v), json_string_length(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return set_str(ret, buf, strlen(buf));
    }
    set_invalid(job, "opts.%s: not a string", key);
    return -EINVAL;
}

static int opt_bool(struct nq_job *job, const json_t *o, const char *key, bool *ret)
{
    const json_t *v = json_object_get(o, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        set_invalid(job, "opts.%s: not a boolean", key);
        return -EINVAL;
    }
    *ret = json_is_true(v);
    return 0;
}

static void parse_backoff(struct nq_job *job, const json_t *v)
{
    struct nq_backoff *b = &job->opts.backoff;
    uint64_t delay = 0;

    if (!v || json_is_null(v))
        return;
    if (json_is_number(v)) {
        if (json_u64(v, &delay) < 0) {
            set_invalid(job, "opts.backoff: not a number");
            return;
        }
        *b = (struct nq_backoff){ .kind = NQ_BACKOFF_KIND_FIXED, .delay_ms = delay };
        job->opts.has_backoff = true;
        return;
    }
    if (!json_is_object(v)) {
        set_invalid(job, "opts.backoff: not a number or object");
        return;
    }
    const char *type = json_string_value(json_object_get(v, "type"));
    /* A custom strategy lives in a Node worker's settings; we have none, so
     * the queue's default applies. */
    if (!type || (strcmp(type, "fixed") != 0 && strcmp(type, "exponential") != 0))
        return;
    const json_t *d = json_object_get(v, "delay");
    if (d && json_u64(d, &delay) < 0) {
        set_invalid(job, "opts.backoff.delay: not a number");
        return;
    }
    const json_t *j = json_object_get(v, "jitter");
    if (j && !json_is_number(j)) {
        set_invalid(job, "opts.backoff.jitter: not a number");
        return;
    }
    *b = (struct nq_backoff){
        .kind = strcmp(type, "fixed") == 0 ? NQ_BACKOFF_KIND_FIXED : NQ_BACKOFF_KIND_EXPONENTIAL,
        .delay_ms = delay,
        .jitter = j ? json_number_value(j) : 0.0,
    };
    job->opts.has_backoff = true;
}

static void parse_keep(struct nq_job *job, const json_t *v, const char *key, struct nq_keep *k)
{
    uint64_t n = 0;

    if (!v || json_is_null(v))
        return;
    if (json_is_boolean(v)) {
        k->kind = json_is_true(v) ? NQ_KEEP_NONE : NQ_KEEP_ALL;
        return;
    }
    if (json_is_number(v)) {
        if (json_u64(v, &n) < 0) {
            set_invalid(job, "opts.%s: not a number", key);
            return;
        }
        *k = (struct nq_keep){ .kind = n == 0 ? NQ_KEEP_NONE : NQ_KEEP_LIMITED,
                               .count = n > INT64_MAX ? INT64_MAX : (int64_t) n };
        return;
    }
    if (!json_is_object(v)) {
        set_invalid(job, "opts.%s: not a boolean, number or object", key);
        return;
    }
    uint64_t count = 0, age = 0, limit = 0;
    const json_t *c = json_object_get(v, "count"), *a = json_object_get(v, "age"),
                 *l = json_object_get(v, "limit");
    if ((c && json_u64(c, &count) < 0) || (a && json_u64(a, &age) < 0) ||
        (l && json_u64(l, &limit) < 0)) {
        set_invalid(job, "opts.%s: count, age and limit must be numbers", key);
        return;
    }
    *k = (struct nq_keep){
        .kind = NQ_KEEP_LIMITED,
        .count = c ? (count > INT64_MAX ? INT64_MAX : (int64_t) count) : -1,
        .age_ms = age > UINT64_MAX / 1000 ? UINT64_MAX : age * 1000,
        .limit = limit > UINT32_MAX ? UINT32_MAX : (uint32_t) limit,
    };
}

static int parse_dedup(struct nq_job *job, const json_t *de)
{
    struct nq_job_opts *o = &job->opts;

    if (!de || json_is_null(de))
        return 0;
    if (!json_is_object(de)) {
        set_invalid(job, "opts.de: not an object");
        return 0;
    }
    int r = opt_str(job, de, "id", &o->dedup_id);
    if (r == -ENOMEM)
        return r;
    (void) opt_u64(job, de, "ttl", &o->dedup_ttl_ms);
    (void) opt_bool(job, de, "extend", &o->dedup_extend);
    (void) opt_bool(job, de, "replace", &o->dedup_replace);
    return 0;
}

static int repeat_i64(struct nq_job *job, const json_t *rep, const char *key, int64_t *ret)
{
    const json_t *v = json_object_get(rep, key);

    if (!v || json_is_null(v))
        return 0;
    if (json_i64(v, ret) < 0)
        set_invalid(job, "opts.repeat.%s: not a number", key);
    return 0;
}

static int parse_repeat(struct nq_job *job, const json_t *rep)
{
    struct nq_repeat *r = &job->opts.repeat;
    int k;

    if (!rep || json_is_null(rep))
        return 0;
    if (!json_is_object(rep)) {
        set_invalid(job, "opts.repeat: not an object");
        return 0;
    }
    r->set = true;
    (void) opt_u64(job, rep, "every", &r->every_ms);
    (void) opt_u64(job, rep, "count", &r->count);
    if ((k = opt_str(job, rep, "pattern", &r->pattern)) == -ENOMEM ||
        (k = opt_str(job, rep, "tz", &r->tz)) == -ENOMEM)
        return k;
    (void) repeat_i64(job, rep, "offset", &r->offset);
    (void) repeat_i64(job, rep, "startDate", &r->start_date);
    (void) repeat_i64(job, rep, "endDate", &r->end_date);
    (void) repeat_i64(job, rep, "limit", &r->limit);
    return 0;
}

static int parse_opts(struct nq_job *job, const json_t *o)
{
    struct nq_job_opts *p = &job->opts;
    int r;

    if (opt_u32(job, o, "attempts", &p->attempts) > 0)
        p->has_attempts = true;
    parse_backoff(job, json_object_get(o, "backoff"));
    (void) opt_u64(job, o, "delay", &p->delay_ms);
    (void) opt_u32(job, o, "priority", &p->priority);
    (void) opt_bool(job, o, "lifo", &p->lifo);
    parse_keep(job, json_object_get(o, "removeOnComplete"), "removeOnComplete",
               &p->remove_on_complete);
    parse_keep(job, json_object_get(o, "removeOnFail"), "removeOnFail", &p->remove_on_fail);
    if ((r = opt_str(job, o, "jobId", &p->job_id)) == -ENOMEM ||
        (r = parse_dedup(job, json_object_get(o, "de"))) == -ENOMEM ||
        (r = parse_repeat(job, json_object_get(o, "repeat"))) == -ENOMEM ||
        (r = opt_str(job, o, "repeatJobKey", &p->repeat_job_key)) == -ENOMEM)
        return r;
    const json_t *stl = json_object_get(o, "stackTraceLimit");
    if (stl && !json_is_null(stl) && json_i64(stl, &p->stack_trace_limit) < 0)
        set_invalid(job, "opts.stackTraceLimit: not a number");
    (void) opt_u64(job, o, "timestamp", &p->timestamp);
    (void) opt_u32(job, o, "kl", &p->keep_logs);
    (void) opt_u64(job, o, "prevMillis", &p->prev_millis);
    return 0;
}

/* A key fit to name in a reason: short printable ASCII without escapes. */
static bool key_printable(const char *key, size_t n)
{
    if (!key || n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e || key[i] == '\\')
            return false;
    return true;
}

static void decode_data(struct nq_job *job)
{
    struct nq_jsoncheck_err cerr;

    if (job->data_raw) {
        job->data_valid = nq_jsoncheck_validate(job->data_raw, job->data_len, &cerr) == 0;
        if (!job->data_valid && key_printable(cerr.key, cerr.key_len))
            set_invalid(job, "data.%.*s: not valid JSON: %s at offset %zu", (int) cerr.key_len,
                        cerr.key, cerr.reason, cerr.offset);
        else if (!job->data_valid)
            set_invalid(job, "data is not valid JSON: %s at offset %zu", cerr.reason, cerr.offset);
    } else if (!job->invalid[0]) {
        set_invalid(job, "job hash has no data (missing or removed job)");
    }
}

static int dup_opt(char **dst, const char *src)
{
    if (src && !(*dst = strdup(src)))
        return -ENOMEM;
    return 0;
}

/* job's opts become a copy of those decoded from the same text. */
static int copy_opts(struct nq_job *job, const struct nq_job_opts *from)
{
    struct nq_job_opts *o = &job->opts;

    *o = *from;
    /* No pointer of from's may stay in job if a copy fails half-way. */
    o->job_id = o->dedup_id = o->repeat.pattern = o->repeat.tz = o->repeat_job_key = NULL;
    if (dup_opt(&o->job_id, from->job_id) < 0 || dup_opt(&o->dedup_id, from->dedup_id) < 0 ||
        dup_opt(&o->repeat.pattern, from->repeat.pattern) < 0 ||
        dup_opt(&o->repeat.tz, from->repeat.tz) < 0 ||
        dup_opt(&o->repeat_job_key, from->repeat_job_key) < 0)
        return -ENOMEM;
    return 0;
}

int nq_job_decode_like(struct nq_job *job, const struct nq_job *prev)
{
    int r;

    if (!prev || prev->invalid[0] || !prev->opts_raw || !job->opts_raw ||
        strcmp(prev->opts_raw, job->opts_raw) != 0)
        return nq_job_decode(job);
    /* Only data is left to check; opts gave prev no reason to fail. */
    if ((r = copy_opts(job, &prev->opts)) < 0)
        return r;
    decode_data(job);
    return 0;
}

int nq_job_decode(struct nq_job *job)
{
    json_error_t jerr;

    decode_data(job);
    if (!job->opts_raw)
        return 0; /* BullMQ's own adds always write opts; ours too */
    if (strlen(job->opts_raw) > NQ_JOB_FIELD_MAX) {
        set_invalid(job, "opts exceeds %u bytes", NQ_JOB_FIELD_MAX);
        return 0;
    }
    NQ_CLEANUP(json_decrefp) json_t *o = json_loads(job->opts_raw, 0, &jerr);
    if (!o) {
        set_invalid(job, "opts is not valid JSON: %s at offset %d", jerr.text, jerr.position);
        return 0;
    }
    if (!json_is_object(o)) {
        set_invalid(job, "opts is not a JSON object");
        return 0;
    }
    return parse_opts(job, o);
}

json_t *nq_job_data_borrow(struct nq_job *job)
{
    /* What the checker accepts jansson parses, so this fails only for want
     * of memory (and is then tried again on the next call). */
    if (!job->data_tree && job->data_valid)
        job->data_tree = json_loadb(job->data_raw, job->data_len, JSON_DECODE_ANY, NULL);
    return job->data_tree;
}

const char *nq_job_invalid_reason_borrow(const struct nq_job *job)
{
    return job->invalid[0] ? job->invalid : NULL;
}

/* ---- policy resolution ----------------------------------------------------- */

uint32_t nq_job_attempts(const struct nq_job *job, uint32_t queue_default)
{
    uint32_t n =
        job->opts.has_attempts && job->opts.attempts > 0 ? job->opts.attempts : queue_default;
    return n ? n : 1;
}

void nq_job_backoff(const struct nq_job *job, const struct nq_backoff_cfg *queue_default,
                    struct nq_backoff *ret)
{
    if (job->opts.has_backoff) {
        *ret = job->opts.backoff;
        return;
    }
    *ret = (struct nq_backoff){
        .kind = queue_default->type == NQ_BACKOFF_FIXED ? NQ_BACKOFF_KIND_FIXED
                                                        : NQ_BACKOFF_KIND_EXPONENTIAL,
        .delay_ms = queue_default->delay_ms,
        .jitter = queue_default->jitter,
    };
}

void nq_job_keep(const struct nq_job *job, bool failed, const struct nq_keep_cfg *queue_default,
                 struct nq_keep *ret)
{
    const struct nq_keep *own = failed ? &job->opts.remove_on_fail : &job->opts.remove_on_complete;

    if (own->kind != NQ_KEEP_UNSET) {
        *ret = *own;
        return;
    }
    if (queue_default->keep_all) {
        *ret = (struct nq_keep){ .kind = NQ_KEEP_ALL };
        return;
    }
    if (queue_default->count == 0 && queue_default->age_ms == 0) {
        *ret = (struct nq_keep){ .kind = NQ_KEEP_NONE };
        return;
    }
    *ret = (struct nq_keep){
        .kind = NQ_KEEP_LIMITED,
        .count = queue_default->count ? (int64_t) queue_default->count : -1,
        .age_ms = queue_default->age_ms,
    };
}

int nq_keep_format(const struct nq_keep *keep, char *buf, size_t size)
{
    int n;

    switch (keep->kind) {
    case NQ_KEEP_UNSET:
    case NQ_KEEP_ALL:
        n = snprintf(buf, size, "%s", "");
        break;
    case NQ_KEEP_NONE:
        n = snprintf(buf, size, "0");
        break;
    default:
        n = snprintf(buf, size, "%" PRId64 ":%" PRIu64 ":%" PRIu32, keep->count, keep->age_ms,
                     keep->limit ? keep->limit : 1000);
        break;
    }
    return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
}

/* entry as a JSON string. A reason may quote bytes that are not UTF-8 (a
 * hash's defa, a provider's reply, a cut quote): each such byte becomes '?',
 * so the job still fails with its reason instead of the trace failing. */
static json_t *reason_string(const char *entry)
{
    json_t *s = json_string(entry);
    size_t n = strlen(entry);
    char *copy;

    if (s || !(copy = strdup(entry)))
        return s;
    for (size_t i = nq_utf8_valid_prefix(copy, n); i < n;
         i += nq_utf8_valid_prefix(copy + i, n - i))
        copy[i++] = '?';
    s = json_string(copy);
    free(copy);
    return s;
}

char *nq_job_stacktrace_append_new(const struct nq_job *job, const char *entry)
{
    NQ_CLEANUP(json_decrefp) json_t *arr = NULL;
    int64_t limit = job->opts.stack_trace_limit;

    if (job->stacktrace)
        arr = json_loads(job->stacktrace, 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        arr = json_array();
        if (!arr)
            return NULL;
    }
    if (json_array_append_new(arr, reason_string(entry ? entry : "")) < 0)
        return NULL;
    while (limit >= 0 && json_array_size(arr) > (size_t) limit)
        (void) json_array_remove(arr, 0);
    return json_dumps(arr, JSON_COMPACT);
}

/* ---- opts for adds --------------------------------------------------------- */

static bool is_integer_string(const char *s)
{
    if (*s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static int validate_job_id(const char *id, struct nq_err *err)
{
    size_t colons = 0;

    if (!*id)
        return nq_err_set(err, -EINVAL, "job id must not be empty");
    if (is_integer_string(id))
        return nq_err_set(err, -EINVAL, "custom job id '%s' must not be an integer", id);
    if (strcmp(id, "0") == 0 || strncmp(id, "0:", 2) == 0)
        return nq_err_set(err, -EINVAL, "custom job id must not be 0 or start with '0:'");
    for (const char *p = id; *p; p++)
        colons += *p == ':';
    if (colons != 0 && colons != 2)
        return nq_err_set(err, -EINVAL, "custom job id with ':' must have exactly 3 segments");
    if (strlen(id) > NQ_JOB_FIELD_MAX)
        return nq_err_set(err, -EINVAL, "custom job id exceeds %u bytes", NQ_JOB_FIELD_MAX);
    return 0;
}

static json_t *keep_json(const struct nq_keep *k)
{
    switch (k->kind) {
    case NQ_KEEP_ALL:
        return json_false();
    case NQ_KEEP_NONE:
        return json_true();
    case NQ_KEEP_LIMITED:
        if (k->age_ms == 0 && k->count >= 0)
            return json_integer(k->count);
        json_t *o = json_object();
        if (o && k->age_ms)
            json_object_set_new(o, "age", json_integer((json_int_t) (k->age_ms / 1000)));
        if (o && k->count >= 0)
            json_object_set_new(o, "count", json_integer(k->count));
        if (o && k->limit)
            json_object_set_new(o, "limit", json_integer(k->limit));
        return o;
    default:
        return NULL;
    }
}

static int add_opts_build(const struct nq_add_opts *a, json_t *o)
{
    int r = 0;

    r |= json_object_set_new(o, "attempts", json_integer(a->attempts));
    if (a->delay_ms)
        r |= json_object_set_new(o, "delay", json_integer((json_int_t) a->delay_ms));
    if (a->priority)
        r |= json_object_set_new(o, "priority", json_integer(a->priority));
    if (a->lifo)
        r |= json_object_set_new(o, "lifo", json_true());
    if (a->job_id)
        r |= json_object_set_new(o, "jobId", json_string(a->job_id));
    if (a->timestamp)
        r |= json_object_set_new(o, "timestamp", json_integer((json_int_t) a->timestamp));
    if (a->has_backoff) {
        json_t *b = json_pack("{s:s, s:I}", "type",
                              a->backoff.kind == NQ_BACKOFF_KIND_FIXED ? "fixed" : "exponential",
                              "delay", (json_int_t) a->backoff.delay_ms);
        if (b && a->backoff.jitter > 0)
            r |= json_object_set_new(b, "jitter", json_real(a->backoff.jitter));
        r |= json_object_set_new(o, "backoff", b);
    }
    if (a->dedup_id) {
        json_t *de = json_pack("{s:s}", "id", a->dedup_id);
        if (de && a->dedup_ttl_ms)
            r |= json_object_set_new(de, "ttl", json_integer((json_int_t) a->dedup_ttl_ms));
        if (de && a->dedup_extend)
            r |= json_object_set_new(de, "extend", json_true());
        if (de && a->dedup_replace)
            r |= json_object_set_new(de, "replace", json_true());
        r |= json_object_set_new(o, "de", de);
    }
    if (a->remove_on_complete.kind != NQ_KEEP_UNSET)
        r |= json_object_set_new(o, "removeOnComplete", keep_json(&a->remove_on_complete));
    if (a->remove_on_fail.kind != NQ_KEEP_UNSET)
        r |= json_object_set_new(o, "removeOnFail", keep_json(&a->remove_on_fail));
    return r ? -ENOMEM : 0;
}

int nq_add_opts_json_new(const struct nq_add_opts *a, char **ret_json, struct nq_err *err)
{
    int r;

    if (a->job_id && (r = validate_job_id(a->job_id, err)) < 0)
        return r;
    if (a->priority > NQ_JOB_PRIORITY_MAX)
        return nq_err_set(err, -EINVAL, "priority must be 0..%u", NQ_JOB_PRIORITY_MAX);
    if (a->dedup_id && !*a->dedup_id)
        return nq_err_set(err, -EINVAL, "deduplication id must not be empty");
    NQ_CLEANUP(json_decrefp) json_t *o = json_object();
    if (!o || add_opts_build(a, o) < 0)
        return -ENOMEM;
    char *s = json_dumps(o, JSON_COMPACT);
    if (!s)
        return -ENOMEM;
    *ret_json = s;
    return 0;
}
