/* SPDX-License-Identifier: MIT */
/*
 * The http child: the admin API, /metrics and /health, served with
 * libmicrohttpd on the `http.listen` address. A child of the master like a
 * worker (pre-forked, restarted, drained on SIGTERM, replaced on SIGHUP) but
 * tied to no queue. It never asks the workers anything: once a second the
 * master sends it a snapshot of what it knows (proc.h, "t":"snapshot"), and
 * /health, /metrics and the workers shown by /api/v1 come from the latest
 * one. The job routes go to Redis through the queue store's synchronous
 * admin functions (queue/admin.h), on connections of its own, one per queue,
 * made on first use and remade after an error.
 *
 * Threads: the child's libevent loop (channel, signals, its metrics frame)
 * runs in the main thread; libmicrohttpd runs one internal polling thread
 * that serves every request in turn (an admin API needs no parallelism, and
 * the blocking Redis calls then need no locking). The snapshot is the one
 * thing both share, under a mutex.
 * Logging module: starts, stops, refusals of the server, never a token or a
 * job's data. See: man/notifyq.yaml.5 (http), README (Admin API).
 */
#ifndef NQ_ADMIN_ADMIN_H
#define NQ_ADMIN_ADMIN_H

#include "common/err.h"
#include "proc/proc.h"

struct nq_config;
struct nq_job;
struct nq_queue_cfg;

/* A queue's job check, the one its workers make before running a job, for
 * POST .../jobs to refuse a bad payload before anything is written. The
 * checks live in the handlers, which this module must not include:
 * notifyqd.c hands them over. new() makes a queue's checker in the http
 * child (-EOPNOTSUPP: its handler checks nothing yet), check() returns 0 or
 * -EINVAL with err naming the field ("data.to: required"), free() drops it. */
struct nq_api_validator {
    int (*new)(const struct nq_config *cfg, const struct nq_queue_cfg *q, void **ret,
               struct nq_err *err);
    int (*check)(void *checker, struct nq_job *job, struct nq_err *err);
    void (*free)(void *checker);
};

/* Before the supervisor starts: the checks the http child will use. v is
 * borrowed for the process's life; without one, only the body's shape is
 * checked. */
void nq_api_set_validator(const struct nq_api_validator *v);

/* The http child's main (nq_child_main_fn): serves until drained. Exits
 * NQ_EXIT_CONFIG when it cannot listen or read its TLS files. */
int nq_api_main(const struct nq_child_ctx *ctx);

#endif
