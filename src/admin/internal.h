/* SPDX-License-Identifier: MIT */
/*
 * Shared by the admin module's files only: http.c (the child's main, its
 * loop and the snapshot), server.c (libmicrohttpd, auth, rate limit,
 * routing), routes.c (/api/v1), metrics.c (/metrics, /health).
 * Calls go one way: http.c -> server.c -> routes.c, metrics.c.
 */
#ifndef NQ_ADMIN_INTERNAL_H
#define NQ_ADMIN_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "config/config.h"
#include "proc/proc.h"

struct MHD_Connection;
struct MHD_Daemon;
struct event;
struct event_base;
struct nq_admin;
struct nq_channel;

/* A snapshot older than this (the master sends one a second) is not used:
 * /health says so. */
#define API_SNAPSHOT_STALE_MS 5000

/* One token's rate limit window (fixed window of rate_limit.duration). */
struct api_bucket {
    uint64_t window_start_ms;
    uint32_t used;
};

struct api {
    const struct nq_child_ctx *ctx;
    const struct nq_config *cfg;
    struct event_base *base;
    struct nq_channel *ch;
    struct event *ev_tick, *ev_term, *ev_quit;
    struct MHD_Daemon *mhd;
    uint64_t started_ms;
    enum nq_worker_state state;
    int exit_code;
    pthread_mutex_t lock;
    json_t *snapshot;     /* under lock: the latest "data" of a snapshot frame */
    uint64_t snapshot_ms; /* under lock: when it came */
    /* The server thread's alone: */
    struct nq_admin **redis;    /* per cfg->queues index, NULL until used */
    void **checkers;            /* per cfg->queues index, NULL until used */
    bool *no_checker;           /* per index: its handler checks nothing */
    struct api_bucket *buckets; /* per cfg->http.tokens index */
    uint64_t requests;          /* served, for the metrics frame */
};

/* A request as routed: what the handlers need. */
struct api_req {
    struct MHD_Connection *conn;
    const char *method;
    const char *body; /* NUL-terminated; "" without one */
    size_t body_len;
    const char *params[2]; /* the {q} and {id} of the route */
};

struct api_reply {
    unsigned status;
    json_t *json; /* owned; the body unless text is set */
    char *text;   /* owned; the body as is (metrics) */
    size_t text_len;
    const char *content_type; /* of text */
    unsigned retry_after_s;   /* 429: Retry-After */
};

uint64_t api_mono_ms(void);

/* http.c: a new reference to the latest snapshot, or NULL when there is
 * none younger than API_SNAPSHOT_STALE_MS. Any thread. */
json_t *api_snapshot_get(struct api *a);

/* server.c */
int api_server_start(struct api *a, struct nq_err *err) NQ_MUSTCHECK;
/* Stops accepting, finishes the requests being served, frees the server. */
void api_server_stop(struct api *a);
/* Fills rep with {"error": msg, "field": field} (field may be NULL). */
void api_error(struct api_reply *rep, unsigned status, const char *field, const char *fmt, ...)
    NQ_PRINTF(4, 5);
void api_json(struct api_reply *rep, unsigned status, json_t *body_take);

/* routes.c: the /api/v1 handlers; each fills rep. */
void api_queues_list(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_queue_get(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_queue_pause(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_queue_resume(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_queue_clean(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_jobs_add(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_jobs_list(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_job_get(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_job_delete(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_job_retry(struct api *a, const struct api_req *rq, struct api_reply *rep);
/* Drops every Redis connection and job checker (at exit). */
void api_redis_close_all(struct api *a);

/* metrics.c */
void api_metrics(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_health(struct api *a, const struct api_req *rq, struct api_reply *rep);
void api_live(struct api *a, const struct api_req *rq, struct api_reply *rep);

#endif
