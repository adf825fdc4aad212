/* SPDX-License-Identifier: MIT */
/*
 * Frames between the master and one child, one per datagram on the child's
 * socketpair(AF_UNIX, SOCK_SEQPACKET). Both processes run this codec; the
 * master treats every frame as untrusted input (STYLE.md pitfall 13): a frame
 * that is truncated, not JSON, of another version, or has a known field of the
 * wrong type or range is rejected with an nq_err, which the master logs and
 * drops. Non-logging module.
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
 *   "in_flight"  integer >= 0
 *   "rss_kib"    integer >= 0
 *   "note"       optional string, free text for an operator (truncated to
 *                NQ_FRAME_NOTE_MAX - 1 bytes)
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
 * See: channel.h (the child's side), ARCHITECTURE.md.
 */
#ifndef NQ_SUPERVISOR_FRAME_H
#define NQ_SUPERVISOR_FRAME_H

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
};

/* What a worker says it is doing. */
enum nq_worker_state {
    NQ_WORKER_STARTING,
    NQ_WORKER_RUNNING,
    NQ_WORKER_IDLE, /* handler not implemented: fetches nothing */
    NQ_WORKER_PAUSED,
    NQ_WORKER_DRAINING,
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
    char note[NQ_FRAME_NOTE_MAX]; /* "" when absent */
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

struct nq_frame {
    enum nq_frame_type type;
    union {
        struct nq_frame_metrics metrics;     /* NQ_FRAME_METRICS */
        enum nq_command command;             /* NQ_FRAME_COMMAND */
        char reason[NQ_FRAME_NOTE_MAX];      /* NQ_FRAME_RECYCLE */
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

#endif
