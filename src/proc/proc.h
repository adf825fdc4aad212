/* SPDX-License-Identifier: MIT */
/*
 * The child's side of the master-child protocol, shared by every child the
 * master forks (workers today, the admin HTTP child later) and by the master
 * for the frame codec: the frames (their codec and wire format), the channel
 * a child reads commands from and sends frames on, the child's entry (what a
 * child does between fork() and its main, and the context it gets), and the
 * exit codes a child ends with. The master's side (forking, restarting,
 * aggregating) is in src/supervisor/; this module knows nothing of it.
 *
 * Frames
 * ------
 * Frames between the master and one child, one per datagram on the child's
 * socketpair(AF_UNIX, SOCK_SEQPACKET). Both processes run this codec; the
 * master treats every frame as untrusted input (STYLE.md pitfall 13): a frame
 * that is truncated, not JSON, of another version, or has a known field of the
 * wrong type or range is rejected with an nq_err, which the master logs and
 * drops. The codec does not log.
 *
 * Wire format, version 1: one UTF-8 JSON object per datagram, at most
 * NQ_FRAME_MAX bytes, no trailing newline. Every frame has
 *   "v": 1              integer, the format version; any other value is refused
 *   "t": "metrics"|"cmd" the frame type
 *
 * Up (child -> master), "t":"metrics", sent every second and on state change:
 *   "pid"        integer > 0
 *   "uptime_ms"  integer >= 0, since the child started
 *   "state"      "starting"|"running"|"idle"|"paused"|"draining"
 *   "fetched", "completed", "failed", "retried"
 *                integers >= 0, totals of this incarnation (they never go down
 *                while it lives; the master keeps them when it dies)
 *   "delayed"    optional integer >= 0: of the retried, those put in the
 *                delayed set (a backoff, or a provider's rate limit) rather
 *                than straight back to wait; 0 when absent
 *   "cpu_ms"     optional integer >= 0: the process's CPU time, user + system
 *   "in_flight"  integer >= 0
 *   "rss_kib"    integer >= 0
 *   "note"       optional string, free text for an operator (truncated to
 *                NQ_FRAME_NOTE_MAX - 1 bytes)
 *   "redis"      optional "connecting"|"connected"|"disconnected": the
 *                child's Redis connection, absent in a child without one;
 *                "connecting" until it first connected, "disconnected"
 *                once it lost the connection (it reconnects by itself)
 *   "timing"     optional {"le_ms":[...], "count":[...], "sum_ms":N}: the
 *                processing times of this incarnation's jobs as a histogram;
 *                le_ms are the upper bounds of the first NQ_TIMING_BUCKETS - 1
 *                buckets (exactly nq_timing_le_ms), count has NQ_TIMING_BUCKETS
 *                per-bucket (not cumulative) totals, the last for slower jobs
 *   "jobs"       optional {"waiting":N, "active":N, "delayed":N, "failed":N,
 *                "completed":N}: the queue's job counts in Redis as this worker
 *                last read them (one worker per queue reads them; waiting
 *                includes prioritized jobs)
 * Unknown keys are ignored, so a v1 reader accepts frames from a newer v1
 * writer that adds optional fields; changing a field's meaning needs v2.
 *
 * Up, "t":"recovered": the worker ran a "recover" command to its end.
 *   "prefix"     the token prefix it was given
 * Up, "t":"recycle": the worker asks to be replaced (max_jobs, max_rss); the
 * master starts its replacement and drains it once the replacement reported.
 *   "reason"     free text for the log ("finished 1000 jobs (max_jobs)")
 *
 * Down (master -> child), "t":"snapshot", once a second to the http child:
 *   "data"       object, the master's aggregated view: {"status": what
 *                `notifyqctl status --json` shows (queues, their workers,
 *                health verdicts), "metrics": what `notifyqctl metrics
 *                --json` shows (counters, timings)}. The codec checks only
 *                that it is an object; the http child reads it as untrusted.
 *
 * Down (master -> child), "t":"cmd":
 *   "cmd"        "drain"|"pause"|"resume"|"stop"|"recover"
 *     drain: stop fetching, finish in-flight jobs within drain_timeout, exit 0
 *     stop:  return in-flight jobs at once, exit 0 (fast stop)
 *     pause/resume: stop/restart fetching, keep the process
 *     recover: take back the jobs of a dead worker of the same queue, those
 *       whose lock token starts with "prefix" (required, non-empty string);
 *       "signal" (optional string, e.g. "SIGSEGV") names the signal that
 *       killed it. The worker answers with "recovered" once done.
 *
 * See: ARCHITECTURE.md.
 */
#ifndef NQ_PROC_PROC_H
#define NQ_PROC_PROC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/macros.h"

#define NQ_FRAME_VERSION 1
#define NQ_FRAME_MAX 65536
#define NQ_FRAME_NOTE_MAX 256

enum nq_frame_type {
    NQ_FRAME_METRICS,
    NQ_FRAME_COMMAND,
    NQ_FRAME_RECOVERED,
    NQ_FRAME_RECYCLE,
    NQ_FRAME_SNAPSHOT,
};

/* What a worker says it is doing. */
enum nq_worker_state {
    NQ_WORKER_STARTING,
    NQ_WORKER_RUNNING,
    NQ_WORKER_IDLE, /* handler not implemented: fetches nothing */
    NQ_WORKER_PAUSED,
    NQ_WORKER_DRAINING,
};

/* A child's Redis connection, as it reports it. */
enum nq_redis_state {
    NQ_REDIS_NONE, /* it has none (idle handler, admin child): not sent */
    NQ_REDIS_CONNECTING,
    NQ_REDIS_CONNECTED,
    NQ_REDIS_DISCONNECTED,
};

enum nq_command {
    NQ_CMD_DRAIN,
    NQ_CMD_PAUSE,
    NQ_CMD_RESUME,
    NQ_CMD_STOP,
    NQ_CMD_RECOVER,
};

struct nq_counters {
    uint64_t fetched;
    uint64_t completed;
    uint64_t failed;
    uint64_t retried;
    uint64_t delayed; /* of retried: to the delayed set (backoff, rate limit) */
};

/* Processing-time histogram: bucket i counts jobs that took at most
 * nq_timing_le_ms[i] ms (and more than the bound before); the last bucket
 * counts the rest. */
#define NQ_TIMING_BUCKETS 12
extern const uint64_t nq_timing_le_ms[NQ_TIMING_BUCKETS - 1];

struct nq_timing {
    uint64_t count[NQ_TIMING_BUCKETS];
    uint64_t sum_ms;
};

/* Adds one job that took ms. */
void nq_timing_add(struct nq_timing *t, uint64_t ms);
/* to += from. */
void nq_timing_merge(struct nq_timing *to, const struct nq_timing *from);

/* A queue's job counts in Redis. */
struct nq_job_counts {
    bool known; /* false: not read (yet), the fields mean nothing */
    uint64_t waiting, active, delayed, failed, completed;
};

struct nq_frame_metrics {
    pid_t pid;
    uint64_t uptime_ms;
    enum nq_worker_state state;
    struct nq_counters counters;
    uint64_t in_flight;
    uint64_t rss_kib;
    uint64_t cpu_ms;              /* 0 when absent */
    char note[NQ_FRAME_NOTE_MAX]; /* "" when absent */
    enum nq_redis_state redis;    /* NQ_REDIS_NONE when absent */
    struct nq_timing timing;      /* zero when absent */
    struct nq_job_counts jobs;    /* known = false when absent */
};

#define NQ_FRAME_PREFIX_MAX 256
#define NQ_FRAME_SIGNAL_MAX 32

/* A dead worker's lock token prefix, and the signal that killed it. */
struct nq_frame_recover {
    char prefix[NQ_FRAME_PREFIX_MAX];
    char signal[NQ_FRAME_SIGNAL_MAX]; /* "" when it was not killed by a signal */
};

struct json_t;

struct nq_frame {
    enum nq_frame_type type;
    /* NQ_FRAME_SNAPSHOT's "data": borrowed when encoding; a new reference
     * the receiver owns (json_decref) after decoding. */
    struct json_t *snapshot;
    union {
        struct nq_frame_metrics metrics; /* NQ_FRAME_METRICS */
        enum nq_command command;         /* NQ_FRAME_COMMAND */
        char reason[NQ_FRAME_NOTE_MAX];  /* NQ_FRAME_RECYCLE */
    };
    struct nq_frame_recover recover; /* NQ_CMD_RECOVER; NQ_FRAME_RECOVERED (prefix only) */
};

/* Writes f into buf (not NUL-terminated). Returns the length, or -EMSGSIZE
 * when it does not fit in size (or NQ_FRAME_MAX), -ENOMEM on OOM, -EINVAL on
 * an out-of-range enum. */
int nq_frame_encode(const struct nq_frame *f, char *buf, size_t size) NQ_MUSTCHECK;

/* Parses one datagram. Returns 0 and fills *ret, or -EINVAL (-EMSGSIZE when
 * len > NQ_FRAME_MAX) with err saying what was wrong; *ret untouched then. */
int nq_frame_decode(const void *buf, size_t len, struct nq_frame *ret,
                    struct nq_err *err) NQ_MUSTCHECK;

/* Encodes f and sends it as one datagram on fd without blocking
 * (MSG_DONTWAIT | MSG_NOSIGNAL). Returns 0, -EAGAIN when the peer's buffer is
 * full, or another negative errno (-EPIPE once the peer is gone). */
int nq_frame_send(int fd, const struct nq_frame *f) NQ_MUSTCHECK;

/* Receives one datagram from fd without blocking into buf (NQ_FRAME_MAX
 * bytes) and decodes it. Returns 1 with *ret filled, 0 at EOF, -EAGAIN when
 * nothing is queued, -EINVAL/-EMSGSIZE for a bad frame, an empty datagram
 * included (err says why; the
 * datagram is consumed, so the caller may go on reading), or another
 * negative errno from recv(). */
int nq_frame_recv(int fd, char *buf, struct nq_frame *ret, struct nq_err *err) NQ_MUSTCHECK;

/* "idle", "drain"...: the wire names. NULL for values out of range. */
const char *nq_worker_state_name(enum nq_worker_state s);
const char *nq_command_name(enum nq_command c);
const char *nq_redis_state_name(enum nq_redis_state s);

/*
 * The channel: the child's end of its socketpair. Send frames up, receive
 * commands down as a libevent callback on the child's own event base. EOF
 * means the master is gone: the child drains and exits (HAProxy's workers do
 * the same), backing up PR_SET_PDEATHSIG. A frame the child cannot send at
 * once (master busy, buffer full) is dropped: metrics are sent every second
 * and the next one supersedes it. Logs (child side).
 */
struct event_base;
struct nq_channel;

/* cmd is a NQ_FRAME_COMMAND frame (recover carries its prefix) or a
 * NQ_FRAME_SNAPSHOT frame, borrowed for the call (the channel drops the
 * snapshot's reference afterwards: json_incref to keep it). */
typedef void (*nq_channel_command_fn)(const struct nq_frame *cmd, void *userdata);
typedef void (*nq_channel_eof_fn)(void *userdata);

/* Watches fd (the child's channel end; the channel owns and closes it) on
 * base. on_command runs for each valid command; bad frames are logged and
 * dropped; on_eof runs once when the master's end is closed. NULL on OOM
 * (fd then stays the caller's). */
struct nq_channel *nq_channel_new(struct event_base *base, int fd, nq_channel_command_fn on_command,
                                  nq_channel_eof_fn on_eof, void *userdata);
struct nq_channel *nq_channel_free(struct nq_channel *ch);

/* Sends one metrics frame. Returns 0, -EAGAIN when dropped because the
 * master is not reading, or another negative errno (-EPIPE after EOF). */
int nq_channel_send_metrics(struct nq_channel *ch, const struct nq_frame_metrics *m) NQ_MUSTCHECK;

/* Sends any up frame (recovered, recycle); same results. */
int nq_channel_send(struct nq_channel *ch, const struct nq_frame *f) NQ_MUSTCHECK;

/*
 * The child's entry. The master forks (src/supervisor/) with every signal
 * blocked and stdio flushed, then the child calls nq_child_run(), which is
 * systemd's safe_fork() child half cut to our needs (STYLE.md pitfalls 4-10):
 * it disposes of the master's event base (event_reinit, then free: the epoll
 * instance is shared with the master), resets every signal handler, closes
 * every fd but stdio, its channel end and the journald socket, arms
 * PR_SET_PDEATHSIG(SIGTERM) and checks the master is still its parent, unsets
 * NOTIFY_SOCKET, reseeds random(), ignores SIGPIPE, sets its process title
 * ("notifyqd: worker email/1") and log context, runs the entry function and
 * ends with _exit(its return value). Signals stay blocked when the entry
 * function starts: it adds its own signal events, then calls
 * nq_child_unblock_signals(), so a drain request sent early is kept.
 *
 * notifyqd.c hands the supervisor each child's entry function
 * (nq_child_main_fn), so the supervisor links no worker, queue or store code
 * and the master cannot open a Redis or database connection by accident.
 * The ctx and everything it points to are the master's memory, inherited by
 * the fork; the child reads them and frees none of it.
 */
struct nq_config;
struct nq_queue_cfg;

/* Exit codes of a child: 0 after a drain; NQ_EXIT_CONFIG (EX_CONFIG) when it
 * cannot run with this configuration, so the master waits longest before
 * trying again; anything else is a crash. */
#define NQ_EXIT_OK 0
#define NQ_EXIT_CONFIG 78

struct nq_child_ctx {
    const struct nq_config *cfg;      /* the generation this child was forked with */
    const struct nq_queue_cfg *queue; /* the queue a worker serves; NULL: the http child */
    unsigned slot;                    /* 0 .. queue->processes - 1 */
    unsigned generation;              /* the master's config generation */
    uint64_t incarnation;             /* unique among the master's children, never reused */
    const char *hostname;             /* the master's, for nq_token_prefix */
    int fd;                           /* the child's end of its channel */
    pid_t master_pid;                 /* the master's pid, set before fork */
    sigset_t sigmask;                 /* the mask before fork, set before fork */
};

/* A child's main: returns its exit status (NQ_EXIT_*). */
typedef int (*nq_child_main_fn)(const struct nq_child_ctx *ctx);

/* In the child just forked: the steps above, then child_main(ctx), then
 * _exit(). master_base is the master's event base, inherited. */
_Noreturn void nq_child_run(struct event_base *master_base, const struct nq_child_ctx *ctx,
                            nq_child_main_fn child_main);

/* In the child, after adding its own signal events: restores the signal mask
 * the master had, so signals pending since the fork are delivered now. */
void nq_child_unblock_signals(const struct nq_child_ctx *ctx);

/* The prefix of every lock token a worker incarnation takes,
 * "<hostname>:<pid>:<incarnation>:" (incarnation in hex). The master builds
 * the same string from what it knows of a dead child to recover its jobs
 * (see "recover" above); the final ':' keeps one prefix from being the
 * start of another. Returns the length, or -ENOBUFS when size is too small. */
int nq_token_prefix(char *buf, size_t size, const char *hostname, pid_t pid,
                    uint64_t incarnation) NQ_MUSTCHECK;

/* The calling process's CPU time so far (user + system), for "cpu_ms". */
uint64_t nq_proc_cpu_ms(void);

/* Saves where main()'s argv (and the environment after it) lies, so children
 * can overwrite it with their title. Call first thing in main(); moves the
 * environment strings to the heap. */
void nq_proctitle_init(int argc, char **argv);

#endif
