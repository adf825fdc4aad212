/* SPDX-License-Identifier: MIT */
/*
 * notifyqctl's queue commands: send, job, failed, clean, counts, and the
 * Redis half of pause/resume. They need no daemon: each reads the
 * configuration (-c, default /etc/notifyq.yaml) for the Redis address, the
 * key prefix and the queue name -> BullMQ queue name mapping, and acts on
 * Redis through the store's synchronous admin API (queue/admin.h), so what
 * they do is what BullMQ's own Queue methods would do. Runs in notifyqctl
 * only; it prints (stdout: results, stderr: "notifyqctl: ..." errors) and
 * returns the exit status, the contract of notifyqctl(1):
 *   0 done; 1 refused (no such job, job locked, not delayed/failed, a Redis
 *   error reply); 2 Redis or the configuration cannot be reached;
 *   64 usage (bad option, invalid JSON, data too large, unknown queue).
 *
 * See: man/notifyqctl.1, src/notifyqctl.c (the command table, daemon
 * commands), src/queue/admin.h.
 */
#ifndef NQ_CTL_CTL_H
#define NQ_CTL_CTL_H

#include <stdbool.h>

#include <jansson.h>

/* What notifyqctl's own options and daemon link give a queue command. */
struct nq_ctl_env {
    const char *config_path; /* -c before the command; NULL: the default */
    bool socket_given;       /* -s before the command: refused, Redis needs the config */
    bool json;               /* --json before the command (it may also follow) */
    /* Sends {"cmd":cmd,"queue":queue} to notifyqd; returns an exit status
     * (0 with *ret_reply set, 1 refused, 2 unreachable) after printing why. */
    int (*daemon_call)(const char *cmd, const char *queue, json_t **ret_reply);
};

/* Runs queue command name ("send", "job", "failed", "clean", "counts") on
 * args, the words after it (options included; NULL-terminated). Returns the
 * exit status. */
int nq_ctl_run(const struct nq_ctl_env *env, const char *name, char *const *args);

/* pause (pause = true) or resume QUEUE: sets or clears BullMQ's pause in
 * Redis, then tells notifyqd if it can be reached. Returns the exit status. */
int nq_ctl_pause(const struct nq_ctl_env *env, const char *queue, bool pause);

#endif
