/* SPDX-License-Identifier: MIT */
/*
 * A worker process: serves one queue in its own libevent loop. It fetches
 * the queue's jobs from Redis (BullMQ's layout, through queue/store.h), runs
 * up to `concurrency` of them at once with the queue's handler
 * (handlers/handler.h), finishes them, renews their locks, runs the stalled
 * check and takes back dead siblings' jobs when the master asks. It reports
 * a metrics frame to the master every second and on each state change, and
 * obeys the master's commands (drain, stop, pause, resume, recover) and
 * SIGTERM (drain) / SIGQUIT (stop). Runs in the child forked by the
 * supervisor.
 *
 * A queue whose handler is not implemented yet fetches nothing: its workers
 * report state "idle" with the note "handler X not implemented yet".
 *
 * Environment: NOTIFYQ_TEST_CRASH=1 lets the noop handler's {"crash":"segv"}
 * crash the worker (a test aid for poison jobs; see handlers/noop.c).
 */
#ifndef NQ_WORKER_WORKER_H
#define NQ_WORKER_WORKER_H

#include "proc/proc.h"

/* The worker's entry function (nq_child_main_fn): returns its exit status,
 * 0 after a drain or stop, 78 when its handler cannot run with this
 * configuration, 1 when it could not set up its loop. */
int nq_worker_main(const struct nq_child_ctx *ctx);

#endif
