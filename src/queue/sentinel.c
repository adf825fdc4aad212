/* SPDX-License-Identifier: MIT */
/*
 * Finding the master through Redis Sentinel (redis.sentinel): ask each
 * sentinel in turn SENTINEL get-master-addr-by-name until one names the
 * master. See internal.h.
 *
 * The worker asks asynchronously on its own loop (hiredis async, one
 * sentinel at a time, each bounded by the connect timeout), so a dead or
 * silent sentinel never stalls lock renewal, metrics or transfers in
 * flight. notifyqctl asks synchronously, with the same bound per sentinel.
 * Whoever asks checks with ROLE that the server named is still the master:
 * the sentinels may not have noticed a failover yet.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/err.h"
#include "queue/internal.h"

int nq_host_port_split(const char *s, char **ret_host, uint16_t *ret_port)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t n;
    char *end;
    unsigned long port;

    if (!colon)
        return -EINVAL;
    n = (size_t) (colon - s);
    if (n >= 2 && s[0] == '[' && colon[-1] == ']')
        h++, n -= 2;
    port = strtoul(colon + 1, &end, 10);
    if (n == 0 || *end || end == colon + 1 || port == 0 || port > 65535)
        return -EINVAL;
    if (!(*ret_host = strndup(h, n)))
        return -ENOMEM;
    *ret_port = (uint16_t) port;
    return 0;
}

int nq_reply_master_addr(const redisReply *r, char **ret_host, uint16_t *ret_port)
{
    unsigned long port;
    char *end;

    if (r->type == REDIS_REPLY_NIL)
        return -ENOENT;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return -EPROTO;
    port = strtoul(r->element[1]->str, &end, 10);
    if (*end || port == 0 || port > 65535 || r->element[0]->len == 0)
        return -EPROTO;
    if (!(*ret_host = strdup(r->element[0]->str)))
        return -ENOMEM;
    *ret_port = (uint16_t) port;
    return 0;
}

int nq_reply_is_master(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
}

/* What a sentinel's answer means, for messages. */
static const char *answer_problem(int r, const redisReply *rep)
{
    if (r == -ENOENT)
        return "does not know the master name";
    if (rep->type == REDIS_REPLY_ERROR)
        return rep->str;
    return "unexpected reply";
}

/* ---- asynchronous ----------------------------------------------------------- */

struct nq_sentinel_ask {
    struct event_base *base;
    const struct nq_sentinel_cfg *cfg;
    uint64_t timeout_ms;
    size_t tried;
    redisAsyncContext *ac; /* the sentinel being asked */
    struct event *timer;   /* the next sentinel: at once after a failure, or on timeout */
    char why[200];         /* the last sentinel's problem */
    char *node;            /* the sentinel being asked, for messages */
    nq_sentinel_fn cb;
    void *userdata;
};

static void arm(struct nq_sentinel_ask *a, uint64_t ms)
{
    struct timeval tv = { .tv_sec = (time_t) (ms / 1000),
                          .tv_usec = (suseconds_t) (ms % 1000) * 1000 };

    evtimer_add(a->timer, &tv);
}

/* Closes the sentinel's connection; its callbacks, run now or later with
 * a NULL reply, find no ask in ac->data and do nothing. */
static void detach(struct nq_sentinel_ask *a)
{
    redisAsyncContext *ac = a->ac;

    a->ac = NULL;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}

static void failed(struct nq_sentinel_ask *a, const char *why)
{
    (void) snprintf(a->why, sizeof(a->why), "sentinel %s: %s", a->node, why);
    arm(a, 0);
}

static void on_addr(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct nq_sentinel_ask *a = ac->data;
    const redisReply *rep = reply;
    char *host = NULL;
    uint16_t port = 0;
    int r;

    (void) privdata;
    if (!a || !rep)
        return;
    evtimer_del(a->timer);
    r = nq_reply_master_addr(rep, &host, &port);
    detach(a);
    if (r == -ENOMEM || r == 0) {
        a->cb(a->userdata, r, host, port, r == 0 ? a->node : "out of memory");
        free(host);
        return;
    }
    failed(a, answer_problem(r, rep));
}

static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct nq_sentinel_ask *a = ac->data;
    const redisReply *rep = reply;

    (void) privdata;
    if (!a || !rep || rep->type != REDIS_REPLY_ERROR)
        return;
    evtimer_del(a->timer);
    char why[160];
    (void) snprintf(why, sizeof(why), "authentication failed: %s", rep->str);
    detach(a);
    failed(a, why);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct nq_sentinel_ask *a = ac->data;

    if (!a || status == REDIS_OK)
        return;
    a->ac = NULL; /* hiredis frees it after this callback */
    evtimer_del(a->timer);
    failed(a, ac->errstr);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct nq_sentinel_ask *a = ac->data;

    (void) status;
    if (!a)
        return;
    a->ac = NULL;
    evtimer_del(a->timer);
    failed(a, "connection closed");
}

/* Asks the next sentinel; after the last one, tells the caller. */
static void ask_next(struct nq_sentinel_ask *a)
{
    char *host = NULL;
    uint16_t port;
    const struct nq_sentinel_cfg *cfg = a->cfg;

    if (a->tried == cfg->n_nodes) {
        a->cb(a->userdata, -EHOSTUNREACH, NULL, 0, a->why);
        return;
    }
    a->node = cfg->nodes[a->tried++];
    if (nq_host_port_split(a->node, &host, &port) < 0) {
        failed(a, "not HOST:PORT");
        return;
    }
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    free(host);
    if (!ac || ac->err) {
        failed(a, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return;
    }
    ac->data = a;
    a->ac = ac;
    redisLibeventAttach(ac, a->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (cfg->password)
        redisAsyncCommand(ac, on_auth, NULL, "AUTH %s", cfg->password);
    redisAsyncCommand(ac, on_addr, NULL, "SENTINEL get-master-addr-by-name %s", cfg->master_name);
    arm(a, a->timeout_ms);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct nq_sentinel_ask *a = arg;

    (void) fd, (void) what;
    if (a->ac) {
        detach(a);
        (void) snprintf(a->why, sizeof(a->why), "sentinel %s: timed out", a->node);
    }
    ask_next(a);
}

struct nq_sentinel_ask *nq_sentinel_ask_new(struct event_base *base,
                                            const struct nq_sentinel_cfg *cfg, uint64_t timeout_ms,
                                            nq_sentinel_fn cb, void *userdata)
{
    struct nq_sentinel_ask *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    *a = (struct nq_sentinel_ask){
        .base = base, .cfg = cfg, .timeout_ms = timeout_ms, .cb = cb, .userdata = userdata
    };
    a->timer = evtimer_new(base, on_timer, a);
    if (!a->timer) {
        free(a);
        return NULL;
    }
    arm(a, 0); /* the callback never runs inside this call */
    return a;
}

struct nq_sentinel_ask *nq_sentinel_ask_free(struct nq_sentinel_ask *a)
{
    if (!a)
        return NULL;
    detach(a);
    event_free(a->timer);
    free(a);
    return NULL;
}

/* ---- synchronous ------------------------------------------------------------- */

/* Asks the sentinel connected with c. */
static int ask_on(redisContext *c, const struct nq_sentinel_cfg *cfg, const char *node,
                  char **ret_host, uint16_t *ret_port, char *why, size_t why_size)
{
    redisReply *rep;
    int r = 0;

    if (cfg->password) {
        if (!(rep = redisCommand(c, "AUTH %s", cfg->password))) {
            (void) snprintf(why, why_size, "sentinel %s: %s", node, c->errstr);
            return -EHOSTUNREACH;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            (void) snprintf(why, why_size, "sentinel %s: authentication failed: %s", node,
                            rep->str);
            r = -EACCES;
        }
        freeReplyObject(rep);
        if (r < 0)
            return r;
    }
    if (!(rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", cfg->master_name))) {
        (void) snprintf(why, why_size, "sentinel %s: %s", node, c->errstr);
        return -EHOSTUNREACH;
    }
    r = nq_reply_master_addr(rep, ret_host, ret_port);
    if (r < 0 && r != -ENOMEM)
        (void) snprintf(why, why_size, "sentinel %s: %s", node, answer_problem(r, rep));
    freeReplyObject(rep);
    return r;
}

static int ask_one(const struct nq_sentinel_cfg *cfg, const char *node, struct timeval tv,
                   char **ret_host, uint16_t *ret_port, char *why, size_t why_size)
{
    char *host = NULL;
    uint16_t port;
    int r = nq_host_port_split(node, &host, &port);

    if (r < 0)
        return r;
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    free(host);
    if (!c)
        return -ENOMEM;
    if (c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        (void) snprintf(why, why_size, "sentinel %s: %s", node, c->errstr);
        r = -EHOSTUNREACH;
    } else {
        r = ask_on(c, cfg, node, ret_host, ret_port, why, why_size);
    }
    redisFree(c);
    return r;
}

int nq_sentinel_lookup(const struct nq_sentinel_cfg *cfg, uint64_t timeout_ms, char **ret_host,
                       uint16_t *ret_port, struct nq_err *err)
{
    struct timeval tv = { .tv_sec = (time_t) (timeout_ms / 1000),
                          .tv_usec = (suseconds_t) (timeout_ms % 1000) * 1000 };
    char why[200] = "no sentinel configured";

    for (size_t i = 0; i < cfg->n_nodes; i++) {
        int r = ask_one(cfg, cfg->nodes[i], tv, ret_host, ret_port, why, sizeof(why));
        if (r == 0 || r == -ENOMEM)
            return r;
    }
    return nq_err_set(err, -EHOSTUNREACH, "redis sentinel %s: no sentinel named the master: %s",
                      cfg->master_name, why);
}
