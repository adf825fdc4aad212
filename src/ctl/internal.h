/* SPDX-License-Identifier: MIT */
/*
 * Shared by the files of src/ctl only: one command's run (struct ctl), the
 * command table's row type, and output helpers. Included from nowhere else.
 */
#ifndef NQ_CTL_INTERNAL_H
#define NQ_CTL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "common/macros.h"
#include "ctl/ctl.h"
#include "ctl/output.h"
#include "queue/admin.h"

enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_REFUSED = 1,
    CTL_EXIT_UNREACHABLE = 2,
    CTL_EXIT_USAGE = 64,
};

/* Job data a producer may send from the command line: BullMQ stores data in
 * the job hash and every fetch reads it whole, so big payloads belong in a
 * database or object store with their key in the job. */
#define CTL_DATA_MAX (1u << 20)
#define CTL_LIST_DEFAULT 20
#define CTL_LIST_MAX 1000

/* The options a command accepts (struct ctl_cmd.options). */
enum {
    CTL_OPT_DATA = 1u << 0,
    CTL_OPT_NAME = 1u << 1,
    CTL_OPT_PRIORITY = 1u << 2,
    CTL_OPT_DELAY = 1u << 3,
    CTL_OPT_ATTEMPTS = 1u << 4,
    CTL_OPT_BACKOFF = 1u << 5,
    CTL_OPT_JOB_ID = 1u << 6,
    CTL_OPT_LIMIT = 1u << 7,
    CTL_OPT_OFFSET = 1u << 8,
    CTL_OPT_GRACE = 1u << 9,
    CTL_OPT_STATE = 1u << 10,
    CTL_OPT_ALL = 1u << 11,
};

struct ctl;

struct ctl_cmd {
    const char *name;       /* "send", "job show" */
    const char *usage;      /* what follows the name, for messages */
    unsigned options;       /* CTL_OPT_* */
    int min_args, max_args; /* words after QUEUE */
    int (*run)(struct ctl *c, char *const *args, int n_args); /* returns the exit status */
    const char *help;
};

/* One command's run: its options, then what they resolve to. */
struct ctl {
    const struct nq_ctl_env *env;
    const struct ctl_cmd *cmd;
    bool json;
    const char *config_path;
    const char *bullmq_arg; /* --bullmq-queue */

    const char *data_arg; /* send */
    const char *job_name;
    struct nq_add_opts add;

    uint64_t limit, offset, grace_ms; /* failed list/purge, clean */
    bool has_limit, has_grace;
    const char *state;
    bool all;

    struct nq_config *cfg;
    const struct nq_queue_cfg *qcfg; /* NULL for a --bullmq-queue outside the config */
    const char *queue;               /* as the user named it */
    const char *bullmq;              /* the BullMQ queue name */
    char *where;                     /* "unix:/path" or "host:port" */
    struct nq_admin *admin;
};

/* ---- ctl.c ---- */
/* Prints why an admin call failed and returns the exit status: 2 when Redis
 * went away, 1 otherwise. */
int ctl_fail(const struct ctl *c, int r, const struct nq_err *err);
/* Connects to Redis once; returns 0 or the exit status after saying why. */
int ctl_connect(struct ctl *c);
/* An object with the queue's names, the start of every --json reply. NULL on OOM. */
json_t *ctl_reply_new(const struct ctl *c);
/* Prints reply (stolen) as --json output; returns the exit status. */
int ctl_print_reply(json_t *reply);
int ctl_oom(void);

/* ---- output.c ---- */
/* "2026-11-25T04:43:25.123Z" (UTC) for ms since the epoch; "-" for 0. */
const char *ctl_iso_time(uint64_t ms, char *buf, size_t size);
/* {"..._at": ISO or null, "..._at_ms": ms or null} members added to obj. */
int ctl_json_time(json_t *obj, const char *key, uint64_t ms);
/* A JSON value for raw text that should be JSON: parsed, or the raw string
 * when it is not (a corrupt field), or null when raw is NULL. */
json_t *ctl_json_raw(const char *raw);
/* A string, or null for NULL. */
json_t *ctl_json_str(const char *s);

/* ---- send.c, jobs.c ---- */
int ctl_parse_backoff(const char *spec, struct nq_backoff *ret) NQ_MUSTCHECK;
int ctl_send(struct ctl *c, char *const *args, int n_args);
int ctl_job_show(struct ctl *c, char *const *args, int n_args);
int ctl_job_remove(struct ctl *c, char *const *args, int n_args);
int ctl_job_retry(struct ctl *c, char *const *args, int n_args);
int ctl_job_promote(struct ctl *c, char *const *args, int n_args);
int ctl_failed_list(struct ctl *c, char *const *args, int n_args);
int ctl_failed_retry(struct ctl *c, char *const *args, int n_args);
int ctl_failed_purge(struct ctl *c, char *const *args, int n_args);
int ctl_clean(struct ctl *c, char *const *args, int n_args);
int ctl_counts(struct ctl *c, char *const *args, int n_args);
int ctl_notification(struct ctl *c, char *const *args, int n_args); /* notification.c */

#endif
