/* SPDX-License-Identifier: MIT */
/*
 * One slot: a place for one worker of one queue, and the successive
 * processes (incarnations) that fill it. Its life is a state machine written
 * as a switch on (state, event), as s6-supervise does, so every pair is
 * decided on purpose:
 *
 *   STARTING --frame--> RUNNING
 *   STARTING/RUNNING --drain/stop--> DRAINING (kill timer armed)
 *   STARTING/RUNNING --exit--> WAITING_RESTART (delay from restart.h)
 *   DRAINING --exit--> EXITED;  DRAINING --timer--> SIGKILL
 *   WAITING_RESTART --timer--> STARTING;  --drain/stop--> EXITED
 *
 * A slot signals its pid only while it is an unreaped child (pid != 0), and
 * clears the pid the moment it is reaped (STYLE.md pitfall 2).
 *
 * Recycling (a worker's "recycle" frame: max_jobs, max_rss) puts a new slot
 * in the old one's place in its generation and retires the old one, which
 * keeps working until the new one's first frame, then drains; a drain or
 * stop of the new slot reaches the old one too. Every reaped incarnation's
 * lock token prefix goes to recovery.c, so a sibling takes its jobs back.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "config/config.h"
#include "supervisor/internal.h"

static void on_slot_timer(evutil_socket_t fd, short what, void *arg)
{
    nq_slot_event(arg, NQ_SLOT_EV_TIMER);
}

struct nq_slot *nq_slot_new(struct nq_master *m, struct nq_generation *g, struct nq_qstate *q,
                            const struct nq_queue_cfg *qcfg, unsigned index)
{
    struct nq_slot *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->m = m;
    s->gen = g;
    s->q = q;
    s->qcfg = qcfg;
    s->index = index;
    s->fd = -1;
    s->state = NQ_SLOT_WAITING_RESTART;
    s->drain_timeout_ms = qcfg->drain_timeout_ms;
    s->min_uptime_ms = qcfg->min_uptime_ms;
    s->unresponsive_after_ms = qcfg->unresponsive_after_ms;
    s->kill_after_ms = qcfg->kill_after_ms;
    s->queue_name = strdup(q->name);
    s->ev_timer = evtimer_new(m->base, on_slot_timer, s);
    if (!s->queue_name || !s->ev_timer) {
        if (s->ev_timer)
            event_free(s->ev_timer);
        free(s->queue_name);
        free(s);
        return NULL;
    }
    s->next = m->slots;
    m->slots = s;
    return s;
}

static void close_channel(struct nq_slot *s)
{
    if (s->ev_read) {
        event_free(s->ev_read);
        s->ev_read = NULL;
    }
    if (s->fd >= 0) {
        (void) close(s->fd);
        s->fd = -1;
    }
}

void nq_slot_free(struct nq_slot *s)
{
    struct nq_slot **p;

    for (p = &s->m->slots; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    if (s->successor)
        s->successor->predecessor = NULL;
    if (s->predecessor)
        s->predecessor->successor = NULL;
    close_channel(s);
    event_free(s->ev_timer);
    free(s->queue_name);
    free(s);
}

static void arm_timer(struct nq_slot *s, uint64_t ms)
{
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };

    (void) evtimer_add(s->ev_timer, &tv);
}

void nq_signal_name(int sig, char *buf, size_t size)
{
    const char *abbrev = sigabbrev_np(sig);

    if (abbrev)
        (void) snprintf(buf, size, "SIG%s", abbrev);
    else
        (void) snprintf(buf, size, "signal %d", sig);
}

/* "12ms", "1.6s": uptimes for the log. */
static void format_ms(uint64_t ms, char *buf, size_t size)
{
    if (ms < 1000)
        (void) snprintf(buf, size, "%llums", (unsigned long long) ms);
    else
        (void) snprintf(buf, size, "%.1fs", (double) ms / 1000);
}

/* "now", "in 100ms", "in 30.0s": restart delays for the log. */
static void format_delay(uint64_t ms, char *buf, size_t size)
{
    char t[32];

    if (ms == 0) {
        (void) snprintf(buf, size, "now");
        return;
    }
    format_ms(ms, t, sizeof(t));
    (void) snprintf(buf, size, "in %s", t);
}

static void describe_exit(const struct nq_slot *s, char *buf, size_t size)
{
    char sig[32];

    if (s->last_exit_code >= 0) {
        (void) snprintf(buf, size, "exited with status %d", s->last_exit_code);
        return;
    }
    nq_signal_name(s->last_exit_signal, sig, sizeof(sig));
    (void) snprintf(buf, size, "killed by %s", sig);
}

/* One frame that is no metrics frame of this incarnation. */
static void take_other_frame(struct nq_slot *s, const struct nq_frame *f)
{
    switch (f->type) {
    case NQ_FRAME_RECOVERED:
        nq_recovery_done(s->q, f->recover.prefix);
        return;
    case NQ_FRAME_RECYCLE:
        s->wants_recycle = true;
        memcpy(s->recycle_reason, f->reason, sizeof(s->recycle_reason));
        return;
    case NQ_FRAME_SNAPSHOT:
        json_decref(f->snapshot); /* the decoder's reference: snapshots only go down */
        break;
    case NQ_FRAME_METRICS:
    case NQ_FRAME_COMMAND:
        break;
    }
    if (!s->bad_frames++)
        nq_log(LOG_WARNING,
               "worker %s/%u (pid %ld): bad frame, dropped: not a frame a worker "
               "sends",
               s->queue_name, s->index, (long) s->pid);
}

/* Any frame proves the process runs its loop. */
static void heard_from(struct nq_slot *s)
{
    uint64_t now = nq_mono_ms();

    if (s->unresponsive && !s->killed_silent) {
        char t[32];

        format_ms(now - s->last_frame_ms, t, sizeof(t));
        nq_log(LOG_NOTICE, "worker %s/%u (pid %ld) responds again after %s of silence",
               s->queue_name, s->index, (long) s->pid, t);
        s->unresponsive = false;
    }
    s->last_frame_ms = now;
}

/* Reads every queued frame. Frames from a child are untrusted: a bad one is
 * logged (once per incarnation, so a broken child cannot flood the log)
 * and dropped. Returns 1 when a metrics frame was taken, 0 otherwise. */
static int read_frames(struct nq_slot *s)
{
    static char buf[NQ_FRAME_MAX];
    struct nq_err err = { "" };
    struct nq_frame f;
    int r, got = 0;

    while (s->fd >= 0) {
        r = nq_frame_recv(s->fd, buf, &f, &err);
        if (r == -EAGAIN)
            break;
        if (r == 1)
            heard_from(s);
        if (r == 1 && f.type == NQ_FRAME_METRICS && f.metrics.pid == s->pid) {
            s->metrics = f.metrics;
            /* One reader per queue, the current generation's slot 0: a
             * retiring one's older read must not replace a newer one. */
            if (f.metrics.jobs.known && s->gen && s->gen == s->m->current)
                s->q->jobs = f.metrics.jobs;
            got = 1;
            continue;
        }
        if (r == 1 && f.type != NQ_FRAME_METRICS) {
            take_other_frame(s, &f);
            continue;
        }
        if (r == 1 || r == -EINVAL || r == -EMSGSIZE) {
            if (r == 1)
                nq_err_set(&err, -EINVAL, "not a metrics frame of pid %ld", (long) s->pid);
            if (!s->bad_frames++)
                nq_log(LOG_WARNING, "worker %s/%u (pid %ld): bad frame, dropped: %s", s->queue_name,
                       s->index, (long) s->pid, nq_err_str(&err));
            continue;
        }
        /* EOF or error: the child closed its end. It is reaped on SIGCHLD;
         * commands fall back to signals until then. */
        if (r < 0 && r != -ECONNRESET)
            nq_log_errno(LOG_WARNING, r, "worker %s/%u: channel: %m", s->queue_name, s->index);
        close_channel(s);
    }
    return got;
}

/* The worker asked to be replaced (max_jobs, max_rss). Its replacement takes
 * its place in the generation now; it keeps working, retired, until the
 * replacement reported, then drains: capacity never dips. Refused (the
 * worker then drains by itself after a while) when it is leaving anyway. */
static void recycle(struct nq_slot *s)
{
    struct nq_master *m = s->m;
    struct nq_generation *g = s->gen;
    struct nq_slot *n;
    size_t i = 0;

    s->wants_recycle = false;
    if (!g || m->stopping || s->successor || s->state != NQ_SLOT_RUNNING)
        return;
    while (i < g->n_slots && g->slots[i] != s)
        i++;
    if (i == g->n_slots)
        return;
    n = nq_slot_new(m, g, s->q, s->qcfg, s->index);
    if (!n) {
        nq_log(LOG_WARNING, "worker %s/%u (pid %ld): cannot recycle it: out of memory",
               s->queue_name, s->index, (long) s->pid);
        return;
    }
    n->ever_reported = s->ever_reported;
    g->slots[i] = n;
    s->gen = NULL;
    s->qcfg = NULL;
    s->successor = n;
    n->predecessor = s;
    s->q->recycles++;
    nq_log(LOG_INFO, "worker %s/%u (pid %ld) recycled (%s): starting its replacement",
           s->queue_name, s->index, (long) s->pid, s->recycle_reason);
    nq_slot_start(n);
}

static void on_slot_readable(evutil_socket_t fd, short what, void *arg)
{
    struct nq_slot *s = arg;

    if (read_frames(s))
        nq_slot_event(s, NQ_SLOT_EV_FRAME);
    /* A frame event never frees a slot: s is still valid. */
    if (s->wants_recycle)
        recycle(s);
}

void nq_slot_command(struct nq_slot *s, enum nq_command cmd)
{
    struct nq_frame f = { .type = NQ_FRAME_COMMAND, .command = cmd };
    int r = s->fd >= 0 ? nq_frame_send(s->fd, &f) : -ENOTCONN;

    if (r >= 0 || s->pid == 0)
        return;
    /* The channel failed; drain and stop have signal equivalents. */
    if (cmd == NQ_CMD_DRAIN || cmd == NQ_CMD_STOP)
        (void) kill(s->pid, cmd == NQ_CMD_DRAIN ? SIGTERM : SIGQUIT);
    else
        nq_log_errno(LOG_WARNING, r, "worker %s/%u (pid %ld): sending %s: %m", s->queue_name,
                     s->index, (long) s->pid, nq_command_name(cmd));
}

static int spawn(struct nq_slot *s)
{
    struct nq_child_ctx ctx = {
        .cfg = s->gen->cfg,
        .queue = s->q->is_http ? NULL : s->qcfg,
        .slot = s->index,
        .generation = s->gen->number,
        .incarnation = s->m->next_incarnation++,
        .hostname = s->m->hostname,
    };
    int sv[2], r;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return -errno;
    ctx.fd = sv[1];
    r = nq_child_spawn(s->m->base, &ctx,
                       s->q->is_http ? s->m->opts->http_main : s->m->opts->worker_main, &pid);
    (void) close(sv[1]);
    if (r < 0) {
        (void) close(sv[0]);
        return r;
    }
    s->fd = sv[0];
    s->pid = pid;
    s->incarnation = ctx.incarnation;
    if (nq_token_prefix(s->token_prefix, sizeof(s->token_prefix), s->m->hostname, pid,
                        ctx.incarnation) < 0)
        s->token_prefix[0] = 0; /* cannot happen: the hostname is short */
    s->started_ms = s->last_frame_ms = nq_mono_ms();
    s->unresponsive = s->killed_silent = false;
    s->reported = false;
    s->bad_frames = 0;
    memset(&s->metrics, 0, sizeof(s->metrics));
    s->ev_read = event_new(s->m->base, s->fd, EV_READ | EV_PERSIST, on_slot_readable, s);
    if (!s->ev_read || event_add(s->ev_read, NULL) < 0) {
        /* The child runs but cannot be heard: treat it as lost and let the
         * exit path restart it. */
        nq_log(LOG_ERR, "worker %s/%u: cannot watch its channel, stopping it", s->queue_name,
               s->index);
        close_channel(s);
        (void) kill(pid, SIGTERM);
    }
    if (s->q->paused)
        nq_slot_command(s, NQ_CMD_PAUSE);
    nq_log(LOG_INFO, "worker %s/%u started, pid %ld", s->queue_name, s->index, (long) pid);
    return 0;
}

/* Starting failed (fork, socketpair): back off as if it had crashed. */
static void schedule_retry(struct nq_slot *s, int r)
{
    char d[40];
    uint64_t delay = nq_restart_next(&s->restart, 0, s->min_uptime_ms, -1, NULL);

    format_delay(delay, d, sizeof(d));
    nq_log_errno(LOG_ERR, r, "worker %s/%u: cannot start: %m, retrying %s", s->queue_name, s->index,
                 d);
    s->state = NQ_SLOT_WAITING_RESTART;
    arm_timer(s, delay);
}

static void record_exit(struct nq_slot *s)
{
    struct nq_counters *p = &s->q->past;

    (void) read_frames(s); /* the last frame may still be queued */
    close_channel(s);
    s->has_exited = true;
    if (WIFEXITED(s->wait_status)) {
        s->last_exit_code = WEXITSTATUS(s->wait_status);
        s->last_exit_signal = 0;
    } else {
        s->last_exit_code = -1;
        s->last_exit_signal = WTERMSIG(s->wait_status);
    }
    p->fetched += s->metrics.counters.fetched;
    p->completed += s->metrics.counters.completed;
    p->failed += s->metrics.counters.failed;
    p->retried += s->metrics.counters.retried;
    p->delayed += s->metrics.counters.delayed;
    nq_timing_merge(&s->q->past_timing, &s->metrics.timing);
    nq_recovery_add(s);
    memset(&s->metrics, 0, sizeof(s->metrics));
    s->wants_recycle = false; /* its last frames asked for a process now gone */
    s->pid = 0;
    evtimer_del(s->ev_timer);
}

static void schedule_after_exit(struct nq_slot *s)
{
    uint64_t uptime = nq_mono_ms() - s->started_ms, delay;
    pid_t pid = s->pid;
    enum nq_restart_reason reason;
    char how[64], d[40], up[32];

    record_exit(s);
    describe_exit(s, how, sizeof(how));
    /* A new generation's child that dies before reporting fails its reload
     * (master.c): it is not restarted, and no restart is counted. */
    if (s->state == NQ_SLOT_DRAINING || !s->gen || s->gen == s->m->pending || s->m->stopping) {
        nq_log(s->last_exit_code == 0 ? LOG_INFO : LOG_WARNING, "worker %s/%u (pid %ld) %s",
               s->queue_name, s->index, (long) pid, how);
        s->state = NQ_SLOT_EXITED;
        return;
    }
    delay = nq_restart_next(&s->restart, uptime, s->min_uptime_ms, s->last_exit_code, &reason);
    if (s->last_exit_code == 0)
        s->q->recycles++;
    else
        s->q->restarts++;
    format_delay(delay, d, sizeof(d));
    format_ms(uptime, up, sizeof(up));
    if (reason == NQ_RESTART_CONFIG)
        nq_log(LOG_ERR,
               "worker %s/%u (pid %ld) %s: it cannot run with this configuration, "
               "restarting %s",
               s->queue_name, s->index, (long) pid, how, d);
    else if (nq_restart_crash_looping(&s->restart))
        nq_log(LOG_ERR,
               "worker %s/%u (pid %ld) %s after %s, crash-looping (%u quick exits), "
               "restarting %s",
               s->queue_name, s->index, (long) pid, how, up, s->restart.quick_exits, d);
    else
        nq_log(s->last_exit_code == 0 ? LOG_INFO : LOG_WARNING,
               "worker %s/%u (pid %ld) %s after %s, restarting %s", s->queue_name, s->index,
               (long) pid, how, up, d);
    s->state = NQ_SLOT_WAITING_RESTART;
    arm_timer(s, delay);
}

/* Reaped: log, schedule a restart, and have a sibling take its jobs back. */
static void slot_exited(struct nq_slot *s)
{
    schedule_after_exit(s);
    nq_recovery_dispatch(s->m, s->q);
}

static void ask_to_leave(struct nq_slot *s, enum nq_command cmd)
{
    nq_slot_command(s, cmd);
    s->state = NQ_SLOT_DRAINING;
    arm_timer(s, (cmd == NQ_CMD_DRAIN ? s->drain_timeout_ms : 0) + NQ_STOP_GRACE_MS);
}

static void kill_straggler(struct nq_slot *s)
{
    if (s->pid == 0)
        return;
    nq_log(LOG_WARNING, "worker %s/%u (pid %ld) did not exit in time, killing it", s->queue_name,
           s->index, (long) s->pid);
    (void) kill(s->pid, SIGKILL);
}

static void restart(struct nq_slot *s)
{
    int r = spawn(s);

    if (r < 0)
        schedule_retry(s, r);
    else
        s->state = NQ_SLOT_STARTING;
}

/* The first frame of an incarnation: it is up, so the worker it replaces
 * may leave, and it can take recoveries. */
static void first_report(struct nq_slot *s)
{
    struct nq_slot *p = s->predecessor;

    if (p) {
        s->predecessor = NULL;
        p->successor = NULL;
        nq_slot_event(p, NQ_SLOT_EV_DRAIN);
    }
    if (s->q->is_http)
        nq_master_send_snapshots(s->m);
    nq_recovery_dispatch(s->m, s->q);
}

/* Whoever drains or stops a slot also means the worker it replaces. */
static void forward_to_predecessor(struct nq_slot *s, enum nq_slot_event ev)
{
    struct nq_slot *p = s->predecessor;

    if (!p || (ev != NQ_SLOT_EV_DRAIN && ev != NQ_SLOT_EV_STOP))
        return;
    s->predecessor = NULL;
    p->successor = NULL;
    nq_slot_event(p, ev);
}

void nq_slot_event(struct nq_slot *s, enum nq_slot_event ev)
{
    bool was_reported = s->reported;

    forward_to_predecessor(s, ev);
    switch (s->state) {
    case NQ_SLOT_STARTING:
    case NQ_SLOT_RUNNING:
        switch (ev) {
        case NQ_SLOT_EV_FRAME:
            s->reported = s->ever_reported = true;
            s->state = NQ_SLOT_RUNNING;
            if (!was_reported)
                first_report(s);
            break;
        case NQ_SLOT_EV_EXIT:
            slot_exited(s);
            break;
        case NQ_SLOT_EV_DRAIN:
            ask_to_leave(s, NQ_CMD_DRAIN);
            break;
        case NQ_SLOT_EV_STOP:
            ask_to_leave(s, NQ_CMD_STOP);
            break;
        case NQ_SLOT_EV_TIMER:
            break;
        }
        break;
    case NQ_SLOT_DRAINING:
        switch (ev) {
        case NQ_SLOT_EV_FRAME:
            s->reported = s->ever_reported = true;
            break;
        case NQ_SLOT_EV_EXIT:
            slot_exited(s);
            break;
        case NQ_SLOT_EV_DRAIN:
            break;
        case NQ_SLOT_EV_STOP:
            ask_to_leave(s, NQ_CMD_STOP);
            break;
        case NQ_SLOT_EV_TIMER:
            kill_straggler(s);
            break;
        }
        break;
    case NQ_SLOT_WAITING_RESTART:
        switch (ev) {
        case NQ_SLOT_EV_TIMER:
            restart(s);
            break;
        case NQ_SLOT_EV_DRAIN:
        case NQ_SLOT_EV_STOP:
            evtimer_del(s->ev_timer);
            s->state = NQ_SLOT_EXITED;
            break;
        case NQ_SLOT_EV_FRAME:
        case NQ_SLOT_EV_EXIT:
            break;
        }
        break;
    case NQ_SLOT_EXITED:
        break;
    }
    nq_master_slot_changed(s->m, s);
}

void nq_slot_start(struct nq_slot *s)
{
    nq_slot_event(s, NQ_SLOT_EV_TIMER);
}

bool nq_slot_crash_looping(const struct nq_slot *s)
{
    /* Still true while the next incarnation is young: it has proved nothing
     * yet. The master's tick forgets the crashes once it reaches min_uptime. */
    return s->state != NQ_SLOT_EXITED && nq_restart_crash_looping(&s->restart);
}

void nq_slot_check_silence(struct nq_slot *s, uint64_t now)
{
    uint64_t silent = now - s->last_frame_ms;
    char t[32];

    /* A draining worker has its own deadline; a reaped one is silent. */
    if (!s->pid || s->killed_silent ||
        (s->state != NQ_SLOT_STARTING && s->state != NQ_SLOT_RUNNING) ||
        silent < s->unresponsive_after_ms)
        return;
    /* The master may have been the busy one: frames already queued count. */
    if (read_frames(s))
        nq_slot_event(s, NQ_SLOT_EV_FRAME);
    if (s->last_frame_ms >= now)
        return;
    format_ms(silent, t, sizeof(t));
    if (!s->unresponsive && silent >= s->unresponsive_after_ms) {
        s->unresponsive = true;
        nq_log(LOG_WARNING, "worker %s/%u (pid %ld) has sent nothing for %s: unresponsive",
               s->queue_name, s->index, (long) s->pid, t);
    }
    if (s->kill_after_ms && silent >= s->kill_after_ms) {
        s->killed_silent = true;
        nq_log(LOG_ERR, "worker %s/%u (pid %ld) has sent nothing for %s: killing it to replace it",
               s->queue_name, s->index, (long) s->pid, t);
        (void) kill(s->pid, SIGKILL);
    }
}

void nq_master_reap(struct nq_master *m)
{
    for (;;) {
        struct nq_slot *s;
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);

        if (pid == 0)
            return;
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            if (errno != ECHILD)
                nq_log_errno(LOG_ERR, -errno, "waitpid: %m");
            return;
        }
        for (s = m->slots; s && s->pid != pid; s = s->next)
            ;
        if (!s) {
            nq_log(LOG_WARNING, "reaped pid %ld, which is no worker of ours", (long) pid);
            continue;
        }
        s->wait_status = status;
        nq_slot_event(s, NQ_SLOT_EV_EXIT);
    }
}
