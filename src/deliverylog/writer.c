/* SPDX-License-Identifier: MIT */
/*
 * The writer a worker runs: one libpq connection in non-blocking mode on
 * the worker's event base, one batch in flight at a time.
 *
 *   down ──(retry timer)──▶ connecting ──▶ checking ──▶ ready ⇄ sending
 *     ▲                                       │
 *     └─── any error, or a schema version we do not know (retried slowly)
 *
 * checking asks the schema version again on every connection (the database
 * may have been restored or migrated meanwhile). A batch goes out when
 * batch_size events wait, or at the flush tick if any do; its events leave
 * the spool only once the database answered. A failed batch (connection
 * lost, or an SQL error) drops the connection: the same events go again,
 * first, once it is back. Retries back off from 250 ms to 5 s.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "common/log.h"
#include "deliverylog/internal.h"

#define DL_RETRY_MIN_MS 250
#define DL_RETRY_MAX_MS 5000
/* A database at another schema version is asked again this often. */
#define DL_WRONG_SCHEMA_RETRY_MS 30000

enum dl_state { DL_DOWN, DL_CONNECTING, DL_CHECKING, DL_READY, DL_SENDING };

struct nq_deliverylog {
    struct event_base *base;
    const struct nq_postgres_cfg *pg;
    char *queue, *channel;
    nq_dl_room_fn room, settled;
    void *userdata;

    struct dl_spool spool;
    PGconn *conn;
    enum dl_state state;
    struct event *ev_io, *ev_tick, *ev_retry;
    struct event *ev_write; /* after this loop iteration: the spool's write(2) */
    uint64_t retry_ms;
    size_t in_flight;  /* events of the batch being sent */
    bool query_failed; /* a result of the query in flight was an error */
    char failure[256]; /* and its message */
    bool logged_down;  /* "unreachable" said once per outage */
    bool was_full;
};

static void on_io(evutil_socket_t fd, short what, void *arg);
static void start_connect(struct nq_deliverylog *dl);

static void arm_io(struct nq_deliverylog *dl, short what)
{
    if (dl->ev_io)
        event_free(dl->ev_io);
    dl->ev_io = event_new(dl->base, PQsocket(dl->conn), what, on_io, dl);
    if (!dl->ev_io || event_add(dl->ev_io, NULL) < 0)
        nq_log(LOG_ERR, "delivery log: cannot watch the connection");
}

static void arm_retry(struct nq_deliverylog *dl, uint64_t ms)
{
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };

    (void) evtimer_add(dl->ev_retry, &tv);
}

/* Drops the connection; the batch in flight stays first in the spool. */
static void go_down(struct nq_deliverylog *dl, const char *why, uint64_t retry_ms)
{
    if (!dl->logged_down || retry_ms == DL_WRONG_SCHEMA_RETRY_MS)
        nq_log(LOG_WARNING,
               "delivery log: %s; %zu event%s kept in the spool, trying again in %.1f s", why,
               dl->spool.n, dl->spool.n == 1 ? "" : "s", (double) retry_ms / 1000);
    dl->logged_down = true;
    if (dl->ev_io) {
        event_free(dl->ev_io);
        dl->ev_io = NULL;
    }
    PQfinish(dl->conn);
    dl->conn = NULL;
    dl->state = DL_DOWN;
    dl->in_flight = 0;
    arm_retry(dl, retry_ms);
}

static void go_down_pq(struct nq_deliverylog *dl, const char *what)
{
    char why[300];
    const char *msg = dl->conn ? PQerrorMessage(dl->conn) : "";

    /* libpq's first line; the others are hints ("This probably means..."). */
    (void) snprintf(why, sizeof(why), "%s: %.*s", what, (int) strcspn(msg, "\n"), msg);
    dl->retry_ms = dl->retry_ms ? dl->retry_ms * 2 : DL_RETRY_MIN_MS;
    if (dl->retry_ms > DL_RETRY_MAX_MS)
        dl->retry_ms = DL_RETRY_MAX_MS;
    go_down(dl, why, dl->retry_ms);
}

/* Sends sql (with a batch and the queue and channel, or nothing) and waits
 * for its results. */
static void send_query(struct nq_deliverylog *dl, const char *sql, const char *batch)
{
    const char *params[] = { batch, dl->queue, dl->channel };
    int r;

    dl->query_failed = false;
    dl->failure[0] = '\0';
    r = PQsendQueryParams(dl->conn, sql, batch ? 3 : 0, NULL, batch ? params : NULL, NULL, NULL, 0);
    if (!r) {
        go_down_pq(dl, "sending a query");
        return;
    }
    r = PQflush(dl->conn);
    if (r < 0)
        go_down_pq(dl, "sending a query");
    else
        arm_io(dl, (short) (EV_READ | (r ? EV_WRITE : 0)));
}

static void check_room(struct nq_deliverylog *dl)
{
    if (dl->was_full && !nq_deliverylog_full(dl)) {
        dl->was_full = false;
        nq_log(LOG_NOTICE, "delivery log: the spool has room again, fetching jobs again");
        if (dl->room)
            dl->room(dl->userdata);
    }
}

static void send_batch(struct nq_deliverylog *dl)
{
    size_t n = dl->spool.n < dl->pg->batch_size ? dl->spool.n : dl->pg->batch_size;
    size_t len = 2;
    char *buf, *p;

    if (dl->state != DL_READY || n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        len += strlen(dl_spool_peek(&dl->spool, i)) + 1;
    buf = malloc(len + 1);
    if (!buf) {
        nq_log(LOG_ERR, "delivery log: out of memory building a batch");
        return;
    }
    p = buf;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        const char *line = dl_spool_peek(&dl->spool, i);
        size_t l = strlen(line);

        if (i)
            *p++ = ',';
        memcpy(p, line, l);
        p += l;
    }
    *p++ = ']';
    *p = '\0';
    dl->in_flight = n;
    dl->state = DL_SENDING;
    send_query(dl, "SELECT notifyq.record_events($1::jsonb, $2, $3)", buf);
    free(buf);
}

/* The version query's result. */
static void checked(struct nq_deliverylog *dl, const PGresult *res)
{
    int version = 0;
    char why[200];

    /* Text that is not a version leaves 0: refused below like any other. */
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        (void) dl_version_parse(PQgetvalue(res, 0, 0), &version);
    if (version != NQ_DELIVERYLOG_SCHEMA_VERSION) {
        (void) snprintf(why, sizeof(why),
                        "the database's schema is at version %d, this notifyqd needs %d "
                        "(notifyqd --migrate)",
                        version, NQ_DELIVERYLOG_SCHEMA_VERSION);
        go_down(dl, why, DL_WRONG_SCHEMA_RETRY_MS);
        return;
    }
    if (dl->logged_down)
        nq_log(LOG_NOTICE, "delivery log: connected to PostgreSQL, replaying %zu event%s",
               dl->spool.n, dl->spool.n == 1 ? "" : "s");
    dl->logged_down = false;
    dl->retry_ms = 0;
    dl->state = DL_READY;
    send_batch(dl);
}

/* The batch's result: its events leave the spool. */
static void sent(struct nq_deliverylog *dl)
{
    dl_spool_ack(&dl->spool, dl->in_flight);
    dl->in_flight = 0;
    dl->state = DL_READY;
    check_room(dl);
    if (dl->spool.n >= dl->pg->batch_size)
        send_batch(dl);
    else if (dl->spool.n == 0 && dl->settled)
        dl->settled(dl->userdata);
}

/* Every result of the query in flight was read. */
static void query_done(struct nq_deliverylog *dl, const PGresult *last)
{
    char why[300];

    if (dl->state == DL_CHECKING) {
        checked(dl, dl->query_failed ? NULL : last);
        return;
    }
    if (dl->query_failed) {
        (void) snprintf(why, sizeof(why), "writing a batch: %s", dl->failure);
        dl->retry_ms = DL_RETRY_MAX_MS;
        go_down(dl, why, DL_RETRY_MAX_MS);
        return;
    }
    sent(dl);
}

static void read_results(struct nq_deliverylog *dl)
{
    PGresult *res, *last = NULL;

    if (!PQconsumeInput(dl->conn)) {
        go_down_pq(dl, "reading a reply");
        return;
    }
    while (!PQisBusy(dl->conn)) {
        res = PQgetResult(dl->conn);
        if (!res) {
            query_done(dl, last);
            PQclear(last);
            return;
        }
        if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK &&
            !dl->query_failed) {
            const char *m = PQresultErrorMessage(res);

            dl->query_failed = true;
            (void) snprintf(dl->failure, sizeof(dl->failure), "%.*s", (int) strcspn(m, "\n"), m);
        }
        PQclear(last);
        last = res;
    }
    PQclear(last);
    arm_io(dl, EV_READ);
}

static void poll_connect(struct nq_deliverylog *dl)
{
    switch (PQconnectPoll(dl->conn)) {
    case PGRES_POLLING_READING:
        arm_io(dl, EV_READ);
        return;
    case PGRES_POLLING_WRITING:
        arm_io(dl, EV_WRITE);
        return;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(dl->conn, 1) < 0) {
            go_down_pq(dl, "connecting");
            return;
        }
        dl->state = DL_CHECKING;
        /* An error (no such table) reads as version 0. */
        send_query(dl, "SELECT coalesce(max(version), 0) FROM notifyq.schema_version", NULL);
        return;
    default:
        go_down_pq(dl, "cannot connect");
    }
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct nq_deliverylog *dl = arg;

    (void) fd;
    if (dl->state == DL_CONNECTING) {
        poll_connect(dl);
        return;
    }
    if (what & EV_WRITE) {
        int r = PQflush(dl->conn);

        if (r < 0) {
            go_down_pq(dl, "sending a query");
            return;
        }
        if (r == 1) {
            arm_io(dl, EV_READ | EV_WRITE);
            return;
        }
    }
    read_results(dl);
}

static void start_connect(struct nq_deliverylog *dl)
{
    const char *const keys[] = { "connect_timeout", "dbname", NULL };
    const char *const vals[] = { "5", dl->pg->dsn, NULL };

    dl->conn = PQconnectStartParams(keys, vals, 1);
    if (!dl->conn || PQstatus(dl->conn) == CONNECTION_BAD) {
        go_down_pq(dl, "cannot connect");
        return;
    }
    dl->state = DL_CONNECTING;
    poll_connect(dl);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    start_connect(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct nq_deliverylog *dl = arg;

    (void) fd;
    (void) what;
    dl_spool_sync(&dl->spool);
    send_batch(dl);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct nq_deliverylog *dl = arg;
    int r;

    (void) fd;
    (void) what;
    r = dl_spool_write(&dl->spool);
    if (r < 0)
        nq_log_errno(LOG_ERR, r, "delivery log: spool %s: %m", dl->spool.path);
}

void nq_deliverylog_record(struct nq_deliverylog *dl, const struct nq_dl_event *ev)
{
    struct nq_dl_event e = *ev;
    char *line;
    int r;

    if (!e.at_ms)
        e.at_ms = wall_ms();
    line = dl_event_line(dl->pg, &e);
    if (!line) {
        nq_log(LOG_ERR, "delivery log: out of memory: job %s's %s event not logged", ev->job_id,
               "status");
        return;
    }
    r = dl_spool_push_take(&dl->spool, line);
    if (r < 0)
        nq_log_errno(LOG_ERR, r, "delivery log: spool %s: %m", dl->spool.path);
    /* Events of one loop iteration (a work call's finishes) share a write. */
    if (dl_spool_unwritten(&dl->spool))
        event_active(dl->ev_write, EV_TIMEOUT, 0);
    if (!dl->was_full && nq_deliverylog_full(dl)) {
        dl->was_full = true;
        nq_log(LOG_WARNING,
               "delivery log: %zu events wait in the spool (spool_max): fetching no jobs until "
               "PostgreSQL takes them",
               dl->spool.n);
    }
    if (dl->spool.n >= dl->pg->batch_size)
        send_batch(dl);
}

uint64_t nq_deliverylog_depth(const struct nq_deliverylog *dl)
{
    return dl->spool.n;
}

bool nq_deliverylog_full(const struct nq_deliverylog *dl)
{
    return dl->spool.n >= dl->pg->spool_max;
}

bool nq_deliverylog_connected(const struct nq_deliverylog *dl)
{
    return dl->state == DL_READY || dl->state == DL_SENDING;
}

/* At start: a database that answers must be at our version. */
static int check_schema(const struct nq_postgres_cfg *pg, struct nq_err *err)
{
    int version, r = nq_deliverylog_probe(pg, &version, err);

    if (r < 0) {
        nq_log(LOG_WARNING, "delivery log: %s; events wait in the spool until it answers",
               nq_err_str(err));
        return 0;
    }
    if (version != NQ_DELIVERYLOG_SCHEMA_VERSION)
        return nq_err_set(err, -EPROTO,
                          "delivery log: the database's schema is at version %d, this notifyqd "
                          "needs version %d (run notifyqd --migrate)",
                          version, NQ_DELIVERYLOG_SCHEMA_VERSION);
    return 0;
}

int nq_deliverylog_new(const struct nq_deliverylog_opts *o, struct nq_deliverylog **ret,
                       struct nq_err *err)
{
    struct nq_deliverylog *dl;
    struct timeval tick = { (time_t) (o->pg->flush_interval_ms / 1000),
                            (suseconds_t) (o->pg->flush_interval_ms % 1000) * 1000 };
    int r = check_schema(o->pg, err);

    if (r < 0)
        return r;
    dl = calloc(1, sizeof(*dl));
    if (!dl)
        return nq_err_set(err, -ENOMEM, "out of memory");
    dl->spool.fd = -1;
    dl->base = o->base;
    dl->pg = o->pg;
    dl->room = o->room;
    dl->settled = o->settled;
    dl->userdata = o->userdata;
    dl->queue = strdup(o->queue);
    dl->channel = strdup(o->channel);
    dl->ev_tick = event_new(o->base, -1, EV_PERSIST, on_tick, dl);
    dl->ev_retry = evtimer_new(o->base, on_retry, dl);
    dl->ev_write = event_new(o->base, -1, 0, on_write, dl);
    if (!dl->queue || !dl->channel || !dl->ev_tick || !dl->ev_retry || !dl->ev_write ||
        event_add(dl->ev_tick, &tick) < 0) {
        nq_deliverylog_free(dl);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    r = dl_spool_open(&dl->spool, o->state_dir, o->queue, o->slot, err);
    if (r < 0) {
        nq_deliverylog_free(dl);
        return r;
    }
    dl->was_full = nq_deliverylog_full(dl);
    start_connect(dl);
    *ret = dl;
    return 0;
}

struct nq_deliverylog *nq_deliverylog_free(struct nq_deliverylog *dl)
{
    if (!dl)
        return NULL;
    if (dl->ev_io)
        event_free(dl->ev_io);
    if (dl->ev_tick)
        event_free(dl->ev_tick);
    if (dl->ev_retry)
        event_free(dl->ev_retry);
    if (dl->ev_write)
        event_free(dl->ev_write);
    PQfinish(dl->conn);
    dl_spool_close(&dl->spool);
    free(dl->queue);
    free(dl->channel);
    free(dl);
    return NULL;
}
