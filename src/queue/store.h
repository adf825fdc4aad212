/* SPDX-License-Identifier: MIT */
/*
 * The queue store: a BullMQ 6.7.0-compatible queue in Redis (see
 * ../shared BULLMQ-LAYOUT.md), driven by our own Lua scripts, for one worker
 * process on its libevent loop.
 *
 * A store holds two hiredis async connections: a command connection for the
 * scripts and a blocking one for BZPOPMIN on the queue's marker, named with
 * CLIENT SETNAME as BullMQ names a worker's so Queue.getWorkers() counts it.
 * Both reconnect by themselves with a growing delay (100 ms .. 5 s); a call
 * made while disconnected fails at once with -ENOTCONN, and calls in flight
 * when a connection drops complete with -ECONNRESET (their jobs stay active
 * under their locks: finish them again once connected, or the stalled check
 * recovers them). A connection is up once its setup (AUTH, SELECT, CLIENT
 * SETNAME, SCRIPT LOAD) succeeded: a server still loading its dataset is
 * "not connected", and retried like a refused connect. A server answering
 * "not now" (LOADING, BUSY, MASTERDOWN, TRYAGAIN) to a call completes it
 * with -EAGAIN: the script did not run; call again later. Scripts go by
 * EVALSHA; on NOSCRIPT the store sends SCRIPT LOAD and the same call again.
 *
 * With redis.sentinel, each connection first asks the sentinels for the
 * master (asynchronously, sentinel.c) and checks with ROLE that it still is
 * one; a lost connection asks again, which follows a failover. A call that
 * a demoted server refuses with READONLY completes with -EAGAIN (nothing
 * ran) and drops its connection, to reconnect to the master. With
 * redis.tls, hiredis talks to an in-process relay that speaks TLS to the
 * server (tls.c). Why a server refuses the setup (a wrong password, a
 * certificate that fails verification) is nq_store_problem().
 *
 * hiredis writes with write(2), not send(MSG_NOSIGNAL): the process must
 * ignore SIGPIPE (STYLE.md pitfall 9) or a Redis restart kills it.
 *
 * One round trip does the hot path: nq_store_work() finishes any number of
 * jobs and fetches up to N more (promoting due delayed jobs, honouring pause,
 * global concurrency and the rate limiter). Lock renewal for all jobs in
 * flight is one nq_store_extend() call.
 *
 * Logging module: connection state changes, and script errors (which mean a
 * bug or a foreign layout), never job data. Ownership: nq_store_new /
 * nq_store_free; results passed to callbacks are owned by the store and freed
 * when the callback returns, except jobs taken with nq_work_result_take_job().
 */
#ifndef NQ_QUEUE_STORE_H
#define NQ_QUEUE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macros.h"
#include "config/config.h"
#include "queue/job.h"

struct event_base;
struct nq_store;

/* ---- what to do with a finished job ------------------------------------- */

/* A handler's verdict on one job. Strings are borrowed for the call. */
enum nq_outcome_kind {
    NQ_OUTCOME_OK,           /* completed with result_json */
    NQ_OUTCOME_RETRY,        /* retryable: backoff, or failed when attempts run out */
    NQ_OUTCOME_PERMANENT,    /* failed now, whatever attempts remain */
    NQ_OUTCOME_RATE_LIMITED, /* 429: delayed retry_after_ms, no attempt spent */
    NQ_OUTCOME_RETURN,       /* not run (drain): back to wait, no attempt spent */
};

struct nq_outcome {
    enum nq_outcome_kind kind;
    const char *result_json; /* OK: JSON text; NULL stands for "null" */
    const char *reason;      /* RETRY, PERMANENT: the failedReason */
    uint64_t retry_after_ms; /* RETRY: overrides the backoff when > 0; RATE_LIMITED */
    /* RETRY, PERMANENT, RATE_LIMITED: JSON text stored as the job's
     * `progress` in the same atomic step (what a partly done job already
     * did, e.g. the recipients an email reached, so the next attempt skips
     * them); NULL leaves progress as it is. */
    const char *progress_json;
};

/* The transitions of our work script (letters are its wire format). */
enum nq_finish_kind {
    NQ_FINISH_COMPLETED = 'C',
    NQ_FINISH_FAILED = 'F',       /* attempts exhausted: also retries-exhausted */
    NQ_FINISH_FAILED_EARLY = 'P', /* permanent failure with attempts left */
    NQ_FINISH_RETRY_LATER = 'D',  /* to delayed after the backoff */
    NQ_FINISH_RETRY_NOW = 'W',    /* backoff 0: straight back to wait */
    NQ_FINISH_RATE_LIMITED = 'L',
    NQ_FINISH_RETURNED = 'R',
};

struct nq_finish {
    const struct nq_job *job; /* borrowed until the call that sends it returns */
    enum nq_finish_kind kind;
    char *text;          /* owned: returnvalue JSON or failedReason */
    char *stacktrace;    /* owned JSON array, failures only */
    char *progress;      /* owned JSON or NULL: the job's new `progress` */
    uint64_t delay_ms;   /* RETRY_LATER, RATE_LIMITED */
    bool engage_limiter; /* RATE_LIMITED on a queue with a limiter */
    bool resent;         /* sent before in a call whose fate is unknown */
    char keep[64];       /* retention spec (nq_keep_format) */
};

/* The reason a fetched job must fail without running (a deferred failure
 * from BullMQ's stalled check, or malformed data/opts), or NULL. Borrowed. */
const char *nq_job_fail_unrun_reason_borrow(const struct nq_job *job);

/* Decides the transition for job after outcome o under queue q's defaults
 * (attempts, backoff with cap, retention, limiter): BullMQ's retry rule is
 * attemptsMade + 1 < attempts. rnd in [0, 1) draws the jitter.
 * Returns 0, -ENOMEM. *ret must be released with nq_finish_done(). */
int nq_finish_plan(const struct nq_job *job, const struct nq_outcome *o,
                   const struct nq_queue_cfg *q, double rnd, struct nq_finish *ret) NQ_MUSTCHECK;
void nq_finish_done(struct nq_finish *f);

/* ---- results -------------------------------------------------------------- */

enum nq_fetch_status {
    NQ_FETCH_OK,           /* jobs fetched (or no fetch asked) */
    NQ_FETCH_EMPTY,        /* nothing to run; value_ms = next delayed due time or 0 */
    NQ_FETCH_RATE_LIMITED, /* value_ms = ms until the limiter opens */
    NQ_FETCH_PAUSED,       /* paused */
    NQ_FETCH_MAXED,        /* the global concurrency is reached: a finish frees a slot */
};

/* A finish code besides BullMQ's: the job's key held no hash (a foreign
 * write); the script failed the job with a reason instead (§ work.lua). */
#define NQ_FINISH_CODE_FOREIGN (-7)
/* A resent finish (nq_finish.resent) that the job shows applied already, by
 * the call whose reply was lost: done, as a 0 would be. */
#define NQ_FINISH_CODE_APPLIED 1

struct nq_work_result {
    int *codes; /* per finish, in order: 0, BullMQ's -1, -2, -3, -6, -7 or 1 */
    size_t n_codes;
    struct nq_job **jobs; /* fetched, locked, decoded; entries may be taken */
    size_t n_jobs;
    enum nq_fetch_status status;
    uint64_t value_ms;
    /* Jobs the fetch (or a promotion) failed because their key held no
     * hash: id and reason, n_foreign pairs borrowed from the reply. */
    const char **foreign;
    size_t n_foreign;
};

/* Moves job i out of r (its slot becomes NULL). */
struct nq_job *nq_work_result_take_job(struct nq_work_result *r, size_t i);
void nq_work_result_done(struct nq_work_result *r);

/* Jobs per state, as counts.lua reads them in one round trip. */
struct nq_counts {
    uint64_t waiting, active, prioritized, delayed, completed, failed, waiting_children;
    uint64_t paused_legacy; /* ids in a BullMQ 5 `paused` list */
    bool paused;
};

/* ---- the async store ---------------------------------------------------- */

struct nq_store_opts {
    const struct nq_redis_cfg *redis; /* address, auth, db, prefix */
    const char *queue;                /* BullMQ queue name */
    const char *worker_name;          /* pb field and ":w:<name>" client name; may be NULL */
    const char *token_prefix;         /* names this worker incarnation in every lock; must
                                       * end with a separator (":") so that no prefix is the
                                       * start of another's */
    uint64_t lock_duration_ms;
    uint32_t limiter_max; /* 0 = no limiter of our own */
    uint64_t limiter_duration_ms;
};

/* Connection state changes: connected = both connections are up and set up.
 * Also called with false, while not connected, when the server refuses the
 * setup for a new reason (nq_store_problem). */
typedef void (*nq_store_state_fn)(void *userdata, bool connected);
/* r is 0 or a negative errno (-ECONNRESET, -EAGAIN, -EIO for a script error,
 * -EPROTO for an unexpected reply).
 * res is valid only during the call. */
typedef void (*nq_store_work_fn)(void *userdata, int r, struct nq_work_result *res);
/* BZPOPMIN result: r = 1 popped (score in ms, 0 for "jobs ready"), 0 timed
 * out, or a negative errno. */
typedef void (*nq_store_marker_fn)(void *userdata, int r, double score);
/* Job counts: r is 0 or a negative errno; c is valid only during the call
 * and NULL when r < 0. */
typedef void (*nq_store_counts_fn)(void *userdata, int r, const struct nq_counts *c);
/* Generic reply of the small scripts: r is the script's integer result or a
 * negative errno; ids (may be NULL) the ids it names, valid during the call. */
typedef void (*nq_store_ids_fn)(void *userdata, int r, char **ids, size_t n_ids);

/* Creates the store and starts connecting. The strings in o are copied.
 * Returns NULL on OOM or invalid names (see nq_keys_init). */
struct nq_store *nq_store_new(struct event_base *base, const struct nq_store_opts *o,
                              nq_store_state_fn on_state, void *userdata);
/* Disconnects; pending callbacks run with -ECANCELED first. */
struct nq_store *nq_store_free(struct nq_store *s);
bool nq_store_connected(const struct nq_store *s);
/* Why the server refuses the connections' setup ("redis unix:/run/redis.sock:
 * authentication failed: WRONGPASS ..."), or NULL; cleared once connected.
 * Borrowed until the next event. */
const char *nq_store_problem(const struct nq_store *s);

/* Finishes n_fin jobs and fetches up to fetch_max more. n_fin may be 0 (a
 * plain fetch) and fetch_max 0 (finish only). Returns 0 (cb will run) or
 * -ENOTCONN, -ENOMEM, -E2BIG (over NQ_STORE_BATCH_MAX). */
#define NQ_STORE_BATCH_MAX 1000
int nq_store_work(struct nq_store *s, const struct nq_finish *fin, size_t n_fin, uint32_t fetch_max,
                  nq_store_work_fn cb, void *userdata) NQ_MUSTCHECK;

/* Renews the locks of jobs[0..n). cb gets r = number renewed and ids = the
 * jobs whose lock was lost (their finish will fail with -2/-6). */
int nq_store_extend(struct nq_store *s, struct nq_job *const *jobs, size_t n, nq_store_ids_fn cb,
                    void *userdata) NQ_MUSTCHECK;

/* Blocks on the marker for up to timeout_ms on the blocking connection
 * (guarded by a watchdog of timeout + 1 s that reconnects it). */
int nq_store_wait_marker(struct nq_store *s, uint64_t timeout_ms, nq_store_marker_fn cb,
                         void *userdata) NQ_MUSTCHECK;

/* The stalled-job check, at most once per interval_ms across all workers.
 * cb gets r = jobs requeued, ids = those requeued. */
int nq_store_stalled_check(struct nq_store *s, uint64_t interval_ms, uint32_t max_stalled,
                           nq_store_ids_fn cb, void *userdata) NQ_MUSTCHECK;

/* Takes back the jobs of a dead worker incarnation (locks with
 * token_prefix): requeued as a stall, or failed after max_crashes deaths by
 * signal (signal_name NULL: the worker was not killed by a signal). keep is
 * the failed-retention spec. cb gets r = jobs requeued + failed, ids = all. */
int nq_store_recover(struct nq_store *s, const char *token_prefix, uint32_t max_stalled,
                     const char *signal_name, uint32_t max_crashes, const char *keep,
                     nq_store_ids_fn cb, void *userdata) NQ_MUSTCHECK;

/* Puts back to wait the jobs locked with token_prefix that never ran (a
 * fetch whose reply was lost locked them): no attempt, no stall counted,
 * a "waiting" event; their locks are deleted. cb gets r = jobs released,
 * ids = those. */
int nq_store_release(struct nq_store *s, const char *token_prefix, nq_store_ids_fn cb,
                     void *userdata) NQ_MUSTCHECK;

/* Adds the next iteration of job's scheduler (job->rjk set). next_ms is the
 * cron time for a `pattern` scheduler, 0 for `every`. cb gets r = 1 added,
 * 0 not (stale, duplicated or done), ids = { next id } when named. */
int nq_store_scheduler_next(struct nq_store *s, const struct nq_job *job, uint64_t next_ms,
                            nq_store_ids_fn cb, void *userdata) NQ_MUSTCHECK;

/* One job of nq_store_add_batch; the strings are borrowed for the call. */
struct nq_add_job {
    const char *id; /* custom job id: required, it makes a second add a no-op */
    const char *name;
    const char *data_json; /* valid JSON */
    const char *opts_json; /* the stored opts, as Node writes them (with jobId) */
};

/* Adds jobs[0..n) to the BullMQ queue `queue` (this store's prefix; any
 * queue, not only the store's own) as Queue.addBulk's adds do, each a
 * standard job, and an id already there is left as it is (BullMQ's
 * "duplicated"); and sets the progress of job progress_id of the store's
 * own queue to progress_json (a "progress" event, as job.updateProgress).
 * One script call (fanout.lua): whatever dies when, Redis holds either the
 * whole batch and its progress, or neither.
 * cb gets r = jobs added and ids = those that already existed; or -ENOENT
 * (job progress_id is gone: nothing was added), -EAGAIN (not now),
 * -ECONNRESET (unknown: send the same batch again), -EIO, -EPROTO.
 * Returns 0 (cb will run) or -ENOTCONN, -ENOMEM, -EINVAL (n is 0 or over
 * NQ_STORE_BATCH_MAX, or queue is not a valid BullMQ queue name). */
int nq_store_add_batch(struct nq_store *s, const char *queue, const struct nq_add_job *jobs,
                       size_t n, const char *progress_id, const char *progress_json,
                       nq_store_ids_fn cb, void *userdata) NQ_MUSTCHECK;

/* Reads the queue's job counts (counts.lua). */
int nq_store_counts(struct nq_store *s, nq_store_counts_fn cb, void *userdata) NQ_MUSTCHECK;

/* The result of nq_store_publish_once: r is the number of subscribers
 * reached (>= 0), -EALREADY when the marker says it was published before,
 * or a negative errno (the message may not have gone out). */
typedef void (*nq_store_publish_fn)(void *userdata, int r);

/* PUBLISHes message on channel unless "<base>nqpub:<marker>" exists, and
 * sets that key (for ttl_ms) in the same script: a job run again after a
 * crash publishes once (publish.lua). */
int nq_store_publish_once(struct nq_store *s, const char *marker, const char *channel,
                          const char *message, uint64_t ttl_ms, nq_store_publish_fn cb,
                          void *userdata) NQ_MUSTCHECK;

/* Milliseconds of the wall clock, the time base of every BullMQ field. */
uint64_t nq_store_now_ms(void);

#endif
