/* SPDX-License-Identifier: MIT */
/*
 * notifyqctl: the control tool. Daemon commands (status, metrics, pause,
 * resume, reload, stop) are one JSON request line on the master's control
 * socket and one reply line back (see notifyqctl(1) and the control protocol
 * in src/supervisor/control.c). The socket comes from -s, or from
 * control.socket of the config (-c, default /etc/notifyq.yaml).
 *
 * Commands live in one table, PgBouncer's show_map: later commands that talk
 * to Redis (send, job, failed, clean, counts) add rows and their own run
 * functions; parsing, help and dispatch stay as they are.
 *
 * Exit status is a contract for monitoring: 0 ok/healthy, 1 the daemon said
 * no or a queue is degraded, 2 the daemon cannot be reached, 64 usage error.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/macros.h"
#include "config/config.h"
#include "ctl/ctl.h"
#include "ctl/output.h"

#define CTL_DEFAULT_SOCKET NQ_RUNSTATEDIR "/notifyq/control.sock"
#define CTL_DEFAULT_GROUP "notifyq"
#define CTL_TIMEOUT_MS 5000
/* Replies grow with queues x processes (256 slots a queue); far above any
 * real status, low enough that a confused peer cannot exhaust memory. */
#define CTL_REPLY_MAX (16u << 20)

enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_DEGRADED = 1, /* also: the daemon refused the request */
    CTL_EXIT_UNREACHABLE = 2,
    CTL_EXIT_USAGE = 64, /* sysexits EX_USAGE */
};

static const char *arg_config;
static const char *arg_socket;
static bool arg_json;
static bool arg_verbose;

/* Resolved once per run: where the daemon listens and who may connect
 * (group_known: read from a config, where no group means root and the
 * daemon's user only). */
static char *socket_path;
static char *socket_group;
static bool group_known;

/* ---- finding the socket ---------------------------------------------- */

static int use_socket(const char *path, bool from_config, const char *group)
{
    group_known = from_config;
    socket_path = strdup(path);
    socket_group = group ? strdup(group) : NULL;
    if (!socket_path || (group && !socket_group)) {
        ctl_error("out of memory");
        return CTL_EXIT_UNREACHABLE;
    }
    return 0;
}

/* A config that no longer parses (being edited, or a password_file this user
 * may not read) must not keep an operator from the running daemon, so the
 * default config falls back to the default socket. An explicit -c elsewhere
 * may name another daemon: no guessing there. */
static int resolve_socket(void)
{
    const char *path = arg_config ? arg_config : NQ_DEFAULT_CONFIG_PATH;
    struct nq_config *cfg = NULL;
    struct nq_err err = { 0 };
    int r;

    if (arg_socket)
        return use_socket(arg_socket, false, NULL);
    r = nq_config_load(path, NULL, 0, &cfg, &err);
    if (r >= 0) {
        r = use_socket(cfg->control.socket, true, cfg->control.group);
        (void) nq_config_free(cfg);
        return r;
    }
    if (strcmp(path, NQ_DEFAULT_CONFIG_PATH) == 0 && access(CTL_DEFAULT_SOCKET, F_OK) == 0) {
        ctl_error("note: %s; using the default socket %s", nq_err_str(&err), CTL_DEFAULT_SOCKET);
        return use_socket(CTL_DEFAULT_SOCKET, false, NULL);
    }
    ctl_error("%s", nq_err_str(&err));
    ctl_error("cannot find the control socket: fix the config or pass -s SOCKET");
    return CTL_EXIT_UNREACHABLE;
}

/* ---- talking to the daemon ------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline; poll is not restarted after a
 * signal, so EINTR loops with the remaining time. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = events };
        int64_t left = deadline - now_ms();
        int n;

        if (left <= 0)
            return -ETIMEDOUT;
        n = poll(&pfd, 1, (int) left);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int conn_open(const char *path, int64_t deadline, int *ret_fd)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    nq_autoclose int fd = -1;
    int r, soerr = 0;
    socklen_t len = sizeof(soerr);

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
        /* A unix socket whose backlog is full answers EAGAIN, not EINPROGRESS. */
        if (errno != EINPROGRESS && errno != EAGAIN)
            return -errno;
        r = wait_fd(fd, POLLOUT, deadline);
        if (r < 0)
            return r;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            return -errno;
        if (soerr != 0)
            return -soerr;
    }
    /* cppcheck-suppress unreadVariable ; NQ_TAKE_FD leaves -1 for the cleanup to see */
    *ret_fd = NQ_TAKE_FD(fd);
    return 0;
}

static int conn_send(int fd, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        int r;

        if (n >= 0) {
            buf += n;
            len -= (size_t) n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        r = wait_fd(fd, POLLOUT, deadline);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Reads one reply line (without its newline) into *ret_line. A peer closing
 * before a newline is -ECONNRESET: the protocol always ends replies. */
static int conn_recv_line(int fd, int64_t deadline, char **ret_line)
{
    nq_autofree char *buf = NULL;
    size_t len = 0, cap = 0;

    for (;;) {
        char *nl;
        ssize_t n;
        int r;

        if (cap - len < 4096) {
            char *p;

            if (cap >= CTL_REPLY_MAX)
                return -EMSGSIZE;
            cap = cap ? cap * 2 : 16384;
            p = realloc(buf, cap + 1);
            if (!p)
                return -ENOMEM;
            buf = p;
        }
        n = recv(fd, buf + len, cap - len, 0);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            r = wait_fd(fd, POLLIN, deadline);
            if (r < 0)
                return r;
            continue;
        }
        nl = memchr(buf + len, '\n', (size_t) n);
        len += (size_t) n;
        if (nl) {
            *nl = '\0';
            *ret_line = NQ_TAKE_PTR(buf);
            return 0;
        }
    }
}

static void explain_unreachable(int r)
{
    const char *why;
    struct stat st;

    switch (-r) {
    case ENOENT:
        why = "no such file: is notifyqd running?";
        break;
    case ECONNREFUSED:
        why = "connection refused: is notifyqd running?";
        if (stat(socket_path, &st) == 0 && !S_ISSOCK(st.st_mode))
            why = "not a socket";
        break;
    case EACCES:
    case EPERM:
        if (group_known && !socket_group) {
            ctl_error("%s: permission denied: run as root or as notifyqd's user", socket_path);
            return;
        }
        ctl_error("%s: permission denied: are you in group %s?", socket_path,
                  socket_group ? socket_group : CTL_DEFAULT_GROUP);
        return;
    case ETIMEDOUT:
        why = "no reply within 5 s: is notifyqd stuck?";
        break;
    case ECONNRESET:
    case EPIPE:
        why = "connection closed by notifyqd without a reply";
        break;
    case EMSGSIZE:
        why = "reply too long";
        break;
    case ENAMETOOLONG:
        why = "path too long for a unix socket";
        break;
    default:
        why = strerror(-r);
        break;
    }
    ctl_error("%s: %s", socket_path, why);
}

/* One request, one reply: the exchange every daemon command makes. The
 * connection and the reply each get CTL_TIMEOUT_MS. */
static int exchange(const char *request, char **ret_line)
{
    nq_autoclose int fd = -1;
    int64_t deadline;
    int r, q;

    r = conn_open(socket_path, now_ms() + CTL_TIMEOUT_MS, &fd);
    if (r < 0)
        return r;
    deadline = now_ms() + CTL_TIMEOUT_MS;
    r = conn_send(fd, request, strlen(request), deadline);
    /* A refused peer is told why and closed at once, maybe before our
     * request went out: the reply is still ours to read. */
    if (r < 0 && r != -EPIPE && r != -ECONNRESET)
        return r;
    q = conn_recv_line(fd, deadline, ret_line);
    return q < 0 && r < 0 ? r : q;
}

/* req as the protocol's line: compact JSON and a newline. NULL on OOM. */
static char *request_line(const json_t *req)
{
    nq_autofree char *body = json_dumps(req, JSON_COMPACT);
    size_t n;
    char *line;

    if (!body)
        return NULL;
    n = strlen(body);
    line = malloc(n + 2);
    if (!line)
        return NULL;
    memcpy(line, body, n);
    memcpy(line + n, "\n", 2);
    return line;
}

/* Sends {"cmd":cmd[,"queue":queue]} and puts the reply, an object whose "ok"
 * was true (the member removed), in *ret_reply. Otherwise prints why and
 * returns the exit status: 2 when the daemon cannot be reached or refuses us,
 * 1 when it answered with an error. */
static int daemon_call(const char *cmd, const char *queue, json_t **ret_reply)
{
    json_auto_t *req = NULL;
    json_auto_t *reply = NULL;
    nq_autofree char *request = NULL;
    nq_autofree char *line = NULL;
    json_error_t jerr;
    const char *error = NULL;
    int r, ok = 0, refused = 0;

    req = queue ? json_pack("{s:s, s:s}", "cmd", cmd, "queue", queue)
                : json_pack("{s:s}", "cmd", cmd);
    request = req ? request_line(req) : NULL;
    if (!request) {
        ctl_error("out of memory");
        return CTL_EXIT_UNREACHABLE;
    }
    r = resolve_socket();
    if (r != 0)
        return r;
    r = exchange(request, &line);
    if (r < 0) {
        explain_unreachable(r);
        return CTL_EXIT_UNREACHABLE;
    }
    reply = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    if (!reply || json_unpack_ex(reply, &jerr, 0, "{s:b, s?:s, s?:b}", "ok", &ok, "error", &error,
                                 "refused", &refused) < 0) {
        ctl_error("%s: not a notifyqd reply: %s", socket_path, jerr.text);
        return CTL_EXIT_UNREACHABLE;
    }
    if (!ok && error && strcmp(error, "permission denied") == 0) {
        explain_unreachable(-EACCES);
        return CTL_EXIT_UNREACHABLE;
    }
    /* Turned away before any request was read (too many connections): we
     * did not get to talk to the daemon. */
    if (!ok && refused) {
        ctl_error("%s: %s: notifyqd turned this connection away", socket_path,
                  error ? error : "refused");
        return CTL_EXIT_UNREACHABLE;
    }
    if (!ok) {
        ctl_error("%s", error ? error : "request failed");
        return CTL_EXIT_DEGRADED;
    }
    (void) json_object_del(reply, "ok");
    *ret_reply = NQ_TAKE_PTR(reply);
    return 0;
}

/* ---- output ------------------------------------------------------------ */

static void print_json(const json_t *obj)
{
    (void) json_dumpf(obj, stdout, JSON_INDENT(2));
    putchar('\n');
}

/* Fields the daemon leaves out (an older or newer master) print as "-". */
static const char *jstr_or(const json_t *obj, const char *key, const char *missing)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : missing;
}

static const char *jstr(const json_t *obj, const char *key)
{
    return jstr_or(obj, key, "-");
}

static const char *jint(const json_t *obj, const char *key, char *buf, size_t size)
{
    const json_t *v = json_object_get(obj, key);

    if (!json_is_integer(v))
        return "-";
    (void) snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return buf;
}

/* "3d4h", "2h5m", "5m12s", "42s": the two largest units are enough to see
 * whether a process is new. */
static const char *format_uptime(const json_t *obj, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        json_int_t s;
    } units[] = { { "d", 86400 }, { "h", 3600 }, { "m", 60 }, { "s", 1 } };
    const json_t *v = json_object_get(obj, "uptime_s");
    json_int_t t = json_integer_value(v);

    if (!json_is_integer(v) || t < 0)
        return "-";
    for (size_t i = 0; i < NQ_ELEMENTSOF(units); i++) {
        json_int_t hi = t / units[i].s, lo;

        if (hi == 0 && i + 1 < NQ_ELEMENTSOF(units))
            continue;
        if (i + 1 == NQ_ELEMENTSOF(units)) {
            (void) snprintf(buf, size, "%" JSON_INTEGER_FORMAT "s", t);
            return buf;
        }
        lo = (t % units[i].s) / units[i + 1].s;
        (void) snprintf(buf, size, "%" JSON_INTEGER_FORMAT "%s%" JSON_INTEGER_FORMAT "%s", hi,
                        units[i].unit, lo, units[i + 1].unit);
        return buf;
    }
    return "-";
}

static const char *format_exit(const json_t *worker, char *buf, size_t size)
{
    const json_t *e = json_object_get(worker, "last_exit");
    const json_t *code = json_object_get(e, "code");

    if (json_is_integer(code)) {
        (void) snprintf(buf, size, "exit %" JSON_INTEGER_FORMAT, json_integer_value(code));
        return buf;
    }
    return json_is_object(e) ? jstr(e, "signal") : "-";
}

/* ---- commands ------------------------------------------------------------ */

/* The queue's own in_flight, or the sum of its workers' from a master that
 * does not report it. */
static json_int_t queue_in_flight(const json_t *queue)
{
    const json_t *total = json_object_get(queue, "in_flight"), *w;
    json_int_t sum = 0;
    size_t i;

    if (json_is_integer(total))
        return json_integer_value(total);
    json_array_foreach (json_object_get(queue, "workers"), i, w)
        sum += json_integer_value(json_object_get(w, "in_flight"));
    return sum;
}

/* The columns are defined once, in notifyqctl(1) under "status". */
static const char *per_minute(const json_t *q, bool errors, char *buf, size_t size)
{
    const json_t *pm = json_object_get(q, "per_minute");
    const json_t *v = json_object_get(pm, errors ? "failed" : "completed");

    if (!json_is_integer(v))
        return "-";
    (void) snprintf(buf, size, "%" JSON_INTEGER_FORMAT,
                    json_integer_value(v) +
                        (errors ? json_integer_value(json_object_get(pm, "retried")) : 0));
    return buf;
}

static const char *failure_rate(const json_t *q, char *buf, size_t size)
{
    const json_t *v = json_object_get(json_object_get(q, "health"), "failure_rate");

    if (!json_is_number(v))
        return "-";
    (void) snprintf(buf, size, "%.0f%%", json_number_value(v) * 100);
    return buf;
}

static int add_queue_row(struct ctl_table *t, const json_t *q)
{
    const json_t *procs = json_object_get(q, "processes");
    const json_t *counters = json_object_get(q, "counters");
    const json_t *jobs = json_object_get(q, "jobs");
    char running[24], configured[24], procs_s[48], restarts[24], in_flight[24];
    char waiting[24], active[24], delayed[24], failed[24];
    char completed[24], failed_n[24], retried[24], ok_min[24], err_min[24], rate[24];

    (void) snprintf(procs_s, sizeof(procs_s), "%s/%s",
                    jint(procs, "running", running, sizeof(running)),
                    jint(procs, "configured", configured, sizeof(configured)));
    (void) snprintf(in_flight, sizeof(in_flight), "%" JSON_INTEGER_FORMAT, queue_in_flight(q));
    const char *row[] = {
        jstr(q, "name"),
        jstr(q, "handler"),
        procs_s,
        jint(q, "restarts", restarts, sizeof(restarts)),
        jint(jobs, "waiting", waiting, sizeof(waiting)),
        jint(jobs, "active", active, sizeof(active)),
        jint(jobs, "delayed", delayed, sizeof(delayed)),
        jint(jobs, "failed", failed, sizeof(failed)),
        in_flight,
        jint(counters, "completed", completed, sizeof(completed)),
        jint(counters, "failed", failed_n, sizeof(failed_n)),
        jint(counters, "retried", retried, sizeof(retried)),
        per_minute(q, false, ok_min, sizeof(ok_min)),
        per_minute(q, true, err_min, sizeof(err_min)),
        failure_rate(q, rate, sizeof(rate)),
        jstr(q, "state"),
    };
    return ctl_table_add(t, row);
}

static int add_worker_row(struct ctl_table *t, const json_t *q, const json_t *w)
{
    char slot[24], name[160], pid[24], uptime[48], in_flight[24], last_exit[32];

    (void) snprintf(name, sizeof(name), "%s/%s", jstr(q, "name"),
                    jint(w, "slot", slot, sizeof(slot)));
    const char *row[] = {
        name,
        jint(w, "pid", pid, sizeof(pid)),
        format_uptime(w, uptime, sizeof(uptime)),
        jint(w, "in_flight", in_flight, sizeof(in_flight)),
        jstr(w, "state"),
        jstr(w, "redis"),
        format_exit(w, last_exit, sizeof(last_exit)),
        jstr_or(w, "note", ""),
    };
    return ctl_table_add(t, row);
}

/* The http child (admin API), when configured: one line like a worker's. */
static void print_http(const json_t *h)
{
    char pid[24], uptime[48], restarts[24], last_exit[32];

    if (!json_is_object(h))
        return;
    printf("http child: pid %s, up %s, %s, %s restarts, last exit %s\n\n",
           jint(h, "pid", pid, sizeof(pid)), format_uptime(h, uptime, sizeof(uptime)),
           jstr(h, "state"), jint(h, "restarts", restarts, sizeof(restarts)),
           format_exit(h, last_exit, sizeof(last_exit)));
}

static int print_status(const json_t *st)
{
    struct ctl_table queues = {
        .n_cols = 16,
        .header = { "QUEUE", "HANDLER", "PROCS", "RESTARTS", "WAITING", "ACTIVE", "DELAYED", "DLQ",
                    "IN-FLIGHT", "COMPLETED", "FAILED", "RETRIED", "OK/MIN", "ERR/MIN", "FAIL%",
                    "STATE" },
        .right = { false, false, true, true, true, true, true, true, true, true, true, true, true,
                   true, true, false },
    };
    struct ctl_table workers = {
        .n_cols = 8,
        .header = { "WORKER", "PID", "UPTIME", "IN-FLIGHT", "STATE", "REDIS", "LAST-EXIT", "NOTE" },
        .right = { false, true, true, true, false, false, false, false },
    };
    char pid[24], uptime[48], generation[24];
    const json_t *q, *w;
    size_t i, j;
    int r = 0;

    printf("notifyqd %s, pid %s, up %s, %s, generation %s\n\n", jstr(st, "version"),
           jint(st, "pid", pid, sizeof(pid)), format_uptime(st, uptime, sizeof(uptime)),
           jstr(st, "state"), jint(st, "generation", generation, sizeof(generation)));
    print_http(json_object_get(st, "http"));
    json_array_foreach (json_object_get(st, "queues"), i, q) {
        /* cppcheck-suppress knownConditionTrueFalse ; cppcheck does not see the loop */
        if (r >= 0)
            r = add_queue_row(&queues, q);
        json_array_foreach (json_object_get(q, "workers"), j, w)
            if (r >= 0 && arg_verbose)
                r = add_worker_row(&workers, q, w);
    }
    if (r >= 0) {
        ctl_table_print(&queues);
        if (arg_verbose) {
            putchar('\n');
            ctl_table_print(&workers);
        }
    }
    ctl_table_done(&queues);
    ctl_table_done(&workers);
    return r;
}

/* 1 when a queue is in any state but ok, idle, paused or draining
 * (degraded, crash-looping, disconnected, connecting, unhealthy, or one a
 * newer daemon adds), or runs fewer workers than configured while the
 * daemon is not in a reload or drain, where that is expected; 0 when
 * healthy. */
static int status_health(const json_t *st)
{
    static const char *const fine[] = { "ok", "idle", "paused", "draining" };
    bool steady = strcmp(jstr(st, "state"), "running") == 0;
    const json_t *q;
    size_t i;

    json_array_foreach (json_object_get(st, "queues"), i, q) {
        const char *state = jstr(q, "state");
        const json_t *procs = json_object_get(q, "processes");
        bool ok = false;

        for (size_t k = 0; k < NQ_ELEMENTSOF(fine); k++)
            ok = ok || strcmp(state, fine[k]) == 0;
        if (!ok)
            return CTL_EXIT_DEGRADED;
        if (steady && json_integer_value(json_object_get(procs, "running")) <
                          json_integer_value(json_object_get(procs, "configured")))
            return CTL_EXIT_DEGRADED;
    }
    return CTL_EXIT_OK;
}

static int cmd_status(char **args)
{
    json_auto_t *st = NULL;
    int r = daemon_call("status", NULL, &st);

    if (r != 0)
        return r;
    if (arg_json)
        print_json(st);
    else if (print_status(st) < 0) {
        ctl_error("out of memory");
        return CTL_EXIT_UNREACHABLE;
    }
    return status_health(st);
}

static int cmd_metrics(char **args)
{
    struct ctl_table t = {
        .n_cols = 7,
        .header = { "QUEUE", "FETCHED", "COMPLETED", "FAILED", "RETRIED", "IN-FLIGHT", "/MIN" },
        .right = { false, true, true, true, true, true, true },
    };
    json_auto_t *m = NULL;
    const json_t *q;
    size_t i;
    int r = daemon_call("metrics", NULL, &m);

    if (r != 0)
        return r;
    if (arg_json) {
        print_json(m);
        return CTL_EXIT_OK;
    }
    json_array_foreach (json_object_get(m, "queues"), i, q) {
        const json_t *c = json_object_get(q, "counters");
        char fetched[24], completed[24], failed[24], retried[24], in_flight[24], per_min[24];
        const char *row[] = {
            jstr(q, "name"),
            jint(c, "fetched", fetched, sizeof(fetched)),
            jint(c, "completed", completed, sizeof(completed)),
            jint(c, "failed", failed, sizeof(failed)),
            jint(c, "retried", retried, sizeof(retried)),
            jint(q, "in_flight", in_flight, sizeof(in_flight)),
            jint(json_object_get(q, "per_minute"), "completed", per_min, sizeof(per_min)),
        };
        /* cppcheck-suppress knownConditionTrueFalse ; cppcheck does not see the loop */
        if (r >= 0)
            r = ctl_table_add(&t, row);
    }
    if (r >= 0)
        ctl_table_print(&t);
    ctl_table_done(&t);
    if (r < 0) {
        ctl_error("out of memory");
        return CTL_EXIT_UNREACHABLE;
    }
    return CTL_EXIT_OK;
}

static int set_queue_state(const char *cmd, const char *queue)
{
    json_auto_t *reply = NULL;
    int r = daemon_call(cmd, queue, &reply);

    if (r != 0)
        return r;
    if (arg_json)
        print_json(reply);
    else
        printf("%s: %s\n", jstr(reply, "queue"), jstr(reply, "state"));
    return CTL_EXIT_OK;
}

/* ---- queue commands: Redis, through src/ctl --------------------------------- */

static int run_queue_command(const char *name, char **args)
{
    const struct nq_ctl_env env = {
        .config_path = arg_config,
        .socket_given = arg_socket != NULL,
        .json = arg_json,
        .daemon_call = daemon_call,
    };

    return nq_ctl_run(&env, name, args);
}

static int cmd_send(char **args)
{
    return run_queue_command("send", args);
}

static int cmd_job(char **args)
{
    return run_queue_command("job", args);
}

static int cmd_failed(char **args)
{
    return run_queue_command("failed", args);
}

static int cmd_clean(char **args)
{
    return run_queue_command("clean", args);
}

static int cmd_counts(char **args)
{
    return run_queue_command("counts", args);
}

static int cmd_notification(char **args)
{
    return run_queue_command("notification", args);
}

/* With a configuration, pause and resume are BullMQ's, in Redis, and the
 * daemon is told too (nq_ctl_pause); -s names only the daemon, so only the
 * daemon is told. */
static int pause_queue(const char *queue, bool pause)
{
    const struct nq_ctl_env env = {
        .config_path = arg_config,
        .json = arg_json,
        .daemon_call = daemon_call,
    };

    if (arg_socket)
        return set_queue_state(pause ? "pause" : "resume", queue);
    return nq_ctl_pause(&env, queue, pause);
}

static int cmd_pause(char **args)
{
    return pause_queue(args[0], true);
}

static int cmd_resume(char **args)
{
    return pause_queue(args[0], false);
}

static int simple_command(const char *cmd, const char *done)
{
    json_auto_t *reply = NULL;
    int r = daemon_call(cmd, NULL, &reply);

    if (r != 0)
        return r;
    if (arg_json)
        print_json(reply);
    else
        puts(done);
    return CTL_EXIT_OK;
}

static int cmd_reload(char **args)
{
    return simple_command("reload", "configuration reloaded");
}

static int cmd_stop(char **args)
{
    return simple_command("stop", "notifyqd is draining and will exit");
}

struct ctl_command {
    const char *name;
    const char *args;        /* synopsis of its arguments, for --help */
    int n_args;              /* -1: parses its own words, options included */
    int (*run)(char **args); /* returns the exit status */
    const char *help;
};

static const struct ctl_command commands[] = {
    { "status", "", 0, cmd_status, "queues, workers and counters; exit 1 if degraded" },
    { "metrics", "", 0, cmd_metrics, "counters of every queue" },
    { "pause", "QUEUE", 1, cmd_pause, "pause QUEUE in Redis (BullMQ's pause) and notifyqd" },
    { "resume", "QUEUE", 1, cmd_resume, "resume QUEUE in Redis and notifyqd" },
    { "reload", "", 0, cmd_reload, "re-read the configuration (as SIGHUP)" },
    { "stop", "", 0, cmd_stop, "drain in-flight jobs and exit (as SIGTERM)" },
    { "send", "QUEUE ...", -1, cmd_send, "add a job: --data JSON|@FILE [--delay D ...]" },
    { "job", "CMD QUEUE ID", -1, cmd_job, "show, remove, retry or promote one job" },
    { "failed", "CMD QUEUE", -1, cmd_failed, "list, retry or purge failed jobs" },
    { "clean", "QUEUE ...", -1, cmd_clean, "delete jobs: --state S --grace D [--limit N]" },
    { "counts", "QUEUE", -1, cmd_counts, "jobs per state in Redis, and whether paused" },
    { "notification", "QUEUE ID", -1, cmd_notification,
      "a job's delivery history in PostgreSQL [--json]" },
};

static void print_help(void)
{
    printf("Usage: notifyqctl [-c FILE | -s SOCKET] [--json] [-v] COMMAND [ARGS]\n"
           "Controls a running notifyqd.\n\nCommands:\n");
    for (size_t i = 0; i < NQ_ELEMENTSOF(commands); i++) {
        char synopsis[64];

        (void) snprintf(synopsis, sizeof(synopsis), "%s %s", commands[i].name, commands[i].args);
        printf("  %-18s%s\n", synopsis, commands[i].help);
    }
    printf("\nOptions:\n"
           "  -c, --config FILE    read control.socket from FILE (default %s)\n"
           "  -s, --socket SOCKET  connect to SOCKET\n"
           "      --json           print the daemon's reply as JSON\n"
           "  -v, --verbose        status: list every worker too\n"
           "  -h, --help           show this help\n"
           "  -V, --version        show the version\n"
           "\nExit status: 0 ok, 1 degraded or refused, 2 notifyqd unreachable, 64 usage.\n"
           "See notifyqctl(1).\n",
           NQ_DEFAULT_CONFIG_PATH);
}

/* Returns 1 to go on, 0 to exit successfully, or -EINVAL. */
static int parse_options(int argc, char **argv, const char *optstring)
{
    enum { ARG_JSON = 0x100 };
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "socket", required_argument, NULL, 's' },
        { "json", no_argument, NULL, ARG_JSON },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { 0 },
    };
    int c;

    while ((c = getopt_long(argc, argv, optstring, options, NULL)) >= 0) {
        switch (c) {
        case 'c':
            arg_config = optarg;
            break;
        case 's':
            arg_socket = optarg;
            break;
        case ARG_JSON:
            arg_json = true;
            break;
        case 'v':
            arg_verbose = true;
            break;
        case 'h':
            print_help();
            return 0;
        case 'V':
            printf("notifyqctl %s\n", PACKAGE_VERSION);
            return 0;
        default:
            return -EINVAL; /* getopt said why */
        }
    }
    return 1;
}

static bool parses_own_words(const char *name)
{
    for (size_t i = 0; i < NQ_ELEMENTSOF(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return commands[i].n_args < 0;
    return false;
}

/* Options may come before or after the command (`status --json`), as with
 * systemctl: ours end at the command's name, and a daemon command's words
 * are then searched for more. A queue command has options of its own, which
 * getopt would refuse here: it parses all its words itself. Returns 1 to
 * run the command named by argv[*ret_cmd] with its arguments from
 * argv[*ret_args], 0 to exit successfully, or -EINVAL after a usage message. */
static int parse_argv(int argc, char **argv, int *ret_cmd, int *ret_args)
{
    int r, cmd, args;

    r = parse_options(argc, argv, "+c:s:vhV");
    if (r <= 0)
        return r;
    if (optind >= argc) {
        ctl_error("no command given; try --help");
        return -EINVAL;
    }
    cmd = optind;
    args = cmd + 1;
    if (!parses_own_words(argv[cmd])) {
        /* The words from the command on, permuted this time; their argv[0]
         * is what getopt names in its messages, so ours for the while. */
        char *name = argv[cmd];

        argv[cmd] = argv[0];
        optind = 0; /* a new vector: getopt starts over */
        r = parse_options(argc - cmd, argv + cmd, "c:s:vhV");
        argv[cmd] = name;
        if (r <= 0)
            return r;
        args = cmd + optind;
    }
    if (arg_config && arg_socket) {
        ctl_error("-c and -s exclude each other");
        return -EINVAL;
    }
    *ret_cmd = cmd;
    *ret_args = args;
    return 1;
}

int main(int argc, char **argv)
{
    const struct ctl_command *cmd = NULL;
    int r, n_args, i_cmd = 0, i_args = 0;

    r = parse_argv(argc, argv, &i_cmd, &i_args);
    if (r <= 0)
        return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    for (size_t i = 0; i < NQ_ELEMENTSOF(commands) && !cmd; i++)
        if (strcmp(commands[i].name, argv[i_cmd]) == 0)
            cmd = &commands[i];
    if (!cmd) {
        ctl_error("unknown command '%s'; try --help", argv[i_cmd]);
        return CTL_EXIT_USAGE;
    }
    n_args = argc - i_args;
    if (cmd->n_args >= 0 && n_args != cmd->n_args) {
        ctl_error("usage: notifyqctl %s%s%s", cmd->name, cmd->n_args ? " " : "", cmd->args);
        return CTL_EXIT_USAGE;
    }
    r = cmd->run(argv + i_args);
    free(socket_path);
    free(socket_group);
    if (fflush(stdout) != 0 && r == CTL_EXIT_OK) {
        ctl_error("write error: %m");
        return CTL_EXIT_DEGRADED;
    }
    return r;
}
