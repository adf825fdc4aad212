/* SPDX-License-Identifier: MIT */
/*
 * The master's model, shared by the supervisor's files (master.c: loop,
 * signals, reload, stop, systemd; slot.c: one child's life; control.c: the
 * control socket; status.c: status and metrics replies; spawn.c: the
 * fork). Included from nowhere else but the supervisor's own unit tests.
 *
 * Ownership: the master owns every slot (one list, m->slots), every queue
 * state (m->queues) and at most two configuration generations (current, and
 * pending while a reload starts its children). A slot of a retired
 * generation, or one recycled (replaced in its generation), has gen == NULL:
 * it is draining (a recycled one once its successor reported), is never
 * restarted, and is freed when reaped. Queue states live as long as the
 * master, so counters and pending recoveries survive reloads.
 */
#ifndef NQ_SUPERVISOR_INTERNAL_H
#define NQ_SUPERVISOR_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "common/err.h"
#include "proc/proc.h"
#include "supervisor/restart.h"
#include "supervisor/supervisor.h"

struct event;
struct event_base;
struct nq_config;
struct nq_control;
struct nq_queue_cfg;

/* After drain_timeout (or at once for a fast stop) a child has this long
 * before SIGKILL. */
#define NQ_STOP_GRACE_MS 5000
/* READY=1 is sent when every slot reported, or after this long anyway. */
#define NQ_READY_TIMEOUT_MS 5000
/* A reload whose new children have not all reported by then fails. */
#define NQ_RELOAD_TIMEOUT_MS 10000
/* Rates: one sample of the totals per second, kept for the failure rate
 * of health (5 minutes); per-minute rates use the last 60. */
#define NQ_RATE_WINDOW_S 300
/* The failure rate of health is over this long. */
#define NQ_HEALTH_WINDOW_S 300
/* A recovery a worker has not confirmed by then goes to another worker. */
#define NQ_RECOVERY_RESEND_MS 10000
/* Recoveries waiting for a worker of their queue, per queue; older ones are
 * dropped (the stalled check still finds their jobs). */
#define NQ_RECOVERY_MAX 1024

enum nq_slot_state {
    NQ_SLOT_STARTING,        /* forked, no frame yet */
    NQ_SLOT_RUNNING,         /* has reported */
    NQ_SLOT_DRAINING,        /* told to drain or stop; not restarted when it exits */
    NQ_SLOT_EXITED,          /* reaped, nothing pending */
    NQ_SLOT_WAITING_RESTART, /* reaped, restart timer armed */
};

enum nq_slot_event {
    NQ_SLOT_EV_FRAME, /* a metrics frame arrived */
    NQ_SLOT_EV_EXIT,  /* reaped; status in slot->wait_status */
    NQ_SLOT_EV_DRAIN, /* graceful: finish in-flight jobs, exit */
    NQ_SLOT_EV_STOP,  /* fast: return in-flight jobs, exit */
    NQ_SLOT_EV_TIMER, /* restart delay or kill deadline elapsed */
};

struct nq_generation {
    unsigned number;
    struct nq_config *cfg;  /* owned */
    struct nq_slot **slots; /* config order: queue by queue, slot by slot */
    size_t n_slots;
};

/* A dead worker's jobs to take back (see recovery.c). */
struct nq_recovery {
    struct nq_frame_recover what;
    pid_t assigned;       /* the worker told to do it, 0 when none yet */
    uint64_t assigned_ms; /* when */
    struct nq_recovery *next;
};

/* One queue name's history across generations. */
struct nq_qstate {
    char *name;
    const struct nq_queue_cfg *cfg; /* in the current generation; NULL if not in it */
    bool paused;
    uint64_t restarts;       /* unrequested exits that were restarted */
    uint64_t recycles;       /* exits with status 0 nobody asked for (max_jobs, max_rss) */
    struct nq_counters past; /* what dead incarnations last reported */
    struct nq_timing past_timing;
    struct nq_job_counts jobs;      /* the latest counts any worker read from Redis */
    struct nq_recovery *recoveries; /* oldest first */
    unsigned n_recoveries;
    struct nq_counters window[NQ_RATE_WINDOW_S + 1]; /* ring of totals, one per second */
    unsigned window_pos, window_len;
    /* Not a queue: the http child's (m->http), never in m->queues; its
     * slot runs opts->http_main, gets snapshots, and has no jobs to recover. */
    bool is_http;
    struct nq_qstate *next;
};

struct nq_slot {
    struct nq_master *m;
    struct nq_qstate *q;
    struct nq_generation *gen;       /* NULL once retired */
    const struct nq_queue_cfg *qcfg; /* in gen->cfg; NULL once retired */
    char *queue_name;                /* copy, for messages after retirement */
    unsigned index;
    enum nq_slot_state state;
    pid_t pid;                              /* 0 when no process: cleared the moment it is reaped */
    uint64_t incarnation;                   /* of the process in pid (or the last one) */
    char token_prefix[NQ_FRAME_PREFIX_MAX]; /* its lock tokens' prefix */
    /* Recycling: a slot asking to be replaced is retired at once (gen NULL)
     * but drained only when its successor, which took its place in the
     * generation, has reported. The two point at each other until then. */
    struct nq_slot *successor, *predecessor;
    bool wants_recycle; /* a recycle frame arrived, not acted on yet */
    char recycle_reason[NQ_FRAME_NOTE_MAX];
    int fd; /* master's end of the channel, -1 when none */
    struct event *ev_read, *ev_timer;
    uint64_t started_ms;
    uint64_t drain_timeout_ms, min_uptime_ms;
    uint64_t unresponsive_after_ms, kill_after_ms;
    uint64_t last_frame_ms; /* of this incarnation; its start until its first frame */
    bool unresponsive;      /* silent for unresponsive_after */
    bool killed_silent;     /* SIGKILLed for its silence, not reaped yet */
    int wait_status;        /* for NQ_SLOT_EV_EXIT */
    bool reported;          /* this incarnation sent a frame */
    unsigned bad_frames;    /* of this incarnation; only the first is logged */
    bool ever_reported;     /* some incarnation did (readiness) */
    bool has_exited;        /* last_exit_* are set */
    int last_exit_code;     /* exit status, or -1 when killed by a signal */
    int last_exit_signal;
    struct nq_restart restart;
    struct nq_frame_metrics metrics; /* last frame of this incarnation; zero counters if none */
    struct nq_slot *next;
};

struct nq_master {
    struct event_base *base;
    const struct nq_supervisor_opts *opts;
    struct nq_generation *current, *pending;
    unsigned last_generation;
    struct nq_slot *slots;
    struct nq_qstate *queues;
    struct nq_qstate *http; /* the http child's restarts; NULL without http_main */
    struct nq_control *control;
    struct event *ev_signals[5];
    struct event *ev_tick, *ev_watchdog, *ev_ready, *ev_reload;
    uint64_t started_ms; /* CLOCK_MONOTONIC */
    bool ready_sent;
    bool spawning; /* starting a generation: slot changes are judged after */
    bool stopping, fast;
    bool reload_again;
    char status_line[256];
    char hostname[256]; /* for the workers' lock token prefixes */
    uint64_t next_incarnation;
};

uint64_t nq_mono_ms(void);

/* master.c */
/* Logs its failures itself; err is for a control reply. */
void nq_master_slot_changed(struct nq_master *m, struct nq_slot *s);
int nq_master_reload(struct nq_master *m, struct nq_err *err);
void nq_master_stop(struct nq_master *m, bool fast);
/* Pauses or resumes a queue of the current generation: -ENOENT if none. */
int nq_master_pause(struct nq_master *m, const char *queue, bool pause) NQ_MUSTCHECK;
struct nq_qstate *nq_master_qstate(const struct nq_master *m, const char *name);
struct nq_counters nq_qstate_totals(const struct nq_master *m, const struct nq_qstate *q);
struct nq_timing nq_qstate_timing(const struct nq_master *m, const struct nq_qstate *q);
/* Sends the snapshot (nq_snapshot_json) to every live http child: once a
 * second, and when one first reports, so it serves from its start. */
void nq_master_send_snapshots(struct nq_master *m);

/* slot.c */
struct nq_slot *nq_slot_new(struct nq_master *m, struct nq_generation *g, struct nq_qstate *q,
                            const struct nq_queue_cfg *qcfg, unsigned index);
void nq_slot_free(struct nq_slot *s);
/* A new slot waits to start (WAITING_RESTART, no timer armed) in the
 * master's list; nq_slot_start forks its first incarnation (a failure
 * schedules a retry). */
void nq_slot_start(struct nq_slot *s);
/* Runs the state machine. s may be freed on return (a retired slot that
 * exited): callers do not touch it afterwards. */
void nq_slot_event(struct nq_slot *s, enum nq_slot_event ev);
void nq_slot_command(struct nq_slot *s, enum nq_command cmd);
bool nq_slot_crash_looping(const struct nq_slot *s);
/* Once a second: marks a worker silent for unresponsive_after as
 * unresponsive, and kills one silent for kill_after (reaped and replaced as
 * any dead worker, its jobs recovered). */
void nq_slot_check_silence(struct nq_slot *s, uint64_t now_ms);
/* "SIGKILL", or "signal 99" for a number without a name. */
void nq_signal_name(int sig, char *buf, size_t size);
/* Reaps every exited child (waitpid loop) and feeds the slots. */
void nq_master_reap(struct nq_master *m);

/* recovery.c: fast recovery of a dead worker's jobs by a live one */
/* Queues the recovery of the jobs of s's process, which was just reaped
 * (its exit status and last frame still in s). */
void nq_recovery_add(struct nq_slot *s);
/* Gives every recovery of q without a live, confirmed-soon worker to one. */
void nq_recovery_dispatch(struct nq_master *m, struct nq_qstate *q);
/* A worker of q confirmed the recovery of prefix. */
void nq_recovery_done(struct nq_qstate *q, const char *prefix);
void nq_recovery_free_all(struct nq_qstate *q);

/* spawn.c */
/* Forks a child that runs child_main(ctx) through nq_child_run() (proc.h).
 * Returns 0 and sets *ret_pid, or a negative errno; never returns in the
 * child. ctx->fd must be the child's end of a socketpair; master_base is
 * the master's event base. */
int nq_child_spawn(struct event_base *master_base, const struct nq_child_ctx *ctx,
                   nq_child_main_fn child_main, pid_t *ret_pid) NQ_MUSTCHECK;

/* status.c */
const char *nq_master_state_name(const struct nq_master *m);
const char *nq_qstate_state_name(const struct nq_master *m, const struct nq_qstate *q);
/* What q did in the last `seconds` (at most NQ_RATE_WINDOW_S; less while
 * the master is younger). */
struct nq_counters nq_qstate_recent(const struct nq_master *m, const struct nq_qstate *q,
                                    unsigned seconds);
struct nq_counters nq_qstate_per_minute(const struct nq_master *m, const struct nq_qstate *q);
json_t *nq_status_json(const struct nq_master *m);
json_t *nq_metrics_json(const struct nq_master *m);
/* The http child's slot of the current generation, or NULL. */
const struct nq_slot *nq_master_http_slot(const struct nq_master *m);
/* What the http child gets once a second: {"status":..., "metrics":...}. */
json_t *nq_snapshot_json(const struct nq_master *m);

#endif
