/* SPDX-License-Identifier: MIT */
/*
 * A worker process: serves one queue in its own libevent loop, reports a
 * metrics frame to the master every second and on each state change, and
 * obeys the master's commands (drain, stop, pause, resume) and SIGTERM
 * (drain) / SIGQUIT (stop). Runs in the child forked by the supervisor.
 *
 * Skeleton: no handler is implemented yet, so a worker fetches nothing,
 * reports state "idle" with the note "handler X not implemented yet", and
 * logs that once at start. The queue issue adds Redis and job processing.
 */
#ifndef NQ_WORKER_WORKER_H
#define NQ_WORKER_WORKER_H

#include "supervisor/child.h"

/* The worker's entry function (nq_child_main_fn): returns its exit status,
 * 0 after a drain or stop, 1 when it could not set up its loop. */
int nq_worker_main(const struct nq_child_ctx *ctx);

#endif
