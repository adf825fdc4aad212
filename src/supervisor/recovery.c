/* SPDX-License-Identifier: MIT */
/*
 * Fast recovery. BullMQ finds a dead worker's jobs only when their locks
 * expire (lock_duration, 30 s by default) and a stalled check runs. The
 * master knows the moment a worker dies, and which lock tokens it used (the
 * prefix it gave the incarnation, proc/proc.h), so it asks a live worker of the
 * same queue to take those jobs back at once: requeued as a stall, or failed
 * as a poison job after max_crashes deaths by signal (the store decides).
 * The master holds no Redis connection; this is bookkeeping only.
 *
 * A recovery waits in its queue's list until a running worker of the queue
 * has confirmed it (a "recovered" frame). One given to a worker that dies,
 * or that does not confirm within NQ_RECOVERY_RESEND_MS (Redis down), goes
 * to another; doing one twice is harmless, it only touches locks that still
 * carry the dead prefix. The stalled check stays the safety net for a lost
 * host, or a master that died with its list.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "supervisor/internal.h"

static bool can_recover(const struct nq_slot *s, const struct nq_qstate *q)
{
    return s->q == q && s->pid != 0 && s->fd >= 0 && s->reported && s->state == NQ_SLOT_RUNNING;
}

static bool worker_alive(const struct nq_master *m, const struct nq_qstate *q, pid_t pid)
{
    for (const struct nq_slot *s = m->slots; s; s = s->next)
        if (s->pid == pid && can_recover(s, q))
            return true;
    return false;
}

static void drop_oldest(struct nq_qstate *q)
{
    struct nq_recovery *r = q->recoveries;

    nq_log(LOG_WARNING,
           "queue %s: too many recoveries waiting for a worker, dropping the one of %s; "
           "the stalled check will find its jobs",
           q->name, r->what.prefix);
    q->recoveries = r->next;
    q->n_recoveries--;
    free(r);
}

void nq_recovery_add(struct nq_slot *s)
{
    struct nq_qstate *q = s->q;
    struct nq_recovery *r, **tail;

    /* A worker that exited 0 with nothing in flight (its last frame says
     * so), or one idle for want of a handler, left no lock behind. */
    if (q->is_http || !s->token_prefix[0] ||
        (s->last_exit_code == 0 && s->metrics.in_flight == 0) ||
        (s->reported && s->metrics.state == NQ_WORKER_IDLE))
        return;
    r = calloc(1, sizeof(*r));
    if (!r) {
        nq_log(LOG_WARNING,
               "worker %s/%u: cannot queue the recovery of its jobs: out of memory; "
               "the stalled check will find them",
               s->queue_name, s->index);
        return;
    }
    memcpy(r->what.prefix, s->token_prefix, sizeof(r->what.prefix));
    if (s->last_exit_code < 0)
        nq_signal_name(s->last_exit_signal, r->what.signal, sizeof(r->what.signal));
    for (tail = &q->recoveries; *tail; tail = &(*tail)->next)
        ;
    *tail = r;
    if (++q->n_recoveries > NQ_RECOVERY_MAX)
        drop_oldest(q);
}

static bool send_to(struct nq_slot *s, struct nq_recovery *r, uint64_t now)
{
    struct nq_frame f = { .type = NQ_FRAME_COMMAND, .command = NQ_CMD_RECOVER };
    int k;

    f.recover = r->what;
    k = nq_frame_send(s->fd, &f);
    if (k < 0) {
        /* -EAGAIN: its channel is full; the next tick tries again. */
        if (k != -EAGAIN)
            nq_log_errno(LOG_WARNING, k, "worker %s/%u (pid %ld): sending recover: %m",
                         s->queue_name, s->index, (long) s->pid);
        return false;
    }
    nq_log(LOG_INFO, "worker %s/%u (pid %ld) recovers the jobs of %s%s%s", s->queue_name, s->index,
           (long) s->pid, r->what.prefix, r->what.signal[0] ? ", killed by " : "", r->what.signal);
    r->assigned = s->pid;
    r->assigned_ms = now;
    return true;
}

/* The first worker able to recover after `after` in the master's list,
 * wrapping around: a burst of deaths is spread over the queue's workers. */
static struct nq_slot *pick(struct nq_master *m, struct nq_qstate *q, struct nq_slot *after)
{
    struct nq_slot *from = after ? after->next : m->slots, *s;

    for (s = from; s; s = s->next)
        if (can_recover(s, q))
            return s;
    for (s = m->slots; s && s != from; s = s->next)
        if (can_recover(s, q))
            return s;
    return NULL;
}

void nq_recovery_dispatch(struct nq_master *m, struct nq_qstate *q)
{
    uint64_t now = nq_mono_ms();
    struct nq_slot *last = NULL;

    for (struct nq_recovery *r = q->recoveries; r; r = r->next) {
        if (r->assigned && now - r->assigned_ms < NQ_RECOVERY_RESEND_MS &&
            worker_alive(m, q, r->assigned))
            continue;
        r->assigned = 0;
        /* None running: the first worker of q to report takes them. A full
         * channel: the master's next tick tries again. */
        last = pick(m, q, last);
        if (!last || !send_to(last, r, now))
            return;
    }
}

void nq_recovery_done(struct nq_qstate *q, const char *prefix)
{
    for (struct nq_recovery **p = &q->recoveries; *p;) {
        struct nq_recovery *r = *p;

        if (strcmp(r->what.prefix, prefix) != 0) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        q->n_recoveries--;
        free(r);
    }
}

void nq_recovery_free_all(struct nq_qstate *q)
{
    while (q->recoveries) {
        struct nq_recovery *r = q->recoveries;

        q->recoveries = r->next;
        free(r);
    }
    q->n_recoveries = 0;
}
