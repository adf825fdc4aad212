/* SPDX-License-Identifier: MIT */
/*
 * The frame codec (format in frame.h). JSON rather than a packed struct: a
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

#include "supervisor/frame.h"

static const char *const worker_state_names[] = {
    [NQ_WORKER_STARTING] = "starting", [NQ_WORKER_RUNNING] = "running",
    [NQ_WORKER_IDLE] = "idle",         [NQ_WORKER_PAUSED] = "paused",
    [NQ_WORKER_DRAINING] = "draining",
};

static const char *const command_names[] = {
    [NQ_CMD_DRAIN] = "drain",
    [NQ_CMD_PAUSE] = "pause",
    [NQ_CMD_RESUME] = "resume",
    [NQ_CMD_STOP] = "stop",
};

const char *nq_worker_state_name(enum nq_worker_state s)
{
    return (unsigned) s < NQ_ELEMENTSOF(worker_state_names) ? worker_state_names[s] : NULL;
}

const char *nq_command_name(enum nq_command c)
{
    return (unsigned) c < NQ_ELEMENTSOF(command_names) ? command_names[c] : NULL;
}

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int) i;
    return -1;
}

static json_t *metrics_to_json(const struct nq_frame_metrics *m)
{
    const char *state = nq_worker_state_name(m->state);
    json_t *o;

    if (!state)
        return NULL;
    o = json_pack("{s:i, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "v",
                  NQ_FRAME_VERSION, "t", "metrics", "pid", (json_int_t) m->pid, "uptime_ms",
                  (json_int_t) m->uptime_ms, "state", state, "fetched",
                  (json_int_t) m->counters.fetched, "completed", (json_int_t) m->counters.completed,
                  "failed", (json_int_t) m->counters.failed, "retried",
                  (json_int_t) m->counters.retried, "in_flight", (json_int_t) m->in_flight,
                  "rss_kib", (json_int_t) m->rss_kib);
    if (o && m->note[0] && json_object_set_new(o, "note", json_string(m->note)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int nq_frame_encode(const struct nq_frame *f, char *buf, size_t size)
{
    json_auto_t *o = NULL;
    const char *cmd;
    size_t n;

    switch (f->type) {
    case NQ_FRAME_METRICS:
        if (!nq_worker_state_name(f->metrics.state))
            return -EINVAL;
        o = metrics_to_json(&f->metrics);
        break;
    case NQ_FRAME_COMMAND:
        cmd = nq_command_name(f->command);
        if (!cmd)
            return -EINVAL;
        o = json_pack("{s:i, s:s, s:s}", "v", NQ_FRAME_VERSION, "t", "cmd", "cmd", cmd);
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
    r = get_enum(o, "state", worker_state_names, NQ_ELEMENTSOF(worker_state_names), &state, err);
    if (r < 0)
        return r;
    m->state = (enum nq_worker_state) state;
    note = json_object_get(o, "note");
    if (note && !json_is_string(note))
        return nq_err_set(err, -EINVAL, "frame: \"note\" is not a string");
    (void) snprintf(m->note, sizeof(m->note), "%s", note ? json_string_value(note) : "");
    return 0;
}

int nq_frame_decode(const void *buf, size_t len, struct nq_frame *ret, struct nq_err *err)
{
    json_auto_t *o = NULL;
    json_error_t jerr;
    struct nq_frame f = { 0 };
    json_t *v;
    int r, type, cmd = 0;
    static const char *const types[] = { [NQ_FRAME_METRICS] = "metrics",
                                         [NQ_FRAME_COMMAND] = "cmd" };

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
    r = get_enum(o, "t", types, NQ_ELEMENTSOF(types), &type, err);
    if (r < 0)
        return r;
    f.type = (enum nq_frame_type) type;
    if (f.type == NQ_FRAME_METRICS) {
        r = decode_metrics(o, &f.metrics, err);
    } else {
        r = get_enum(o, "cmd", command_names, NQ_ELEMENTSOF(command_names), &cmd, err);
        f.command = (enum nq_command) cmd;
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
