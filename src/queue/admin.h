/* SPDX-License-Identifier: MIT */
/*
 * Synchronous queue administration for notifyqctl (and tests): add, inspect,
 * remove, retry, promote, clean, count, pause/resume, progress. One blocking
 * hiredis connection; every call is one round trip (a script or a command),
 * except purge and retry-all, which loop in batches of 1000.
 *
 * Errors: negative errno plus a message in the caller's struct nq_err:
 * -ECONNREFUSED/-ENOENT/-ETIMEDOUT... when Redis is unreachable ("redis
 * unix:/run/redis.sock: Connection refused"), -EIO for a Redis error reply,
 * -ENOENT for a missing job. With redis.sentinel: -EHOSTUNREACH when no
 * sentinel names the master, -EBUSY when the server named is not the
 * master (a failover in progress). Non-logging module.
 * Ownership: nq_admin_connect/nq_admin_free; returned strings and jobs are
 * the caller's.
 */
#ifndef NQ_QUEUE_ADMIN_H
#define NQ_QUEUE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/macros.h"
#include "config/config.h"
#include "queue/job.h"
#include "queue/store.h"

struct nq_admin;

int nq_admin_connect(const struct nq_redis_cfg *redis, const char *queue, struct nq_admin **ret,
                     struct nq_err *err) NQ_MUSTCHECK;
struct nq_admin *nq_admin_free(struct nq_admin *a);

enum nq_add_status { NQ_ADD_ADDED, NQ_ADD_DUPLICATED, NQ_ADD_DEDUPLICATED };

/* Adds a job; data_json must be valid JSON. *ret_id is the new job's id, or
 * the existing one's when duplicated/deduplicated. */
int nq_admin_add(struct nq_admin *a, const char *name, const char *data_json,
                 const struct nq_add_opts *o, char **ret_id, enum nq_add_status *ret_status,
                 struct nq_err *err) NQ_MUSTCHECK;

/* The job and its state ("waiting", "active", "delayed", "prioritized",
 * "completed", "failed", "waiting-children", "unknown"). -ENOENT if none. */
int nq_admin_job(struct nq_admin *a, const char *id, struct nq_job **ret_job, char **ret_state,
                 struct nq_err *err) NQ_MUSTCHECK;

/* -ENOENT no such job, -EBUSY locked by a worker, -EPERM the pending
 * iteration of a job scheduler. */
int nq_admin_remove(struct nq_admin *a, const char *id, struct nq_err *err) NQ_MUSTCHECK;
/* A failed job back to wait (BullMQ's job.retry). -ENOENT, -EINVAL not failed. */
int nq_admin_retry(struct nq_admin *a, const char *id, struct nq_err *err) NQ_MUSTCHECK;
/* Every job of state ("failed" or "completed") back to wait (retryJobs). */
int nq_admin_retry_all(struct nq_admin *a, const char *state, uint64_t *ret_count,
                       struct nq_err *err) NQ_MUSTCHECK;
/* A delayed job runs now. -ENOENT, -EINVAL not delayed. */
int nq_admin_promote(struct nq_admin *a, const char *id, struct nq_err *err) NQ_MUSTCHECK;
/* Deletes up to limit (0 = 1000) jobs of state older than grace_ms. */
int nq_admin_clean(struct nq_admin *a, const char *state, uint64_t grace_ms, uint32_t limit,
                   uint64_t *ret_count, struct nq_err *err) NQ_MUSTCHECK;
/* Deletes every job of state, in batches. */
int nq_admin_purge(struct nq_admin *a, const char *state, uint64_t *ret_count,
                   struct nq_err *err) NQ_MUSTCHECK;

int nq_admin_counts(struct nq_admin *a, struct nq_counts *ret, struct nq_err *err) NQ_MUSTCHECK;

/* Returns 1 if the state changed, 0 if it already was so. */
int nq_admin_pause(struct nq_admin *a, bool pause, struct nq_err *err) NQ_MUSTCHECK;

int nq_admin_progress(struct nq_admin *a, const char *id, const char *json,
                      struct nq_err *err) NQ_MUSTCHECK;

/* Ids of a finished set ("failed", "completed"), newest first, from start.
 * *ret_ids is a NULL-terminated array the caller frees with nq_strv_free. */
int nq_admin_list(struct nq_admin *a, const char *state, uint64_t start, uint64_t count,
                  char ***ret_ids, size_t *ret_n, struct nq_err *err) NQ_MUSTCHECK;
char **nq_strv_free(char **v);

#endif
