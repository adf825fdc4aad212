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

#include "proc/proc.h"

/* The http child's main (nq_child_main_fn): serves until drained. Exits
 * NQ_EXIT_CONFIG when it cannot listen or read its TLS files. */
int nq_api_main(const struct nq_child_ctx *ctx);

#endif
