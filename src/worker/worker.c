/* SPDX-License-Identifier: MIT */
/*
 * A worker process: its event base (made after nq_child_enter() disposed
 * of the master's), its channel to the master, its signals, its metrics
 * frames (every second and on each state change, so the master's view is
 * never more than a second old), and how it ends: a drain (master's
 * command, SIGTERM, or the master gone) stops fetching, waits for the jobs
 * in flight up to the queue's drain_timeout, returns the rest to wait
 * without spending an attempt, flushes their finishes and exits 0; a fast
 * stop (command, SIGQUIT) returns the jobs in flight at once.
 *
 * Recycling (max_jobs, max_rss): the worker asks the master for a
 * replacement and keeps working until the master, once the replacement is
 * up, tells it to drain. A master that does not answer gets asked again;
 * after NQ_WORKER_RECYCLE_TRIES the worker drains by itself.
 *
 * Exit status: 0 after a drain or stop; 78 (EX_CONFIG) when the handler
 * cannot start with this configuration; 1 when the loop cannot be set up.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "config/config.h"
#include "deliverylog/deliverylog.h"
#include "proc/proc.h"
#include "worker/internal.h"
#include "worker/worker.h"

uint64_t nq_worker_mono_ms(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static uint64_t rss_kib(void)
{
    unsigned long size, resident;
    FILE *f = fopen("/proc/self/statm", "re");
    int n;

    if (!f)
        return 0;
    /* The kernel writes two decimal numbers; a short read gives n != 2. */
    /* NOLINTNEXTLINE(cert-err34-c) */
    n = fscanf(f, "%lu %lu", &size, &resident);
    (void) fclose(f);
    return n == 2 ? (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE) / 1024 : 0;
}

static void arm_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };

    (void) event_add(ev, &tv);
}

static void send_metrics(struct worker *w, uint64_t rss)
{
    struct nq_frame_metrics m = {
        .pid = getpid(),
        .uptime_ms = nq_worker_mono_ms() - w->started_ms,
        .state = w->state,
        .counters = w->counters,
        /* Orphans of a lost reply may hold locks: not "nothing in flight",
         * so that the master has them taken back if we leave first. */
        .in_flight = nq_jobs_in_flight(w) + (w->orphans ? 1 : 0),
        .rss_kib = rss,
        .cpu_ms = nq_proc_cpu_ms(),
        .timing = w->timing,
        .jobs = w->jobs,
        .redis = w->redis,
    };
    int r;

    (void) snprintf(m.note, sizeof(m.note), "%s", w->note);
    r = nq_channel_send_metrics(w->ch, &m);
    /* -EAGAIN: the master is busy, the next tick supersedes this frame;
     * -EPIPE: the master is gone and the EOF callback drains. */
    if (r < 0 && r != -EAGAIN && r != -EPIPE)
        nq_log_errno(LOG_WARNING, r, "sending metrics to the master: %m");
}

void nq_worker_report(struct worker *w)
{
    send_metrics(w, rss_kib());
}

static void set_state(struct worker *w, enum nq_worker_state s)
{
    if (w->state == s)
        return;
    w->state = s;
    nq_worker_report(w);
}

static void set_note(struct worker *w, const char *note)
{
    if (strcmp(w->note, note) == 0)
        return;
    (void) snprintf(w->note, sizeof(w->note), "%s", note);
    nq_worker_report(w);
}

/* ---- ending ------------------------------------------------------------------ */

void nq_worker_check_done(struct worker *w)
{
    if (!w->draining || w->leaving || w->calls_in_flight || nq_jobs_in_flight(w) > 0 ||
        (w->orphans && w->connected) || nq_logbook_holding(w))
        return;
    w->leaving = true;
    (void) event_base_loopexit(w->base, NULL);
}

/* drain_timeout passed (or a fast stop): give the jobs in flight back, then
 * allow their finishes NQ_WORKER_FLUSH_GRACE_MS to reach Redis. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t left;

    (void) fd;
    (void) what;
    if (!w->returning) {
        w->returning = true;
        nq_jobs_return_all(w);
        arm_ms(w->ev_deadline, NQ_WORKER_FLUSH_GRACE_MS);
        nq_worker_check_done(w);
        return;
    }
    left = nq_jobs_in_flight(w);
    nq_log(LOG_WARNING,
           "%llu finish%s could not reach redis, leaving anyway: the master has "
           "another worker take back these jobs",
           (unsigned long long) left, left == 1 ? "" : "es");
    w->leaving = true;
    (void) event_base_loopexit(w->base, NULL);
}

static void drain(struct worker *w, const char *why, bool fast)
{
    if (!w->draining) {
        nq_log(LOG_INFO, "%s, %s (%llu job%s in flight)", why, fast ? "stopping" : "draining",
               (unsigned long long) nq_jobs_in_flight(w), nq_jobs_in_flight(w) == 1 ? "" : "s");
        w->draining = true;
        set_state(w, NQ_WORKER_DRAINING);
        arm_ms(w->ev_deadline, fast ? 0 : w->q->drain_timeout_ms);
    } else if (fast && !w->returning) {
        nq_log(LOG_INFO, "%s, returning the jobs in flight now", why);
        arm_ms(w->ev_deadline, 0);
    }
    nq_worker_check_done(w);
}

/* ---- recycling ----------------------------------------------------------------- */

static bool recycle_due(struct worker *w, uint64_t rss)
{
    const struct nq_queue_cfg *q = w->q;

    if (q->max_jobs && w->finished >= q->max_jobs)
        (void) snprintf(w->recycle_reason, sizeof(w->recycle_reason),
                        "finished %llu jobs, max_jobs %u", (unsigned long long) w->finished,
                        q->max_jobs);
    else if (q->max_rss_mib && rss > (uint64_t) q->max_rss_mib * 1024)
        (void) snprintf(w->recycle_reason, sizeof(w->recycle_reason),
                        "RSS %llu MiB, max_rss %u MiB", (unsigned long long) (rss / 1024),
                        q->max_rss_mib);
    else
        return false;
    return true;
}

/* rss: the current RSS in KiB, or 0 when not measured now. */
static void check_recycle(struct worker *w, uint64_t rss)
{
    struct nq_frame f = { .type = NQ_FRAME_RECYCLE };
    uint64_t now = nq_worker_mono_ms();
    int r;

    if (w->draining)
        return;
    if (!w->recycle_reason[0]) {
        if (!recycle_due(w, rss))
            return;
        nq_log(LOG_INFO, "%s: asking the master for a replacement", w->recycle_reason);
        set_note(w, "recycling");
    } else if (now - w->recycle_asked_ms < NQ_WORKER_RECYCLE_RETRY_MS) {
        return;
    }
    if (w->recycle_tries++ >= NQ_WORKER_RECYCLE_TRIES) {
        drain(w, "no replacement came", false);
        return;
    }
    w->recycle_asked_ms = now;
    (void) snprintf(f.reason, sizeof(f.reason), "%s", w->recycle_reason);
    r = nq_channel_send(w->ch, &f);
    if (r < 0 && r != -EAGAIN && r != -EPIPE)
        nq_log_errno(LOG_WARNING, r, "asking to be recycled: %m");
}

void nq_worker_check_recycle(struct worker *w)
{
    if (w->q->max_jobs && !w->recycle_reason[0] && w->finished >= w->q->max_jobs)
        check_recycle(w, 0);
}

/* ---- events -------------------------------------------------------------------- */

static void on_command(const struct nq_frame *f, void *userdata)
{
    struct worker *w = userdata;

    if (f->type != NQ_FRAME_COMMAND)
        return; /* snapshots are for the http child */
    switch (f->command) {
    case NQ_CMD_DRAIN:
        drain(w, "drain requested", false);
        break;
    case NQ_CMD_STOP:
        drain(w, "fast stop requested", true);
        break;
    case NQ_CMD_PAUSE:
        w->paused = true;
        if (!w->draining && w->state != NQ_WORKER_IDLE)
            set_state(w, NQ_WORKER_PAUSED);
        break;
    case NQ_CMD_RESUME:
        w->paused = false;
        if (!w->draining && w->state == NQ_WORKER_PAUSED)
            set_state(w, NQ_WORKER_RUNNING);
        if (w->store) {
            w->fetch_ready = true;
            nq_jobs_kick(w);
        }
        break;
    case NQ_CMD_RECOVER:
        if (w->store)
            nq_upkeep_recover(w, &f->recover);
        else
            nq_upkeep_nothing_to_recover(w, &f->recover);
        break;
    }
}

static void on_master_eof(void *userdata)
{
    drain(userdata, "the master is gone", false);
}

/* The delivery log's spool while PostgreSQL is away, in the note that
 * notifyqctl status shows (other notes win: they say more). */
static void note_spool(struct worker *w)
{
    char note[NQ_FRAME_NOTE_MAX];
    bool ours = strncmp(w->note, "delivery log", 12) == 0;

    if (!w->dl || (w->note[0] && !ours))
        return;
    if (nq_deliverylog_connected(w->dl) && !nq_deliverylog_full(w->dl)) {
        if (ours)
            set_note(w, "");
        return;
    }
    (void) snprintf(note, sizeof(note), "delivery log: %s, %llu events spooled",
                    nq_deliverylog_full(w->dl) ? "spool full, not fetching"
                                               : "postgres unreachable",
                    (unsigned long long) nq_deliverylog_depth(w->dl));
    set_note(w, note);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t rss = rss_kib();

    (void) fd;
    (void) what;
    note_spool(w);
    if (w->store) {
        nq_upkeep_tick(w);
        check_recycle(w, rss);
    }
    send_metrics(w, rss);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void) what;
    if (sig == SIGTERM)
        drain(arg, "SIGTERM", false);
    else
        drain(arg, "SIGQUIT", true);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    nq_jobs_on_work_event(arg);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    nq_jobs_wake(arg);
}

static void on_store_state(void *userdata, bool connected)
{
    struct worker *w = userdata;

    const char *problem = nq_store_problem(w->store);

    nq_jobs_connected(w, connected);
    if (connected || w->redis != NQ_REDIS_CONNECTING)
        w->redis = connected ? NQ_REDIS_CONNECTED : NQ_REDIS_DISCONNECTED;
    nq_worker_report(w); /* the master shows it at once, note or not */
    set_note(w, connected ? (w->recycle_reason[0] ? "recycling" : "")
                          : (problem ? problem : "redis unreachable"));
    if (connected)
        nq_upkeep_connected(w);
}

/* ---- setup ----------------------------------------------------------------------- */

static int worker_setup(struct worker *w)
{
    const struct timeval second = { 1, 0 };

    w->base = event_base_new();
    if (!w->base)
        return -ENOMEM;
    w->ch = nq_channel_new(w->base, w->ctx->fd, on_command, on_master_eof, w);
    w->ev_tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    w->ev_term = evsignal_new(w->base, SIGTERM, on_signal, w);
    w->ev_quit = evsignal_new(w->base, SIGQUIT, on_signal, w);
    w->ev_kick = event_new(w->base, -1, 0, on_kick, w);
    w->ev_wake = evtimer_new(w->base, on_wake, w);
    w->ev_deadline = evtimer_new(w->base, on_deadline, w);
    if (!w->ch || !w->ev_tick || !w->ev_term || !w->ev_quit || !w->ev_kick || !w->ev_wake ||
        !w->ev_deadline)
        return -ENOMEM;
    if (event_add(w->ev_tick, &second) < 0 || event_add(w->ev_term, NULL) < 0 ||
        event_add(w->ev_quit, NULL) < 0)
        return -ENOMEM;
    /* Ctrl-C and a terminal hangup reach the whole process group; the master
     * decides what they mean and tells us. */
    (void) signal(SIGINT, SIG_IGN);
    (void) signal(SIGHUP, SIG_IGN);
    return 0;
}

static void on_counter_state(void *userdata, bool connected)
{
    struct worker *w = userdata;

    w->connected = connected;
    w->redis = connected ? NQ_REDIS_CONNECTED : NQ_REDIS_DISCONNECTED;
    nq_worker_report(w);
    if (connected)
        nq_upkeep_counts_connected(w);
}

/* A queue whose handler does not exist yet fetches nothing, but its
 * backlog must not be invisible: slot 0 still counts its jobs. Returns 1
 * (idle), or -ENOMEM with the exit status in w->exit_code. */
static int idle_start(struct worker *w, const struct nq_store_opts *o)
{
    if (w->ctx->slot != 0)
        return 1;
    w->redis = NQ_REDIS_CONNECTING;
    w->counter = nq_store_new(w->base, o, on_counter_state, w);
    if (!w->counter || nq_upkeep_setup_counts(w) < 0) {
        nq_log(LOG_ERR, "cannot create the queue store for %s", o->queue);
        w->exit_code = 1;
        return -ENOMEM;
    }
    return 1;
}

/* The handlers' door to the store (handler.h): the store is made after
 * the handler, and remade by nothing, so it is looked up per call. */
static int add_batch(void *ctx, const char *queue, const struct nq_add_job *jobs, size_t n,
                     const char *progress_id, const char *progress_json, nq_store_ids_fn cb,
                     void *userdata)
{
    struct worker *w = ctx;

    if (!w->store)
        return -ENOTCONN;
    return nq_store_add_batch(w->store, queue, jobs, n, progress_id, progress_json, cb, userdata);
}

/* 7 days: a job retried later than this after a crash may publish again. */
#define NQ_WORKER_PUBLISH_MARKER_MS (7ULL * 24 * 3600 * 1000)

/* The store lent to the handler (handler.h nq_handler_publish_fn). */
static int worker_publish(void *ctx, const char *marker, const char *channel, const char *message,
                          nq_store_publish_fn cb, void *userdata)
{
    struct worker *w = ctx;

    if (!w->store)
        return -ENOTCONN;
    return nq_store_publish_once(w->store, marker, channel, message, NQ_WORKER_PUBLISH_MARKER_MS,
                                 cb, userdata);
}

/* The handler and the store. Returns 0, 1 when the handler is not
 * implemented (the worker idles), or a negative errno with the exit status
 * in w->exit_code. */
static int worker_start(struct worker *w)
{
    const struct nq_handler_env env = {
        .base = w->base,
        .cfg = w->ctx->cfg,
        .queue = w->q,
        .slot = w->ctx->slot,
        .add_batch = add_batch,
        .add_batch_ctx = w,
        .publish = worker_publish,
        .publish_ctx = w,
    };
    struct nq_store_opts o = {
        .redis = &w->ctx->cfg->redis,
        .queue = w->q->bullmq_queue ? w->q->bullmq_queue : w->q->name,
        .worker_name = w->worker_name,
        .token_prefix = w->token_prefix,
        .lock_duration_ms = w->q->lock_duration_ms,
        .limiter_max = w->q->rate_limit.max,
        .limiter_duration_ms = w->q->rate_limit.duration_ms,
    };
    struct nq_err err = { "" };
    int r = nq_token_prefix(w->token_prefix, sizeof(w->token_prefix),
                            w->ctx->hostname ? w->ctx->hostname : "localhost", getpid(),
                            w->ctx->incarnation);

    if (r < 0) {
        nq_log(LOG_ERR, "host name too long for a lock token");
        w->exit_code = 1;
        return r;
    }
    (void) snprintf(w->worker_name, sizeof(w->worker_name), "notifyq-%ld", (long) getpid());
    r = nq_handler_new(&env, &w->handler, &err);
    if (r == -EOPNOTSUPP) {
        nq_log(LOG_WARNING, "%s, fetching no jobs", nq_err_str(&err));
        (void) snprintf(w->note, sizeof(w->note), "%s", nq_err_str(&err));
        return idle_start(w, &o);
    }
    if (r < 0) {
        nq_log(LOG_ERR, "handler %s: %s", nq_handler_name(w->q->handler), nq_err_str(&err));
        w->exit_code = r == -ENOMEM ? 1 : NQ_EXIT_CONFIG;
        return r;
    }
    r = nq_logbook_setup(w);
    if (r < 0) {
        w->exit_code = r == -ENOMEM ? 1 : NQ_EXIT_CONFIG;
        return r;
    }
    /* Until it has talked to Redis, so that a Redis down at start does not
     * look healthy. */
    w->redis = NQ_REDIS_CONNECTING;
    (void) snprintf(w->note, sizeof(w->note), "not connected to Redis yet");
    w->store = nq_store_new(w->base, &o, on_store_state, w);
    if (!w->store) {
        nq_log(LOG_ERR, "cannot create the queue store for %s", o.queue);
        w->exit_code = 1;
        return -ENOMEM;
    }
    r = nq_upkeep_setup(w);
    if (r < 0)
        w->exit_code = 1;
    return r;
}

static void worker_done(struct worker *w)
{
    /* The store first: its pending callbacks run with -ECANCELED while the
     * jobs and recoveries they point at still exist. */
    w->store = nq_store_free(w->store);
    w->counter = nq_store_free(w->counter);
    nq_jobs_free_all(w);
    nq_upkeep_free(w);
    nq_logbook_free(w);
    w->handler = nq_handler_free(w->handler);
    struct event **evs[] = { &w->ev_deadline, &w->ev_wake, &w->ev_kick,
                             &w->ev_quit,     &w->ev_term, &w->ev_tick };
    for (size_t i = 0; i < NQ_ELEMENTSOF(evs); i++)
        if (*evs[i]) {
            /* cppcheck-suppress shadowVariable ; it reads "f(*a[i]);" as a declaration */
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    w->ch = nq_channel_free(w->ch);
    if (w->base)
        event_base_free(w->base);
}

int nq_worker_main(const struct nq_child_ctx *ctx)
{
    struct worker w = {
        .ctx = ctx,
        .q = ctx->queue,
        .state = NQ_WORKER_STARTING,
        .started_ms = nq_worker_mono_ms(),
    };
    int r;

    r = worker_setup(&w);
    if (r < 0) {
        nq_log_errno(LOG_ERR, r, "setting up the event loop: %m");
        if (!w.ch)
            (void) close(ctx->fd);
        worker_done(&w);
        return 1;
    }
    nq_child_unblock_signals(ctx);
    r = worker_start(&w);
    if (r < 0) {
        worker_done(&w);
        return w.exit_code;
    }
    if (w.paused)
        set_state(&w, NQ_WORKER_PAUSED);
    else
        set_state(&w, r == 1 ? NQ_WORKER_IDLE : NQ_WORKER_RUNNING);
    if (event_base_dispatch(w.base) < 0) {
        nq_log(LOG_ERR, "event loop failed");
        w.exit_code = 1;
    }
    /* The master reads it after the exit: jobs still in flight mean locks
     * left in Redis, which it has a sibling take back. */
    nq_worker_report(&w);
    worker_done(&w);
    return w.exit_code;
}
