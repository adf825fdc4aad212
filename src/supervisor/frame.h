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
 * Reserved optional fields, not decoded yet (the queue issue adds them):
 *   "timing"     {"le_ms":[...], "count":[...]}: per-job latency histogram
 *   "queue"      {"wait":N, "active":N, "delayed":N, "failed":N}: queue counts
 * Unknown keys are ignored, so a v1 reader accepts frames from a newer v1
 * writer that adds optional fields; changing a field's meaning needs v2.
 *
 * Down (master -> child), "t":"cmd":
 *   "cmd"        "drain"|"pause"|"resume"|"stop"
 *     drain: stop fetching, finish in-flight jobs within drain_timeout, exit 0
 *     stop:  return in-flight jobs at once, exit 0 (fast stop)
 *     pause/resume: stop/restart fetching, keep the process
 *
 * See: channel.h (the child's side), ARCHITECTURE.md.
 */
#ifndef NQ_SUPERVISOR_FRAME_H
#define NQ_SUPERVISOR_FRAME_H

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
};

struct nq_counters {
    uint64_t fetched;
    uint64_t completed;
    uint64_t failed;
    uint64_t retried;
};

struct nq_frame_metrics {
    pid_t pid;
    uint64_t uptime_ms;
    enum nq_worker_state state;
    struct nq_counters counters;
    uint64_t in_flight;
    uint64_t rss_kib;
    char note[NQ_FRAME_NOTE_MAX]; /* "" when absent */
};

struct nq_frame {
    enum nq_frame_type type;
    union {
        struct nq_frame_metrics metrics; /* NQ_FRAME_METRICS */
        enum nq_command command;         /* NQ_FRAME_COMMAND */
    };
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
