/* SPDX-License-Identifier: MIT */
/*
 * When to restart a child that exited: a pure policy, no clock and no I/O, so
 * it is tested as a table. A child that lived at least min_uptime is restarted
 * at once and its history forgotten; one that died sooner ("quick exit") waits
 * 100 ms, then twice as long for each further quick exit in a row, up to 30 s
 * (s6 and systemd space restarts; nginx stops respawning on its fatal code).
 * Exit code 78 (EX_CONFIG: the child cannot run with this configuration) goes
 * straight to the longest delay: retrying sooner cannot help.
 * Three quick exits in a row make the slot "crash-looping" until it stays up.
 *
 * The state is one struct per slot, owned by the caller; zero-initialise it.
 */
#ifndef NQ_SUPERVISOR_RESTART_H
#define NQ_SUPERVISOR_RESTART_H

#include <stdbool.h>
#include <stdint.h>

#include "proc/proc.h"

#define NQ_RESTART_FIRST_DELAY_MS 100
#define NQ_RESTART_MAX_DELAY_MS 30000
#define NQ_RESTART_CRASH_LOOP 3

struct nq_restart {
    uint64_t delay_ms;    /* the last delay given; 0 after a reset */
    unsigned quick_exits; /* exits within min_uptime, in a row */
};

enum nq_restart_reason {
    NQ_RESTART_STABLE, /* lived >= min_uptime: restart now */
    NQ_RESTART_QUICK,  /* died within min_uptime: back off */
    NQ_RESTART_CONFIG, /* exit code 78: longest delay */
};

/* Records an exit after uptime_ms and returns the delay before the restart.
 * exit_code is the child's exit status, or -1 when a signal killed it. */
uint64_t nq_restart_next(struct nq_restart *r, uint64_t uptime_ms, uint64_t min_uptime_ms,
                         int exit_code, enum nq_restart_reason *ret_reason);

/* The child has now been up min_uptime: forget its quick exits. */
void nq_restart_stable(struct nq_restart *r);

bool nq_restart_crash_looping(const struct nq_restart *r);

#endif
