/* SPDX-License-Identifier: MIT */
/*
 * Shared by the delivery log's files only: writer.c (the connection and
 * batches) uses spool.c (the local file of events not yet confirmed) and
 * event.c (an event as one JSON line); schema.c (the blocking helpers and
 * the embedded migrations) stands apart. Included from nowhere else.
 */
#ifndef NQ_DELIVERYLOG_INTERNAL_H
#define NQ_DELIVERYLOG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "common/macros.h"
#include "config/config.h"
#include "deliverylog/deliverylog.h"

/* The migrations, generated from migrations/NNNN_*.sql (deliverylog/local.mk):
 * nq_dl_migrations[i] takes the schema from version i to i + 1. */
extern const char *const nq_dl_migrations[];
extern const unsigned nq_dl_n_migrations;

/* ---- spool.c ---- */

/* Events not yet confirmed by the database: a queue in memory, mirrored in
 * an append-only file this process holds under flock(2). */
struct dl_spool {
    int fd;
    char *dir, *path, *prefix; /* prefix: "<queue>.", what adoptable names start with */
    char **lines;              /* lines[head .. head + n), each without its newline */
    size_t head, n, cap;
    uint64_t acked; /* confirmed since the file was last emptied or rewritten */
    bool dirty;     /* written since the last fsync */
    /* Lines not written to the file yet: one write(2) per loop iteration
     * (dl_spool_write), not one per event. */
    char *out;
    size_t out_len, out_cap;
};

/* Makes <state_dir>/deliverylog/<queue>.<slot>.<pid>.spool and adopts the
 * queue's orphaned spools. 0 or a negative errno with err set. */
int dl_spool_open(struct dl_spool *s, const char *state_dir, const char *queue, unsigned slot,
                  struct nq_err *err) NQ_MUSTCHECK;
void dl_spool_close(struct dl_spool *s);
/* Appends line (owned by the spool from now on, even on failure: then it
 * is in memory only). It reaches the file with the next dl_spool_write(),
 * or at once when 64 KiB wait. 0 or a negative errno. */
int dl_spool_push_take(struct dl_spool *s, char *line) NQ_MUSTCHECK;
/* Writes the lines pushed since the last call. 0 or a negative errno. */
int dl_spool_write(struct dl_spool *s) NQ_MUSTCHECK;
/* Whether lines wait for dl_spool_write(). */
bool dl_spool_unwritten(const struct dl_spool *s);
/* The i-th waiting line (i < s->n). */
const char *dl_spool_peek(const struct dl_spool *s, size_t i);
/* The first n lines are confirmed: forgets them. */
void dl_spool_ack(struct dl_spool *s, size_t n);
/* Writes what waits, then fsync(2) if written since the last one. */
void dl_spool_sync(struct dl_spool *s);

/* ---- event.c ---- */

/* ev as one line of compact JSON (the keys notifyq.record_events reads;
 * the queue and channel go with the batch, as a spool holds one queue's
 * events), or NULL on OOM. */
char *dl_event_line(const struct nq_postgres_cfg *pg, const struct nq_dl_event *ev);

/* ---- shared by writer.c and schema.c ---- */

/* Connects with blocking I/O (connect_timeout 5 s unless the DSN says).
 * NULL with err set when it could not. */
PGconn *dl_connect_blocking(const char *dsn, struct nq_err *err);
/* The schema version (0: none) of a connected database; -EHOSTUNREACH. */
int dl_schema_version(PGconn *conn, int *ret_version, struct nq_err *err) NQ_MUSTCHECK;
/* The version text of a schema_version query, in ret; false (ret untouched)
 * when it is not a non-negative int. */
bool dl_version_parse(const char *text, int *ret);
/* libpq's message without its trailing newline, in err. */
int dl_pq_err(struct nq_err *err, int r, const char *what, const char *msg);

#endif
