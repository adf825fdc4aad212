/* SPDX-License-Identifier: MIT */
/*
 * Handlers: what a job of a queue means (noop, email, sms, push...). A worker
 * process serves one queue, so it makes one handler instance at start
 * (nq_handler_new, from the queue's config) and hands it every job it
 * fetches, each as one struct nq_handler_call:
 *
 *   validate(job)  synchronous check of the job's data, read through
 *                  nq_job_data_borrow() (its jansson tree, built on first
 *                  use: a handler that needs no data should not ask). Failing
 *                  it (-EINVAL with err naming the field: "data.to:
 *                  required") fails the job permanently, unrun, with that
 *                  text as failedReason.
 *   start(call)    begins the job on the worker's event base, without
 *                  blocking it (libevent timers, curl multi, async I/O). The
 *                  handler reports exactly one outcome with
 *                  nq_handler_call_done(); it may do so from inside start()
 *                  (a job that needs no I/O) or later from an event callback.
 *   cancel(call)   fast stop or drain timeout: the worker gives up on a call
 *                  still in flight (it returns the job to wait). The handler
 *                  stops what it started and frees its per-call data; after
 *                  cancel returns it never calls nq_handler_call_done() for
 *                  that call, and it must not touch call again.
 *
 * Outcomes are struct nq_outcome (queue/store.h):
 *   NQ_OUTCOME_OK           result_json = the returnvalue (valid JSON text;
 *                           NULL stands for null); e.g. {"ok":true} or
 *                           {"spool":"/var/lib/notifyq/spool/email/42.eml"}
 *   NQ_OUTCOME_RETRY        reason; retry_after_ms > 0 overrides the backoff
 *                           (a provider's Retry-After); retried until the
 *                           job's attempts run out, then failed
 *   NQ_OUTCOME_PERMANENT    reason; failed now, whatever attempts remain
 *                           (invalid address, unregistered token, 4xx)
 *   NQ_OUTCOME_RATE_LIMITED retry_after_ms; delayed without spending an
 *                           attempt (429)
 * Handlers never report NQ_OUTCOME_RETURN (the worker's own, for drain).
 * Reasons are stored as the job's failedReason and shown to operators: they
 * name what failed ("smtp: 550 mailbox unavailable"), never secrets or
 * message bodies. The strings of an outcome are borrowed for the call to
 * nq_handler_call_done() only; the worker copies what it keeps.
 *
 * Per-queue setup: init(env) runs once in the worker process before any job,
 * with the whole config and the queue's (provider settings such as
 * queue->provider.spool_dir). It may fail with a clear reason in err
 * ("provider file: spool_dir /x: Permission denied"): the worker logs it and
 * exits 78 (EX_CONFIG), which the master treats as a broken configuration
 * (longest restart delay). Process-wide libraries (curl_global_init) are
 * initialised in init too: a worker process runs exactly one handler.
 *
 * Threading: none. Everything runs on the worker's event base, in its one
 * thread. Memory: the handler owns its state (init/free) and each call's
 * handler_data (set in start, freed before done or in cancel); the worker
 * owns struct nq_handler_call and the job, both valid from start until done
 * or cancel returns.
 *
 * Registry (handler.c): a table from enum nq_handler_kind to the handler's
 * vtable. A kind without an entry is "not implemented yet": nq_handler_new
 * returns -EOPNOTSUPP and the worker idles with a note, fetching nothing.
 * The channel handlers (email, sms, push) define their vtables in their own
 * files (src/handlers/<name>.c, built from src/handlers/channels.mk) and add
 * one line each to the marked table in handler.c.
 *
 * Fields: each handler has one table of the keys its job data accepts
 * (struct nq_field_table, the vtable's fields). Validation refuses a key
 * outside it ("data.attachment: not a field of email jobs"), and a key
 * that asks for something the handler cannot do yet (attachments,
 * templates) with that row's reason, rather than deliver without it. The
 * reference page, notifyq-jobs(7), documents every row; a unit test checks
 * it does.
 *
 * Layering: handlers may use queue/job.h and queue/store.h types, common/,
 * config/, providers/, template/ and deliverylog/; never supervisor/ or
 * worker/ (Redis comes as env->publish, a callback the worker gives).
 */
#ifndef NQ_HANDLERS_HANDLER_H
#define NQ_HANDLERS_HANDLER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/macros.h"
#include "config/config.h"
#include "queue/job.h"
#include "queue/store.h"

struct event_base;
struct nq_handler;
struct nq_handler_call;

/* How a handler whose jobs make jobs (broadcast) adds them: the worker's
 * queue store behind a narrow door, with nq_store_add_batch()'s contract
 * (queue/store.h) on the worker's own connection, progress_id naming a job
 * of the worker's queue. The worker, not the handler, holds the store:
 * handlers never see its connections or its work calls. */
typedef int (*nq_handler_add_batch_fn)(void *ctx, const char *queue, const struct nq_add_job *jobs,
                                       size_t n, const char *progress_id, const char *progress_json,
                                       nq_store_ids_fn cb, void *userdata);

/* The worker's Redis lent to a handler: nq_store_publish_once() on the
 * worker's store (queue/store.h says what it does). Returns 0 when cb will
 * be called, -ENOTCONN while Redis is away, -ENOMEM. */
typedef int (*nq_handler_publish_fn)(void *ctx, const char *marker, const char *channel,
                                     const char *message, nq_store_publish_fn cb, void *userdata);

/* What a handler is given at init. Everything the pointers point at is
 * borrowed and outlives the handler instance; the struct itself is not (copy
 * what you keep). */
struct nq_handler_env {
    struct event_base *base;           /* the worker's event loop */
    const struct nq_config *cfg;       /* the whole configuration generation */
    const struct nq_queue_cfg *queue;  /* the queue this worker serves */
    unsigned slot;                     /* the worker's slot, 0 .. processes - 1 */
    nq_handler_add_batch_fn add_batch; /* NULL: jobs cannot be added here */
    void *add_batch_ctx;
    nq_handler_publish_fn publish; /* NULL in tests without a worker */
    void *publish_ctx;
};

/* How the worker hears an outcome; set by the worker, not by handlers. */
typedef void (*nq_handler_done_fn)(struct nq_handler_call *call, const struct nq_outcome *o);

/* One job in flight. */
struct nq_handler_call {
    /* Borrowed: id, name, data, atm, opts... Not const because
     * nq_job_data_borrow() keeps the tree it builds in the job. */
    struct nq_job *job;
    struct event_base *base; /* the worker's event loop */
    void *handler_data;      /* the handler's own per-call state, NULL at start */
    /* The worker's side; handlers leave these alone. */
    nq_handler_done_fn done;
    void *userdata;
};

/* What a handler does with a key of its job data. */
enum nq_field_use {
    NQ_FIELD_READ,    /* read and checked: part of what is delivered */
    NQ_FIELD_KEPT,    /* accepted and not read: the producer's own bookkeeping */
    NQ_FIELD_REFUSED, /* asks for what the handler cannot do yet: the job fails */
};

struct nq_field {
    const char *name;
    enum nq_field_use use;
    const char *why; /* REFUSED: the reason, after "data.<name>: " */
};

struct nq_field_table {
    const char *handler; /* "email", for messages */
    const struct nq_field *rows;
    size_t n;
    bool open; /* keys outside the table are ignored rather than refused */
};

/* A handler's vtable. validate and cancel may be NULL (nothing to check; a
 * start that always completes inside start() has nothing to cancel). */
struct nq_handler_ops {
    enum nq_handler_kind kind;
    /* The keys its job data accepts; NULL for a handler that reads none. */
    const struct nq_field_table *fields;
    /* Makes the handler's state (*ret_state may stay NULL). 0, or a negative
     * errno with err saying why (the worker exits 78). */
    int (*init)(const struct nq_handler_env *env, void **ret_state, struct nq_err *err);
    /* Frees what init made (state may be NULL). No call is in flight. */
    void (*free)(void *state);
    /* 0 when the job may run, else -EINVAL with err naming the field (the
     * job fails permanently), or another negative errno with err set
     * (-ENOMEM: the job is retried). */
    int (*validate)(void *state, struct nq_job *job, struct nq_err *err);
    /* Starts the job. Returns 0 when nq_handler_call_done() was or will be
     * called, or a negative errno (-ENOMEM...) when nothing was started and
     * done will not be called: the worker then retries the job. */
    int (*start)(void *state, struct nq_handler_call *call);
    /* Abandons a started call (see above). */
    void (*cancel)(void *state, struct nq_handler_call *call);
};

/* For handlers: reports call's one outcome. The worker may free call (and
 * the job) before this returns; do not touch either afterwards. */
void nq_handler_call_done(struct nq_handler_call *call, const struct nq_outcome *o);

/* ---- the worker's side ------------------------------------------------ */

/* The vtable for kind, or NULL when that handler is not implemented yet. */
const struct nq_handler_ops *nq_handler_ops_find(enum nq_handler_kind kind);

/* kind's field table, or NULL (not implemented, or it reads no data). */
const struct nq_field_table *nq_handler_fields(enum nq_handler_kind kind);

/* name's row in t, or NULL. */
const struct nq_field *nq_field_find(const struct nq_field_table *t, const char *name);

/* 0 when every key of data (an object) is a row of t (or t is open) and none
 * is refused with a value; else -EINVAL with err naming the key. */
int nq_field_table_check(const json_t *data, const struct nq_field_table *t,
                         struct nq_err *err) NQ_MUSTCHECK;

/* Makes env->queue's handler. Returns 0 and *ret, -EOPNOTSUPP when the
 * handler is not implemented yet (err says so), -ENOMEM, or the handler's
 * init error (err says why). */
int nq_handler_new(const struct nq_handler_env *env, struct nq_handler **ret,
                   struct nq_err *err) NQ_MUSTCHECK;
struct nq_handler *nq_handler_free(struct nq_handler *h);

int nq_handler_validate(struct nq_handler *h, struct nq_job *job, struct nq_err *err) NQ_MUSTCHECK;
/* call->job, base, done and userdata must be set; handler_data NULL. */
int nq_handler_start(struct nq_handler *h, struct nq_handler_call *call) NQ_MUSTCHECK;
void nq_handler_cancel(struct nq_handler *h, struct nq_handler_call *call);

#endif
