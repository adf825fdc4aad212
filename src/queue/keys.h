/* SPDX-License-Identifier: MIT */
/*
 * Redis key names of one BullMQ queue (BULLMQ-LAYOUT.md §2): every key is
 * "<prefix>:<queue>:<suffix>" and a job's keys are "<prefix>:<queue>:<id>[:<sub>]".
 * The prefix may carry a Redis Cluster hash tag ("{app}") and job ids may
 * contain ':' (scheduler iterations "repeat:<id>:<ms>"), so ids are found by
 * stripping the base key, never by splitting on ':'. We never add a key outside
 * the base, so a tag in the prefix or the queue name keeps a queue in one slot.
 * Non-logging module.
 *
 * Ownership: struct nq_keys is embedded (_init/_done) and owns its strings;
 * every returned char * is the caller's to free().
 */
#ifndef NQ_QUEUE_KEYS_H
#define NQ_QUEUE_KEYS_H

#include <stddef.h>

#include "common/macros.h"

struct nq_keys {
    char *prefix; /* "bull" or "{app}" */
    char *queue;  /* BullMQ queue name; never contains ':' */
    char *base;   /* "<prefix>:<queue>:", what our scripts receive */
    size_t base_len;
};

/* Fills k. Returns 0, -EINVAL for an empty prefix/queue or a queue name
 * with ':' (BullMQ refuses those too), -ENOMEM. k is untouched on failure. */
int nq_keys_init(struct nq_keys *k, const char *prefix, const char *queue) NQ_MUSTCHECK;
void nq_keys_done(struct nq_keys *k);

/* "<base><suffix>", e.g. suffix "wait". NULL on OOM. */
char *nq_keys_queue_key(const struct nq_keys *k, const char *suffix);

/* "<base><job_id>" or, with sub, "<base><job_id>:<sub>". NULL on OOM. */
char *nq_keys_job_key(const struct nq_keys *k, const char *job_id, const char *sub);

/* The job id inside a job hash key, i.e. key minus the base; NULL when key
 * is not under this queue's base. Borrowed from key. */
const char *nq_keys_job_id_borrow(const struct nq_keys *k, const char *key);

/* The CLIENT SETNAME of a worker's blocking connection, as BullMQ names it so
 * Queue.getWorkers() counts it: "<prefix>:<base64(queue)>" plus ":w:<name>"
 * when worker_name is non-NULL and non-empty. NULL on OOM. */
char *nq_keys_worker_client_name(const struct nq_keys *k, const char *worker_name);

#endif
