/* SPDX-License-Identifier: MIT */
/*
 * The frame codec (format in proc.h). JSON rather than a packed struct: a
 * frame is small and sent once a second, jansson already links into every
 * process, and optional fields can be added within a version without a
 * layout change. Decoding checks every known field's type and range.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "proc/proc.h"

static const char *const worker_state_names[] = {
    [NQ_WORKER_STARTING] = "starting", [NQ_WORKER_RUNNING] = "running",   [NQ_WORKER_IDLE] = "idle",
    [NQ_WORKER_PAUSED] = "paused",     [NQ_WORKER_DRAINING] = "draining",
};

/* NQ_REDIS_NONE has no name: the member is left out. */
static const char *const redis_state_names[] = {
    [NQ_REDIS_CONNECTING] = "connecting",
    [NQ_REDIS_CONNECTED] = "connected",
    [NQ_REDIS_DISCONNECTED] = "disconnected",
};

static const char *const command_names[] = {
    [NQ_CMD_DRAIN] = "drain", [NQ_CMD_PAUSE] = "pause",     [NQ_CMD_RESUME] = "resume",
    [NQ_CMD_STOP] = "stop",   [NQ_CMD_RECOVER] = "recover",
};

static const char *const frame_types[] = {
    [NQ_FRAME_METRICS] = "metrics",     [NQ_FRAME_COMMAND] = "cmd",
    [NQ_FRAME_RECOVERED] = "recovered", [NQ_FRAME_RECYCLE] = "recycle",
    [NQ_FRAME_SNAPSHOT] = "snapshot",
};

/* Fast jobs matter most: a provider call takes 10 ms to seconds. */
const uint64_t nq_timing_le_ms[NQ_TIMING_BUCKETS - 1] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30000,
};

void nq_timing_add(struct nq_timing *t, uint64_t ms)
{
    size_t i = 0;

    while (i < NQ_TIMING_BUCKETS - 1 && ms > nq_timing_le_ms[i])
        i++;
    t->count[i]++;
    t->sum_ms += ms;
}

void nq_timing_merge(struct nq_timing *to, const struct nq_timing *from)
{
    for (size_t i = 0; i < NQ_TIMING_BUCKETS; i++)
        to->count[i] += from->count[i];
    to->sum_ms += from->sum_ms;
}

const char *nq_worker_state_name(enum nq_worker_state s)
{
    return (unsigned) s < NQ_ELEMENTSOF(worker_state_names) ? worker_state_names[s] : NULL;
}

const char *nq_redis_state_name(enum nq_redis_state s)
{
    return (unsigned) s < NQ_ELEMENTSOF(redis_state_names) ? redis_state_names[s] : NULL;
}

const char *nq_command_name(enum nq_command c)
{
    return (unsigned) c < NQ_ELEMENTSOF(command_names) ? command_names[c] : NULL;
}

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], s) == 0)
            return (int) i;
    return -1;
}

static bool timing_empty(const struct nq_timing *t)
{
    for (size_t i = 0; i < NQ_TIMING_BUCKETS; i++)
        if (t->count[i])
            return false;
    return true;
}

static int timing_to_json(json_t *o, const struct nq_timing *t)
{
    json_t *le, *count;

    if (timing_empty(t))
        return 0;
    le = json_array();
    count = json_array();
    for (size_t i = 0; le && count && i < NQ_TIMING_BUCKETS; i++) {
        if (i < NQ_TIMING_BUCKETS - 1 &&
            json_array_append_new(le, json_integer((json_int_t) nq_timing_le_ms[i])) < 0)
            break;
        if (json_array_append_new(count, json_integer((json_int_t) t->count[i])) < 0)
            break;
    }
    if (!le || !count || json_array_size(count) != NQ_TIMING_BUCKETS) {
        json_decref(le);
        json_decref(count);
        return -ENOMEM;
    }
    return json_object_set_new(o, "timing",
                               json_pack("{s:o, s:o, s:I}", "le_ms", le, "count", count, "sum_ms",
                                         (json_int_t) t->sum_ms));
}

static int jobs_to_json(json_t *o, const struct nq_job_counts *j)
{
    if (!j->known)
        return 0;
    return json_object_set_new(
        o, "jobs",
        json_pack("{s:I, s:I, s:I, s:I, s:I}", "waiting", (json_int_t) j->waiting, "active",
                  (json_int_t) j->active, "delayed", (json_int_t) j->delayed, "failed",
                  (json_int_t) j->failed, "completed", (json_int_t) j->completed));
}

static json_t *command_to_json(const struct nq_frame *f)
{
    const char *cmd = nq_command_name(f->command);
    json_t *o;

    if (!cmd)
        return NULL;
    o = json_pack("{s:i, s:s, s:s}", "v", NQ_FRAME_VERSION, "t", "cmd", "cmd", cmd);
    if (!o || f->command != NQ_CMD_RECOVER)
        return o;
    if (!f->recover.prefix[0] ||
        json_object_set_new(o, "prefix", json_string(f->recover.prefix)) < 0 ||
        (f->recover.signal[0] &&
         json_object_set_new(o, "signal", json_string(f->recover.signal)) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *metrics_to_json(const struct nq_frame_metrics *m)
{
    const char *state = nq_worker_state_name(m->state);
    json_t *o;

    if (!state)
        return NULL;
    o = json_pack("{s:i, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "v", NQ_FRAME_VERSION,
                  "t", "metrics", "pid", (json_int_t) m->pid, "uptime_ms",
                  (json_int_t) m->uptime_ms, "state", state, "fetched",
                  (json_int_t) m->counters.fetched, "completed", (json_int_t) m->counters.completed,
                  "failed", (json_int_t) m->counters.failed, "retried",
                  (json_int_t) m->counters.retried, "in_flight", (json_int_t) m->in_flight,
                  "rss_kib", (json_int_t) m->rss_kib);
    if (o &&
        (json_object_set_new(o, "delayed", json_integer((json_int_t) m->counters.delayed)) < 0 ||
         json_object_set_new(o, "cpu_ms", json_integer((json_int_t) m->cpu_ms)) < 0)) {
        json_decref(o);
        return NULL;
    }
    if (o && m->note[0] && json_object_set_new(o, "note", json_string(m->note)) < 0) {
        json_decref(o);
        return NULL;
    }
    if (o && m->redis != NQ_REDIS_NONE &&
        json_object_set_new(o, "redis", json_string(nq_redis_state_name(m->redis))) < 0) {
        json_decref(o);
        return NULL;
    }
    if (o && (timing_to_json(o, &m->timing) < 0 || jobs_to_json(o, &m->jobs) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int nq_frame_encode(const struct nq_frame *f, char *buf, size_t size)
{
    json_auto_t *o = NULL;
    size_t n;

    switch (f->type) {
    case NQ_FRAME_METRICS:
        if (!nq_worker_state_name(f->metrics.state) ||
            (f->metrics.redis != NQ_REDIS_NONE && !nq_redis_state_name(f->metrics.redis)))
            return -EINVAL;
        o = metrics_to_json(&f->metrics);
        break;
    case NQ_FRAME_COMMAND:
        if (!nq_command_name(f->command) || (f->command == NQ_CMD_RECOVER && !f->recover.prefix[0]))
            return -EINVAL;
        o = command_to_json(f);
        break;
    case NQ_FRAME_RECOVERED:
        if (!f->recover.prefix[0])
            return -EINVAL;
        o = json_pack("{s:i, s:s, s:s}", "v", NQ_FRAME_VERSION, "t", "recovered", "prefix",
                      f->recover.prefix);
        break;
    case NQ_FRAME_RECYCLE:
        o = json_pack("{s:i, s:s, s:s}", "v", NQ_FRAME_VERSION, "t", "recycle", "reason",
                      f->reason);
        break;
    case NQ_FRAME_SNAPSHOT:
        if (!json_is_object(f->snapshot))
            return -EINVAL;
        o = json_pack("{s:i, s:s, s:O}", "v", NQ_FRAME_VERSION, "t", "snapshot", "data",
                      f->snapshot);
        break;
    default:
        return -EINVAL;
    }
    if (!o)
        return -ENOMEM;
    if (size > NQ_FRAME_MAX)
        size = NQ_FRAME_MAX;
    /* json_dumpb returns the needed size even when it does not fit. */
    n = json_dumpb(o, buf, size, JSON_COMPACT);
    if (n == 0)
        return -ENOMEM;
    if (n > size)
        return -EMSGSIZE;
    return (int) n;
}

/* A non-negative integer member; absent or mistyped is an error. */
static int get_uint(json_t *o, const char *key, uint64_t max, uint64_t *ret, struct nq_err *err)
{
    json_t *v = json_object_get(o, key);

    if (!v)
        return nq_err_set(err, -EINVAL, "frame: missing \"%s\"", key);
    if (!json_is_integer(v))
        return nq_err_set(err, -EINVAL, "frame: \"%s\" is not an integer", key);
    if (json_integer_value(v) < 0 || (uint64_t) json_integer_value(v) > max)
        return nq_err_set(err, -EINVAL, "frame: \"%s\" out of range", key);
    *ret = (uint64_t) json_integer_value(v);
    return 0;
}

static int get_enum(json_t *o, const char *key, const char *const *names, size_t n, int *ret,
                    struct nq_err *err)
{
    json_t *v = json_object_get(o, key);
    int i;

    if (!v)
        return nq_err_set(err, -EINVAL, "frame: missing \"%s\"", key);
    if (!json_is_string(v))
        return nq_err_set(err, -EINVAL, "frame: \"%s\" is not a string", key);
    i = name_index(names, n, json_string_value(v));
    if (i < 0)
        return nq_err_set(err, -EINVAL, "frame: unknown %s \"%.64s\"", key, json_string_value(v));
    *ret = i;
    return 0;
}

/* A string member copied into buf; absent is an error when required.
 * Over-long values are refused, not cut: a cut prefix would name other
 * workers' locks. */
static int get_string(json_t *o, const char *key, bool required, char *buf, size_t size,
                      struct nq_err *err)
{
    json_t *v = json_object_get(o, key);

    if (!v && !required) {
        buf[0] = 0;
        return 0;
    }
    if (!v)
        return nq_err_set(err, -EINVAL, "frame: missing \"%s\"", key);
    if (!json_is_string(v))
        return nq_err_set(err, -EINVAL, "frame: \"%s\" is not a string", key);
    if (json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v))
        return nq_err_set(err, -EINVAL, "frame: \"%s\" too long or not text", key);
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int decode_timing(json_t *o, struct nq_timing *t, struct nq_err *err)
{
    json_t *v = json_object_get(o, "timing"), *le, *count;
    uint64_t sum;

    if (!v)
        return 0;
    le = json_object_get(v, "le_ms");
    count = json_object_get(v, "count");
    if (!json_is_object(v) || !json_is_array(le) || !json_is_array(count) ||
        json_array_size(le) != NQ_TIMING_BUCKETS - 1 || json_array_size(count) != NQ_TIMING_BUCKETS)
        return nq_err_set(err, -EINVAL, "frame: \"timing\" is not a histogram of %d buckets",
                          NQ_TIMING_BUCKETS);
    for (size_t i = 0; i < NQ_TIMING_BUCKETS; i++) {
        json_t *c = json_array_get(count, i), *l = json_array_get(le, i);

        if (i < NQ_TIMING_BUCKETS - 1 &&
            (!json_is_integer(l) || (uint64_t) json_integer_value(l) != nq_timing_le_ms[i]))
            return nq_err_set(err, -EINVAL, "frame: \"timing\" has other bucket bounds");
        if (!json_is_integer(c) || json_integer_value(c) < 0)
            return nq_err_set(err, -EINVAL, "frame: \"timing\" count out of range");
        t->count[i] = (uint64_t) json_integer_value(c);
    }
    if (get_uint(v, "sum_ms", INT64_MAX, &sum, err) < 0)
        return nq_err_set(err, -EINVAL, "frame: \"timing\" has no valid \"sum_ms\"");
    t->sum_ms = sum;
    return 0;
}

static int decode_jobs(json_t *o, struct nq_job_counts *j, struct nq_err *err)
{
    static const struct {
        const char *key;
        size_t offset;
    } fields[] = {
        { "waiting", offsetof(struct nq_job_counts, waiting) },
        { "active", offsetof(struct nq_job_counts, active) },
        { "delayed", offsetof(struct nq_job_counts, delayed) },
        { "failed", offsetof(struct nq_job_counts, failed) },
        { "completed", offsetof(struct nq_job_counts, completed) },
    };
    json_t *v = json_object_get(o, "jobs");

    if (!v)
        return 0;
    if (!json_is_object(v))
        return nq_err_set(err, -EINVAL, "frame: \"jobs\" is not an object");
    for (size_t i = 0; i < NQ_ELEMENTSOF(fields); i++) {
        int r = get_uint(v, fields[i].key, INT64_MAX, (uint64_t *) ((char *) j + fields[i].offset),
                         err);
        if (r < 0)
            return r;
    }
    j->known = true;
    return 0;
}

static int decode_metrics(json_t *o, struct nq_frame_metrics *m, struct nq_err *err)
{
    static const struct {
        const char *key;
        size_t offset;
    } u64s[] = {
        { "uptime_ms", offsetof(struct nq_frame_metrics, uptime_ms) },
        { "fetched", offsetof(struct nq_frame_metrics, counters.fetched) },
        { "completed", offsetof(struct nq_frame_metrics, counters.completed) },
        { "failed", offsetof(struct nq_frame_metrics, counters.failed) },
        { "retried", offsetof(struct nq_frame_metrics, counters.retried) },
        { "in_flight", offsetof(struct nq_frame_metrics, in_flight) },
        { "rss_kib", offsetof(struct nq_frame_metrics, rss_kib) },
    };
    uint64_t pid;
    int state, r;
    json_t *note;

    r = get_uint(o, "pid", INT32_MAX, &pid, err);
    if (r < 0)
        return r;
    if (pid == 0)
        return nq_err_set(err, -EINVAL, "frame: \"pid\" out of range");
    m->pid = (pid_t) pid;
    for (size_t i = 0; i < NQ_ELEMENTSOF(u64s); i++) {
        r = get_uint(o, u64s[i].key, INT64_MAX, (uint64_t *) ((char *) m + u64s[i].offset), err);
        if (r < 0)
            return r;
    }
    /* Optional: frames of older writers lack them. */
    if (json_object_get(o, "delayed") &&
        (r = get_uint(o, "delayed", INT64_MAX, &m->counters.delayed, err)) < 0)
        return r;
    if (json_object_get(o, "cpu_ms") && (r = get_uint(o, "cpu_ms", INT64_MAX, &m->cpu_ms, err)) < 0)
        return r;
    r = get_enum(o, "state", worker_state_names, NQ_ELEMENTSOF(worker_state_names), &state, err);
    if (r < 0)
        return r;
    m->state = (enum nq_worker_state) state;
    note = json_object_get(o, "note");
    if (note && !json_is_string(note))
        return nq_err_set(err, -EINVAL, "frame: \"note\" is not a string");
    (void) snprintf(m->note, sizeof(m->note), "%s", note ? json_string_value(note) : "");
    m->redis = NQ_REDIS_NONE;
    if (json_object_get(o, "redis")) {
        r = get_enum(o, "redis", redis_state_names, NQ_ELEMENTSOF(redis_state_names), &state, err);
        if (r < 0)
            return r;
        m->redis = (enum nq_redis_state) state;
    }
    r = decode_timing(o, &m->timing, err);
    return r < 0 ? r : decode_jobs(o, &m->jobs, err);
}

static int decode_command(json_t *o, struct nq_frame *f, struct nq_err *err)
{
    int cmd, r;

    r = get_enum(o, "cmd", command_names, NQ_ELEMENTSOF(command_names), &cmd, err);
    if (r < 0)
        return r;
    f->command = (enum nq_command) cmd;
    if (f->command != NQ_CMD_RECOVER)
        return 0;
    r = get_string(o, "prefix", true, f->recover.prefix, sizeof(f->recover.prefix), err);
    if (r == 0 && !f->recover.prefix[0])
        r = nq_err_set(err, -EINVAL, "frame: empty \"prefix\"");
    if (r == 0)
        r = get_string(o, "signal", false, f->recover.signal, sizeof(f->recover.signal), err);
    return r;
}

int nq_frame_decode(const void *buf, size_t len, struct nq_frame *ret, struct nq_err *err)
{
    json_auto_t *o = NULL;
    json_error_t jerr;
    struct nq_frame f = { 0 };
    json_t *v;
    int r, type;

    if (len > NQ_FRAME_MAX)
        return nq_err_set(err, -EMSGSIZE, "frame: %zu bytes, more than %d", len, NQ_FRAME_MAX);
    o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return nq_err_set(err, -EINVAL, "frame: not JSON: %s", jerr.text);
    if (!json_is_object(o))
        return nq_err_set(err, -EINVAL, "frame: not a JSON object");
    v = json_object_get(o, "v");
    if (!json_is_integer(v))
        return nq_err_set(err, -EINVAL, "frame: missing version");
    if (json_integer_value(v) != NQ_FRAME_VERSION)
        return nq_err_set(err, -EINVAL, "frame: version %" JSON_INTEGER_FORMAT ", want %d",
                          json_integer_value(v), NQ_FRAME_VERSION);
    r = get_enum(o, "t", frame_types, NQ_ELEMENTSOF(frame_types), &type, err);
    if (r < 0)
        return r;
    f.type = (enum nq_frame_type) type;
    switch (f.type) {
    case NQ_FRAME_METRICS:
        r = decode_metrics(o, &f.metrics, err);
        break;
    case NQ_FRAME_COMMAND:
        r = decode_command(o, &f, err);
        break;
    case NQ_FRAME_RECOVERED:
        r = get_string(o, "prefix", true, f.recover.prefix, sizeof(f.recover.prefix), err);
        if (r == 0 && !f.recover.prefix[0])
            r = nq_err_set(err, -EINVAL, "frame: empty \"prefix\"");
        break;
    case NQ_FRAME_RECYCLE:
        r = get_string(o, "reason", false, f.reason, sizeof(f.reason), err);
        break;
    case NQ_FRAME_SNAPSHOT:
        v = json_object_get(o, "data");
        if (!json_is_object(v))
            r = nq_err_set(err, -EINVAL, "frame: \"data\" must be an object");
        else
            f.snapshot = json_incref(v);
        break;
    }
    if (r < 0)
        return r;
    *ret = f;
    return 0;
}

int nq_frame_send(int fd, const struct nq_frame *f)
{
    char buf[NQ_FRAME_MAX];
    int n = nq_frame_encode(f, buf, sizeof(buf));

    if (n < 0)
        return n;
    if (send(fd, buf, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return 0;
}

/* SEQPACKET reads 0 bytes both at EOF and for an empty datagram; only the
 * first means the peer is gone. */
static bool peer_closed(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLRDHUP };
    int r = poll(&p, 1, 0);

    return r < 0 || (r == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)));
}

int nq_frame_recv(int fd, char *buf, struct nq_frame *ret, struct nq_err *err)
{
    ssize_t n;
    int r;

    do {
        /* MSG_TRUNC makes a SEQPACKET socket report the datagram's real
         * length, so an oversize frame is refused rather than cut. */
        n = recv(fd, buf, NQ_FRAME_MAX, MSG_DONTWAIT | MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n == 0 && !peer_closed(fd))
        return nq_err_set(err, -EINVAL, "frame: empty");
    if (n == 0)
        return 0;
    r = nq_frame_decode(buf, (size_t) n, ret, err);
    return r < 0 ? r : 1;
}
