/* SPDX-License-Identifier: MIT */
/*
 * The async store: two hiredis connections on the worker's libevent loop;
 * see store.h.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"
#include "queue/internal.h"
#include "queue/replyarena.h"
#include "queue/store.h"

#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
/* A command connection with requests out and no reply for this long is
 * taken for dead and made anew: a black-holed network keeps a socket open
 * and silent for as long as TCP keepalive allows (hours), and a worker
 * waiting on it renews no lock and finishes no job. Replies it loses are
 * the same as after a reset: finishes are sent again, flagged as such.
 * Far above any script of ours on a healthy server, which takes ms. */
#define REPLY_DEADLINE_MS 10000

/* SETUP: the socket is connected, AUTH/SELECT/SCRIPT LOAD... are in flight.
 * Only their success makes a connection UP: a server still loading its AOF
 * accepts connections but refuses scripts. */
/* ASKING: redis.sentinel is set and the sentinels are being asked for the
 * master, before every connect (a failover moves it). */
enum conn_state { CONN_DOWN, CONN_ASKING, CONN_CONNECTING, CONN_SETUP, CONN_UP };

struct conn {
    struct nq_store *s;
    redisAsyncContext *ac;
    enum conn_state state;
    bool blocking;
    bool failing;           /* a failure was logged; the next ones are not */
    bool setup_failed;      /* this connection is being dropped */
    bool not_ready;         /* "server not ready" was logged; until it is */
    unsigned setup_pending; /* setup replies still to come */
    struct event *timer;    /* connect timeout while CONNECTING and SETUP, retry while DOWN */
    uint64_t retry_ms;
    struct nq_sentinel_ask *ask; /* while ASKING */
    char *master_host;           /* as the sentinels named it last */
    uint16_t master_port;
    struct nq_tls_relay *relay; /* redis.tls: between ac and the server */
};

enum req_kind {
    REQ_WORK,
    REQ_EXTEND,
    REQ_STALLED,
    REQ_RECOVER,
    REQ_SCHEDULER,
    REQ_COUNTS,
    REQ_MARKER,
    REQ_ADD,
    REQ_PUBLISH,
};

/* Spare argument buffers kept: one per work call in flight, and one more. */
#define NQ_STORE_SPARE_ARGS 3

struct req {
    struct nq_store *s;
    enum req_kind kind;
    enum nq_script script;
    struct nq_args args;
    bool retried;
    union {
        nq_store_work_fn work;
        nq_store_ids_fn ids;
        nq_store_marker_fn marker;
        nq_store_counts_fn counts;
        nq_store_publish_fn publish;
    } cb;
    void *userdata;
};

struct nq_store {
    struct event_base *base;
    struct nq_keys keys;
    char *worker_name, *token_prefix, *client_name, *where;
    char *socket, *host, *username, *password;
    uint16_t port;
    uint32_t db;
    uint64_t connect_timeout_ms;
    struct nq_sentinel_cfg sentinel; /* master_name NULL: none */
    struct nq_tls *tls;              /* NULL: plain TCP or unix socket */
    uint64_t lock_ms, limiter_ms, token_seq;
    uint32_t limiter_max;
    struct conn cmd, blk;
    nq_store_state_fn on_state;
    void *userdata;
    bool reported_up;
    bool freeing;
    bool server_busy; /* a transient error was logged; the next ones are not */
    /* Why the server refuses our setup (wrong password, unknown user...),
     * "" when it does not: shown by the worker's status. */
    char problem[256];
    struct event *watchdog;
    bool watchdog_fired;
    struct req *marker_req;
    /* The command connection's requests without a reply yet, and when the
     * last reply came (or the first request went out while none were). */
    unsigned cmd_pending;
    uint64_t cmd_progress_ms;
    struct event *reply_deadline;
    /* Argument buffers of finished requests, for the next ones: a work call
     * of 50 finishes needs ~10 KiB, and a fresh block of that size made
     * glibc consolidate its free lists on every call. */
    struct nq_args spare[NQ_STORE_SPARE_ARGS];
    unsigned n_spare;
};

uint64_t nq_store_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ---- connections ----------------------------------------------------------- */

static void conn_start(struct conn *c);

static const char *conn_name(const struct conn *c)
{
    return c->blocking ? "blocking" : "command";
}

static void report_state(struct nq_store *s)
{
    bool up = s->cmd.state == CONN_UP && s->blk.state == CONN_UP;

    if (up == s->reported_up || s->freeing)
        return;
    s->reported_up = up;
    if (s->on_state)
        s->on_state(s->userdata, up);
}

/* Logs the first failure of a series at warning, the rest at debug. */
static void log_failure(struct conn *c, const char *what, const char *why)
{
    nq_log(c->failing ? LOG_DEBUG : LOG_WARNING,
           "redis %s: %s connection %s: %s, retrying in %" PRIu64 "ms", c->s->where, conn_name(c),
           what, why, c->retry_ms);
    c->failing = true;
}

static void schedule_retry(struct conn *c)
{
    struct timeval tv = { .tv_sec = (time_t) (c->retry_ms / 1000),
                          .tv_usec = (suseconds_t) (c->retry_ms % 1000) * 1000 };

    c->state = CONN_DOWN;
    c->ac = NULL;
    c->relay = nq_tls_relay_free(c->relay);
    evtimer_add(c->timer, &tv);
    c->retry_ms = c->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->retry_ms * 2;
    report_state(c->s);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    if (status != REDIS_OK) {
        evtimer_del(c->timer);
        log_failure(c, "failed", ac->errstr);
        schedule_retry(c); /* hiredis frees ac after this callback */
        return;
    }
    c->state = CONN_SETUP; /* the connect timer now guards the setup */
}

static void setup_done(struct conn *c)
{
    evtimer_del(c->timer);
    nq_log(LOG_INFO, "redis %s: %s connection up", c->s->where, conn_name(c));
    c->failing = c->not_ready = false;
    c->state = CONN_UP;
    c->retry_ms = RETRY_MIN_MS;
    c->s->problem[0] = '\0';
    report_state(c->s);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    if (c->s->freeing)
        return;
    if (c->setup_failed) /* said already why */
        c->failing = true;
    log_failure(c, "lost", status == REDIS_OK ? "closed" : ac->errstr);
    schedule_retry(c);
}

static bool is_auth_error(const char *what, const char *msg)
{
    return strcmp(what, "AUTH") == 0 || strncmp(msg, "NOAUTH", 6) == 0 ||
           strncmp(msg, "WRONGPASS", 9) == 0 || strncmp(msg, "NOPERM", 6) == 0;
}

/* The server refuses our setup: logged at error once per new reason (both
 * connections retry every few seconds), and shown in the status. */
static void refused(struct nq_store *s, const char *what, const char *msg)
{
    char problem[sizeof(s->problem)];

    if (strcmp(what, "TLS") == 0)
        (void) snprintf(problem, sizeof(problem), "redis %s: TLS: %s", s->where, msg);
    else if (is_auth_error(what, msg))
        (void) snprintf(problem, sizeof(problem), "redis %s: authentication failed: %s", s->where,
                        msg);
    else
        (void) snprintf(problem, sizeof(problem), "redis %s: %s: %s", s->where, what, msg);
    if (strcmp(problem, s->problem) == 0) {
        nq_log(LOG_DEBUG, "%s", problem);
        return;
    }
    nq_log(LOG_ERR, "%s", problem);
    memcpy(s->problem, problem, sizeof(problem));
    if (s->on_state && !s->reported_up && !s->freeing)
        s->on_state(s->userdata, false);
}

/* An error on a connection's setup or script reload: wrong password, db, a
 * server refusing scripts, or one still loading its dataset. Nothing works
 * on this connection; drop it and try again later. */
static void setup_error(struct conn *c, redisAsyncContext *ac, const char *what,
                        const redisReply *r)
{
    if (c->setup_failed)
        return;
    c->setup_failed = true;
    if (nq_reply_is_transient(r)) {
        /* Logged even after a "connection lost": it says why we wait. */
        nq_log(c->not_ready ? LOG_DEBUG : LOG_NOTICE,
               "redis %s: %s connection: server not ready: %s, retrying in %" PRIu64 "ms",
               c->s->where, conn_name(c), r->str, c->retry_ms);
        c->not_ready = c->failing = true;
    } else {
        refused(c->s, what, r->str);
    }
    redisAsyncDisconnect(ac);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    const redisReply *r = reply;
    struct conn *c = ac->data;

    if (!r)
        return; /* the connection is gone: its disconnect callback retries */
    if (r->type == REDIS_REPLY_ERROR)
        setup_error(c, ac, privdata, r);
    else if (--c->setup_pending == 0 && c->state == CONN_SETUP && !c->setup_failed)
        setup_done(c);
}

/* ROLE on a server the sentinels named: a failover may have demoted it
 * since, and the sentinels not noticed yet. */
static void on_role_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    const redisReply *r = reply;
    struct conn *c = ac->data;

    if (!r || r->type == REDIS_REPLY_ERROR || nq_reply_is_master(r)) {
        on_setup_reply(ac, reply, privdata);
        return;
    }
    if (c->setup_failed)
        return;
    c->setup_failed = true;
    nq_log(LOG_NOTICE, "redis %s: %s connection: %s:%u is not the master (%s), asking again",
           c->s->where, conn_name(c), c->master_host, c->master_port,
           r->type == REDIS_REPLY_ARRAY && r->elements && r->element[0]->type == REDIS_REPLY_STRING
               ? r->element[0]->str
               : "?");
    redisAsyncDisconnect(ac);
}

static void on_reload_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    const redisReply *r = reply;

    if (r && r->type == REDIS_REPLY_ERROR)
        setup_error(ac->data, ac, privdata, r);
}

NQ_PRINTF(3, 4)
static void setup_command(struct conn *c, const char *what, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (redisvAsyncCommand(c->ac, on_setup_reply, (void *) what, fmt, ap) == REDIS_OK)
        c->setup_pending++;
    va_end(ap);
}

static void send_setup(struct conn *c)
{
    struct nq_store *s = c->s;

    c->setup_pending = 0;
    c->setup_failed = false;
    if (s->password) {
        if (s->username)
            setup_command(c, "AUTH", "AUTH %s %s", s->username, s->password);
        else
            setup_command(c, "AUTH", "AUTH %s", s->password);
    }
    if (s->db)
        setup_command(c, "SELECT", "SELECT %u", s->db);
    if (s->sentinel.master_name &&
        redisAsyncCommand(c->ac, on_role_reply, (void *) "ROLE", "ROLE") == REDIS_OK)
        c->setup_pending++;
    if (c->blocking) {
        setup_command(c, "CLIENT SETNAME", "CLIENT SETNAME %s", s->client_name);
        return;
    }
    for (int i = 0; i < NQ_SCRIPT__COUNT; i++)
        setup_command(c, "SCRIPT LOAD", "SCRIPT LOAD %s", nq_script_source((enum nq_script) i));
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void) fd, (void) what;
    if (c->state == CONN_CONNECTING) {
        log_failure(c, "failed", "timed out");
        redisAsyncFree(c->ac); /* not connected: no disconnect callback */
        schedule_retry(c);
        return;
    }
    if (c->state == CONN_SETUP) {
        log_failure(c, "setup failed", "timed out");
        redisAsyncFree(c->ac); /* connected: its disconnect callback retries */
        return;
    }
    conn_start(c);
}

/* The TLS session failed (or ended): hiredis sees its socket close next;
 * this says why. */
static void on_tls_event(void *userdata, int r, const char *why)
{
    struct conn *c = userdata;

    if (r == 0 || c->s->freeing)
        return;
    c->setup_failed = true; /* the "connection lost" that follows says nothing more */
    refused(c->s, "TLS", why);
}

static redisAsyncContext *tls_connect(struct conn *c, const char *host, uint16_t port)
{
    char why[256];
    redisAsyncContext *ac = nq_tls_async_connect(c->s->base, c->s->tls, host, port, on_tls_event, c,
                                                 &c->relay, why, sizeof(why));

    if (!ac) {
        log_failure(c, "failed", why);
        schedule_retry(c);
    }
    return ac;
}

static void conn_connect(struct conn *c)
{
    struct nq_store *s = c->s;
    const char *host = c->master_host ? c->master_host : s->host;
    uint16_t port = c->master_host ? c->master_port : s->port;
    redisAsyncContext *ac = s->socket ? redisAsyncConnectUnix(s->socket)
                            : s->tls  ? tls_connect(c, host, port)
                                      : redisAsyncConnect(host, port);

    if (s->tls && !ac)
        return;
    if (!ac || ac->err) {
        log_failure(c, "failed", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    ac->c.reader->fn = &nq_reply_arena_fns;
    c->ac = ac;
    c->state = CONN_CONNECTING;
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    send_setup(c);
    struct timeval tv = { .tv_sec = (time_t) (s->connect_timeout_ms / 1000),
                          .tv_usec = (suseconds_t) (s->connect_timeout_ms % 1000) * 1000 };
    evtimer_add(c->timer, &tv);
}

/* Takes note of the master the sentinels named. Returns 0 or -ENOMEM. */
static int master_named(struct conn *c, const char *host, uint16_t port, const char *node)
{
    bool moved = !c->master_host || strcmp(c->master_host, host) != 0 || c->master_port != port;
    char *copy = strdup(host);

    if (!copy)
        return -ENOMEM;
    free(c->master_host);
    c->master_host = copy;
    c->master_port = port;
    nq_log(moved ? LOG_INFO : LOG_DEBUG,
           "redis %s: %s connection: the master is %s:%u (from sentinel %s)", c->s->where,
           conn_name(c), host, port, node);
    return 0;
}

static void on_master_named(void *userdata, int r, const char *host, uint16_t port, const char *why)
{
    struct conn *c = userdata;
    char msg[256] = "out of memory";

    /* host and why may point into the ask: used before it is freed */
    if (r == -EHOSTUNREACH)
        (void) snprintf(msg, sizeof(msg), "no sentinel named the master: %s", why);
    else if (r == 0)
        r = master_named(c, host, port, why);
    c->ask = nq_sentinel_ask_free(c->ask);
    if (r == 0) {
        conn_connect(c);
        return;
    }
    log_failure(c, "failed", msg);
    schedule_retry(c);
}

static void conn_start(struct conn *c)
{
    struct nq_store *s = c->s;

    if (!s->sentinel.master_name) {
        conn_connect(c);
        return;
    }
    c->ask = nq_sentinel_ask_new(s->base, &s->sentinel, s->connect_timeout_ms, on_master_named, c);
    if (!c->ask) {
        log_failure(c, "failed", "out of memory");
        schedule_retry(c);
        return;
    }
    c->state = CONN_ASKING;
}

/* ---- lifetime --------------------------------------------------------------- */

static int copy_sentinel(struct nq_sentinel_cfg *dst, const struct nq_sentinel_cfg *src)
{
    if (!src->master_name)
        return 0;
    if (!(dst->master_name = strdup(src->master_name)) ||
        (src->password && !(dst->password = strdup(src->password))) ||
        !(dst->nodes = calloc(src->n_nodes + 1, sizeof(char *))))
        return -ENOMEM;
    for (; dst->n_nodes < src->n_nodes; dst->n_nodes++)
        if (!(dst->nodes[dst->n_nodes] = strdup(src->nodes[dst->n_nodes])))
            return -ENOMEM;
    return 0;
}

static void free_sentinel(struct nq_sentinel_cfg *sc)
{
    for (size_t i = 0; i < sc->n_nodes; i++)
        free(sc->nodes[i]);
    free(sc->nodes);
    free(sc->master_name);
    free(sc->password);
}

static int copy_redis(struct nq_store *s, const struct nq_redis_cfg *r)
{
    s->port = r->port ? r->port : 6379;
    s->db = r->db;
    s->connect_timeout_ms = r->connect_timeout_ms ? r->connect_timeout_ms : 5000;
    if ((r->socket && !(s->socket = strdup(r->socket))) ||
        !(s->host = strdup(r->host ? r->host : "127.0.0.1")) ||
        (r->username && !(s->username = strdup(r->username))) ||
        (r->password && !(s->password = strdup(r->password))) ||
        copy_sentinel(&s->sentinel, &r->sentinel) < 0)
        return -ENOMEM;
    if (r->tls.enabled) {
        struct nq_err err = { "" };
        int k = nq_tls_new(&r->tls, &s->tls, &err);
        if (k < 0) {
            if (k != -ENOMEM)
                nq_log(LOG_ERR, "%s", nq_err_str(&err));
            return k;
        }
    }
    int n = s->sentinel.master_name ? asprintf(&s->where, "sentinel %s", s->sentinel.master_name)
            : s->socket             ? asprintf(&s->where, "unix:%s", s->socket)
                                    : asprintf(&s->where, "%s:%u", s->host, s->port);
    if (n < 0) {
        s->where = NULL;
        return -ENOMEM;
    }
    return 0;
}

static int init_names(struct nq_store *s, const struct nq_store_opts *o)
{
    if (nq_keys_init(&s->keys, o->redis->prefix ? o->redis->prefix : "bull", o->queue) < 0)
        return -EINVAL;
    if ((o->worker_name && !(s->worker_name = strdup(o->worker_name))) ||
        !(s->token_prefix = strdup(o->token_prefix ? o->token_prefix : "")) ||
        !(s->client_name = nq_keys_worker_client_name(&s->keys, o->worker_name)))
        return -ENOMEM;
    return 0;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg);
static void on_reply_deadline(evutil_socket_t fd, short what, void *arg);

static int init_conn(struct nq_store *s, struct conn *c, bool blocking)
{
    c->s = s;
    c->blocking = blocking;
    c->retry_ms = RETRY_MIN_MS;
    c->timer = evtimer_new(s->base, on_conn_timer, c);
    return c->timer ? 0 : -ENOMEM;
}

struct nq_store *nq_store_new(struct event_base *base, const struct nq_store_opts *o,
                              nq_store_state_fn on_state, void *userdata)
{
    struct nq_store *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->base = base;
    s->lock_ms = o->lock_duration_ms ? o->lock_duration_ms : 30000;
    s->limiter_max = o->limiter_max;
    s->limiter_ms = o->limiter_duration_ms;
    s->on_state = on_state;
    s->userdata = userdata;
    s->token_seq = 1;
    if (copy_redis(s, o->redis) < 0 || init_names(s, o) < 0 || init_conn(s, &s->cmd, false) < 0 ||
        init_conn(s, &s->blk, true) < 0 || !(s->watchdog = evtimer_new(base, on_watchdog, s)) ||
        !(s->reply_deadline = event_new(base, -1, EV_PERSIST, on_reply_deadline, s)))
        return nq_store_free(s);
    struct timeval second = { .tv_sec = 1 };
    evtimer_add(s->reply_deadline, &second);
    conn_start(&s->cmd);
    conn_start(&s->blk);
    return s;
}

static void conn_close(struct conn *c)
{
    c->ask = nq_sentinel_ask_free(c->ask);
    free(c->master_host);
    if (c->timer)
        event_free(c->timer);
    if (c->ac)
        redisAsyncFree(c->ac); /* runs pending callbacks with a NULL reply */
    c->ac = NULL;
    c->relay = nq_tls_relay_free(c->relay);
}

struct nq_store *nq_store_free(struct nq_store *s)
{
    if (!s)
        return NULL;
    s->freeing = true;
    conn_close(&s->blk);
    conn_close(&s->cmd);
    if (s->watchdog)
        event_free(s->watchdog);
    if (s->reply_deadline)
        event_free(s->reply_deadline);
    while (s->n_spare)
        nq_args_done(&s->spare[--s->n_spare]);
    nq_keys_done(&s->keys);
    free(s->worker_name);
    free(s->token_prefix);
    free(s->client_name);
    free(s->where);
    free(s->socket);
    free(s->host);
    free(s->username);
    free(s->password);
    free_sentinel(&s->sentinel);
    nq_tls_free(s->tls);
    free(s);
    return NULL;
}

bool nq_store_connected(const struct nq_store *s)
{
    return s->cmd.state == CONN_UP && s->blk.state == CONN_UP;
}

const char *nq_store_problem(const struct nq_store *s)
{
    return s->problem[0] ? s->problem : NULL;
}

/* ---- requests --------------------------------------------------------------- */

static struct req *req_new(struct nq_store *s, enum req_kind kind, enum nq_script script)
{
    struct req *q = calloc(1, sizeof(*q));

    if (!q)
        return NULL;
    q->s = s;
    q->kind = kind;
    q->script = script;
    if (s->n_spare)
        q->args = s->spare[--s->n_spare];
    else
        nq_args_init(&q->args);
    return q;
}

static void req_free(struct req *q)
{
    struct nq_store *s = q->s;

    if (s->n_spare < NQ_STORE_SPARE_ARGS && !s->freeing) {
        nq_args_reset(&q->args);
        s->spare[s->n_spare++] = q->args;
    } else {
        nq_args_done(&q->args);
    }
    free(q);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Drops c at once. redisAsyncDisconnect would wait for the replies still
 * due, which a silent peer never sends; a shut socket reads as EOF, so
 * hiredis runs its usual path for a lost connection: each pending callback
 * gets a NULL reply, then the disconnect callback retries. */
static void conn_abort(struct conn *c)
{
    shutdown(c->ac->c.fd, SHUT_RDWR);
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void on_reply_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct nq_store *s = arg;

    (void) fd, (void) what;
    if (!s->cmd_pending || s->cmd.state != CONN_UP ||
        monotonic_ms() - s->cmd_progress_ms < REPLY_DEADLINE_MS)
        return;
    nq_log(LOG_WARNING, "redis %s: no reply to %u command%s in %d s, reconnecting", s->where,
           s->cmd_pending, s->cmd_pending == 1 ? "" : "s", REPLY_DEADLINE_MS / 1000);
    conn_abort(&s->cmd);
}

static int req_send(struct req *q)
{
    struct conn *c = &q->s->cmd;
    const char *cmd;
    size_t len;
    int r;

    if (c->state != CONN_UP)
        return -ENOTCONN;
    if ((r = nq_args_resp(&q->args, &cmd, &len)) < 0)
        return r;
    if (redisAsyncFormattedCommand(c->ac, on_reply, q, cmd, len) != REDIS_OK)
        return -ENOTCONN;
    if (!q->s->cmd_pending++)
        q->s->cmd_progress_ms = monotonic_ms();
    return 0;
}

/* Sends q, or frees it and returns the error. */
static int req_submit(struct req *q)
{
    int r = req_send(q);

    if (r < 0)
        req_free(q);
    return r;
}

/* A server saying "not now" (loading its AOF, busy with a script) is logged
 * once per series; the caller retries, so it is no script error. */
static int transient_error(struct nq_store *s, const redisReply *r)
{
    nq_log(s->server_busy ? LOG_DEBUG : LOG_WARNING, "redis %s: %s, retrying", s->where, r->str);
    s->server_busy = true;
    return -EAGAIN;
}

/* A replica refused a write: the server we talk to was demoted (a
 * failover). Nothing was written; drop the connection, which finds the new
 * master (redis.sentinel) or waits for this one to be master again. */
static bool readonly(struct nq_store *s, struct conn *c, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ERROR ||
        (strncmp(r->str, "READONLY ", 9) != 0 && !strstr(r->str, " READONLY ")))
        return false;
    if (c->state == CONN_UP && !c->setup_failed) {
        /* Once per series, as transient errors (until a call succeeds). */
        nq_log(s->server_busy ? LOG_DEBUG : LOG_NOTICE,
               "redis %s: %s connection: the server is a replica now, reconnecting", s->where,
               conn_name(c));
        s->server_busy = true;
        c->setup_failed = true; /* refuse new calls until reconnected */
        c->state = CONN_SETUP;  /* the disconnect callback reports the state */
        redisAsyncDisconnect(c->ac);
    }
    return true;
}

static int reply_error(const struct req *q, const redisReply *r)
{
    if (q->s->freeing)
        return -ECANCELED;
    if (!r)
        return -ECONNRESET;
    if (readonly(q->s, &q->s->cmd, r))
        return -EAGAIN;
    if (nq_reply_is_transient(r))
        return transient_error(q->s, r);
    if (r->type != REDIS_REPLY_ERROR && q->s->server_busy) {
        nq_log(LOG_INFO, "redis %s: answering again", q->s->where);
        q->s->server_busy = false;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        nq_log(LOG_ERR, "redis %s: script %s: %s", q->s->where, nq_script_name(q->script), r->str);
        return -EIO;
    }
    return 0;
}

static void finish_work(struct req *q, const redisReply *r)
{
    struct nq_work_result res = { 0 };
    int k = reply_error(q, r);

    if (k == 0 && (k = nq_reply_work(r, &res)) == -EPROTO)
        nq_log(LOG_ERR, "redis %s: script work: unexpected reply", q->s->where);
    q->cb.work(q->userdata, k, k < 0 ? NULL : &res);
    nq_work_result_done(&res);
}

static void finish_counts(struct req *q, const redisReply *r)
{
    struct nq_counts c;
    int k = reply_error(q, r);

    if (k == 0 && (k = nq_reply_counts(r, &c)) == -EPROTO)
        nq_log(LOG_ERR, "redis %s: script counts: unexpected reply", q->s->where);
    q->cb.counts(q->userdata, k, k < 0 ? NULL : &c);
}

static void finish_publish(struct req *q, const redisReply *r)
{
    int k = reply_error(q, r);

    if (k == 0 && r->type != REDIS_REPLY_INTEGER) {
        nq_log(LOG_ERR, "redis %s: script publish: unexpected reply", q->s->where);
        k = -EPROTO;
    }
    if (k == 0)
        k = r->integer < 0 ? -EALREADY : (int) (r->integer > INT32_MAX ? INT32_MAX : r->integer);
    q->cb.publish(q->userdata, k);
}

/* Collects the string ids of one or two array replies (borrowed). */
static int collect_ids(const redisReply *a, const redisReply *b, char ***ret, size_t *ret_n)
{
    size_t n = (a ? a->elements : 0) + (b ? b->elements : 0), k = 0;
    char **ids = calloc(n + 1, sizeof(char *));

    if (!ids)
        return -ENOMEM;
    for (int part = 0; part < 2; part++) {
        const redisReply *x = part ? b : a;
        for (size_t i = 0; x && i < x->elements; i++)
            if (x->element[i]->type == REDIS_REPLY_STRING)
                ids[k++] = x->element[i]->str;
    }
    *ret = ids;
    *ret_n = k;
    return 0;
}

static int parse_extend(struct req *q, const redisReply *r, char ***ids, size_t *n)
{
    size_t lost = 0, renewed = 0;

    if (r->type != REDIS_REPLY_ARRAY)
        return -EPROTO;
    char **v = calloc(r->elements + 1, sizeof(char *));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer == 1)
            renewed++;
        else /* ids sit after EVALSHA sha 1 key base lock_ms */
            v[lost++] = q->args.buf + q->args.off[6 + 2 * i];
    }
    *ids = v;
    *n = lost;
    return (int) renewed;
}

static int parse_pairs(struct req *q, const redisReply *r, char ***ids, size_t *n)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return -EPROTO;
    if (q->kind == REQ_STALLED && r->elements == 0)
        return collect_ids(NULL, NULL, ids, n);
    if (r->elements != 2)
        return -EPROTO;
    if (q->kind == REQ_SCHEDULER) {
        const redisReply *id = r->element[0], *st = r->element[1];
        if (id->type != REDIS_REPLY_STRING || st->type != REDIS_REPLY_STRING)
            return -EPROTO;
        int k = collect_ids(NULL, NULL, ids, n);
        if (k == 0 && id->len > 0)
            (*ids)[(*n)++] = id->str;
        return k < 0 ? k : strcmp(st->str, "added") == 0;
    }
    int k = collect_ids(r->element[0], q->kind == REQ_RECOVER ? r->element[1] : NULL, ids, n);
    return k < 0 ? k : (int) *n;
}

static void finish_ids(struct req *q, const redisReply *r)
{
    char **ids = NULL;
    size_t n = 0;
    int k = reply_error(q, r);

    if (k == 0)
        k = q->kind == REQ_EXTEND ? parse_extend(q, r, &ids, &n) : parse_pairs(q, r, &ids, &n);
    if (k == -EPROTO)
        nq_log(LOG_ERR, "redis %s: script %s: unexpected reply", q->s->where,
               nq_script_name(q->script));
    q->cb.ids(q->userdata, k, k < 0 ? NULL : ids, k < 0 ? 0 : n);
    free(ids);
}

/* The fanout script's reply: { added, { ids already there } }, or -1. */
static int parse_add(const redisReply *r, char ***ret_ids, size_t *ret_n)
{
    const redisReply *ex;
    char **ids;

    if (r->type == REDIS_REPLY_INTEGER && r->integer == -1)
        return -ENOENT;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[0]->integer < 0 ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
        return -EPROTO;
    ex = r->element[1];
    if (!(ids = calloc(ex->elements + 1, sizeof(char *))))
        return -ENOMEM;
    *ret_ids = ids; /* the caller frees it */
    for (size_t i = 0; i < ex->elements; i++) {
        if (ex->element[i]->type != REDIS_REPLY_STRING)
            return -EPROTO;
        ids[i] = ex->element[i]->str;
    }
    *ret_n = ex->elements;
    return (int) r->element[0]->integer;
}

static void finish_add(struct req *q, const redisReply *r)
{
    char **ids = NULL;
    size_t n = 0;
    int k = reply_error(q, r);

    if (k == 0)
        k = parse_add(r, &ids, &n);
    if (k == -EPROTO)
        nq_log(LOG_ERR, "redis %s: script fanout: unexpected reply", q->s->where);
    q->cb.ids(q->userdata, k, k < 0 ? NULL : ids, k < 0 ? 0 : n);
    free(ids);
}

/* NOSCRIPT: the server lost our scripts (restart, SCRIPT FLUSH). Load the
 * script and send the same call again behind it on the same connection. */
static bool retry_noscript(struct req *q, const redisReply *r)
{
    if (!nq_reply_is_noscript(r) || q->retried || q->s->freeing)
        return false;
    struct conn *c = &q->s->cmd;
    q->retried = true;
    if (c->state != CONN_UP)
        return false;
    redisAsyncCommand(c->ac, on_reload_reply, "SCRIPT LOAD", "SCRIPT LOAD %s",
                      nq_script_source(q->script));
    return req_send(q) == 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct req *q = privdata;
    const redisReply *r = reply;

    (void) ac;
    q->s->cmd_pending--;
    q->s->cmd_progress_ms = monotonic_ms();
    if (retry_noscript(q, r))
        return;
    if (q->kind == REQ_WORK)
        finish_work(q, r);
    else if (q->kind == REQ_ADD)
        finish_add(q, r);
    else if (q->kind == REQ_COUNTS)
        finish_counts(q, r);
    else if (q->kind == REQ_PUBLISH)
        finish_publish(q, r);
    else
        finish_ids(q, r);
    req_free(q);
}

/* ---- operations --------------------------------------------------------------- */

int nq_store_work(struct nq_store *s, const struct nq_finish *fin, size_t n_fin, uint32_t fetch_max,
                  nq_store_work_fn cb, void *userdata)
{
    if (n_fin > NQ_STORE_BATCH_MAX || fetch_max > NQ_STORE_BATCH_MAX)
        return -E2BIG;
    if (s->cmd.state != CONN_UP)
        return -ENOTCONN;
    struct req *q = req_new(s, REQ_WORK, NQ_SCRIPT_WORK);
    if (!q)
        return -ENOMEM;
    struct nq_work_args w = {
        .now_ms = nq_store_now_ms(),
        .lock_duration_ms = s->lock_ms,
        .token_prefix = s->token_prefix,
        .token_seq = s->token_seq,
        .fetch_max = fetch_max,
        .worker_name = s->worker_name,
        .limiter_max = s->limiter_max,
        .limiter_duration_ms = s->limiter_ms,
    };
    s->token_seq += fetch_max;
    nq_args_work(&q->args, &s->keys, &w, fin, n_fin);
    q->cb.work = cb;
    q->userdata = userdata;
    return req_submit(q);
}

int nq_store_extend(struct nq_store *s, struct nq_job *const *jobs, size_t n, nq_store_ids_fn cb,
                    void *userdata)
{
    if (s->cmd.state != CONN_UP)
        return -ENOTCONN;
    struct req *q = req_new(s, REQ_EXTEND, NQ_SCRIPT_EXTEND);
    if (!q)
        return -ENOMEM;
    nq_args_script(&q->args, NQ_SCRIPT_EXTEND, &s->keys);
    nq_args_addu(&q->args, s->lock_ms);
    for (size_t i = 0; i < n; i++) {
        nq_args_adds(&q->args, jobs[i]->id);
        nq_args_adds(&q->args, jobs[i]->token ? jobs[i]->token : "");
    }
    q->cb.ids = cb;
    q->userdata = userdata;
    return req_submit(q);
}

int nq_store_stalled_check(struct nq_store *s, uint64_t interval_ms, uint32_t max_stalled,
                           nq_store_ids_fn cb, void *userdata)
{
    if (s->cmd.state != CONN_UP)
        return -ENOTCONN;
    struct req *q = req_new(s, REQ_STALLED, NQ_SCRIPT_STALLED);
    if (!q)
        return -ENOMEM;
    nq_args_script(&q->args, NQ_SCRIPT_STALLED, &s->keys);
    nq_args_addu(&q->args, nq_store_now_ms());
    nq_args_addu(&q->args, interval_ms ? interval_ms : 30000);
    nq_args_addu(&q->args, max_stalled);
    q->cb.ids = cb;
    q->userdata = userdata;
    return req_submit(q);
}

static int recover_or_release(struct nq_store *s, const char *token_prefix, uint32_t max_stalled,
                              const char *signal_name, uint32_t max_crashes, const char *keep,
                              bool release, nq_store_ids_fn cb, void *userdata)
{
    if (!token_prefix || !*token_prefix)
        return -EINVAL; /* an empty prefix would match every lock */
    if (s->cmd.state != CONN_UP)
        return -ENOTCONN;
    struct req *q = req_new(s, REQ_RECOVER, NQ_SCRIPT_RECOVER);
    if (!q)
        return -ENOMEM;
    nq_args_script(&q->args, NQ_SCRIPT_RECOVER, &s->keys);
    nq_args_addu(&q->args, nq_store_now_ms());
    nq_args_adds(&q->args, token_prefix);
    nq_args_addu(&q->args, max_stalled);
    nq_args_adds(&q->args, signal_name ? signal_name : "");
    nq_args_addu(&q->args, max_crashes);
    nq_args_adds(&q->args, keep ? keep : "");
    nq_args_adds(&q->args, release ? "1" : "0");
    q->cb.ids = cb;
    q->userdata = userdata;
    return req_submit(q);
}

int nq_store_recover(struct nq_store *s, const char *token_prefix, uint32_t max_stalled,
                     const char *signal_name, uint32_t max_crashes, const char *keep,
                     nq_store_ids_fn cb, void *userdata)
{
    return recover_or_release(s, token_prefix, max_stalled, signal_name, max_crashes, keep, false,
                              cb, userdata);
}

int nq_store_release(struct nq_store *s, const char *token_prefix, nq_store_ids_fn cb,
                     void *userdata)
{
    return recover_or_release(s, token_prefix, 0, NULL, 0, NULL, true, cb, userdata);
}

int nq_store_scheduler_next(struct nq_store *s, const struct nq_job *job, uint64_t next_ms,
                            nq_store_ids_fn cb, void *userdata)
{
    if (!job->rjk)
        return -EINVAL;
    if (s->cmd.state != CONN_UP)
        return -ENOTCONN;
    struct req *q = req_new(s, REQ_SCHEDULER, NQ_SCRIPT_SCHEDULER);
    if (!q)
        return -ENOMEM;
    nq_args_script(&q->args, NQ_SCRIPT_SCHEDULER, &s->keys);
    nq_args_addu(&q->args, nq_store_now_ms());
    nq_args_adds(&q->args, job->rjk);
    nq_args_adds(&q->args, job->id);
    if (next_ms)
        nq_args_addu(&q->args, next_ms);
    else
        nq_args_adds(&q->args, "");
    q->cb.ids = cb;
    q->userdata = userdata;
    return req_submit(q);
}

int nq_store_add_batch(struct nq_store *s, const char *queue, const struct nq_add_job *jobs,
                       size_t n, const char *progress_id, const char *progress_json,
                       nq_store_ids_fn cb, void *userdata)
{
    struct nq_keys target;
    struct req *q;
    int r;

    if (n == 0 || n > NQ_STORE_BATCH_MAX)
        return -EINVAL;
    if (s->cmd.state != CONN_UP)
        return -ENOTCONN;
    if ((r = nq_keys_init(&target, s->keys.prefix, queue)) < 0)
        return r;
    q = req_new(s, REQ_ADD, NQ_SCRIPT_FANOUT);
    if (!q) {
        nq_keys_done(&target);
        return -ENOMEM;
    }
    nq_args_script(&q->args, NQ_SCRIPT_FANOUT, &target);
    nq_keys_done(&target);
    nq_args_addu(&q->args, nq_store_now_ms());
    nq_args_add(&q->args, s->keys.base, s->keys.base_len);
    nq_args_adds(&q->args, progress_id);
    nq_args_adds(&q->args, progress_json);
    for (size_t i = 0; i < n; i++) {
        nq_args_adds(&q->args, jobs[i].id);
        nq_args_adds(&q->args, jobs[i].name);
        nq_args_adds(&q->args, jobs[i].data_json);
        nq_args_adds(&q->args, jobs[i].opts_json);
    }
    q->cb.ids = cb;
    q->userdata = userdata;
    return req_submit(q);
}

int nq_store_counts(struct nq_store *s, nq_store_counts_fn cb, void *userdata)
{
    if (s->cmd.state != CONN_UP)
        return -ENOTCONN;
    struct req *q = req_new(s, REQ_COUNTS, NQ_SCRIPT_COUNTS);
    if (!q)
        return -ENOMEM;
    nq_args_script(&q->args, NQ_SCRIPT_COUNTS, &s->keys);
    q->cb.counts = cb;
    q->userdata = userdata;
    return req_submit(q);
}

int nq_store_publish_once(struct nq_store *s, const char *marker, const char *channel,
                          const char *message, uint64_t ttl_ms, nq_store_publish_fn cb,
                          void *userdata)
{
    if (s->cmd.state != CONN_UP)
        return -ENOTCONN;
    struct req *q = req_new(s, REQ_PUBLISH, NQ_SCRIPT_PUBLISH);
    size_t len = s->keys.base_len + strlen(marker) + 7;
    char *meta = malloc(s->keys.base_len + 5), *key = malloc(len);
    if (!q || !key || !meta) {
        free(key);
        free(meta);
        if (q)
            req_free(q);
        return -ENOMEM;
    }
    (void) snprintf(key, len, "%snqpub:%s", s->keys.base, marker);
    (void) snprintf(meta, s->keys.base_len + 5, "%smeta", s->keys.base);
    nq_args_adds(&q->args, "EVALSHA");
    nq_args_adds(&q->args, nq_script_sha(NQ_SCRIPT_PUBLISH));
    nq_args_adds(&q->args, "2");
    nq_args_adds(&q->args, meta);
    nq_args_adds(&q->args, key);
    nq_args_add(&q->args, s->keys.base, s->keys.base_len);
    nq_args_adds(&q->args, channel);
    nq_args_adds(&q->args, message);
    nq_args_addu(&q->args, ttl_ms ? ttl_ms : 1);
    free(key);
    free(meta);
    q->cb.publish = cb;
    q->userdata = userdata;
    return req_submit(q);
}

/* ---- the marker ----------------------------------------------------------- */

static void on_marker(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct nq_store *s = privdata;
    const redisReply *r = reply;
    struct req *q = s->marker_req;
    int k = 0;
    double score = 0;

    (void) ac;
    if (!q)
        return;
    s->marker_req = NULL;
    evtimer_del(s->watchdog);
    if (s->freeing)
        k = -ECANCELED;
    else if (!r)
        k = s->watchdog_fired ? -ETIMEDOUT : -ECONNRESET;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
             r->element[2]->type == REDIS_REPLY_STRING)
        k = 1, score = strtod(r->element[2]->str, NULL);
    else if (readonly(s, &s->blk, r))
        k = -EAGAIN;
    else if (nq_reply_is_transient(r))
        k = transient_error(s, r);
    else if (r->type != REDIS_REPLY_NIL)
        k = -EPROTO;
    s->watchdog_fired = false;
    q->cb.marker(q->userdata, k, score);
    req_free(q);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct nq_store *s = arg;

    (void) fd, (void) what;
    if (!s->marker_req || s->blk.state != CONN_UP)
        return;
    nq_log(LOG_WARNING, "redis %s: no reply to BZPOPMIN in time, reconnecting", s->where);
    s->watchdog_fired = true;
    conn_abort(&s->blk);
}

int nq_store_wait_marker(struct nq_store *s, uint64_t timeout_ms, nq_store_marker_fn cb,
                         void *userdata)
{
    char timeout[32], *key = NULL;

    if (s->marker_req)
        return -EBUSY;
    if (s->blk.state != CONN_UP)
        return -ENOTCONN;
    if (timeout_ms == 0)
        timeout_ms = 1; /* 0 would block forever */
    struct req *q = req_new(s, REQ_MARKER, NQ_SCRIPT__COUNT);
    if (!q || !(key = nq_keys_queue_key(&s->keys, "marker"))) {
        free(q);
        return -ENOMEM;
    }
    snprintf(timeout, sizeof(timeout), "%" PRIu64 ".%03" PRIu64, timeout_ms / 1000,
             timeout_ms % 1000);
    int r = redisAsyncCommand(s->blk.ac, on_marker, s, "BZPOPMIN %s %s", key, timeout);
    free(key);
    if (r != REDIS_OK) {
        req_free(q);
        return -ENOTCONN;
    }
    q->cb.marker = cb;
    q->userdata = userdata;
    s->marker_req = q;
    uint64_t guard = timeout_ms + 1000;
    struct timeval tv = { .tv_sec = (time_t) (guard / 1000),
                          .tv_usec = (suseconds_t) (guard % 1000) * 1000 };
    evtimer_add(s->watchdog, &tv);
    return 0;
}
