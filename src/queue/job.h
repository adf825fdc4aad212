/* SPDX-License-Identifier: MIT */
/*
 * The job codec: a BullMQ job hash (BULLMQ-LAYOUT.md §5, an HGETALL reply)
 * into struct nq_job, and the reverse pieces the store writes (opts JSON for
 * adds, stacktrace JSON, retention specs for the finish script).
 *
 * A job whose data or opts is not valid JSON, or whose fields exceed the size
 * caps, is still parsed (its id is needed to fail it): nq_job_invalid_reason()
 * then says why, and the worker fails it permanently without running it.
 * Nothing in a hash can make the codec crash or allocate without bound.
 * Non-logging module.
 *
 * `data` is only checked by nq_job_decode (queue/jsoncheck.h: jansson's
 * verdict, bar one quirk, without building a tree); its jansson tree is built
 * on the first nq_job_data_borrow(), so a handler that never reads it (noop)
 * never pays for it.
 *
 * Ownership: nq_job_new/nq_job_free; every string and json_t in a job is owned
 * by it. Getters ending in _borrow return pointers valid while the job lives.
 */
#ifndef NQ_QUEUE_JOB_H
#define NQ_QUEUE_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macros.h"
#include "config/config.h"
#include "queue/backoff.h"

#define NQ_JOB_DATA_MAX (8u << 20)   /* bytes of `data` */
#define NQ_JOB_FIELD_MAX (64u << 10) /* bytes of `opts`, `name`, the id */
#define NQ_JOB_PRIORITY_MAX 2097151u /* 2^21 - 1, as BullMQ */

/* Our own hash field: worker deaths by signal while the job was in flight. */
#define NQ_JOB_FIELD_CRASHES "nqcrash"

/* removeOnComplete / removeOnFail: true, false, n, or {age (s), count, limit}. */
enum nq_keep_kind {
    NQ_KEEP_UNSET,   /* the option is absent: the queue default applies */
    NQ_KEEP_ALL,     /* false: keep every job */
    NQ_KEEP_NONE,    /* true (or 0): delete the job when it finishes */
    NQ_KEEP_LIMITED, /* count and/or age */
};

struct nq_keep {
    enum nq_keep_kind kind;
    int64_t count;   /* LIMITED: keep the newest count; -1 = no count limit */
    uint64_t age_ms; /* LIMITED: 0 = no age limit */
    uint32_t limit;  /* LIMITED with age: max jobs removed per finish; 0 = 1000 */
};

struct nq_repeat {
    bool set;
    uint64_t every_ms; /* 0 with pattern */
    char *pattern;     /* cron, or NULL */
    char *tz;          /* or NULL */
    uint64_t count;    /* iteration number of this job */
    int64_t offset;
    int64_t start_date; /* ms, 0 = none */
    int64_t end_date;   /* ms, 0 = none */
    int64_t limit;      /* 0 = none */
};

struct nq_job_opts {
    bool has_attempts;
    uint32_t attempts;
    bool has_backoff;
    struct nq_backoff backoff;
    uint64_t delay_ms;
    uint32_t priority;
    bool lifo;
    struct nq_keep remove_on_complete;
    struct nq_keep remove_on_fail;
    char *job_id;   /* custom id, or NULL */
    char *dedup_id; /* opts.de.id, or NULL */
    uint64_t dedup_ttl_ms;
    bool dedup_extend, dedup_replace;
    int64_t stack_trace_limit; /* -1 = unset */
    uint64_t timestamp;
    uint32_t keep_logs;
    struct nq_repeat repeat;
    uint64_t prev_millis;
    char *repeat_job_key;
};

struct nq_job {
    char *id;
    char *token; /* lock token of the fetch that returned it, or NULL */
    char *name;
    char *data_raw; /* as stored; NULL if absent */
    size_t data_len;
    bool data_valid;   /* data_raw is valid JSON (set by nq_job_decode) */
    json_t *data_tree; /* nq_job_data_borrow()'s cache; use that, not this */
    char *opts_raw;
    struct nq_job_opts opts;
    uint64_t timestamp, delay_ms, processed_on, finished_on;
    uint32_t priority;
    uint32_t atm, ats, stc, crashes;
    char *processed_by;  /* pb */
    char *progress;      /* raw JSON */
    char *returnvalue;   /* raw JSON */
    char *failed_reason; /* raw text */
    char *stacktrace;    /* raw JSON array */
    char *defa;          /* deferred failure: fail unrun with this reason */
    char *deid;          /* deduplication id */
    char *rjk;           /* job scheduler id */
    char *parent_key;
    char *parent;      /* raw JSON */
    char invalid[256]; /* reason for a permanent failure; "" when fine */
};

/* A job with only its id set; NULL on OOM. */
struct nq_job *nq_job_new(const char *id, size_t id_len);
struct nq_job *nq_job_free(struct nq_job *job);

/* Stores one hash field (unknown names are ignored). 0 or -ENOMEM. */
int nq_job_set_field(struct nq_job *job, const char *name, size_t name_len, const char *value,
                     size_t value_len) NQ_MUSTCHECK;

/* Checks data and parses opts after all fields are set; on malformed input
 * sets job->invalid and still returns 0. -ENOMEM only. */
int nq_job_decode(struct nq_job *job) NQ_MUSTCHECK;
/* The same, but when prev (decoded, valid, may be NULL) has the very same
 * opts text, copies its opts instead of parsing them again: the jobs of one
 * fetch mostly come from one producer with one set of options. */
int nq_job_decode_like(struct nq_job *job, const struct nq_job *prev) NQ_MUSTCHECK;

/* The job's data as a jansson tree, parsed on the first call and kept in the
 * job (hence not const). Borrowed: valid while the job lives; json_incref()
 * it to keep it longer, never decref it. NULL when the data is absent or not
 * valid JSON (job->data_valid false), or out of memory (data_valid true). */
json_t *nq_job_data_borrow(struct nq_job *job);

/* NULL when the job may run, else why it must fail permanently. Borrowed. */
const char *nq_job_invalid_reason_borrow(const struct nq_job *job);

/* Attempts a job gets: opts.attempts when > 0 (Node writes attempts:0 for
 * "not set"), else the queue's default; at least 1. */
uint32_t nq_job_attempts(const struct nq_job *job, uint32_t queue_default);

/* The job's backoff if it has one, else the queue's. */
void nq_job_backoff(const struct nq_job *job, const struct nq_backoff_cfg *queue_default,
                    struct nq_backoff *ret);

/* Effective retention for completed (failed=false) or failed jobs: the job's
 * removeOnComplete/removeOnFail, else the queue's retention default. */
void nq_job_keep(const struct nq_job *job, bool failed, const struct nq_keep_cfg *queue_default,
                 struct nq_keep *ret);

/* The retention as our finish script reads it: "" keep all, "0" delete now,
 * else "<count>:<age_ms>:<limit>" (count -1 = unlimited). Returns the length
 * written or -ENOBUFS. */
int nq_keep_format(const struct nq_keep *keep, char *buf, size_t size) NQ_MUSTCHECK;

/* The job's stacktrace with entry appended, capped to the last
 * opts.stackTraceLimit (unset: every one kept, as BullMQ; 0 gives []), as
 * compact JSON. Corrupt
 * stored traces are dropped, as BullMQ's getters do. NULL on OOM. */
char *nq_job_stacktrace_append_new(const struct nq_job *job, const char *entry);

/* What a producer asks for when adding a job (notifyqctl send, tests). */
struct nq_add_opts {
    uint32_t attempts; /* 0 = not set */
    struct nq_backoff backoff;
    bool has_backoff;
    uint64_t delay_ms;
    uint32_t priority; /* 0..NQ_JOB_PRIORITY_MAX */
    bool lifo;
    const char *job_id;    /* custom id or NULL */
    const char *dedup_id;  /* or NULL */
    uint64_t dedup_ttl_ms; /* 0 = until the job finishes */
    bool dedup_extend;     /* a deduplicated add re-arms the TTL */
    bool dedup_replace;    /* a deduplicated add replaces a still-delayed owner */
    struct nq_keep remove_on_complete, remove_on_fail; /* UNSET = omitted */
    uint64_t timestamp;                                /* written into opts only when non-zero */
};

/* The stored opts JSON of an add, as Node writes it (attempts always
 * present; de/backoff/removeOn* in BullMQ's encoding; integers plain).
 * Validates like Node: custom ids must not be integers, "0", start with
 * "0:", or have ':' unless in exactly 3 segments; priority in range.
 * Returns 0 and *ret_json (free()) or -EINVAL with err, -ENOMEM. */
int nq_add_opts_json_new(const struct nq_add_opts *o, char **ret_json,
                         struct nq_err *err) NQ_MUSTCHECK;

#endif
