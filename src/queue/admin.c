/* SPDX-License-Identifier: MIT */
/*
 * Synchronous administration; see admin.h.
 */
#include "config.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/cleanup.h"
#include "queue/admin.h"
#include "queue/internal.h"

struct nq_admin {
    redisContext *c;
    struct nq_tls *tls;          /* redis.tls */
    struct nq_tls_thread *relay; /* runs the TLS relay of c */
    struct nq_keys keys;
    char *where; /* "unix:/path" or "host:port", for messages */
};

NQ_DEFINE_CLEANUP(redisReply *, freeReplyObject)

/* A broken connection; through TLS, the relay may know why. */
static int conn_error(struct nq_admin *a, struct nq_err *err)
{
    const redisContext *c = a->c;
    char why[256];
    int r = c->err == REDIS_ERR_IO && errno ? -errno : -EIO;

    if (a->relay && nq_tls_thread_failed(a->relay, why, sizeof(why)))
        return nq_err_set(err, -EPROTO, "redis %s: TLS: %s", a->where, why);
    if (c->err == REDIS_ERR_EOF)
        r = -ECONNRESET;
    return nq_err_set(err, r, "redis %s: %s", a->where, c->errstr);
}

/* A command or script reply; NULL with err set on failure. */
static redisReply *run(struct nq_admin *a, int argc, const char **argv, const size_t *lens,
                       struct nq_err *err, int *ret_r)
{
    redisReply *rep = redisCommandArgv(a->c, argc, argv, lens);

    if (!rep) {
        *ret_r = conn_error(a, err);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR && !nq_reply_is_noscript(rep)) {
        *ret_r = nq_err_set(err, -EIO, "redis %s: %s", a->where, rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static redisReply *call(struct nq_admin *a, enum nq_script s, struct nq_args *args,
                        struct nq_err *err, int *ret_r)
{
    const char **argv;
    const size_t *lens;

    if ((*ret_r = nq_args_argv(args, &argv, &lens)) < 0)
        return NULL;
    redisReply *rep = run(a, (int) args->n, argv, lens, err, ret_r);
    if (!rep || !nq_reply_is_noscript(rep))
        return rep;
    freeReplyObject(rep);
    const char *load[] = { "SCRIPT", "LOAD", nq_script_source(s) };
    size_t load_lens[] = { 6, 4, strlen(load[2]) };
    if (!(rep = run(a, 3, load, load_lens, err, ret_r)))
        return NULL;
    freeReplyObject(rep);
    rep = run(a, (int) args->n, argv, lens, err, ret_r);
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        *ret_r = nq_err_set(err, -EIO, "redis %s: %s", a->where, rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

/* Runs script s with extra string arguments and returns its reply. */
static redisReply *script(struct nq_admin *a, enum nq_script s, const char *const *extra,
                          size_t n_extra, struct nq_err *err, int *ret_r)
{
    struct nq_args args;

    nq_args_init(&args);
    nq_args_script(&args, s, &a->keys);
    for (size_t i = 0; i < n_extra; i++)
        nq_args_adds(&args, extra[i]);
    redisReply *rep = call(a, s, &args, err, ret_r);
    nq_args_done(&args);
    return rep;
}

static int script_int(struct nq_admin *a, enum nq_script s, const char *const *extra,
                      size_t n_extra, long long *ret, struct nq_err *err)
{
    int r = 0;
    NQ_CLEANUP(freeReplyObjectp) redisReply *rep = script(a, s, extra, n_extra, err, &r);

    /* r < 0 whenever rep is NULL (conn_error's -errno included), which the
     * analyzer cannot see; callers read *ret only after a success. */
    if (!rep)
        return r < 0 ? r : -EIO;
    if (rep->type != REDIS_REPLY_INTEGER)
        return nq_err_set(err, -EPROTO, "%s: unexpected reply", nq_script_name(s));
    *ret = rep->integer;
    return 0;
}

static int auth_and_select(struct nq_admin *a, const struct nq_redis_cfg *cfg, struct nq_err *err)
{
    int r = 0;
    redisReply *rep;

    if (cfg->password) {
        rep = cfg->username ? redisCommand(a->c, "AUTH %s %s", cfg->username, cfg->password)
                            : redisCommand(a->c, "AUTH %s", cfg->password);
        if (!rep)
            return conn_error(a, err);
        if (rep->type == REDIS_REPLY_ERROR)
            r = nq_err_set(err, -EACCES, "redis %s: authentication failed: %s", a->where, rep->str);
        freeReplyObject(rep);
        if (r < 0)
            return r;
    }
    if (cfg->db == 0)
        return 0;
    rep = redisCommand(a->c, "SELECT %u", cfg->db);
    if (!rep)
        return conn_error(a, err);
    if (rep->type == REDIS_REPLY_ERROR)
        r = nq_err_set(err, -EINVAL, "redis %s: SELECT %u: %s", a->where, cfg->db, rep->str);
    freeReplyObject(rep);
    return r;
}

/* The server the sentinels named must still be the master: they may not
 * have noticed a failover yet. */
static int check_master(struct nq_admin *a, struct nq_err *err)
{
    redisReply *rep = redisCommand(a->c, "ROLE");
    int r = 0;

    if (!rep)
        return conn_error(a, err);
    if (rep->type == REDIS_REPLY_ERROR)
        r = nq_err_set(err, -EIO, "redis %s: ROLE: %s", a->where, rep->str);
    else if (!nq_reply_is_master(rep))
        r = nq_err_set(err, -EBUSY,
                       "redis %s: the server the sentinels named is not the master (a failover "
                       "in progress?); try again",
                       a->where);
    freeReplyObject(rep);
    return r;
}

static int tls_connect(struct nq_admin *a, const struct nq_redis_cfg *cfg, const char *host,
                       uint16_t port, uint64_t ms, struct nq_err *err)
{
    char why[256];
    int r = nq_tls_new(&cfg->tls, &a->tls, err);

    if (r < 0)
        return r;
    r = nq_tls_sync_connect(a->tls, host, port, ms, &a->c, &a->relay, why, sizeof(why));
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return nq_err_set(err, -EPROTO, "redis %s: TLS: %s", a->where, why);
    return 0;
}

/* With TLS 1.3 a server refuses a client certificate only after the
 * handshake: find out now, so that it reads as a failure to connect. Any
 * reply will do (NOAUTH too). */
static int tls_ping(struct nq_admin *a, struct nq_err *err)
{
    redisReply *rep = redisCommand(a->c, "PING");

    if (!rep)
        return conn_error(a, err);
    freeReplyObject(rep);
    return 0;
}

static int open_context(struct nq_admin *a, const struct nq_redis_cfg *cfg, struct nq_err *err)
{
    uint64_t ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000;
    struct timeval tv = { .tv_sec = (time_t) (ms / 1000),
                          .tv_usec = (suseconds_t) (ms % 1000) * 1000 };
    nq_autofree char *master = NULL;
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    uint16_t port = cfg->port ? cfg->port : 6379;
    int r;

    if (cfg->sentinel.master_name) {
        r = nq_sentinel_lookup(&cfg->sentinel, ms, &master, &port, err);
        if (r < 0)
            return r;
        host = master;
        r = asprintf(&a->where, "sentinel %s (master %s:%u)", cfg->sentinel.master_name, host,
                     port);
    } else if (cfg->socket) {
        r = asprintf(&a->where, "unix:%s", cfg->socket);
    } else {
        r = asprintf(&a->where, "%s:%u", host, port);
    }
    if (r < 0) {
        a->where = NULL;
        return -ENOMEM;
    }
    if (cfg->tls.enabled)
        r = tls_connect(a, cfg, host, port, ms, err);
    else if (!(a->c = cfg->socket && !master ? redisConnectUnixWithTimeout(cfg->socket, tv)
                                             : redisConnectWithTimeout(host, port, tv)))
        r = -ENOMEM;
    if (r < 0)
        return r;
    if (a->c->err)
        return conn_error(a, err);
    if (redisSetTimeout(a->c, tv) != REDIS_OK)
        return conn_error(a, err);
    if (a->relay && (r = tls_ping(a, err)) < 0)
        return r;
    r = auth_and_select(a, cfg, err);
    return r < 0 || !master ? r : check_master(a, err);
}

int nq_admin_connect(const struct nq_redis_cfg *redis, const char *queue, struct nq_admin **ret,
                     struct nq_err *err)
{
    struct nq_admin *a = calloc(1, sizeof(*a));
    int r;

    if (!a)
        return -ENOMEM;
    r = nq_keys_init(&a->keys, redis->prefix ? redis->prefix : "bull", queue);
    if (r < 0) {
        free(a);
        return nq_err_set(err, r, "invalid queue name '%s'", queue);
    }
    r = open_context(a, redis, err);
    if (r < 0) {
        nq_admin_free(a);
        return r;
    }
    *ret = a;
    return 0;
}

struct nq_admin *nq_admin_free(struct nq_admin *a)
{
    if (!a)
        return NULL;
    if (a->c)
        redisFree(a->c);
    nq_tls_thread_free(a->relay); /* after its socket closed */
    nq_tls_free(a->tls);
    nq_keys_done(&a->keys);
    free(a->where);
    free(a);
    return NULL;
}

static char *u64_str(uint64_t v, char buf[24])
{
    snprintf(buf, 24, "%" PRIu64, v);
    return buf;
}

int nq_admin_add(struct nq_admin *a, const char *name, const char *data_json,
                 const struct nq_add_opts *o, char **ret_id, enum nq_add_status *ret_status,
                 struct nq_err *err)
{
    json_error_t jerr;
    json_t *probe = json_loads(data_json, JSON_DECODE_ANY, &jerr);
    nq_autofree char *opts = NULL;
    char ts[24], delay[24], prio[24], ttl[24];
    int r = 0;

    if (!probe)
        return nq_err_set(err, -EINVAL, "data is not valid JSON: %s", jerr.text);
    json_decref(probe);
    if ((r = nq_add_opts_json_new(o, &opts, err)) < 0)
        return r;
    uint64_t now = o->timestamp ? o->timestamp : nq_store_now_ms();
    const char *extra[] = {
        o->job_id ? o->job_id : "",
        name,
        data_json,
        opts,
        u64_str(now, ts),
        u64_str(o->delay_ms, delay),
        u64_str(o->priority, prio),
        o->lifo ? "1" : "",
        o->dedup_id ? o->dedup_id : "",
        u64_str(o->dedup_ttl_ms, ttl),
        o->dedup_extend ? "1" : "",
        o->dedup_replace ? "1" : "",
    };
    NQ_CLEANUP(freeReplyObjectp)
    redisReply *rep = script(a, NQ_SCRIPT_ADD, extra, NQ_ELEMENTSOF(extra), err, &r);
    if (!rep)
        return r;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING)
        return nq_err_set(err, -EPROTO, "add: unexpected reply");
    const char *st = rep->element[1]->str;
    char *id = strdup(rep->element[0]->str);
    if (!id)
        return -ENOMEM;
    *ret_id = id;
    *ret_status = strcmp(st, "duplicated") == 0     ? NQ_ADD_DUPLICATED
                  : strcmp(st, "deduplicated") == 0 ? NQ_ADD_DEDUPLICATED
                                                    : NQ_ADD_ADDED;
    return 0;
}

int nq_admin_job(struct nq_admin *a, const char *id, struct nq_job **ret_job, char **ret_state,
                 struct nq_err *err)
{
    const char *extra[] = { id };
    int r = 0;
    NQ_CLEANUP(freeReplyObjectp) redisReply *rep = script(a, NQ_SCRIPT_STATE, extra, 1, err, &r);

    if (!rep)
        return r;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return nq_err_set(err, -EPROTO, "state: unexpected reply");
    if (rep->element[1]->type == REDIS_REPLY_ARRAY && rep->element[1]->elements == 0)
        return nq_err_set(err, -ENOENT, "job %s not found", id);
    struct nq_job *job = NULL;
    if ((r = nq_reply_job(id, strlen(id), NULL, rep->element[1], NULL, &job)) < 0)
        return nq_err_set(err, r, "job %s: unreadable hash", id);
    char *state = strdup(rep->element[0]->str);
    if (!state) {
        nq_job_free(job);
        return -ENOMEM;
    }
    *ret_job = job;
    *ret_state = state;
    return 0;
}

int nq_admin_remove(struct nq_admin *a, const char *id, struct nq_err *err)
{
    const char *extra[] = { id };
    long long v;
    int r = script_int(a, NQ_SCRIPT_REMOVE, extra, 1, &v, err);

    if (r < 0)
        return r;
    if (v == -1)
        return nq_err_set(err, -ENOENT, "job %s not found", id);
    if (v == 0)
        return nq_err_set(err, -EBUSY, "job %s is being processed (locked)", id);
    if (v == -8)
        return nq_err_set(err, -EPERM, "job %s is the next iteration of a job scheduler", id);
    return 0;
}

int nq_admin_retry(struct nq_admin *a, const char *id, struct nq_err *err)
{
    const char *extra[] = { "one", "failed", id, "" };
    long long v;
    int r = script_int(a, NQ_SCRIPT_RETRY, extra, NQ_ELEMENTSOF(extra), &v, err);

    if (r < 0)
        return r;
    if (v == -1)
        return nq_err_set(err, -ENOENT, "job %s not found", id);
    if (v == -3)
        return nq_err_set(err, -EINVAL, "job %s is not failed", id);
    if (v == -9)
        return nq_err_set(err, -EMEDIUMTYPE, "job %s: its key holds no job hash", id);
    return 0;
}

static int check_finished_state(const char *state, struct nq_err *err)
{
    if (strcmp(state, "failed") != 0 && strcmp(state, "completed") != 0)
        return nq_err_set(err, -EINVAL, "state must be failed or completed, not '%s'", state);
    return 0;
}

int nq_admin_retry_all(struct nq_admin *a, const char *state, uint64_t *ret_count,
                       struct nq_err *err)
{
    char ts[24];
    uint64_t total = 0;
    long long v;
    int r;

    if ((r = check_finished_state(state, err)) < 0)
        return r;
    const char *extra[] = { "all", state, u64_str(nq_store_now_ms(), ts), "" };
    do {
        if ((r = script_int(a, NQ_SCRIPT_RETRY, extra, NQ_ELEMENTSOF(extra), &v, err)) < 0)
            return r;
        total += v > 0 ? (uint64_t) v : 0;
    } while (v > 0);
    *ret_count = total;
    return 0;
}

int nq_admin_promote(struct nq_admin *a, const char *id, struct nq_err *err)
{
    const char *extra[] = { id };
    long long v;
    int r = script_int(a, NQ_SCRIPT_PROMOTE, extra, 1, &v, err);

    if (r < 0)
        return r;
    if (v == -1)
        return nq_err_set(err, -ENOENT, "job %s not found", id);
    if (v == -3)
        return nq_err_set(err, -EINVAL, "job %s is not delayed", id);
    if (v == -9)
        return nq_err_set(err, -EMEDIUMTYPE, "job %s: its key holds no job hash", id);
    return 0;
}

static const char *const clean_states[] = { "completed", "failed", "delayed", "prioritized",
                                            "wait" };

int nq_admin_clean(struct nq_admin *a, const char *state, uint64_t grace_ms, uint32_t limit,
                   uint64_t *ret_count, struct nq_err *err)
{
    char g[24], l[24], ts[24];
    bool known = false;
    int r = 0;

    for (size_t i = 0; i < NQ_ELEMENTSOF(clean_states); i++)
        known |= strcmp(state, clean_states[i]) == 0;
    if (!known)
        return nq_err_set(err, -EINVAL, "cannot clean state '%s'", state);
    const char *extra[] = { state, u64_str(grace_ms, g), u64_str(limit, l),
                            u64_str(nq_store_now_ms(), ts) };
    NQ_CLEANUP(freeReplyObjectp)
    redisReply *rep = script(a, NQ_SCRIPT_CLEAN, extra, NQ_ELEMENTSOF(extra), err, &r);
    if (!rep)
        return r;
    if (rep->type != REDIS_REPLY_ARRAY)
        return nq_err_set(err, -EPROTO, "clean: unexpected reply");
    *ret_count = rep->elements;
    return 0;
}

int nq_admin_purge(struct nq_admin *a, const char *state, uint64_t *ret_count, struct nq_err *err)
{
    uint64_t total = 0, n;
    int r;

    do {
        if ((r = nq_admin_clean(a, state, 0, 1000, &n, err)) < 0)
            return r;
        total += n;
    } while (n > 0);
    *ret_count = total;
    return 0;
}

int nq_admin_counts(struct nq_admin *a, struct nq_counts *ret, struct nq_err *err)
{
    int r = 0;
    NQ_CLEANUP(freeReplyObjectp) redisReply *rep = script(a, NQ_SCRIPT_COUNTS, NULL, 0, err, &r);

    if (!rep)
        return r;
    if (nq_reply_counts(rep, ret) < 0)
        return nq_err_set(err, -EPROTO, "counts: unexpected reply");
    return 0;
}

int nq_admin_pause(struct nq_admin *a, bool pause, struct nq_err *err)
{
    const char *extra[] = { pause ? "1" : "0" };
    long long v;
    int r = script_int(a, NQ_SCRIPT_PAUSE, extra, 1, &v, err);

    return r < 0 ? r : (int) v;
}

int nq_admin_progress(struct nq_admin *a, const char *id, const char *json, struct nq_err *err)
{
    json_t *probe = json_loads(json, JSON_DECODE_ANY, NULL);
    const char *extra[] = { id, json };
    long long v;

    if (!probe)
        return nq_err_set(err, -EINVAL, "progress is not valid JSON");
    json_decref(probe);
    int r = script_int(a, NQ_SCRIPT_PROGRESS, extra, NQ_ELEMENTSOF(extra), &v, err);
    if (r < 0)
        return r;
    if (v == -9)
        return nq_err_set(err, -EMEDIUMTYPE, "job %s: its key holds no job hash", id);
    return v == -1 ? nq_err_set(err, -ENOENT, "job %s not found", id) : 0;
}

char **nq_strv_free(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
    return NULL;
}

int nq_admin_list(struct nq_admin *a, const char *state, uint64_t start, uint64_t count,
                  char ***ret_ids, size_t *ret_n, struct nq_err *err)
{
    int r;

    if ((r = check_finished_state(state, err)) < 0)
        return r;
    if (count == 0)
        count = 1;
    nq_autofree char *key = nq_keys_queue_key(&a->keys, state);
    if (!key)
        return -ENOMEM;
    NQ_CLEANUP(freeReplyObjectp)
    redisReply *rep = redisCommand(a->c, "ZREVRANGE %s %llu %llu", key, (unsigned long long) start,
                                   (unsigned long long) (start + count - 1));
    if (!rep)
        return conn_error(a, err);
    if (rep->type != REDIS_REPLY_ARRAY)
        return nq_err_set(err, -EPROTO, "list: unexpected reply");
    char **ids = calloc(rep->elements + 1, sizeof(char *));
    if (!ids)
        return -ENOMEM;
    for (size_t i = 0; i < rep->elements; i++)
        if (!(ids[i] = strndup(rep->element[i]->str, rep->element[i]->len))) {
            nq_strv_free(ids);
            return -ENOMEM;
        }
    *ret_ids = ids;
    *ret_n = rep->elements;
    return 0;
}
