/* SPDX-License-Identifier: MIT */
/*
 * The worker's model, shared by its files (worker.c: process, commands,
 * metrics, drain; jobs.c: jobs in flight, fetch and finish through the
 * store, the marker; upkeep.c: locks, stalled check, fast recovery, job
 * schedulers). Included from nowhere else.
 *
 * A job fetched from Redis becomes a struct wjob and lives in one of three
 * lists: running (its handler works on it), pending (its outcome is known,
 * its finish not sent yet) and sending (its finish is in a work call in
 * flight, which the wjob names). Finishes that complete in the same loop
 * iteration, or while work calls are in flight, go out together in the
 * next call, which also fetches jobs for free slots: one round trip
 * finishes and refills many jobs. Up to two calls are in flight, so that
 * Redis runs one while the worker handles the other's reply (jobs.c says
 * when). A job is freed when Redis has confirmed (or refused) its finish;
 * a finish lost with the connection goes back to pending and is sent again
 * once Redis is back.
 *
 * Ownership: the worker owns every wjob, its job (nq_job) and its planned
 * finish; the handler owns its call's handler_data (handler.h).
 */
#ifndef NQ_WORKER_INTERNAL_H
#define NQ_WORKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "handlers/handler.h"
#include "proc/proc.h"
#include "queue/store.h"

struct event;
struct event_base;
struct nq_deliverylog;

/* BullMQ's drainDelay: an idle worker re-checks the queue this often. */
#define NQ_WORKER_IDLE_WAIT_MS 5000
/* Longest marker wait when a delayed job is due later (§7). */
#define NQ_WORKER_DELAYED_WAIT_MAX_MS 10000
/* BullMQ's maximumRateLimitDelay. */
#define NQ_WORKER_RATE_LIMIT_WAIT_MAX_MS 30000
/* After a drain deadline or fast stop, how long returned jobs may take to
 * reach Redis before the worker leaves anyway (their locks then name a dead
 * worker, whose jobs the master has a sibling recover). Below the master's
 * NQ_STOP_GRACE_MS. */
#define NQ_WORKER_FLUSH_GRACE_MS 2000
/* A worker of slot 0 reads its queue's job counts this often. */
#define NQ_WORKER_COUNTS_MS 2000
/* A recycle request the master did not act on is repeated this often, and
 * after this many the worker drains by itself (it is restarted). */
#define NQ_WORKER_RECYCLE_RETRY_MS 5000
#define NQ_WORKER_RECYCLE_TRIES 3
/* After a script error, fetching pauses this long instead of spinning. */
#define NQ_WORKER_ERROR_BACKOFF_MS 1000
/* A finish failing alone with a script error this often is dropped. */
#define NQ_WORKER_FINISH_TRIES 5
/* Work calls in flight at once. */
#define NQ_WORKER_CALLS_MAX 2
/* The least half window for which a second call is worth its fixed cost. */
#define NQ_WORKER_OVERLAP_MIN 16

enum wjob_list { WJ_RUNNING, WJ_PENDING, WJ_SENDING, WJ__LISTS };

struct worker;

/* A work call in flight: the callback's userdata. */
struct wcall {
    struct worker *w;
    bool busy;
    uint32_t fetch_asked; /* jobs it asked for */
};

struct wjob {
    struct worker *w;
    struct nq_job *job;
    struct nq_handler_call call;
    struct nq_finish fin; /* planned once the outcome is known */
    uint64_t started_ms;  /* monotonic, when the handler started */
    uint64_t took_ms;     /* from start to the handler's outcome */
    enum wjob_list list;
    const struct wcall *sent_in; /* in sending: the call carrying its finish */
    bool lock_lost;              /* logged once */
    bool started;                /* handed to the handler (a suspect waits first) */
    unsigned send_failures;      /* its finish failed alone with a script error */
    struct wjob *prev, *next;
};

struct wjob_list_head {
    struct wjob *first, *last;
    uint32_t n;
};

/* A recovery the master asked for (proc/proc.h "recover"). */
struct wrecovery {
    struct nq_frame_recover what;
    bool in_flight;
    struct worker *w;
    struct wrecovery *next;
};

struct worker {
    const struct nq_child_ctx *ctx;
    const struct nq_queue_cfg *q;
    struct event_base *base;
    struct nq_channel *ch;
    struct nq_store *store;
    struct nq_store *counter; /* idle (no handler), slot 0: only counts the backlog */
    struct nq_handler *handler;
    struct nq_deliverylog *dl; /* NULL without postgres: */
    struct event *ev_tick, *ev_term, *ev_quit;
    struct event *ev_kick;     /* runs the next work call, after this iteration */
    struct event *ev_wake;     /* rate limit or error back-off: fetch again after */
    struct event *ev_lock;     /* lock renewal, every lock_duration / 2 */
    struct event *ev_stalled;  /* the stalled check, every stalled_interval */
    struct event *ev_counts;   /* slot 0: job counts, every NQ_WORKER_COUNTS_MS */
    struct event *ev_deadline; /* drain_timeout, then the flush grace */
    char token_prefix[NQ_FRAME_PREFIX_MAX];
    char worker_name[128];

    struct wjob_list_head lists[WJ__LISTS];
    struct wjob *suspect; /* to run alone, because it was in flight in a crash */
    bool connected;
    enum nq_redis_state redis; /* as the metrics frames say it */
    struct wcall calls[NQ_WORKER_CALLS_MAX];
    /* The finishes of the call being built, kept from call to call: a
     * fresh array of a few KiB per call made glibc consolidate its free
     * lists each time (a tenth of the worker's CPU on a busy queue). */
    struct nq_finish *fins;
    uint32_t fins_cap;
    uint32_t calls_in_flight;
    uint32_t fetch_in_flight; /* jobs the calls in flight asked for */
    uint32_t isolate;         /* after a script error: finishes left to send one per call */
    bool fetch_ready;         /* the queue may have runnable jobs: fetch */
    bool maxed;               /* the last fetch met the global concurrency */
    bool deep;                /* the last fetch got all it asked for */
    bool marker_waiting;      /* a BZPOPMIN is in flight */
    bool waking;              /* ev_wake armed */
    uint64_t next_due_ms;     /* wall clock ms of the next delayed job, 0 if none */
    /* A work call that asked for jobs lost its reply: Redis may have locked
     * jobs for us that we never saw. Fetching waits until nothing of ours is
     * in flight, then we take back whatever still carries our token prefix. */
    bool orphans;
    bool reclaiming;
    bool extend_in_flight;
    bool stalled_started;
    bool counts_in_flight;
    bool paused;    /* by the master (notifyqctl pause) */
    bool draining;  /* no more fetching; leave once flushed */
    bool returning; /* past the drain deadline: flushing only */
    bool leaving;   /* the loop was told to exit */
    struct wrecovery *recoveries;
    int exit_code;

    enum nq_worker_state state;
    uint64_t started_ms;
    struct nq_counters counters;
    struct nq_timing timing;
    struct nq_job_counts jobs;
    uint64_t finished; /* confirmed finishes, for max_jobs */
    unsigned recycle_tries;
    uint64_t recycle_asked_ms;
    char recycle_reason[NQ_FRAME_NOTE_MAX];
    char note[NQ_FRAME_NOTE_MAX];
};

uint64_t nq_worker_mono_ms(void);
/* Sends a metrics frame now (state changes). */
void nq_worker_report(struct worker *w);
/* Leaves the loop if draining and nothing is left to flush. */
void nq_worker_check_done(struct worker *w);
/* After finishes were confirmed: asks for a replacement at max_jobs. */
void nq_worker_check_recycle(struct worker *w);

/* jobs.c */
void nq_wjob_list_move(struct worker *w, struct wjob *j, enum wjob_list to);
/* Runs the next work call soon (after the current loop iteration). */
void nq_jobs_kick(struct worker *w);
void nq_jobs_on_work_event(struct worker *w);
/* ev_wake fired: fetch again. */
void nq_jobs_wake(struct worker *w);
/* Redis connection state changed. */
void nq_jobs_connected(struct worker *w, bool up);
/* Gives every running job back (drain deadline, fast stop). */
void nq_jobs_return_all(struct worker *w);
uint64_t nq_jobs_in_flight(const struct worker *w);
void nq_jobs_free_all(struct worker *w);

/* logbook.c: the delivery log's events */
/* 0, or a negative errno when the worker must not start (logged). */
int nq_logbook_setup(struct worker *w) NQ_MUSTCHECK;
void nq_logbook_free(struct worker *w);
/* The spool is at spool_max: fetch nothing. */
bool nq_logbook_full(const struct worker *w);
/* Events the connected database has not confirmed yet: a drain waits. */
bool nq_logbook_holding(const struct worker *w);
void nq_logbook_started(struct worker *w, struct wjob *j);
/* After Redis confirmed j's finish. */
void nq_logbook_finished(struct worker *w, struct wjob *j);

/* upkeep.c */
int nq_upkeep_setup(struct worker *w) NQ_MUSTCHECK;
void nq_upkeep_connected(struct worker *w);
/* An idle worker of slot 0 reads its queue's counts with w->counter, so a
 * backlog on a queue whose handler does not exist yet still shows. */
int nq_upkeep_setup_counts(struct worker *w) NQ_MUSTCHECK;
void nq_upkeep_counts_connected(struct worker *w);
void nq_upkeep_recover(struct worker *w, const struct nq_frame_recover *what);
/* A worker without a store (idle: no handler) confirms at once: the dead
 * sibling was idle too and held no job. */
void nq_upkeep_nothing_to_recover(struct worker *w, const struct nq_frame_recover *what);
void nq_upkeep_scheduler_next(struct worker *w, const struct nq_job *job);
/* Takes back orphans (see struct worker) once nothing is in flight. */
void nq_upkeep_reclaim(struct worker *w);
void nq_upkeep_tick(struct worker *w);
void nq_upkeep_free(struct worker *w);

#endif
