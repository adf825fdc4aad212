/* SPDX-License-Identifier: MIT */
/*
 * What a worker does besides running jobs: renew the locks of its jobs
 * (every lock_duration / 2, all in one call), run the stalled check (once
 * at start, then every stalled_interval; the store guards it so one process
 * runs it per interval), take back a dead worker's jobs when the master
 * asks (fast recovery, recovery.c in the supervisor), advance the job
 * schedulers whose iterations it fetches (BULLMQ-LAYOUT.md §11), and, in
 * slot 0 only so that Redis is asked once per queue, read the queue's job
 * counts for the metrics frames (notifyqctl status).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "queue/cron.h"
#include "worker/internal.h"

static void arm_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };

    (void) event_add(ev, &tv);
}

/* ---- locks ---------------------------------------------------------------- */

static void mark_lost(struct worker *w, const char *id)
{
    for (int l = WJ_RUNNING; l <= WJ_PENDING; l++)
        for (struct wjob *j = w->lists[l].first; j; j = j->next)
            if (!j->lock_lost && strcmp(j->job->id, id) == 0) {
                j->lock_lost = true;
                nq_log(LOG_WARNING,
                       "job %s: lock lost (expired, or taken by the stalled "
                       "check); its finish will be refused",
                       id);
            }
}

static void on_extended(void *userdata, int r, char **ids, size_t n)
{
    struct worker *w = userdata;

    w->extend_in_flight = false;
    if (r < 0) {
        /* -EAGAIN: the server is loading or busy; the next renewal retries. */
        if (r != -ECANCELED && r != -ECONNRESET && r != -EAGAIN)
            nq_log_errno(LOG_ERR, r, "renewing locks: %m");
        return;
    }
    for (size_t i = 0; i < n; i++)
        mark_lost(w, ids[i]);
}

static void on_lock_timer(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    size_t n = (size_t) w->lists[WJ_RUNNING].n + w->lists[WJ_PENDING].n, k = 0;
    struct nq_job **jobs;
    int r;

    (void) fd;
    (void) what;
    if (!w->connected || w->extend_in_flight || n == 0)
        return;
    jobs = calloc(n, sizeof(struct nq_job *));
    if (!jobs) {
        nq_log(LOG_ERR, "renewing locks: out of memory, trying again later");
        return;
    }
    for (int l = WJ_RUNNING; l <= WJ_PENDING; l++)
        for (struct wjob *j = w->lists[l].first; j; j = j->next)
            jobs[k++] = j->job;
    r = nq_store_extend(w->store, jobs, n, on_extended, w);
    free(jobs);
    if (r == 0)
        w->extend_in_flight = true;
    else if (r != -ENOTCONN)
        nq_log_errno(LOG_ERR, r, "renewing locks: %m");
}

/* ---- the stalled check -------------------------------------------------------- */

static void on_stalled(void *userdata, int r, char **ids, size_t n)
{
    (void) userdata;
    (void) ids;
    if (r < 0 && r != -ECANCELED && r != -ECONNRESET && r != -EAGAIN)
        nq_log_errno(LOG_ERR, r, "stalled check: %m");
    else if (r > 0)
        nq_log(LOG_NOTICE, "stalled check: %zu job%s back to wait (lock expired)", n,
               n == 1 ? "" : "s");
}

static void stalled_check(struct worker *w)
{
    int r = nq_store_stalled_check(w->store, w->q->stalled_interval_ms, w->q->max_stalled,
                                   on_stalled, w);

    if (r < 0 && r != -ENOTCONN)
        nq_log_errno(LOG_ERR, r, "stalled check: %m");
}

static void on_stalled_timer(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    stalled_check(arg);
}

/* ---- job counts ------------------------------------------------------------- */

static void on_counts(void *userdata, int r, const struct nq_counts *c)
{
    struct worker *w = userdata;

    w->counts_in_flight = false;
    if (r < 0) {
        /* The master keeps the last counts read; the next read fixes them. */
        if (r != -ECANCELED && r != -ECONNRESET && r != -EAGAIN)
            nq_log_errno(LOG_WARNING, r, "reading the job counts: %m");
        return;
    }
    w->jobs = (struct nq_job_counts){
        .known = true,
        .waiting = c->waiting + c->prioritized + c->paused_legacy,
        .active = c->active,
        .delayed = c->delayed,
        .failed = c->failed,
        .completed = c->completed,
    };
}

static void read_counts(struct worker *w)
{
    int r;

    if (!w->ev_counts || w->counts_in_flight || !w->connected)
        return;
    r = nq_store_counts(w->store ? w->store : w->counter, on_counts, w);
    if (r == 0)
        w->counts_in_flight = true;
    else if (r != -ENOTCONN)
        nq_log_errno(LOG_WARNING, r, "reading the job counts: %m");
}

static void on_counts_timer(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    read_counts(arg);
}

/* ---- fast recovery -------------------------------------------------------------- */

static void run_recoveries(struct worker *w);

static void confirm(struct worker *w, const struct nq_frame_recover *what)
{
    struct nq_frame f = { .type = NQ_FRAME_RECOVERED };
    int r;

    f.recover = *what;
    r = nq_channel_send(w->ch, &f);
    /* Unconfirmed, the master gives it to a worker again later: harmless. */
    if (r < 0 && r != -EAGAIN && r != -EPIPE)
        nq_log_errno(LOG_WARNING, r, "confirming a recovery to the master: %m");
}

void nq_upkeep_nothing_to_recover(struct worker *w, const struct nq_frame_recover *what)
{
    confirm(w, what);
}

static void recovery_done(struct worker *w, struct wrecovery *rec)
{
    confirm(w, &rec->what);
    for (struct wrecovery **p = &w->recoveries; *p; p = &(*p)->next)
        if (*p == rec) {
            *p = rec->next;
            break;
        }
    free(rec);
}

static void on_recovered(void *userdata, int r, char **ids, size_t n)
{
    struct wrecovery *rec = userdata;
    struct worker *w = rec->w;

    rec->in_flight = false;
    if (r == -ECANCELED)
        return;
    if (r == -ECONNRESET || r == -EAGAIN)
        return; /* again once Redis is back, or at the next tick */
    if (r < 0)
        nq_log_errno(LOG_ERR, r,
                     "recovering the jobs of %s: %m; the stalled check will find "
                     "them",
                     rec->what.prefix);
    else if (n > 0)
        nq_log(LOG_NOTICE, "took back %zu job%s of %s%s%s (first: %s)", n, n == 1 ? "" : "s",
               rec->what.prefix, rec->what.signal[0] ? ", killed by " : "", rec->what.signal,
               ids[0]);
    recovery_done(w, rec);
}

/* Failed recovered jobs follow the queue's failed retention. */
static void failed_keep_spec(const struct worker *w, char *buf, size_t size)
{
    const struct nq_job blank = { 0 };
    struct nq_keep keep;

    nq_job_keep(&blank, true, &w->q->retention.failed, &keep);
    if (nq_keep_format(&keep, buf, size) < 0)
        buf[0] = 0; /* keep everything */
}

static void run_recoveries(struct worker *w)
{
    char keep[64];

    if (!w->connected)
        return;
    failed_keep_spec(w, keep, sizeof(keep));
    for (struct wrecovery *rec = w->recoveries; rec; rec = rec->next) {
        int r;

        if (rec->in_flight)
            continue;
        r = nq_store_recover(w->store, rec->what.prefix, w->q->max_stalled,
                             rec->what.signal[0] ? rec->what.signal : NULL, w->q->max_crashes, keep,
                             on_recovered, rec);
        if (r == 0)
            rec->in_flight = true;
        else if (r != -ENOTCONN)
            nq_log_errno(LOG_ERR, r, "recovering the jobs of %s: %m", rec->what.prefix);
    }
}

void nq_upkeep_recover(struct worker *w, const struct nq_frame_recover *what)
{
    struct wrecovery *rec, **tail;

    if (strcmp(what->prefix, w->token_prefix) == 0)
        return; /* never our own locks */
    for (tail = &w->recoveries; *tail; tail = &(*tail)->next)
        if (strcmp((*tail)->what.prefix, what->prefix) == 0)
            return;
    rec = calloc(1, sizeof(*rec));
    if (!rec) {
        nq_log(LOG_ERR, "recovering the jobs of %s: out of memory", what->prefix);
        return;
    }
    rec->what = *what;
    rec->w = w;
    *tail = rec;
    run_recoveries(w);
}

/* ---- orphans of a lost reply ------------------------------------------------------ */

static void on_reclaimed(void *userdata, int r, char **ids, size_t n)
{
    struct worker *w = userdata;

    w->reclaiming = false;
    if (r == -ECANCELED || r == -EAGAIN)
        return; /* -EAGAIN: the server is loading or busy; the next tick retries */
    if (r < 0) {
        /* Lost again: once reconnected, the next kick retries. */
        if (r != -ECONNRESET)
            nq_log_errno(LOG_ERR, r,
                         "taking back jobs whose fetch reply was lost: %m; the "
                         "stalled check will find them");
        if (r != -ECONNRESET)
            w->orphans = false;
    } else {
        if (n > 0)
            nq_log(LOG_NOTICE,
                   "took back %zu job%s locked for this worker by a fetch whose "
                   "reply was lost (first: %s)",
                   n, n == 1 ? "" : "s", ids[0]);
        w->orphans = false;
    }
    w->fetch_ready = true;
    nq_jobs_kick(w);
    nq_worker_check_done(w);
}

void nq_upkeep_reclaim(struct worker *w)
{
    int r;

    if (!w->orphans || w->reclaiming || w->calls_in_flight || !w->connected ||
        nq_jobs_in_flight(w) > 0)
        return;
    /* Nothing crashed and these jobs never ran: a plain release, no stall
     * counted (with connections dropping often, the same jobs can be
     * orphaned again and again). */
    r = nq_store_release(w->store, w->token_prefix, on_reclaimed, w);
    if (r == 0)
        w->reclaiming = true;
    else if (r != -ENOTCONN)
        nq_log_errno(LOG_ERR, r, "taking back jobs whose fetch reply was lost: %m");
}

/* ---- job schedulers --------------------------------------------------------------- */

static void on_scheduled(void *userdata, int r, char **ids, size_t n)
{
    (void) userdata;
    (void) ids;
    (void) n;
    if (r < 0 && r != -ECANCELED && r != -ECONNRESET)
        nq_log_errno(LOG_ERR, r, "adding a job scheduler's next iteration: %m");
}

/* A `pattern` scheduler's next time, as a BullMQ worker computes it (from
 * the fetched iteration's opts); 0 for an `every` one, which the store
 * computes. Returns 0, or -ENOENT when the schedule has no next time. */
static int next_time(const struct nq_job *job, uint64_t *ret_ms)
{
    const struct nq_repeat *rep = &job->opts.repeat;
    const struct nq_cron_sched cs = {
        .pattern = rep->pattern,
        .tz = rep->tz,
        .start_date_ms = rep->start_date,
        .end_date_ms = rep->end_date,
        .prev_millis = job->opts.prev_millis,
    };
    struct nq_err err = { "" };
    int r;

    *ret_ms = 0;
    if (!rep->pattern)
        return 0;
    r = nq_cron_scheduler_next(&cs, nq_store_now_ms(), ret_ms, &err);
    if (r < 0 && r != -ENOENT)
        nq_log(LOG_ERR, "job scheduler %s: %s; no next iteration", job->rjk, nq_err_str(&err));
    return r;
}

void nq_upkeep_scheduler_next(struct worker *w, const struct nq_job *job)
{
    uint64_t next_ms;
    int r = next_time(job, &next_ms);

    if (r < 0)
        return;
    r = nq_store_scheduler_next(w->store, job, next_ms, on_scheduled, w);
    if (r < 0)
        nq_log_errno(LOG_ERR, r, "job scheduler %s: adding its next iteration: %m", job->rjk);
}

/* ---- lifecycle -------------------------------------------------------------------- */

static int add_counts_timer(struct worker *w)
{
    w->ev_counts = event_new(w->base, -1, EV_PERSIST, on_counts_timer, w);
    if (!w->ev_counts)
        return -ENOMEM;
    arm_ms(w->ev_counts, NQ_WORKER_COUNTS_MS);
    return 0;
}

int nq_upkeep_setup(struct worker *w)
{
    w->ev_lock = event_new(w->base, -1, EV_PERSIST, on_lock_timer, w);
    w->ev_stalled = event_new(w->base, -1, EV_PERSIST, on_stalled_timer, w);
    if (!w->ev_lock || !w->ev_stalled)
        return -ENOMEM;
    arm_ms(w->ev_lock, w->q->lock_duration_ms / 2 ? w->q->lock_duration_ms / 2 : 1);
    return w->ctx->slot == 0 ? add_counts_timer(w) : 0;
}

int nq_upkeep_setup_counts(struct worker *w)
{
    return add_counts_timer(w);
}

void nq_upkeep_counts_connected(struct worker *w)
{
    read_counts(w);
}

void nq_upkeep_connected(struct worker *w)
{
    run_recoveries(w);
    read_counts(w);
    if (!w->stalled_started) {
        w->stalled_started = true;
        stalled_check(w);
        arm_ms(w->ev_stalled, w->q->stalled_interval_ms);
    }
}

void nq_upkeep_tick(struct worker *w)
{
    run_recoveries(w);
    nq_upkeep_reclaim(w);
}

void nq_upkeep_free(struct worker *w)
{
    while (w->recoveries) {
        struct wrecovery *rec = w->recoveries;

        w->recoveries = rec->next;
        free(rec);
    }
    if (w->ev_lock)
        event_free(w->ev_lock);
    if (w->ev_stalled)
        event_free(w->ev_stalled);
    if (w->ev_counts)
        event_free(w->ev_counts);
    w->ev_lock = w->ev_stalled = w->ev_counts = NULL;
}
