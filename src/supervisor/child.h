/* SPDX-License-Identifier: MIT */
/*
 * Forking a child of the master and what the child inherits. notifyqd.c hands
 * the supervisor each child's entry function (nq_child_main_fn), so the
 * supervisor links no worker, queue or store code and the master cannot open
 * a Redis or database connection by accident (ARCHITECTURE.md).
 *
 * nq_child_spawn() is systemd's safe_fork() cut to our needs (STYLE.md
 * pitfalls 4-10): with every signal blocked and stdio flushed it forks; the
 * child disposes of the master's event base (event_reinit, then free: the
 * epoll instance is shared with the master), resets every signal handler,
 * closes every fd but stdio, its channel end and the journald socket, arms
 * PR_SET_PDEATHSIG(SIGTERM) and checks the master is still its parent,
 * unsets NOTIFY_SOCKET, reseeds random(), ignores SIGPIPE, sets its process
 * title ("notifyqd: worker email/1") and log context, runs the entry function
 * and ends with _exit(its return value). Signals stay blocked when the entry
 * function starts: it adds its own signal events, then calls
 * nq_child_unblock_signals(), so a drain request sent early is kept.
 *
 * The ctx and everything it points to are the master's memory, inherited by
 * the fork; the child reads them and frees none of it.
 */
#ifndef NQ_SUPERVISOR_CHILD_H
#define NQ_SUPERVISOR_CHILD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macros.h"

struct event_base;
struct nq_config;
struct nq_queue_cfg;

struct nq_child_ctx {
    const struct nq_config *cfg;      /* the generation this child was forked with */
    const struct nq_queue_cfg *queue; /* the queue a worker serves */
    unsigned slot;                    /* 0 .. queue->processes - 1 */
    unsigned generation;              /* the master's config generation */
    uint64_t incarnation;             /* unique among the master's children, never reused */
    const char *hostname;             /* the master's, for nq_token_prefix */
    int fd;                           /* the child's end of its channel (see channel.h) */
    pid_t master_pid;                 /* set by nq_child_spawn */
    sigset_t sigmask;                 /* the mask before fork; set by nq_child_spawn */
};

/* A child's main: returns its exit status (0 after a drain; 78 when it cannot
 * run with this configuration; anything else is a crash). */
typedef int (*nq_child_main_fn)(const struct nq_child_ctx *ctx);

/* The prefix of every lock token a worker incarnation takes,
 * "<hostname>:<pid>:<incarnation>:" (incarnation in hex). The master builds
 * the same string from what it knows of a dead child to recover its jobs
 * (see frame.h, "recover"); the final ':' keeps one prefix from being the
 * start of another. Returns the length, or -ENOBUFS when size is too small. */
int nq_token_prefix(char *buf, size_t size, const char *hostname, pid_t pid,
                    uint64_t incarnation) NQ_MUSTCHECK;

/* Saves where main()'s argv (and the environment after it) lies, so children
 * can overwrite it with their title. Call first thing in main(); moves the
 * environment strings to the heap. */
void nq_proctitle_init(int argc, char **argv);

/* Forks a child that runs child_main(ctx) as described above. In the master
 * returns 0 and sets *ret_pid, or a negative errno; never returns in the child.
 * ctx->fd must be the child's end of a socketpair; master_base is the
 * master's event base. */
int nq_child_spawn(struct event_base *master_base, const struct nq_child_ctx *ctx,
                   nq_child_main_fn child_main, pid_t *ret_pid) NQ_MUSTCHECK;

/* In the child, after adding its own signal events: restores the signal mask
 * the master had, so signals pending since the fork are delivered now. */
void nq_child_unblock_signals(const struct nq_child_ctx *ctx);

#endif
