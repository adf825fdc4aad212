/* SPDX-License-Identifier: MIT */
/*
 * The master process of notifyqd: one libevent loop that pre-forks every
 * worker, reaps and restarts them (restart.h), aggregates their metrics
 * frames (proc/proc.h), answers notifyqctl on the control socket (control.h),
 * reloads on SIGHUP, drains on SIGTERM/SIGINT, stops fast on SIGQUIT, and
 * talks to systemd (READY, RELOADING, STOPPING, WATCHDOG, STATUS).
 * It opens no Redis, HTTP or database connection: the children's entry
 * functions come from notifyqd.c, and this module includes no worker,
 * queue, handler, store or http header.
 * See: man/notifyqd.8, ARCHITECTURE.md.
 */
#ifndef NQ_SUPERVISOR_SUPERVISOR_H
#define NQ_SUPERVISOR_SUPERVISOR_H

#include <stddef.h>

#include "proc/proc.h"

struct nq_config;

struct nq_supervisor_opts {
    const char *config_path; /* reloaded from here */
    char *const *overrides;  /* --set KEY=VALUE, applied on every load */
    size_t n_overrides;
    nq_child_main_fn worker_main;
    /* The http child's main (the admin API), started when the config has
     * an `http` section; NULL: never started. */
    nq_child_main_fn http_main;
};

/* Runs the master until it has stopped and reaped every child. Takes cfg
 * (the configuration loaded at start). Returns the process exit status:
 * 0 after a drain or stop, 1 when it could not start (logged). */
int nq_supervisor_run(struct nq_config *cfg, const struct nq_supervisor_opts *opts);

#endif
