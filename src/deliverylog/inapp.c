/* SPDX-License-Identifier: MIT */
/*
 * In-app notifications' rows (notifyq.inapp_notifications) for the inapp
 * handler: a small asynchronous client of its own on the worker's loop, a
 * FIFO of queries sent one at a time. The insert is idempotent per queue +
 * job id (ON CONFLICT returns the first row), and says whether the row was
 * published already (published_at), which is how a job run again after a
 * crash knows not to publish twice.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/log.h"
#include "deliverylog/internal.h"

#define INAPP_PARAMS_MAX 8

static const char insert_sql[] =
    "INSERT INTO notifyq.inapp_notifications AS t"
    " (queue, job_id, tenant_id, user_id, title, body, type, metadata)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)"
    " ON CONFLICT (queue, job_id) DO UPDATE SET queue = t.queue"
    " RETURNING id, to_json(created_at)#>>'{}', published_at IS NOT NULL";

static const char published_sql[] =
    "UPDATE notifyq.inapp_notifications SET published_at = coalesce(published_at, now())"
    " WHERE id = $1::bigint RETURNING id, to_json(created_at)#>>'{}', true";

struct inapp_query {
    const char *sql;
    char *params[INAPP_PARAMS_MAX];
    int n_params;
    nq_dl_inapp_fn cb;
    void *userdata; /* NULL once cancelled */
    struct inapp_query *next;
};

struct nq_dl_inapp {
    struct event_base *base;
    const struct nq_postgres_cfg *pg;
    PGconn *conn;
    bool connecting, busy;
    PGresult *res; /* of the query in flight, until its last one is read */
    struct event *ev_io;
    struct inapp_query *first, *last;
};

static void on_io(evutil_socket_t fd, short what, void *arg);
static void kick(struct nq_dl_inapp *x);

static void query_free(struct inapp_query *q)
{
    for (int i = 0; i < q->n_params; i++)
        free(q->params[i]);
    free(q);
}

static struct inapp_query *pop(struct nq_dl_inapp *x)
{
    struct inapp_query *q = x->first;

    x->first = q->next;
    if (!x->first)
        x->last = NULL;
    return q;
}

static void arm(struct nq_dl_inapp *x, short what)
{
    if (x->ev_io)
        event_free(x->ev_io);
    x->ev_io = event_new(x->base, PQsocket(x->conn), what, on_io, x);
    if (!x->ev_io || event_add(x->ev_io, NULL) < 0)
        nq_log(LOG_ERR, "inapp: cannot watch the database connection");
}

/* The connection failed: every query waiting fails (their jobs retry). */
static void fail_all(struct nq_dl_inapp *x, const char *what)
{
    char why[300];
    const char *msg = x->conn ? PQerrorMessage(x->conn) : "out of memory";

    (void) snprintf(why, sizeof(why), "postgres: %s: %.*s", what, (int) strcspn(msg, "\n"), msg);
    if (x->ev_io) {
        event_free(x->ev_io);
        x->ev_io = NULL;
    }
    PQclear(x->res);
    x->res = NULL;
    PQfinish(x->conn);
    x->conn = NULL;
    x->connecting = x->busy = false;
    while (x->first) {
        struct inapp_query *q = pop(x);

        if (q->userdata)
            q->cb(q->userdata, -EHOSTUNREACH, NULL, NULL, false, why);
        query_free(q);
    }
}

static void send_first(struct nq_dl_inapp *x)
{
    struct inapp_query *q = x->first;
    int r;

    while (q && !q->userdata) { /* cancelled before it went out */
        query_free(pop(x));
        q = x->first;
    }
    if (!q)
        return;
    if (!PQsendQueryParams(x->conn, q->sql, q->n_params, NULL, (const char *const *) q->params,
                           NULL, NULL, 0)) {
        fail_all(x, "sending a query");
        return;
    }
    x->busy = true;
    r = PQflush(x->conn);
    if (r < 0)
        fail_all(x, "sending a query");
    else
        arm(x, (short) (EV_READ | (r ? EV_WRITE : 0)));
}

static void answer(struct inapp_query *q, PGresult *res)
{
    char why[300];
    const char *m;

    if (!q->userdata)
        return;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        q->cb(q->userdata, 0, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
              strcmp(PQgetvalue(res, 0, 2), "t") == 0, NULL);
        return;
    }
    m = res ? PQresultErrorMessage(res) : "no reply";
    (void) snprintf(why, sizeof(why), "postgres: %.*s", (int) strcspn(m, "\n"), m);
    q->cb(q->userdata, -EIO, NULL, NULL, false, why);
}

static void read_results(struct nq_dl_inapp *x)
{
    PGresult *res;

    if (!PQconsumeInput(x->conn)) {
        fail_all(x, "reading a reply");
        return;
    }
    while (!PQisBusy(x->conn)) {
        res = PQgetResult(x->conn);
        if (!res) {
            struct inapp_query *q = pop(x);

            x->busy = false;
            answer(q, x->res);
            PQclear(x->res);
            x->res = NULL;
            query_free(q);
            kick(x);
            return;
        }
        if (!x->res)
            x->res = res; /* the first result answers; the rest is none */
        else
            PQclear(res);
    }
    arm(x, EV_READ);
}

static void poll_connect(struct nq_dl_inapp *x)
{
    switch (PQconnectPoll(x->conn)) {
    case PGRES_POLLING_READING:
        arm(x, EV_READ);
        return;
    case PGRES_POLLING_WRITING:
        arm(x, EV_WRITE);
        return;
    case PGRES_POLLING_OK:
        x->connecting = false;
        if (PQsetnonblocking(x->conn, 1) < 0)
            fail_all(x, "connecting");
        else
            send_first(x);
        return;
    default:
        fail_all(x, "cannot connect");
    }
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct nq_dl_inapp *x = arg;

    (void) fd;
    if (x->connecting) {
        poll_connect(x);
        return;
    }
    if (what & EV_WRITE) {
        int r = PQflush(x->conn);

        if (r < 0) {
            fail_all(x, "sending a query");
            return;
        }
        if (r == 1) {
            arm(x, EV_READ | EV_WRITE);
            return;
        }
    }
    read_results(x);
}

static void kick(struct nq_dl_inapp *x)
{
    const char *const keys[] = { "connect_timeout", "dbname", NULL };
    const char *const vals[] = { "5", x->pg->dsn, NULL };

    if (!x->first || x->busy || x->connecting)
        return;
    if (x->conn) {
        send_first(x);
        return;
    }
    x->conn = PQconnectStartParams(keys, vals, 1);
    if (!x->conn || PQstatus(x->conn) == CONNECTION_BAD) {
        fail_all(x, "cannot connect");
        return;
    }
    x->connecting = true;
    poll_connect(x);
}

static int submit(struct nq_dl_inapp *x, const char *sql, const char *const *params, int n,
                  nq_dl_inapp_fn cb, void *userdata)
{
    struct inapp_query *q = calloc(1, sizeof(*q));

    if (!q)
        return -ENOMEM;
    q->sql = sql;
    q->cb = cb;
    q->userdata = userdata;
    for (int i = 0; i < n; i++, q->n_params++)
        if (params[i] && !(q->params[i] = strdup(params[i]))) {
            query_free(q);
            return -ENOMEM;
        }
    if (x->last)
        x->last->next = q;
    else
        x->first = q;
    x->last = q;
    kick(x);
    return 0;
}

int nq_dl_inapp_insert(struct nq_dl_inapp *x, const struct nq_dl_inapp_row *row, nq_dl_inapp_fn cb,
                       void *userdata)
{
    const char *params[] = { row->queue, row->job_id, row->tenant_id, row->user_id,
                             row->title, row->body,   row->type,      row->metadata };

    return submit(x, insert_sql, params, 8, cb, userdata);
}

int nq_dl_inapp_mark_published(struct nq_dl_inapp *x, const char *id, nq_dl_inapp_fn cb,
                               void *userdata)
{
    const char *params[] = { id };

    return submit(x, published_sql, params, 1, cb, userdata);
}

void nq_dl_inapp_cancel(struct nq_dl_inapp *x, const void *userdata)
{
    for (struct inapp_query *q = x->first; q; q = q->next)
        if (q->userdata == userdata)
            q->userdata = NULL;
}

struct nq_dl_inapp *nq_dl_inapp_new(struct event_base *base, const struct nq_postgres_cfg *pg)
{
    struct nq_dl_inapp *x = calloc(1, sizeof(*x));

    if (x) {
        x->base = base;
        x->pg = pg;
    }
    return x;
}

struct nq_dl_inapp *nq_dl_inapp_free(struct nq_dl_inapp *x)
{
    if (!x)
        return NULL;
    if (x->ev_io)
        event_free(x->ev_io);
    PQclear(x->res);
    PQfinish(x->conn);
    while (x->first)
        query_free(pop(x));
    free(x);
    return NULL;
}
