/* SPDX-License-Identifier: MIT */
/*
 * The delivery log: every notification's status in PostgreSQL (tables in
 * the `notifyq` schema, made by the SQL migrations in migrations/, which are
 * embedded here and shipped in /usr/share/notifyq/migrations).
 *
 * Two sides:
 *  - blocking helpers for the programs' main()s: apply the migrations
 *    (notifyqd --migrate), probe the database's schema version (notifyqd -t),
 *    read one notification's history (notifyqctl notification);
 *  - the asynchronous writer a worker runs on its libevent loop. The worker
 *    reports events (nq_deliverylog_record); each becomes one line in a local
 *    spool file first (written by one write(2) at the end of the loop
 *    iteration that made it, fsync(2) every flush interval), so a worker
 *    killed loses nothing but the events of the iteration it was killed in
 *    (made after Redis confirmed their finish: the same window as between
 *    that reply and any write), then goes to PostgreSQL in batches: one
 *    statement per batch
 *    (notifyq.record_events, one jsonb array), sent without blocking, every
 *    flush interval or once batch_size events wait. A batch confirmed by the
 *    database leaves the spool. While the database is unreachable events stay
 *    in the spool; at spool_max the writer is "full" and the worker stops
 *    fetching jobs until the database takes some (backpressure, never a
 *    drop). Replays are harmless: the SQL skips an event it has seen (queue,
 *    job id, attempt, status) and a notification's status only moves forward
 *    (attempt, then queued < active < retrying < sent|failed).
 *
 * Spool files: <state_dir>/deliverylog/<queue>.<slot>.<pid>.spool, each
 * held under flock(2) by its worker. A worker of the queue that starts
 * adopts every spool of its queue no live worker holds (a crashed or
 * recycled sibling's): it copies their events into its own spool, first in
 * line, then removes them.
 *
 * <libpq-fe.h> is included in this module only.
 * Threading: none; the writer runs on the worker's event base.
 */
#ifndef NQ_DELIVERYLOG_DELIVERYLOG_H
#define NQ_DELIVERYLOG_DELIVERYLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/macros.h"
#include "config/config.h"

/* The schema version this build reads and writes. */
#define NQ_DELIVERYLOG_SCHEMA_VERSION 1

struct event_base;
struct nq_deliverylog;

/* ---- blocking helpers ----------------------------------------------------- */

/* Applies the pending migrations in one transaction. Returns the number
 * applied (0: up to date), -EPROTO when the database is at a version this
 * build does not know, or another negative errno; err says why. Progress
 * lines go to out. */
int nq_deliverylog_migrate(const struct nq_postgres_cfg *pg, FILE *out,
                           struct nq_err *err) NQ_MUSTCHECK;

/* The database's schema version in *ret_version (0: not migrated). Returns 0,
 * or -EHOSTUNREACH (cannot connect or query; err says why). */
int nq_deliverylog_probe(const struct nq_postgres_cfg *pg, int *ret_version,
                         struct nq_err *err) NQ_MUSTCHECK;

/* queue + job_id's notification with its "events" and "attempts" as a new
 * JSON object in *ret; -ENOENT when the log has no such job, -EHOSTUNREACH,
 * -ENOMEM. */
int nq_deliverylog_history(const struct nq_postgres_cfg *pg, const char *queue, const char *job_id,
                           json_t **ret, struct nq_err *err) NQ_MUSTCHECK;

/* ---- the writer ------------------------------------------------------------- */

enum nq_dl_status { NQ_DL_QUEUED, NQ_DL_ACTIVE, NQ_DL_RETRYING, NQ_DL_SENT, NQ_DL_FAILED };

/* What became of an attempt (delivery_attempts.outcome). */
enum nq_dl_outcome {
    NQ_DL_OUTCOME_NONE, /* still running (active) */
    NQ_DL_OUTCOME_SENT,
    NQ_DL_OUTCOME_RETRYABLE,
    NQ_DL_OUTCOME_PERMANENT,
    NQ_DL_OUTCOME_INVALID, /* failed without being run */
};

/* One event. Everything is borrowed for the call. */
struct nq_dl_event {
    const char *job_id;
    uint32_t attempt; /* 1 for the first run; 0 for queued */
    enum nq_dl_status status;
    uint64_t at_ms; /* wall clock */
    /* The job's timestamp on its first active event: it stands for the
     * queued event too (the database records both); 0 otherwise. */
    uint64_t created_ms;
    /* The job's data (an object) or NULL: tenantId, userId, templateId and
     * the recipient (to) are read from it; stored whole only with
     * store_bodies. */
    json_t *data;
    const char *provider, *message_id, *error; /* NULL: none */
    uint64_t started_ms, duration_ms;          /* finished attempts */
    enum nq_dl_outcome outcome;
};

/* The writer's news for the worker: room (a full writer has room again:
 * fetch again), settled (the database confirmed every event: a draining
 * worker may leave). */
typedef void (*nq_dl_room_fn)(void *userdata);

struct nq_deliverylog_opts {
    struct event_base *base;
    const struct nq_postgres_cfg *pg;
    const char *state_dir;
    const char *queue;   /* the queue's name (map key) */
    const char *channel; /* the handler's name */
    unsigned slot;
    nq_dl_room_fn room, settled;
    void *userdata;
};

/* Opens the spool (adopting orphans) and checks the schema. Returns 0;
 * -EPROTO when the database answers with a schema version other than
 * NQ_DELIVERYLOG_SCHEMA_VERSION (err: found and needed; the worker must not
 * start); another negative errno when the spool cannot be made (err says
 * why). An unreachable database is not an error: events wait in the spool. */
int nq_deliverylog_new(const struct nq_deliverylog_opts *o, struct nq_deliverylog **ret,
                       struct nq_err *err) NQ_MUSTCHECK;
/* Syncs the spool and closes: what the database did not confirm stays in the
 * spool for the next worker of the queue. */
struct nq_deliverylog *nq_deliverylog_free(struct nq_deliverylog *dl);

/* Logs ev. Never blocks on the database; fails only when the spool cannot be
 * written (logged: the event then lives in memory only). */
void nq_deliverylog_record(struct nq_deliverylog *dl, const struct nq_dl_event *ev);

/* Events not yet confirmed by the database. */
uint64_t nq_deliverylog_depth(const struct nq_deliverylog *dl);
/* At spool_max: fetch nothing until the room callback. */
bool nq_deliverylog_full(const struct nq_deliverylog *dl);
/* Whether the database is connected and at our version. */
bool nq_deliverylog_connected(const struct nq_deliverylog *dl);

/* ---- in-app notifications (handler inapp) --------------------------------- */

/* Its own connection on the worker's loop, one query at a time, connected on
 * first use and again after a failure (each call then fails with
 * -EHOSTUNREACH: the job is retried). */
struct nq_dl_inapp;

struct nq_dl_inapp_row {
    const char *queue, *job_id;
    const char *tenant_id; /* NULL: none */
    const char *user_id, *title, *body, *type;
    const char *metadata; /* JSON text, or NULL */
};

/* The row's id and creation time (ISO 8601), and whether it was published
 * before; r is 0 or a negative errno (err text in why). Strings are valid
 * during the call. */
typedef void (*nq_dl_inapp_fn)(void *userdata, int r, const char *id, const char *created_at,
                               bool published, const char *why);

struct nq_dl_inapp *nq_dl_inapp_new(struct event_base *base, const struct nq_postgres_cfg *pg);
struct nq_dl_inapp *nq_dl_inapp_free(struct nq_dl_inapp *x);

/* Inserts row once per queue + job id (a second call returns the first
 * row, untouched). 0 when cb will be called, -ENOMEM. */
int nq_dl_inapp_insert(struct nq_dl_inapp *x, const struct nq_dl_inapp_row *row, nq_dl_inapp_fn cb,
                       void *userdata) NQ_MUSTCHECK;
/* Records that row id was published. */
int nq_dl_inapp_mark_published(struct nq_dl_inapp *x, const char *id, nq_dl_inapp_fn cb,
                               void *userdata) NQ_MUSTCHECK;
/* Forgets every call made with userdata: its callback will not run. */
void nq_dl_inapp_cancel(struct nq_dl_inapp *x, const void *userdata);

#endif
