/* SPDX-License-Identifier: MIT */
/*
 * The delivery log's blocking side, for the programs' main()s (never a
 * worker's loop, but its one check at start): connecting, the schema
 * version, the migrations (embedded from migrations/NNNN_*.sql, so a binary and
 * the schema it writes cannot disagree), one notification's history.
 *
 * The version is max(version) of notifyq.schema_version; a database without
 * that table is at version 0. A database at a version this build does not
 * know is left alone: --migrate refuses it, a worker refuses to start.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "deliverylog/internal.h"

/* Serialises concurrent --migrate runs ("nqlog" in ASCII). */
#define DL_MIGRATE_LOCK 0x6e716c6f67LL

int dl_pq_err(struct nq_err *err, int r, const char *what, const char *msg)
{
    /* The first line; libpq's others are hints. */
    return nq_err_set(err, r, "%s: %.*s", what, msg ? (int) strcspn(msg, "\n") : 0, msg ? msg : "");
}

PGconn *dl_connect_blocking(const char *dsn, struct nq_err *err)
{
    /* connect_timeout first: a DSN that sets its own wins. */
    const char *const keys[] = { "connect_timeout", "dbname", NULL };
    const char *const vals[] = { "5", dsn, NULL };
    PGconn *conn = PQconnectdbParams(keys, vals, 1);

    if (!conn) {
        (void) nq_err_set(err, -ENOMEM, "postgres: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        (void) dl_pq_err(err, -EHOSTUNREACH, "postgres: cannot connect", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Whether res failed because the schema or table does not exist yet. */
static bool undefined_table(const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

    return state && (strcmp(state, "42P01") == 0 || strcmp(state, "3F000") == 0);
}

bool dl_version_parse(const char *text, int *ret)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < 0 || v > INT_MAX)
        return false;
    *ret = (int) v;
    return true;
}

int dl_schema_version(PGconn *conn, int *ret_version, struct nq_err *err)
{
    PGresult *res = PQexec(conn, "SELECT to_regclass('notifyq.schema_version') IS NOT NULL");
    int r = 0;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = dl_pq_err(err, -EHOSTUNREACH, "postgres: reading the schema version",
                      PQresultErrorMessage(res));
        PQclear(res);
        return r;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        PQclear(res);
        *ret_version = 0;
        return 0;
    }
    PQclear(res);
    res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM notifyq.schema_version");
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (!dl_version_parse(PQgetvalue(res, 0, 0), ret_version))
            r = nq_err_set(err, -EHOSTUNREACH,
                           "postgres: the schema version is not a number: %.40s",
                           PQgetvalue(res, 0, 0));
    } else if (undefined_table(res))
        *ret_version = 0;
    else
        r = dl_pq_err(err, -EHOSTUNREACH, "postgres: reading the schema version",
                      PQresultErrorMessage(res));
    PQclear(res);
    return r;
}

int nq_deliverylog_probe(const struct nq_postgres_cfg *pg, int *ret_version, struct nq_err *err)
{
    PGconn *conn = dl_connect_blocking(pg->dsn, err);
    int r;

    if (!conn)
        return -EHOSTUNREACH;
    r = dl_schema_version(conn, ret_version, err);
    PQfinish(conn);
    return r;
}

/* Runs sql; 0 or -EIO with err saying what failed. */
static int exec_ok(PGconn *conn, const char *sql, const char *what, struct nq_err *err)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int r = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        r = dl_pq_err(err, -EIO, what, PQresultErrorMessage(res));
    PQclear(res);
    return r;
}

static int migrate_locked(PGconn *conn, FILE *out, struct nq_err *err)
{
    char what[64];
    int version, r = dl_schema_version(conn, &version, err);

    if (r < 0)
        return r;
    if (version > (int) nq_dl_n_migrations)
        return nq_err_set(err, -EPROTO,
                          "postgres: the delivery log's schema is at version %d, newer than "
                          "this notifyqd knows (%u): refusing to touch it",
                          version, nq_dl_n_migrations);
    for (unsigned v = (unsigned) version; v < nq_dl_n_migrations; v++) {
        (void) snprintf(what, sizeof(what), "postgres: migration %04u", v + 1);
        r = exec_ok(conn, nq_dl_migrations[v], what, err);
        if (r < 0)
            return r;
        if (out)
            fprintf(out, "notifyqd: applied migration %04u\n", v + 1);
    }
    return (int) nq_dl_n_migrations - version;
}

int nq_deliverylog_migrate(const struct nq_postgres_cfg *pg, FILE *out, struct nq_err *err)
{
    char lock[96];
    PGconn *conn = dl_connect_blocking(pg->dsn, err);
    int r;

    if (!conn)
        return -EHOSTUNREACH;
    (void) snprintf(lock, sizeof(lock), "BEGIN; SELECT pg_advisory_xact_lock(%lld)",
                    DL_MIGRATE_LOCK);
    r = exec_ok(conn, lock, "postgres: starting the migration", err);
    if (r >= 0)
        r = migrate_locked(conn, out, err);
    if (r >= 0) {
        int c = exec_ok(conn, "COMMIT", "postgres: committing the migrations", err);

        r = c < 0 ? c : r;
    } else {
        (void) exec_ok(conn, "ROLLBACK", "postgres: rolling back", NULL);
    }
    PQfinish(conn);
    return r;
}

static const char history_sql[] =
    "SELECT to_jsonb(n) - 'body' - 'id' || jsonb_build_object("
    "  'events', (SELECT coalesce(jsonb_agg(jsonb_build_object('attempt', e.attempt,"
    "      'status', e.status, 'at', e.at, 'error', e.error)"
    "    ORDER BY e.at, e.attempt, notifyq.status_phase(e.status)), '[]')"
    "    FROM notifyq.notification_events e WHERE e.notification_id = n.id),"
    "  'delivery_attempts', (SELECT coalesce(jsonb_agg(to_jsonb(a) - 'notification_id'"
    "    ORDER BY a.attempt, a.recipient), '[]')"
    "    FROM notifyq.delivery_attempts a WHERE a.notification_id = n.id))"
    " FROM notifyq.notifications n WHERE n.queue = $1 AND n.job_id = $2";

int nq_deliverylog_history(const struct nq_postgres_cfg *pg, const char *queue, const char *job_id,
                           json_t **ret, struct nq_err *err)
{
    const char *params[] = { queue, job_id };
    PGconn *conn = dl_connect_blocking(pg->dsn, err);
    PGresult *res;
    json_t *o = NULL;
    int r = 0;

    if (!conn)
        return -EHOSTUNREACH;
    res = PQexecParams(conn, history_sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        r = dl_pq_err(err, -EHOSTUNREACH, "postgres: reading the delivery log",
                      PQresultErrorMessage(res));
    else if (PQntuples(res) == 0)
        r = nq_err_set(err, -ENOENT, "queue %s has no job %s in the delivery log", queue, job_id);
    else if (!(o = json_loads(PQgetvalue(res, 0, 0), 0, NULL)))
        r = nq_err_set(err, -ENOMEM, "out of memory");
    PQclear(res);
    PQfinish(conn);
    if (r == 0)
        *ret = o;
    return r;
}
