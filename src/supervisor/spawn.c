/* SPDX-License-Identifier: MIT */
/*
 * The master's half of forking a child; the child's half (what it does before
 * its entry function) is nq_child_run() in src/proc/. Every signal is blocked
 * across fork() so no handler of the master runs in the child before it has
 * reset them, and stdio is flushed so the child does not write the master's
 * buffered output a second time.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "supervisor/internal.h"

int nq_child_spawn(struct event_base *master_base, const struct nq_child_ctx *ctx,
                   nq_child_main_fn child_main, pid_t *ret_pid)
{
    struct nq_child_ctx c = *ctx;
    sigset_t all;
    pid_t pid;

    c.master_pid = getpid();
    (void) sigfillset(&all);
    if (sigprocmask(SIG_SETMASK, &all, &c.sigmask) < 0)
        return -errno;
    (void) fflush(NULL);
    pid = fork();
    if (pid == 0)
        nq_child_run(master_base, &c, child_main);
    if (pid < 0) {
        int r = -errno;

        (void) sigprocmask(SIG_SETMASK, &c.sigmask, NULL);
        return r;
    }
    (void) sigprocmask(SIG_SETMASK, &c.sigmask, NULL);
    *ret_pid = pid;
    return 0;
}
