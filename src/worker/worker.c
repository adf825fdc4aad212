/* SPDX-License-Identifier: MIT */
/*
 * The worker loop (skeleton). Its event base is its own, made after
 * nq_child_enter() disposed of the master's. State changes are sent to the
 * master at once and every second in between, so the master's view of a
 * worker is never more than a second old.
 *
 * Drain and stop are the same here because a skeleton worker has no job in
 * flight; the queue issue makes drain wait for in-flight jobs (bounded by
 * the queue's drain_timeout) and stop return them to wait.
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
#include "supervisor/channel.h"
#include "worker/worker.h"

struct worker {
    const struct nq_child_ctx *ctx;
    struct event_base *base;
    struct nq_channel *ch;
    struct event *ev_tick, *ev_term, *ev_quit;
    enum nq_worker_state state;
    enum nq_worker_state active_state; /* what it is when neither paused nor draining */
    uint64_t started_ms;
    struct nq_counters counters;
    uint64_t in_flight;
    char note[NQ_FRAME_NOTE_MAX];
};

static uint64_t now_ms(void)
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
    n = fscanf(f, "%lu %lu", &size, &resident);
    (void) fclose(f);
    return n == 2 ? (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE) / 1024 : 0;
}

static void report(struct worker *w)
{
    struct nq_frame_metrics m = {
        .pid = getpid(),
        .uptime_ms = now_ms() - w->started_ms,
        .state = w->state,
        .counters = w->counters,
        .in_flight = w->in_flight,
        .rss_kib = rss_kib(),
    };
    int r;

    (void) snprintf(m.note, sizeof(m.note), "%s", w->note);
    r = nq_channel_send_metrics(w->ch, &m);
    /* -EAGAIN: the master is busy, the next tick supersedes this frame;
     * -EPIPE: the master is gone and the EOF callback drains. */
    if (r < 0 && r != -EAGAIN && r != -EPIPE)
        nq_log_errno(LOG_WARNING, r, "sending metrics to the master: %m");
}

static void set_state(struct worker *w, enum nq_worker_state s)
{
    if (w->state == s)
        return;
    w->state = s;
    report(w);
}

static void drain(struct worker *w, const char *why)
{
    if (w->state == NQ_WORKER_DRAINING)
        return;
    nq_log(LOG_INFO, "%s, draining", why);
    set_state(w, NQ_WORKER_DRAINING);
    (void) event_base_loopexit(w->base, NULL);
}

static void on_command(enum nq_command cmd, void *userdata)
{
    struct worker *w = userdata;

    if (w->state == NQ_WORKER_DRAINING)
        return;
    switch (cmd) {
    case NQ_CMD_DRAIN:
        drain(w, "drain requested");
        break;
    case NQ_CMD_STOP:
        drain(w, "fast stop requested");
        break;
    case NQ_CMD_PAUSE:
        set_state(w, NQ_WORKER_PAUSED);
        break;
    case NQ_CMD_RESUME:
        set_state(w, w->active_state);
        break;
    }
}

static void on_master_eof(void *userdata)
{
    drain(userdata, "the master is gone");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    report(arg);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    drain(arg, sig == SIGTERM ? "SIGTERM" : "SIGQUIT");
}

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
    if (!w->ch || !w->ev_tick || !w->ev_term || !w->ev_quit)
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

static void worker_done(struct worker *w)
{
    if (w->ev_quit)
        event_free(w->ev_quit);
    if (w->ev_term)
        event_free(w->ev_term);
    if (w->ev_tick)
        event_free(w->ev_tick);
    w->ch = nq_channel_free(w->ch);
    if (w->base)
        event_base_free(w->base);
}

int nq_worker_main(const struct nq_child_ctx *ctx)
{
    struct worker w = {
        .ctx = ctx,
        .state = NQ_WORKER_STARTING,
        .active_state = NQ_WORKER_IDLE,
        .started_ms = now_ms(),
    };
    const char *handler = nq_handler_name(ctx->queue->handler);
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
    nq_log(LOG_WARNING, "handler %s not implemented yet, fetching no jobs", handler);
    (void) snprintf(w.note, sizeof(w.note), "handler %s not implemented yet", handler);
    set_state(&w, w.active_state);
    if (event_base_dispatch(w.base) < 0) {
        nq_log(LOG_ERR, "event loop failed");
        r = 1;
    }
    worker_done(&w);
    return r;
}
