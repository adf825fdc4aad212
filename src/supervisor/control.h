/* SPDX-License-Identifier: MIT */
/*
 * The control socket, master side (protocol: notifyqctl(1) and
 * notes/control-protocol.md). A Unix stream socket, one JSON request per
 * line (at most NQ_CONTROL_LINE_MAX bytes), one JSON reply line each;
 * several requests may share a connection. Peers are checked with
 * SO_PEERCRED: root, the daemon's own uid, or a member of control.group
 * (primary or supplementary); anyone else gets
 * {"ok":false,"error":"permission denied","refused":true} and is
 * disconnected; so is anyone beyond the connection limit ("too many
 * connections").
 *
 * The socket is created before any child is forked (children close it),
 * with control.mode and control.group. A socket left by a dead daemon is
 * replaced; one another notifyqd answers on refuses the start. The socket is
 * removed on exit if it is still ours.
 *
 * nq_control_parse() is the non-logging, unit-tested request parser; the
 * server logs.
 */
#ifndef NQ_SUPERVISOR_CONTROL_H
#define NQ_SUPERVISOR_CONTROL_H

#include <stddef.h>

#include "common/err.h"
#include "common/macros.h"

struct nq_control;
struct nq_control_cfg;
struct nq_master;

#define NQ_CONTROL_LINE_MAX 65536
#define NQ_CONTROL_QUEUE_MAX 256
#define NQ_CONTROL_MAX_CONNECTIONS 64
/* Of those, the last ones only root may take. */
#define NQ_CONTROL_ROOT_RESERVED 4
/* A connection sends a request within this long of its start or of its
 * last reply, and reads a reply within this long, or is closed. */
#define NQ_CONTROL_IDLE_TIMEOUT_S 10
/* A connection with more replies than this unsent is not read. */
#define NQ_CONTROL_OUTPUT_MAX ((size_t) 256 * 1024)

enum nq_control_cmd {
    NQ_CONTROL_STATUS,
    NQ_CONTROL_METRICS,
    NQ_CONTROL_PAUSE,
    NQ_CONTROL_RESUME,
    NQ_CONTROL_RELOAD,
    NQ_CONTROL_STOP,
};

struct nq_control_request {
    enum nq_control_cmd cmd;
    char queue[NQ_CONTROL_QUEUE_MAX]; /* pause/resume; "" otherwise */
};

/* Parses one request line (without its newline; len bytes, no NUL needed).
 * Returns 0 and fills *ret, or -EINVAL (-EMSGSIZE when len exceeds
 * NQ_CONTROL_LINE_MAX) with err holding the reply's error text; *ret is
 * untouched on failure. Unknown keys are ignored. Whether the queue exists
 * is the master's business. */
int nq_control_parse(const char *line, size_t len, struct nq_control_request *ret,
                     struct nq_err *err) NQ_MUSTCHECK;

/* Creates and listens on cfg->socket for m, on m->base. On failure err
 * says why, in a line fit for the log. */
int nq_control_open(struct nq_master *m, const struct nq_control_cfg *cfg, struct nq_control **ret,
                    struct nq_err *err) NQ_MUSTCHECK;

/* Flushes pending replies as far as the sockets take them without
 * blocking, closes every connection and the listener, and removes the
 * socket file if it is still the one we created. */
struct nq_control *nq_control_free(struct nq_control *c);

#endif
