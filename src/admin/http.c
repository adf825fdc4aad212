/* SPDX-License-Identifier: MIT */
/*
 * The http child's main: its libevent loop (the channel to the master, the
 * signals, a metrics frame a second) around the server thread (server.c),
 * and the snapshot the master sends, kept for the server thread.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin/admin.h"
#include "admin/internal.h"
#include "common/log.h"

uint64_t api_mono_ms(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* /proc/self/statm: "size resident ...", in pages. */
static uint64_t rss_kib(void)
{
    char line[128], *p, *end;
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long resident;
    bool ok;

    if (!f)
        return 0;
    ok = fgets(line, sizeof(line), f) != NULL;
    (void) fclose(f);
    if (!ok || !(p = strchr(line, ' ')))
        return 0;
    errno = 0;
    resident = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1)
        return 0;
    return (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE) / 1024;
}

json_t *api_snapshot_get(struct api *a)
{
    json_t *s = NULL;

    pthread_mutex_lock(&a->lock);
    if (a->snapshot && api_mono_ms() - a->snapshot_ms <= API_SNAPSHOT_STALE_MS)
        s = json_incref(a->snapshot);
    pthread_mutex_unlock(&a->lock);
    return s;
}

static void send_metrics(struct api *a)
{
    struct nq_frame_metrics m = {
        .pid = getpid(),
        .uptime_ms = api_mono_ms() - a->started_ms,
        .state = a->state,
        .rss_kib = rss_kib(),
        .cpu_ms = nq_proc_cpu_ms(),
    };
    int r;

    (void) snprintf(m.note, sizeof(m.note), "listening on %s%s", a->cfg->http.listen,
                    a->cfg->http.tls.cert_file ? " (TLS)" : "");
    r = nq_channel_send_metrics(a->ch, &m);
    /* -EAGAIN: the next tick supersedes it; -EPIPE: the EOF callback drains. */
    if (r < 0 && r != -EAGAIN && r != -EPIPE)
        nq_log_errno(LOG_WARNING, r, "sending metrics to the master: %m");
}

/* Stops the loop; the server stops after it, finishing what it serves. */
static void drain(struct api *a, const char *why)
{
    if (a->state == NQ_WORKER_DRAINING)
        return;
    nq_log(LOG_INFO, "%s: stopping the http server", why);
    a->state = NQ_WORKER_DRAINING;
    send_metrics(a);
    event_base_loopexit(a->base, NULL);
}

static void on_frame(const struct nq_frame *f, void *userdata)
{
    struct api *a = userdata;

    if (f->type == NQ_FRAME_SNAPSHOT) {
        json_t *old;

        pthread_mutex_lock(&a->lock);
        old = a->snapshot;
        a->snapshot = json_incref(f->snapshot);
        a->snapshot_ms = api_mono_ms();
        pthread_mutex_unlock(&a->lock);
        json_decref(old);
        return;
    }
    /* pause/resume/recover are for workers: nothing to do here. */
    if (f->command == NQ_CMD_DRAIN || f->command == NQ_CMD_STOP)
        drain(a, nq_command_name(f->command));
}

static void on_master_eof(void *userdata)
{
    drain(userdata, "the master is gone");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    send_metrics(arg);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void) what;
    drain(arg, sig == SIGTERM ? "SIGTERM" : "SIGQUIT");
}

static int setup(struct api *a)
{
    const struct timeval second = { 1, 0 };

    a->base = event_base_new();
    if (!a->base)
        return -ENOMEM;
    a->ch = nq_channel_new(a->base, a->ctx->fd, on_frame, on_master_eof, a);
    a->ev_tick = event_new(a->base, -1, EV_PERSIST, on_tick, a);
    a->ev_term = evsignal_new(a->base, SIGTERM, on_signal, a);
    a->ev_quit = evsignal_new(a->base, SIGQUIT, on_signal, a);
    if (!a->ch || !a->ev_tick || !a->ev_term || !a->ev_quit)
        return -ENOMEM;
    if (event_add(a->ev_tick, &second) < 0 || event_add(a->ev_term, NULL) < 0 ||
        event_add(a->ev_quit, NULL) < 0)
        return -ENOMEM;
    (void) signal(SIGINT, SIG_IGN);
    (void) signal(SIGHUP, SIG_IGN);
    a->buckets = calloc(a->cfg->http.n_tokens + 1, sizeof(*a->buckets));
    a->redis = calloc(a->cfg->n_queues + 1, sizeof(struct nq_admin *));
    a->checkers = calloc(a->cfg->n_queues + 1, sizeof(void *));
    a->no_checker = calloc(a->cfg->n_queues + 1, sizeof(*a->no_checker));
    return a->buckets && a->redis && a->checkers && a->no_checker ? 0 : -ENOMEM;
}

static void free_event(struct event **ev)
{
    if (*ev)
        event_free(*ev);
    *ev = NULL;
}

static void done(struct api *a)
{
    api_server_stop(a);
    api_redis_close_all(a);
    free(a->redis);
    free(a->checkers);
    free(a->no_checker);
    free(a->buckets);
    free_event(&a->ev_tick);
    free_event(&a->ev_term);
    free_event(&a->ev_quit);
    a->ch = nq_channel_free(a->ch);
    if (a->base)
        event_base_free(a->base);
    json_decref(a->snapshot);
    pthread_mutex_destroy(&a->lock);
}

int nq_api_main(const struct nq_child_ctx *ctx)
{
    struct api a = {
        .ctx = ctx,
        .cfg = ctx->cfg,
        .state = NQ_WORKER_STARTING,
        .started_ms = api_mono_ms(),
    };
    struct nq_err err = { "" };
    int r;

    pthread_mutex_init(&a.lock, NULL);
    r = setup(&a);
    if (r < 0) {
        nq_log_errno(LOG_ERR, r, "setting up the event loop: %m");
        if (!a.ch)
            (void) close(ctx->fd);
        done(&a);
        return 1;
    }
    nq_child_unblock_signals(ctx);
    r = api_server_start(&a, &err);
    if (r < 0) {
        nq_log(LOG_ERR, "%s", nq_err_str(&err));
        done(&a);
        return r == -ENOMEM ? 1 : NQ_EXIT_CONFIG;
    }
    a.state = NQ_WORKER_RUNNING;
    send_metrics(&a);
    if (event_base_dispatch(a.base) < 0) {
        nq_log(LOG_ERR, "event loop failed");
        a.exit_code = 1;
    }
    done(&a);
    return a.exit_code;
}
