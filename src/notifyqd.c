/* SPDX-License-Identifier: MIT */
/*
 * notifyqd: parses the command line, loads the configuration, and hands the
 * supervisor the children's entry functions. This is the one file that knows
 * both the supervisor and the children (worker, admin), so the master cannot
 * reach Redis or a database by accident (ARCHITECTURE.md).
 * See: man/notifyqd.8.
 */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "admin/admin.h"
#include "common/err.h"
#include "common/log.h"
#include "config/config.h"
#include "deliverylog/deliverylog.h"
#include "handlers/handler.h"
#include "supervisor/supervisor.h"
#include "worker/worker.h"

#define EXIT_USAGE 64

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: notifyqd [OPTIONS]\n"
            "\n"
            "The notifyq master: pre-forks and supervises the workers of every queue in\n"
            "the configuration file.\n"
            "\n"
            "  -c, --config FILE     configuration file (default %s)\n"
            "  -f, --foreground      run in the foreground, logging to stderr (always so;\n"
            "                        accepted for service managers and scripts)\n"
            "  -t, --check-config    validate the configuration and exit 0 or 1\n"
            "      --migrate         apply the delivery log's pending database migrations\n"
            "                        (postgres.dsn) and exit\n"
            "      --set KEY=VALUE   override a configuration key for this run (repeatable)\n"
            "  -h, --help            show this help\n"
            "      --version         show the version\n",
            NQ_DEFAULT_CONFIG_PATH);
}

typedef void (*warn_fn)(const char *path, const char *key, const char *what);

static void warn_stderr(const char *path, const char *key, const char *what)
{
    fprintf(stderr, "notifyqd: warning: %s: %s: %s\n", path, key, what);
}

static void warn_log(const char *path, const char *key, const char *what)
{
    nq_log(LOG_WARNING, "%s: %s: %s", path, key, what);
}

/* The file may configure what nothing in this build uses yet: say so, so
 * that nobody believes it in effect. Each check goes when the code that
 * uses its section lands. */
static void warn_unused(const struct nq_config *cfg, warn_fn warn)
{
    char key[256];

    if (cfg->n_tenants)
        warn(cfg->path, "tenants",
             "configured but not used yet: per-tenant rate limits are not applied");
    for (size_t i = 0; i < cfg->n_queues; i++) {
        const struct nq_queue_cfg *q = &cfg->queues[i];

        if (q->handler == NQ_HANDLER_INAPP && !cfg->postgres.dsn) {
            (void) snprintf(key, sizeof(key), "queues.%s.handler", q->name);
            warn(cfg->path, key,
                 "inapp needs postgres: (the delivery log's database): the queue's workers "
                 "fetch nothing, its jobs wait in Redis");
            continue;
        }
        if (nq_handler_ops_find(q->handler))
            continue;
        (void) snprintf(key, sizeof(key), "queues.%s.handler", q->name);
        warn(cfg->path, key,
             "not implemented yet: the queue's workers fetch nothing, its jobs wait in Redis");
    }
}

/* -t: whether the delivery log's database answers, at our schema version.
 * Only a warning: the database may come up after us (events wait in the
 * spool), and -t checks the file. */
static void check_postgres(const struct nq_config *cfg)
{
    struct nq_err err = { "" };
    char what[160];
    int version;

    if (!cfg->postgres.dsn)
        return;
    if (nq_deliverylog_probe(&cfg->postgres, &version, &err) < 0) {
        warn_stderr(cfg->path, "postgres", nq_err_str(&err));
        return;
    }
    if (version == NQ_DELIVERYLOG_SCHEMA_VERSION)
        return;
    (void) snprintf(what, sizeof(what),
                    "the database's schema is at version %d, this notifyqd needs version %d%s",
                    version, NQ_DELIVERYLOG_SCHEMA_VERSION,
                    version < NQ_DELIVERYLOG_SCHEMA_VERSION ? " (run notifyqd --migrate)" : "");
    warn_stderr(cfg->path, "postgres", what);
}

static int migrate(const struct nq_config *cfg)
{
    struct nq_err err = { "" };
    int r;

    if (!cfg->postgres.dsn) {
        fprintf(stderr, "notifyqd: %s: postgres.dsn is not set: no delivery log to migrate\n",
                cfg->path);
        return 1;
    }
    r = nq_deliverylog_migrate(&cfg->postgres, stdout, &err);
    if (r < 0) {
        fprintf(stderr, "notifyqd: %s\n", nq_err_str(&err));
        return 1;
    }
    printf("notifyqd: the delivery log's schema is at version %d%s\n",
           NQ_DELIVERYLOG_SCHEMA_VERSION, r == 0 ? ", nothing to do" : "");
    return 0;
}

/* The http child checks a job as its queue's handler would before adding
 * it (admin.h): one handler per queue, made on its own event base, which
 * never runs (validation is synchronous). */
struct checker {
    struct event_base *base;
    struct nq_handler *handler;
};

static void checker_free(void *p)
{
    struct checker *c = p;

    if (!c)
        return;
    c->handler = nq_handler_free(c->handler);
    if (c->base)
        event_base_free(c->base);
    free(c);
}

static int checker_new(const struct nq_config *cfg, const struct nq_queue_cfg *q, void **ret,
                       struct nq_err *err)
{
    struct checker *c = calloc(1, sizeof(*c));
    struct nq_handler_env env = { .cfg = cfg, .queue = q };
    int r;

    if (!c || !(c->base = env.base = event_base_new())) {
        checker_free(c);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    r = nq_handler_new(&env, &c->handler, err);
    if (r < 0) {
        checker_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

static int checker_check(void *p, struct nq_job *job, struct nq_err *err)
{
    return nq_handler_validate(((struct checker *) p)->handler, job, err);
}

static const struct nq_api_validator job_checks = {
    .new = checker_new,
    .check = checker_check,
    .free = checker_free,
};

int main(int argc, char **argv)
{
    enum { OPT_SET = 256, OPT_VERSION, OPT_MIGRATE };
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },    { "foreground", no_argument, NULL, 'f' },
        { "check-config", no_argument, NULL, 't' },    { "set", required_argument, NULL, OPT_SET },
        { "migrate", no_argument, NULL, OPT_MIGRATE }, { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION }, { NULL, 0, NULL, 0 },
    };
    struct nq_supervisor_opts opts = {
        .config_path = NQ_DEFAULT_CONFIG_PATH,
        .worker_main = nq_worker_main,
        .http_main = nq_api_main,
    };
    struct nq_config *cfg = NULL;
    struct nq_err err = { "" };
    char **overrides;
    bool check = false, migrating = false;
    int c, rc;

    nq_proctitle_init(argc, argv);
    nq_log_init("notifyqd");
    /* --set values point into argv, which the master never rewrites. */
    overrides = calloc((size_t) argc, sizeof(*overrides));
    if (!overrides) {
        fprintf(stderr, "notifyqd: out of memory\n");
        return 1;
    }
    while ((c = getopt_long(argc, argv, "c:fth", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            opts.config_path = optarg;
            break;
        case 'f':
            break;
        case 't':
            check = true;
            break;
        case OPT_MIGRATE:
            migrating = true;
            break;
        case OPT_SET:
            overrides[opts.n_overrides++] = optarg;
            break;
        case 'h':
            usage(stdout);
            free(overrides);
            return 0;
        case OPT_VERSION:
            printf("notifyqd %s\n", PACKAGE_VERSION);
            free(overrides);
            return 0;
        default:
            usage(stderr);
            free(overrides);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "notifyqd: unexpected argument '%s'\n", argv[optind]);
        free(overrides);
        return EXIT_USAGE;
    }
    opts.overrides = overrides;
    if (nq_config_load(opts.config_path, overrides, opts.n_overrides, &cfg, &err) < 0) {
        fprintf(stderr, "notifyqd: %s\n", nq_err_str(&err));
        free(overrides);
        return 1;
    }
    if (migrating) {
        rc = migrate(cfg);
        nq_config_free(cfg);
        free(overrides);
        return rc;
    }
    warn_unused(cfg, check ? warn_stderr : warn_log);
    if (check) {
        check_postgres(cfg);
        fprintf(stderr, "notifyqd: configuration file %s test is successful\n", opts.config_path);
        nq_config_free(cfg);
        free(overrides);
        return 0;
    }
    nq_api_set_validator(&job_checks);
    rc = nq_supervisor_run(cfg, &opts);
    free(overrides);
    return rc;
}
