/* SPDX-License-Identifier: MIT */
/*
 * The master: one libevent loop. Signals arrive as evsignal events
 * (PgBouncer), so their handlers are ordinary code. Everything that changes
 * a slot ends in nq_master_slot_changed(), which frees retired slots that
 * exited, commits or aborts a pending reload, sends READY=1 once, and ends
 * the loop when a stop has no child left.
 *
 * Reload is nginx's cycle with HAProxy's safety: load the new file whole;
 * on error log it and keep everything; otherwise start the new generation's
 * children next to the old ones, and only when every new child has sent
 * its first frame drain the old generation. A new child that exits first
 * (or silence for NQ_RELOAD_TIMEOUT_MS) fails the reload: the new children
 * are drained and the old generation keeps running.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "config/config.h"
#include "supervisor/control.h"
#include "supervisor/internal.h"

static const int master_signals[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD };

uint64_t nq_mono_ms(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* Only the master talks to systemd; without NOTIFY_SOCKET this does nothing. */
static void notify(const char *fmt, ...) NQ_PRINTF(1, 2);
static void notify(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int r;

    va_start(ap, fmt);
    (void) vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    r = sd_notify(0, buf);
    if (r < 0)
        nq_log_errno(LOG_DEBUG, r, "sd_notify: %m");
}

static void arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };

    (void) event_add(ev, &tv);
}

struct nq_qstate *nq_master_qstate(const struct nq_master *m, const char *name)
{
    for (struct nq_qstate *q = m->queues; q; q = q->next)
        if (strcmp(q->name, name) == 0)
            return q;
    return NULL;
}

static struct nq_qstate *qstate_get(struct nq_master *m, const char *name)
{
    struct nq_qstate *q = nq_master_qstate(m, name), **tail;

    if (q)
        return q;
    q = calloc(1, sizeof(*q));
    if (!q || !(q->name = strdup(name))) {
        free(q);
        return NULL;
    }
    for (tail = &m->queues; *tail; tail = &(*tail)->next)
        ;
    *tail = q;
    return q;
}

struct nq_timing nq_qstate_timing(const struct nq_master *m, const struct nq_qstate *q)
{
    struct nq_timing t = q->past_timing;

    for (const struct nq_slot *s = m->slots; s; s = s->next)
        if (s->q == q)
            nq_timing_merge(&t, &s->metrics.timing);
    return t;
}

struct nq_counters nq_qstate_totals(const struct nq_master *m, const struct nq_qstate *q)
{
    struct nq_counters t = q->past;

    for (const struct nq_slot *s = m->slots; s; s = s->next) {
        if (s->q != q)
            continue;
        t.fetched += s->metrics.counters.fetched;
        t.completed += s->metrics.counters.completed;
        t.failed += s->metrics.counters.failed;
        t.retried += s->metrics.counters.retried;
        t.delayed += s->metrics.counters.delayed;
    }
    return t;
}

/* A generation's slots, not started yet. Takes cfg on success only. */
static struct nq_generation *generation_new(struct nq_master *m, struct nq_config *cfg)
{
    struct nq_generation *g = calloc(1, sizeof(*g));
    size_t n = 0;

    if (!g)
        return NULL;
    for (size_t i = 0; i < cfg->n_queues; i++)
        n += cfg->queues[i].processes;
    g->slots = calloc(n + 1, sizeof(struct nq_slot *)); /* + the http child */
    if (!g->slots)
        goto fail;
    for (size_t i = 0; i < cfg->n_queues; i++) {
        const struct nq_queue_cfg *qc = &cfg->queues[i];
        struct nq_qstate *q = qstate_get(m, qc->name);

        for (unsigned j = 0; q && j < qc->processes; j++) {
            struct nq_slot *s = nq_slot_new(m, g, q, qc, j);

            if (!s)
                goto fail;
            g->slots[g->n_slots++] = s;
        }
        if (!q)
            goto fail;
    }
    /* The http child lives by the defaults' timeouts and restart throttle. */
    if (cfg->http.enabled && m->http) {
        struct nq_slot *s = nq_slot_new(m, g, m->http, &cfg->defaults, 0);

        if (!s)
            goto fail;
        g->slots[g->n_slots++] = s;
    }
    g->cfg = cfg;
    g->number = m->current ? m->current->number + 1 : 1;
    return g;
fail:
    for (size_t i = 0; i < g->n_slots; i++)
        nq_slot_free(g->slots[i]);
    free(g->slots);
    free(g);
    return NULL;
}

static void generation_free(struct nq_generation *g)
{
    if (!g)
        return;
    nq_config_free(g->cfg);
    free(g->slots);
    free(g);
}

/* Slot changes during the loop below are not judged until all started:
 * a slot not started yet looks like one that failed. */
static void generation_start(struct nq_master *m, struct nq_generation *g)
{
    m->spawning = true;
    for (size_t i = 0; i < g->n_slots; i++)
        nq_slot_start(g->slots[i]);
    m->spawning = false;
}

/* The slots drain and are freed as they exit; the generation goes now. */
static void retire(struct nq_generation *g)
{
    for (size_t i = 0; i < g->n_slots; i++) {
        struct nq_slot *s = g->slots[i];

        s->gen = NULL;
        s->qcfg = NULL;
        nq_slot_event(s, NQ_SLOT_EV_DRAIN);
    }
    generation_free(g);
}

static void status_line(const struct nq_master *m, char *buf, size_t size)
{
    const struct nq_generation *g = m->current;
    unsigned running = 0;
    uint64_t completed = 0, failed = 0;

    for (size_t i = 0; i < g->n_slots; i++)
        running += g->slots[i]->pid != 0;
    for (const struct nq_qstate *q = m->queues; q; q = q->next) {
        struct nq_counters t = nq_qstate_totals(m, q);

        completed += t.completed;
        failed += t.failed;
    }
    (void) snprintf(buf, size, "%s%zu queues, %u/%zu workers, %llu completed, %llu failed",
                    m->stopping ? "Stopping: " : "", g->cfg->n_queues, running, g->n_slots,
                    (unsigned long long) completed, (unsigned long long) failed);
}

static void update_status(struct nq_master *m, const char *prefix)
{
    char line[sizeof(m->status_line)];

    status_line(m, line, sizeof(line));
    if (!prefix && strcmp(line, m->status_line) == 0)
        return;
    memcpy(m->status_line, line, sizeof(line));
    notify("%sSTATUS=%s", prefix ? prefix : "", line);
}

static void send_ready(struct nq_master *m)
{
    m->ready_sent = true;
    event_del(m->ev_ready);
    update_status(m, "READY=1\n");
}

static void adopt_queues(struct nq_master *m)
{
    for (struct nq_qstate *q = m->queues; q; q = q->next)
        q->cfg = nq_config_queue(m->current->cfg, q->name);
}

static void commit_reload(struct nq_master *m)
{
    struct nq_generation *old = m->current;

    m->current = m->pending;
    m->pending = NULL;
    event_del(m->ev_reload);
    adopt_queues(m);
    nq_log_set_max_priority(m->current->cfg->log_level);
    nq_log(LOG_NOTICE, "reloaded %s: generation %u runs %zu workers, draining generation %u",
           m->current->cfg->path, m->current->number, m->current->n_slots, old->number);
    retire(old);
    send_ready(m);
    if (m->reload_again) {
        struct nq_err err = { "" };

        m->reload_again = false;
        (void) nq_master_reload(m, &err);
    }
}

static void abort_reload(struct nq_master *m, const char *why)
{
    nq_log(LOG_ERR, "reload failed, generation %u keeps running: %s", m->current->number, why);
    notify("STATUS=Reload failed: %s\nREADY=1", why);
    event_del(m->ev_reload);
    retire(NQ_TAKE_PTR(m->pending));
}

static void check_pending(struct nq_master *m)
{
    struct nq_generation *g = m->pending;
    bool all = true;
    char why[256], sig[32];

    for (size_t i = 0; i < g->n_slots; i++) {
        const struct nq_slot *s = g->slots[i];

        if (s->state == NQ_SLOT_WAITING_RESTART || s->state == NQ_SLOT_EXITED) {
            if (s->has_exited && s->last_exit_code >= 0) {
                (void) snprintf(why, sizeof(why), "worker %s/%u exited with status %d",
                                s->queue_name, s->index, s->last_exit_code);
            } else if (s->has_exited) {
                nq_signal_name(s->last_exit_signal, sig, sizeof(sig));
                (void) snprintf(why, sizeof(why), "worker %s/%u was killed by %s", s->queue_name,
                                s->index, sig);
            } else {
                (void) snprintf(why, sizeof(why), "worker %s/%u could not start", s->queue_name,
                                s->index);
            }
            abort_reload(m, why);
            return;
        }
        all = all && s->ever_reported;
    }
    if (all)
        commit_reload(m);
}

static bool all_reported(const struct nq_generation *g)
{
    for (size_t i = 0; i < g->n_slots; i++)
        if (!g->slots[i]->ever_reported)
            return false;
    return true;
}

static void check(struct nq_master *m)
{
    bool alive = false;

    if (m->pending && !m->stopping)
        check_pending(m);
    if (!m->ready_sent && !m->stopping && all_reported(m->current))
        send_ready(m);
    if (!m->stopping)
        return;
    for (const struct nq_slot *t = m->slots; t && !alive; t = t->next)
        alive = t->pid != 0;
    if (!alive)
        (void) event_base_loopbreak(m->base);
}

void nq_master_slot_changed(struct nq_master *m, struct nq_slot *s)
{
    if (!s->gen && s->state == NQ_SLOT_EXITED)
        nq_slot_free(s);
    if (!m->spawning)
        check(m);
}

int nq_master_reload(struct nq_master *m, struct nq_err *err)
{
    struct nq_config *cfg = NULL;
    struct nq_generation *g = NULL;
    struct timespec ts;
    int r;

    if (m->stopping) {
        nq_log(LOG_NOTICE, "stopping, not reloading");
        return nq_err_set(err, -ECANCELED, "notifyqd is stopping");
    }
    if (m->pending) {
        nq_log(LOG_INFO, "a reload is starting its workers, reloading again after it");
        m->reload_again = true;
        return 0;
    }
    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    notify("RELOADING=1\nMONOTONIC_USEC=%llu",
           (unsigned long long) ts.tv_sec * 1000000ULL + (unsigned long long) ts.tv_nsec / 1000);
    r = nq_config_load(m->opts->config_path, m->opts->overrides, m->opts->n_overrides, &cfg, err);
    /* The control socket stays as it was bound at start (mode, group, path):
     * a reload that changes it is refused whole rather than half applied. */
    if (r >= 0)
        r = nq_config_check_reload(m->current->cfg, cfg, err);
    if (r >= 0) {
        g = generation_new(m, cfg);
        if (!g)
            r = nq_err_set(err, -ENOMEM, "out of memory");
    }
    if (r < 0) {
        cfg = nq_config_free(cfg);
        nq_log(LOG_ERR, "reload failed, keeping the running configuration: %s", nq_err_str(err));
        notify("STATUS=Reload failed: %s\nREADY=1", nq_err_str(err));
        return r;
    }
    nq_log(LOG_INFO, "reloading %s: starting generation %u", cfg->path, g->number);
    m->pending = g;
    arm(m->ev_reload, NQ_RELOAD_TIMEOUT_MS);
    generation_start(m, g);
    if (m->pending)
        check_pending(m);
    return 0;
}

void nq_master_stop(struct nq_master *m, bool fast)
{
    struct nq_slot *s, *next;

    if (m->stopping && (m->fast || !fast))
        return;
    if (!m->stopping) {
        m->stopping = true;
        notify("STOPPING=1");
    }
    m->fast = fast;
    m->reload_again = false;
    if (m->pending) {
        /* Its children are drained below with everyone else's. */
        event_del(m->ev_reload);
        for (size_t i = 0; i < m->pending->n_slots; i++) {
            m->pending->slots[i]->gen = NULL;
            m->pending->slots[i]->qcfg = NULL;
        }
        generation_free(NQ_TAKE_PTR(m->pending));
    }
    update_status(m, NULL);
    /* An event frees only the slot it is given (a retired one that exited),
     * so the next pointer read first stays valid. */
    for (s = m->slots; s; s = next) {
        next = s->next;
        nq_slot_event(s, fast ? NQ_SLOT_EV_STOP : NQ_SLOT_EV_DRAIN);
    }
}

int nq_master_pause(struct nq_master *m, const char *queue, bool pause)
{
    struct nq_qstate *q = nq_master_qstate(m, queue);

    if (!q || !q->cfg)
        return -ENOENT;
    if (q->paused != pause)
        nq_log(LOG_NOTICE, "queue %s %s", queue, pause ? "paused" : "resumed");
    q->paused = pause;
    for (struct nq_slot *s = m->slots; s; s = s->next)
        if (s->q == q && s->gen && s->pid)
            nq_slot_command(s, pause ? NQ_CMD_PAUSE : NQ_CMD_RESUME);
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct nq_master *m = arg;
    struct nq_err err = { "" };

    switch (sig) {
    case SIGCHLD:
        nq_master_reap(m);
        break;
    case SIGHUP:
        nq_log(LOG_NOTICE, "SIGHUP: reloading %s", m->opts->config_path);
        (void) nq_master_reload(m, &err);
        break;
    case SIGTERM:
    case SIGINT:
        nq_log(LOG_NOTICE, "%s: %s", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               m->stopping ? "second stop request, stopping fast" : "draining workers");
        nq_master_stop(m, m->stopping);
        break;
    case SIGQUIT:
        nq_log(LOG_NOTICE, "SIGQUIT: stopping fast");
        nq_master_stop(m, true);
        break;
    }
}

/* The http child never asks the workers: it serves what the master knows. */
void nq_master_send_snapshots(struct nq_master *m)
{
    json_auto_t *snap = NULL;
    struct nq_frame f = { .type = NQ_FRAME_SNAPSHOT };
    int r;

    for (struct nq_slot *s = m->slots; s; s = s->next) {
        if (!s->q->is_http || !s->pid || s->fd < 0 || s->state == NQ_SLOT_DRAINING)
            continue;
        if (!snap && !(snap = nq_snapshot_json(m)))
            return;
        f.snapshot = snap;
        r = nq_frame_send(s->fd, &f);
        if (r < 0 && r != -EAGAIN && !s->bad_frames++)
            nq_log_errno(LOG_WARNING, r, "http child (pid %ld): sending the snapshot: %m",
                         (long) s->pid);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct nq_master *m = arg;
    uint64_t now = nq_mono_ms();

    for (struct nq_slot *s = m->slots; s; s = s->next) {
        if (s->pid && now - s->started_ms >= s->min_uptime_ms)
            nq_restart_stable(&s->restart);
        nq_slot_check_silence(s, now);
    }
    for (struct nq_qstate *q = m->queues; q; q = q->next) {
        if (q->recoveries)
            nq_recovery_dispatch(m, q);
        q->window[q->window_pos] = nq_qstate_totals(m, q);
        q->window_pos = (q->window_pos + 1) % NQ_ELEMENTSOF(q->window);
        if (q->window_len < NQ_ELEMENTSOF(q->window))
            q->window_len++;
    }
    nq_master_send_snapshots(m);
    update_status(m, NULL);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    notify("WATCHDOG=1");
}

static void on_ready_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct nq_master *m = arg;

    if (m->ready_sent || m->stopping)
        return;
    nq_log(LOG_WARNING, "not every worker reported within %d ms, ready anyway",
           NQ_READY_TIMEOUT_MS);
    send_ready(m);
}

static void on_reload_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct nq_master *m = arg;

    if (m->pending)
        abort_reload(m, "new workers did not report in time");
}

static int setup_events(struct nq_master *m)
{
    const struct timeval second = { 1, 0 };
    uint64_t usec = 0;

    for (size_t i = 0; i < NQ_ELEMENTSOF(master_signals); i++) {
        m->ev_signals[i] = evsignal_new(m->base, master_signals[i], on_signal, m);
        if (!m->ev_signals[i] || event_add(m->ev_signals[i], NULL) < 0)
            return -ENOMEM;
    }
    m->ev_tick = event_new(m->base, -1, EV_PERSIST, on_tick, m);
    m->ev_ready = evtimer_new(m->base, on_ready_timeout, m);
    m->ev_reload = evtimer_new(m->base, on_reload_timeout, m);
    if (!m->ev_tick || !m->ev_ready || !m->ev_reload || event_add(m->ev_tick, &second) < 0)
        return -ENOMEM;
    arm(m->ev_ready, NQ_READY_TIMEOUT_MS);
    /* The loop itself sends the pings: a master stuck anywhere stops them. */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        m->ev_watchdog = event_new(m->base, -1, EV_PERSIST, on_watchdog, m);
        if (!m->ev_watchdog)
            return -ENOMEM;
        arm(m->ev_watchdog, usec / 2000 ? usec / 2000 : 1);
    }
    return 0;
}

static void free_event(struct event **ev)
{
    if (*ev)
        event_free(*ev);
    *ev = NULL;
}

/* Normally every child is reaped before the loop ends; after a failed
 * start or a broken loop, none may outlive the master. */
static void master_done(struct nq_master *m)
{
    for (struct nq_slot *s = m->slots; s; s = s->next)
        if (s->pid) {
            (void) kill(s->pid, SIGKILL);
            while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
                ;
            s->pid = 0;
        }
    while (m->slots)
        nq_slot_free(m->slots);
    m->control = nq_control_free(m->control);
    generation_free(m->pending);
    generation_free(m->current);
    while (m->queues) {
        struct nq_qstate *q = m->queues;

        m->queues = q->next;
        nq_recovery_free_all(q);
        free(q->name);
        free(q);
    }
    if (m->http)
        free(m->http->name);
    free(m->http);
    for (size_t i = 0; i < NQ_ELEMENTSOF(m->ev_signals); i++)
        free_event(&m->ev_signals[i]);
    free_event(&m->ev_tick);
    free_event(&m->ev_ready);
    free_event(&m->ev_reload);
    free_event(&m->ev_watchdog);
    if (m->base)
        event_base_free(m->base);
}

/* Lock tokens name the host and an incarnation number that no other
 * master on it used: a random start keeps a restarted master (same pid in a
 * container) from reusing the numbers of locks still alive in Redis. */
static void init_identity(struct nq_master *m)
{
    uint32_t seed;

    if (gethostname(m->hostname, sizeof(m->hostname) - 1) < 0 || !m->hostname[0])
        (void) snprintf(m->hostname, sizeof(m->hostname), "localhost");
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t) sizeof(seed))
        seed = (uint32_t) time(NULL) ^ (uint32_t) getpid();
    m->next_incarnation = (uint64_t) seed << 20;
}

static int master_start(struct nq_master *m, struct nq_config *cfg)
{
    struct nq_err err = { "" };
    int r;

    init_identity(m);
    if (m->opts->http_main) {
        m->http = calloc(1, sizeof(*m->http));
        if (!m->http || !(m->http->name = strdup("http")))
            return nq_log_errno(LOG_ERR, -ENOMEM, "creating the http child's state: %m");
        m->http->is_http = true;
    }
    m->base = event_base_new();
    if (!m->base)
        return nq_log_errno(LOG_ERR, -ENOMEM, "creating the event loop: %m");
    r = setup_events(m);
    if (r < 0)
        return nq_log_errno(LOG_ERR, r, "setting up the event loop: %m");
    /* Before any fork: every child closes it (child.c). */
    r = nq_control_open(m, &cfg->control, &m->control, &err);
    if (r < 0) {
        nq_log(LOG_ERR, "%s", nq_err_str(&err));
        return r;
    }
    m->current = generation_new(m, cfg);
    if (!m->current)
        return nq_log_errno(LOG_ERR, -ENOMEM, "creating the workers' slots: %m");
    adopt_queues(m);
    return 0;
}

int nq_supervisor_run(struct nq_config *cfg, const struct nq_supervisor_opts *opts)
{
    struct nq_master m = { .opts = opts, .started_ms = nq_mono_ms() };
    int r;

    nq_log_set_context("master", NULL, -1);
    nq_log_set_max_priority(cfg->log_level);
    (void) signal(SIGPIPE, SIG_IGN);
    r = master_start(&m, cfg);
    if (r < 0) {
        if (!m.current)
            nq_config_free(cfg);
        master_done(&m);
        return 1;
    }
    generation_start(&m, m.current);
    nq_log(LOG_NOTICE, "notifyqd %s started: %zu queues, %zu workers, control socket %s",
           PACKAGE_VERSION, cfg->n_queues, m.current->n_slots, cfg->control.socket);
    check(&m);
    r = event_base_dispatch(m.base);
    if (r < 0)
        nq_log(LOG_CRIT, "event loop failed, stopping");
    nq_log(LOG_NOTICE, "stopped");
    master_done(&m);
    return r < 0 ? 1 : 0;
}
