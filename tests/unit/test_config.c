/* SPDX-License-Identifier: MIT */
/*
 * The configuration parser: the shipped file and the issue's minimal one,
 * defaults and their inheritance, every error class with its exact message,
 * --set overrides, secrets from files and ${ENV}, redis URLs, the reload
 * check, and the key tables against etc/notifyq.yaml and notifyq.yaml.5
 * (docs as data). NQ_SRCDIR locates the source tree.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config/config.h"

#define MIN_QUEUE "queues:\n  email:\n    handler: noop\n"

static char *const *no_overrides = NULL;

static struct nq_config *parse_ok(const char *yaml, char *const *ov, size_t n)
{
    struct nq_config *cfg = NULL;
    struct nq_err err = { { 0 } };
    int r = nq_config_parse_string("t.yaml", yaml, ov, n, &cfg, &err);

    if (r < 0)
        fail_msg("unexpected error %d: %s", r, nq_err_str(&err));
    assert_non_null(cfg);
    return cfg;
}

/* True when parsing fails with exactly want and leaves the caller's pointer
 * alone; says what differs otherwise. */
static bool fails_with(const char *yaml, char *const *ov, size_t n, const char *want)
{
    struct nq_config sentinel, *cfg = &sentinel;
    struct nq_err err = { { 0 } };
    int r = nq_config_parse_string("t.yaml", yaml, ov, n, &cfg, &err);

    if (r == -EINVAL && strcmp(nq_err_str(&err), want) == 0 && cfg == &sentinel)
        return true;
    print_error("yaml:\n%s%s%s\nwant: %s\ngot:  %s (%d)\n", yaml, n ? "--set " : "", n ? ov[0] : "",
                want, nq_err_str(&err), r);
    return false;
}

static void parse_bad(const char *yaml, char *const *ov, size_t n, const char *want)
{
    if (!fails_with(yaml, ov, n, want))
        fail();
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf;
    long n;

    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t) n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t) n, f), (size_t) n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- good files ---- */

static void the_issues_minimal_file_is_valid(void **state)
{
    (void) state;
    struct nq_config *cfg = parse_ok("redis:\n  url: redis://127.0.0.1:6379\n"
                                     "control:\n  socket: /run/notifyq/control.sock\n"
                                     "queues:\n  email:\n    handler: noop\n"
                                     "    processes: 2\n    concurrency: 5\n",
                                     no_overrides, 0);
    const struct nq_queue_cfg *q = nq_config_queue(cfg, "email");

    assert_string_equal(cfg->path, "t.yaml");
    assert_string_equal(cfg->redis.host, "127.0.0.1");
    assert_int_equal(cfg->redis.port, 6379);
    assert_int_equal(cfg->redis.db, 0);
    assert_null(cfg->redis.socket);
    assert_null(cfg->redis.password);
    assert_string_equal(cfg->redis.prefix, "bull");
    assert_int_equal(cfg->redis.connect_timeout_ms, 5000);
    assert_string_equal(cfg->control.socket, "/run/notifyq/control.sock");
    assert_int_equal(cfg->control.mode, 0660);
    assert_int_equal(cfg->log_level, LOG_INFO);
    assert_string_equal(cfg->state_dir, NQ_LOCALSTATEDIR "/lib/notifyq");
    assert_string_equal(cfg->templates.dir, NQ_SYSCONFDIR "/notifyq/templates");
    assert_false(cfg->http.enabled);
    assert_null(cfg->postgres.dsn);
    assert_int_equal(cfg->n_queues, 1);
    assert_int_equal(cfg->n_tenants, 0);
    assert_non_null(q);
    assert_ptr_equal(q, &cfg->queues[0]);
    assert_null(nq_config_queue(cfg, "sms"));
    assert_string_equal(q->name, "email");
    assert_string_equal(q->bullmq_queue, "email");
    assert_int_equal(q->handler, NQ_HANDLER_NOOP);
    assert_int_equal(q->processes, 2);
    assert_int_equal(q->concurrency, 5);
    assert_int_equal(q->line, 6);
    assert_int_equal(q->column, 3);
    (void) nq_config_free(cfg);
}

/* What a queue gets when nothing is said: config.h's and BullMQ's defaults. */
static void defaults_are_config_hs(void **state)
{
    (void) state;
    struct nq_config *cfg = parse_ok(MIN_QUEUE, no_overrides, 0);
    const struct nq_queue_cfg *q = &cfg->queues[0];

    assert_int_equal(q->processes, 1);
    assert_int_equal(q->concurrency, 1);
    assert_int_equal(q->attempts, 1);
    assert_int_equal(q->backoff.type, NQ_BACKOFF_EXPONENTIAL);
    assert_int_equal(q->backoff.delay_ms, 0); /* BullMQ retries at once */
    assert_int_equal(q->backoff.max_ms, 0);
    assert_true(q->backoff.jitter == 0);
    assert_int_equal(q->rate_limit.max, 0);
    assert_true(q->retention.completed.keep_all);
    assert_true(q->retention.failed.keep_all);
    assert_int_equal(q->lock_duration_ms, 30000);
    assert_int_equal(q->stalled_interval_ms, 30000);
    assert_int_equal(q->max_stalled, 1);
    assert_int_equal(q->drain_timeout_ms, 30000);
    assert_int_equal(q->min_uptime_ms, 5000);
    assert_int_equal(q->max_jobs, 0);
    assert_int_equal(q->max_rss_mib, 0);
    assert_int_equal(q->max_crashes, 3);
    assert_int_equal(q->provider.kind, NQ_PROVIDER_NONE);
    assert_null(q->provider.spool_dir);
    (void) nq_config_free(cfg);
}

static void the_shipped_file_is_valid(void **state)
{
    (void) state;
    static const struct {
        const char *name;
        enum nq_handler_kind handler;
        enum nq_provider_kind provider;
    } want[] = {
        { "email", NQ_HANDLER_EMAIL, NQ_PROVIDER_FILE },
        { "sms", NQ_HANDLER_SMS, NQ_PROVIDER_FILE },
        { "push", NQ_HANDLER_PUSH, NQ_PROVIDER_FILE },
        { "inapp", NQ_HANDLER_INAPP, NQ_PROVIDER_NONE },
        { "export", NQ_HANDLER_EXPORT, NQ_PROVIDER_NONE },
        { "cleanup", NQ_HANDLER_CLEANUP, NQ_PROVIDER_NONE },
    };
    struct nq_config *cfg = NULL;
    struct nq_err err = { { 0 } };
    int r = nq_config_load(NQ_SRCDIR "/etc/notifyq.yaml", NULL, 0, &cfg, &err);

    if (r < 0)
        fail_msg("%s", nq_err_str(&err));
    assert_int_equal(cfg->n_queues, NQ_ELEMENTSOF(want));
    for (size_t i = 0; i < NQ_ELEMENTSOF(want); i++) {
        const struct nq_queue_cfg *q = &cfg->queues[i];
        assert_string_equal(q->name, want[i].name);
        assert_int_equal(q->handler, want[i].handler);
        assert_int_equal(q->provider.kind, want[i].provider);
    }
    assert_string_equal(cfg->state_dir, "/var/lib/notifyq");
    assert_string_equal(cfg->queues[0].provider.spool_dir, "/var/lib/notifyq/spool/email");
    assert_string_equal(cfg->control.socket, "/run/notifyq/control.sock");
    (void) nq_config_free(cfg);
}

static void fixtures_say_what_their_expected_files_say(void **state)
{
    (void) state;
    const char *dir = NQ_SRCDIR "/tests/integration/data/bad";
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d))) {
        char path[512], exp_path[512], want[1024];
        struct nq_config *cfg = NULL;
        struct nq_err err = { { 0 } };
        size_t len = strlen(e->d_name);
        char *expected, *hole;

        if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        (void) snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        (void) snprintf(exp_path, sizeof(exp_path), "%s/%.*s.expected", dir, (int) len - 5,
                        e->d_name);
        expected = slurp(exp_path);
        expected[strcspn(expected, "\n")] = '\0';
        hole = strstr(expected, "{path}");
        assert_non_null(hole);
        (void) snprintf(want, sizeof(want), "%.*s%s%s", (int) (hole - expected), expected, path,
                        hole + 6);
        assert_int_equal(nq_config_load(path, NULL, 0, &cfg, &err), -EINVAL);
        assert_string_equal(nq_err_str(&err), want);
        free(expected);
        n++;
    }
    closedir(d);
    assert_true(n >= 6);
}

static void good_fixtures_load(void **state)
{
    (void) state;
    static const char *const files[] = { "minimal.yaml", "features.yaml" };

    for (size_t i = 0; i < NQ_ELEMENTSOF(files); i++) {
        char path[512];
        struct nq_config *cfg = NULL;
        struct nq_err err = { { 0 } };

        (void) snprintf(path, sizeof(path), "%s/tests/integration/data/good/%s", NQ_SRCDIR,
                        files[i]);
        if (nq_config_load(path, NULL, 0, &cfg, &err) < 0)
            fail_msg("%s", nq_err_str(&err));
        (void) nq_config_free(cfg);
    }
}

/* defaults: merged key by key into each queue, wherever it is in the file;
 * a retention mapping replaces rather than merges. */
static void queues_inherit_defaults(void **state)
{
    (void) state;
    struct nq_config *cfg =
        parse_ok("queues:\n"
                 "  a:\n    handler: noop\n    backoff: {delay: 5s}\n"
                 "    retention: {completed: {age: 1d}}\n"
                 "  b:\n    handler: email\n    attempts: 9\n"
                 "defaults:\n  attempts: 4\n  backoff: {type: fixed, delay: 2s, jitter: 0.25}\n"
                 "  retention: {completed: {count: 10}, failed: false}\n  max_crashes: 7\n",
                 no_overrides, 0);
    const struct nq_queue_cfg *a = nq_config_queue(cfg, "a"), *b = nq_config_queue(cfg, "b");

    assert_int_equal(cfg->defaults.attempts, 4);
    assert_int_equal(a->attempts, 4);
    assert_int_equal(b->attempts, 9);
    assert_int_equal(a->backoff.type, NQ_BACKOFF_FIXED);
    assert_int_equal(a->backoff.delay_ms, 5000);
    assert_true(a->backoff.jitter == 0.25);
    assert_int_equal(b->backoff.delay_ms, 2000);
    assert_false(a->retention.completed.keep_all);
    assert_int_equal(a->retention.completed.count, 0);
    assert_int_equal(a->retention.completed.age_ms, 86400000);
    assert_int_equal(b->retention.completed.count, 10);
    assert_int_equal(b->retention.completed.age_ms, 0);
    assert_false(a->retention.failed.keep_all);
    assert_int_equal(a->retention.failed.count, 0);
    assert_int_equal(a->max_crashes, 7);
    assert_int_equal(b->provider.kind, NQ_PROVIDER_FILE);
    assert_string_equal(b->provider.spool_dir, NQ_LOCALSTATEDIR "/lib/notifyq/spool/b");
    (void) nq_config_free(cfg);
}

/* `templates: DIR` (the shipped form) and `templates: {dir, strict}`. */
static void templates_as_a_path_or_a_mapping(void **state)
{
    (void) state;
    char *strict[] = { "templates.strict=true" }, *dir[] = { "templates=/o" };
    struct nq_config *cfg = parse_ok("templates: /a\n" MIN_QUEUE, no_overrides, 0);

    assert_string_equal(cfg->templates.dir, "/a");
    assert_false(cfg->templates.strict);
    (void) nq_config_free(cfg);
    cfg = parse_ok("templates: {dir: /b, strict: true}\n" MIN_QUEUE, no_overrides, 0);
    assert_string_equal(cfg->templates.dir, "/b");
    assert_true(cfg->templates.strict);
    (void) nq_config_free(cfg);
    cfg = parse_ok("templates:\n  strict: true\n" MIN_QUEUE, no_overrides, 0);
    assert_string_equal(cfg->templates.dir, NQ_SYSCONFDIR "/notifyq/templates");
    assert_true(cfg->templates.strict);
    (void) nq_config_free(cfg);
    /* --set of one key keeps the directory given as a path. */
    cfg = parse_ok("templates: /a\n" MIN_QUEUE, strict, 1);
    assert_string_equal(cfg->templates.dir, "/a");
    assert_true(cfg->templates.strict);
    (void) nq_config_free(cfg);
    cfg = parse_ok("templates: {dir: /b, strict: true}\n" MIN_QUEUE, dir, 1);
    assert_string_equal(cfg->templates.dir, "/o");
    assert_false(cfg->templates.strict);
    (void) nq_config_free(cfg);
}

static void values_of_every_type(void **state)
{
    (void) state;
    struct nq_config *cfg = parse_ok(
        "log_level: error\nstate_dir: /srv/nq\ntemplates: /srv/tpl\n"
        "redis:\n  socket: /run/r.sock\n  prefix: '{nq}'\n  db: '3'\n  connect_timeout: 250\n"
        "  username: app\n  password: \"p@ss\"\n"
        "postgres:\n  dsn: host=db user=nq\n"
        "control: {socket: /run/c.sock, mode: 0600, group: root}\n"
        "queues:\n  q:\n    handler: exec\n    bullmq_queue: jobs-v2\n"
        "    rate_limit: {max: 5, duration: 2m}\n"
        "    retention: {completed: false, failed: {}}\n"
        "    max_rss: 1048576\n    max_stalled: 0\n    drain_timeout: 0\n"
        "    exec: {argv: [/bin/sh, -c, 'echo $$1', ''], timeout: 5s, cwd: /tmp,\n"
        "           env: {A_1: '1', B: ''}}\n"
        "tenants:\n  acme: {rate_limit: {max: 3, duration: 1h}}\n  other:\n",
        no_overrides, 0);
    const struct nq_queue_cfg *q = &cfg->queues[0];

    assert_int_equal(cfg->log_level, LOG_ERR);
    assert_string_equal(cfg->state_dir, "/srv/nq");
    assert_string_equal(cfg->templates.dir, "/srv/tpl");
    assert_string_equal(cfg->redis.socket, "/run/r.sock");
    assert_string_equal(cfg->redis.prefix, "{nq}");
    assert_int_equal(cfg->redis.db, 3);
    assert_int_equal(cfg->redis.connect_timeout_ms, 250);
    assert_string_equal(cfg->redis.username, "app");
    assert_string_equal(cfg->redis.password, "p@ss");
    assert_string_equal(cfg->postgres.dsn, "host=db user=nq");
    assert_string_equal(cfg->control.socket, "/run/c.sock");
    assert_int_equal(cfg->control.mode, 0600);
    assert_string_equal(cfg->control.group, "root");
    assert_string_equal(q->bullmq_queue, "jobs-v2");
    assert_int_equal(q->handler, NQ_HANDLER_EXEC);
    assert_int_equal(q->rate_limit.max, 5);
    assert_int_equal(q->rate_limit.duration_ms, 120000);
    assert_false(q->retention.completed.keep_all);
    assert_int_equal(q->retention.completed.count, 0);
    assert_true(q->retention.failed.keep_all);
    assert_int_equal(q->max_rss_mib, 1048576);
    assert_int_equal(q->max_stalled, 0);
    assert_int_equal(q->drain_timeout_ms, 0);
    assert_int_equal(q->exec.argc, 4);
    assert_string_equal(q->exec.argv[2], "echo $1");
    assert_string_equal(q->exec.argv[3], "");
    assert_null(q->exec.argv[4]);
    assert_int_equal(q->exec.timeout_ms, 5000);
    assert_string_equal(q->exec.cwd, "/tmp");
    assert_int_equal(q->exec.n_env, 2);
    assert_string_equal(q->exec.env[0], "A_1=1");
    assert_string_equal(q->exec.env[1], "B=");
    assert_null(q->exec.env[2]);
    assert_int_equal(cfg->n_tenants, 2);
    assert_string_equal(cfg->tenants[0].name, "acme");
    assert_int_equal(cfg->tenants[0].rate_limit.max, 3);
    assert_int_equal(cfg->tenants[0].rate_limit.duration_ms, 3600000);
    assert_string_equal(cfg->tenants[1].name, "other");
    assert_int_equal(cfg->tenants[1].rate_limit.max, 0);
    (void) nq_config_free(cfg);
}

/* ---- errors ---- */

static const struct {
    const char *yaml, *want;
} bad[] = {
    /* unknown key: the key's position */
    { "queues:\n  email:\n    concurency: 4\n",
      "t.yaml:3:5: queues.email.concurency: unknown key" },
    { "redis:\n  host: x\n" MIN_QUEUE, "t.yaml:2:3: redis.host: unknown key" },
    { "defaults:\n  handler: noop\n" MIN_QUEUE,
      "t.yaml:2:3: defaults.handler: only allowed in a queue, not in defaults" },
    /* out of range: the value's position */
    { "queues:\n  email:\n    concurrency: 0\n",
      "t.yaml:3:18: queues.email.concurrency: must be 1..10000" },
    { MIN_QUEUE "    processes: 257\n", "t.yaml:4:16: queues.email.processes: must be 1..256" },
    { MIN_QUEUE "    processes: -1\n", "t.yaml:4:16: queues.email.processes: must be 1..256" },
    { MIN_QUEUE "    attempts: 99999999999999999999999\n",
      "t.yaml:4:15: queues.email.attempts: must be 1..1000000" },
    { MIN_QUEUE "    max_crashes: 0\n", "t.yaml:4:18: queues.email.max_crashes: must be 1..1000" },
    { MIN_QUEUE "    max_stalled: 1001\n",
      "t.yaml:4:18: queues.email.max_stalled: must be 0..1000" },
    { "redis: {db: 16}\n" MIN_QUEUE, "t.yaml:1:13: redis.db: must be 0..15" },
    { MIN_QUEUE "    backoff: {jitter: 1.5}\n",
      "t.yaml:4:23: queues.email.backoff.jitter: must be 0..1" },
    { MIN_QUEUE "    lock_duration: 50ms\n",
      "t.yaml:4:20: queues.email.lock_duration: must be 100ms..1d" },
    { MIN_QUEUE "    drain_timeout: 2h\n",
      "t.yaml:4:20: queues.email.drain_timeout: must be 0..1h" },
    { "control: {mode: 1777}\n" MIN_QUEUE,
      "t.yaml:1:17: control.mode: must be an octal mode 0000..0777, e.g. 0660" },
    /* wrong type */
    { "redis: 5\n" MIN_QUEUE, "t.yaml:1:8: redis: must be a mapping, not a scalar" },
    { MIN_QUEUE "    processes: [1]\n",
      "t.yaml:4:16: queues.email.processes: must be an integer, not a list" },
    { MIN_QUEUE "    processes: two\n", "t.yaml:4:16: queues.email.processes: must be an integer" },
    { MIN_QUEUE "    processes:\n",
      "t.yaml:4:15: queues.email.processes: must be an integer, not empty" },
    { MIN_QUEUE "    backoff: {jitter: half}\n",
      "t.yaml:4:23: queues.email.backoff.jitter: must be a number" },
    { MIN_QUEUE "    retention: {completed: yes}\n",
      "t.yaml:4:28: queues.email.retention.completed: must be true, false or a mapping with "
      "count and/or age" },
    { "state_dir: {a: 1}\n" MIN_QUEUE,
      "t.yaml:1:12: state_dir: must be an absolute path, not a mapping" },
    { "http:\n  token_files: /etc/token\n" MIN_QUEUE,
      "t.yaml:2:16: http.token_files: must be a list of files, not a scalar" },
    { "- a\n", "t.yaml:1:1: the top level must be a mapping, not a list" },
    { "queues: [email]\n", "t.yaml:1:9: queues: must be a mapping of names, not a list" },
    { "queues:\n  [a]: {handler: noop}\n",
      "t.yaml:2:3: queues: a name must be a string, not a list" },
    { "queues:\n  email:\n    ? [x]\n    : 1\n",
      "t.yaml:3:7: queues.email: a key must be a string, not a list" },
    { "redis: {prefix: \"a\\0b\"}\n" MIN_QUEUE,
      "t.yaml:1:17: redis.prefix: must not contain a NUL byte" },
    /* missing required: the position of the mapping lacking it */
    { "queues:\n  email:\n    processes: 2\n",
      "t.yaml:3:5: queues.email.handler: required key is missing" },
    { "queues:\n  email:\n", "t.yaml:2:9: queues.email.handler: required key is missing" },
    { "redis: {db: 1}\n", "t.yaml:1:1: queues: required key is missing" },
    { "", "t.yaml:1:1: queues: required key is missing" },
    { "queues: {}\n", "t.yaml:1:9: queues: must have at least one queue" },
    { "http:\n  tokens:\n    - {role: admin}\n" MIN_QUEUE,
      "t.yaml:3:7: http.tokens[0].file: required key is missing" },
    { "http:\n  tls: {cert_file: /c}\n" MIN_QUEUE,
      "t.yaml:2:8: http.tls.key_file: required key is missing" },
    { MIN_QUEUE "    rate_limit: {max: 10}\n",
      "t.yaml:4:17: queues.email.rate_limit.duration: required when max is set" },
    { "defaults: {rate_limit: {max: 10}}\n" MIN_QUEUE,
      "t.yaml:1:24: defaults.rate_limit.duration: required when max is set" },
    { "queues:\n  email:\n    handler: sms\n    provider: {spool_dir: /x}\n",
      "t.yaml:4:15: queues.email.provider.type: required key is missing" },
/* provider type selects its keys */
#define SMTP_Q "queues:\n  email:\n    handler: email\n    provider:\n      type: smtp\n"
    { SMTP_Q, "t.yaml:5:7: queues.email.provider.url: required by provider type smtp" },
    { SMTP_Q "      url: smtp://h:587\n      spool_dir: /x\n",
      "t.yaml:7:7: queues.email.provider.spool_dir: not a key of provider type smtp (its keys: "
      "type, url, tls, username, password, from, ca_file, verify, timeout)" },
    { "queues:\n  email:\n    handler: email\n    provider: {type: file, tls: none}\n",
      "t.yaml:4:28: queues.email.provider.tls: not a key of provider type file (its keys: type, "
      "spool_dir)" },
    { SMTP_Q "      url: smtps://h:465\n      tls: starttls\n",
      "t.yaml:7:12: queues.email.provider.tls: an smtps:// URL is implicit TLS" },
    { SMTP_Q "      url: smtp://h:587\n      tls: implicit\n",
      "t.yaml:7:12: queues.email.provider.tls: implicit TLS needs an smtps:// URL" },
    { SMTP_Q "      url: smtp://u:p@h:587\n",
      "t.yaml:6:12: queues.email.provider.url: must be smtp://HOST:PORT or smtps://HOST:PORT (no "
      "user, path or spaces)" },
    { SMTP_Q "      url: smtp://h:0\n",
      "t.yaml:6:12: queues.email.provider.url: port must be 1..65535" },
    { SMTP_Q "      url: smtp://h\n      username: u\n",
      "t.yaml:7:7: queues.email.provider.password_file: required with username" },
    { SMTP_Q "      url: smtp://h\n      tls: none\n      username: u\n      password: pw\n",
      "t.yaml:7:12: queues.email.provider.tls: none would send the password in clear; use "
      "starttls or implicit" },
    { SMTP_Q "      url: smtp://h\n      verify: no\n",
      "t.yaml:7:15: queues.email.provider.verify: must be one of true, false" },
    { SMTP_Q "      url: smtp://h\n      from: nobody\n",
      "t.yaml:7:13: queues.email.provider.from: must be an email address (addr or \"Name "
      "<addr>\")" },
#undef SMTP_Q
/* sms providers */
#define SMS_Q "queues:\n  sms:\n    handler: sms\n    provider:\n"
    { SMS_Q "      type: twilio\n      auth_token: t\n      from: '+15005550006'\n",
      "t.yaml:5:7: queues.sms.provider.account_sid: required by provider type twilio" },
    { SMS_Q "      type: twilio\n      account_sid: AC1\n      from: '+15005550006'\n",
      "t.yaml:5:7: queues.sms.provider.auth_token_file: required by provider type twilio" },
    { SMS_Q "      type: twilio\n      account_sid: AC1\n      auth_token: t\n",
      "t.yaml:5:7: queues.sms.provider.from: required by provider type twilio (or "
      "messaging_service_sid)" },
    { SMS_Q "      type: twilio\n      account_sid: AC1\n      auth_token: t\n"
            "      from: ACME\n      messaging_service_sid: MG1\n",
      "t.yaml:9:7: queues.sms.provider.messaging_service_sid: given with from: give one of them" },
    { SMS_Q "      type: twilio\n      account_sid: AC/../x\n      auth_token: t\n",
      "t.yaml:6:20: queues.sms.provider.account_sid: must be letters and digits (as the provider "
      "shows it)" },
    { SMS_Q "      type: twilio\n      account_sid: AC1\n      auth_token: t\n      from: ACME\n"
            "      base_url: http://127.0.0.1:1/2010-04-01\n",
      "t.yaml:9:17: queues.sms.provider.base_url: must be scheme, host and port only (no user, "
      "path or query: the provider appends its own path)" },
    { SMS_Q "      type: twilio\n      account_sid: AC1\n      auth_token: t\n      from: ACME\n"
            "      base_url: ftp://h\n",
      "t.yaml:9:17: queues.sms.provider.base_url: must be http://HOST[:PORT] or "
      "https://HOST[:PORT]" },
    { SMS_Q "      type: twilio\n      account_sid: AC1\n      auth_token: t\n"
            "      from: TOO LONG SENDER\n",
      "t.yaml:8:13: queues.sms.provider.from: must be a number in international form (+...) or a "
      "sender id of 1 to 11 letters, digits and spaces" },
    { SMS_Q "      type: twilio\n      account_sid: AC1\n      auth_token: t\n      from: ACME\n"
            "      default_region: XX\n",
      "t.yaml:9:23: queues.sms.provider.default_region: not a region of the table in "
      "notifyq.yaml(5) (an upper-case ISO 3166 code such as US, GB, DE)" },
    { SMS_Q "      type: twilio\n      account_sid: AC1\n      auth_token: t\n      from: ACME\n"
            "      max_segments: 0\n",
      "t.yaml:9:21: queues.sms.provider.max_segments: must be 1..255" },
    { SMS_Q "      type: twilio\n      account_sid: AC1\n      auth_token: t\n      from: ACME\n"
            "      api_secret: x\n",
      "t.yaml:9:7: queues.sms.provider.api_secret: not a key of provider type twilio (its keys: "
      "type, account_sid, auth_token, from, messaging_service_sid, base_url, timeout, ca_file, "
      "verify, default_region, max_segments)" },
    { SMS_Q "      type: vonage\n      api_key: k\n      from: ACME\n",
      "t.yaml:5:7: queues.sms.provider.api_secret_file: required by provider type vonage" },
    { SMS_Q "      type: vonage\n      api_key: k\n      api_secret: s\n",
      "t.yaml:5:7: queues.sms.provider.from: required by provider type vonage" },
    { SMS_Q "      type: vonage\n      api_key: k\n      api_secret: s\n      from: ACME\n"
            "      account_sid: AC1\n",
      "t.yaml:9:7: queues.sms.provider.account_sid: not a key of provider type vonage (its keys: "
      "type, api_key, api_secret, from, base_url, timeout, ca_file, verify, default_region, "
      "max_segments)" },
    { SMS_Q "      type: http\n      body_template: '{}'\n",
      "t.yaml:5:7: queues.sms.provider.url: required by provider type http" },
    { SMS_Q "      type: http\n      url: smtp://h\n      body_template: '{}'\n",
      "t.yaml:6:12: queues.sms.provider.url: must be an http:// or https:// URL" },
    { SMS_Q "      type: http\n      url: http://h/send\n",
      "t.yaml:5:7: queues.sms.provider.body_template: required by provider type http" },
    { SMS_Q "      type: http\n      url: http://h/send\n      body_template: '{}'\n"
            "      headers: {'Bad Name': x}\n",
      "t.yaml:8:17: queues.sms.provider.headers.Bad Name: a header name must be letters, digits "
      "and "
      "!#$%&'*+-.^_`|~" },
    { "queues:\n  email:\n    handler: email\n    provider:\n      type: http\n"
      "      url: http://h/send\n      body_template: '{}'\n",
      "t.yaml:5:7: queues.email.provider.type: http sends text messages: only with handler: sms" },
#undef SMS_Q
/* email APIs: each type's keys, its credential, its region */
#define API_Q(t) "queues:\n  email:\n    handler: email\n    provider:\n      type: " t "\n"
    { API_Q("sendgrid"),
      "t.yaml:5:7: queues.email.provider.api_key_file: required by provider type sendgrid" },
    { API_Q("resend"),
      "t.yaml:5:7: queues.email.provider.api_key_file: required by provider type resend" },
    { API_Q("postmark"),
      "t.yaml:5:7: queues.email.provider.server_token_file: required by provider type postmark" },
    { API_Q("sendgrid") "      api_key: k\n      domain: d.example\n",
      "t.yaml:7:7: queues.email.provider.domain: not a key of provider type sendgrid (its keys: "
      "type, base_url, timeout, ca_file, verify, from, api_key)" },
    { API_Q("resend") "      api_key: k\n      server_token: t\n",
      "t.yaml:7:7: queues.email.provider.server_token: not a key of provider type resend (its "
      "keys: type, base_url, timeout, ca_file, verify, from, api_key)" },
    { API_Q("postmark") "      server_token: t\n      url: smtp://h\n",
      "t.yaml:7:7: queues.email.provider.url: not a key of provider type postmark (its keys: "
      "type, base_url, timeout, ca_file, verify, from, server_token, message_stream)" },
    { API_Q("sendgrid") "      api_key: k\n      base_url: https://api.sendgrid.com/v3\n",
      "t.yaml:7:17: queues.email.provider.base_url: must be scheme, host and port only (no user, "
      "path or query: the provider appends its own path)" },
    { API_Q("sendgrid") "      api_key: k\n      base_url: ftp://h\n",
      "t.yaml:7:17: queues.email.provider.base_url: must be http://HOST[:PORT] or "
      "https://HOST[:PORT]" },
    { API_Q("sendgrid") "      api_key: k\n      base_url: http://h:70000\n",
      "t.yaml:7:17: queues.email.provider.base_url: port must be 1..65535" },
    { API_Q("mailgun") "      api_key: k\n",
      "t.yaml:5:7: queues.email.provider.domain: required by provider type mailgun" },
    { API_Q("mailgun") "      api_key: k\n      domain: mg.example\n      region: asia\n",
      "t.yaml:8:15: queues.email.provider.region: must be us or eu" },
    { API_Q("ses"), "t.yaml:5:7: queues.email.provider.region: required by provider type ses" },
    { API_Q("ses") "      region: Eu West\n",
      "t.yaml:6:15: queues.email.provider.region: must be an AWS region, e.g. eu-west-1" },
    { API_Q("ses") "      region: eu-west-1\n",
      "t.yaml:5:7: queues.email.provider.access_key_id: required by provider type ses" },
    { API_Q("ses") "      region: eu-west-1\n      access_key_id: AKID\n",
      "t.yaml:5:7: queues.email.provider.secret_access_key_file: required by provider type ses" },
    { API_Q("ses") "      region: eu-west-1\n      access_key_id: AKID\n"
                   "      secret_access_key: s\n      api_key: k\n",
      "t.yaml:9:7: queues.email.provider.api_key: not a key of provider type ses (its keys: "
      "type, base_url, timeout, ca_file, verify, from, region, access_key_id, secret_access_key, "
      "session_token)" },
    { API_Q("sendgrid") "      api_key_file: /nonexistent/sendgrid.key\n",
      "t.yaml:6:7: queues.email.provider.api_key_file: cannot read /nonexistent/sendgrid.key: "
      "No such file or directory" },
#undef API_Q
    /* duplicate key */
    { "queues:\n  email:\n    handler: noop\n    handler: file\n",
      "t.yaml:4:5: queues.email.handler: duplicate key (first at 3:5)" },
    { "queues:\n  b: {handler: noop}\n  a: {handler: noop}\n  b: {handler: noop}\n"
      "  a: {handler: noop}\n",
      "t.yaml:4:3: queues.b: duplicate key (first at 2:3)" },
    { "redis: {url: 'redis://h'}\nredis: {db: 1}\n" MIN_QUEUE,
      "t.yaml:2:1: redis: duplicate key (first at 1:1)" },
    { "redis:\n  password: a\n  password_file: /x\n" MIN_QUEUE,
      "t.yaml:3:3: redis.password_file: conflicts with password (at 2:3): give one of them" },
    /* bad duration */
    { MIN_QUEUE "    lock_duration: 30 s\n",
      "t.yaml:4:20: queues.email.lock_duration: invalid duration \"30 s\": use a number with ms, "
      "s, m, h or d, e.g. 30s" },
    { MIN_QUEUE "    min_uptime: -5s\n",
      "t.yaml:4:17: queues.email.min_uptime: invalid duration \"-5s\": use a number with ms, "
      "s, m, h or d, e.g. 30s" },
    { MIN_QUEUE "    stalled_interval: 99999999999999999999d\n",
      "t.yaml:4:23: queues.email.stalled_interval: must be 100ms..1d" },
    /* bad enum value */
    { "queues:\n  email:\n    handler: nosuch\n",
      "t.yaml:3:14: queues.email.handler: must be one of noop, file, email, sms, push, inapp, "
      "webhook, exec, export, cleanup, broadcast" },
    { "log_level: loud\n" MIN_QUEUE,
      "t.yaml:1:12: log_level: must be one of debug, info, notice, warning, err, error, crit" },
    { MIN_QUEUE "    backoff: {type: linear}\n",
      "t.yaml:4:21: queues.email.backoff.type: must be one of fixed, exponential" },
    /* cross-key checks */
    { MIN_QUEUE "    provider: {type: file}\n",
      "t.yaml:4:5: queues.email.provider: the noop handler takes no provider" },
    { MIN_QUEUE "  sms:\n    handler: noop\n    bullmq_queue: email\n",
      "t.yaml:6:19: queues.sms.bullmq_queue: BullMQ queue \"email\" is already served by "
      "queues.email" },
    { MIN_QUEUE "    bullmq_queue: a:b\n",
      "t.yaml:4:19: queues.email.bullmq_queue: must not contain ':' (BullMQ's key separator)" },
    { "queues:\n  e.mail: {handler: noop}\n",
      "t.yaml:2:3: queues.e.mail: a queue name must be 1..64 letters, digits, '_' or '-'" },
    { "redis: {url: 'redis://h/1', db: 2}\n" MIN_QUEUE,
      "t.yaml:1:29: redis.db: conflicts with the database in redis.url" },
    { "redis: {url: 'unix:///r.sock', socket: /s}\n" MIN_QUEUE,
      "t.yaml:1:32: redis.socket: conflicts with the unix socket in redis.url" },
    { "control: {group: no-such-group-hopefully}\n" MIN_QUEUE,
      "t.yaml:1:18: control.group: no such group" },
    /* strings */
    { "state_dir: var/lib\n" MIN_QUEUE, "t.yaml:1:12: state_dir: must be an absolute path" },
    { "templates: tpl\n" MIN_QUEUE, "t.yaml:1:12: templates: must be an absolute path" },
    { "templates: {dir: tpl}\n" MIN_QUEUE, "t.yaml:1:18: templates.dir: must be an absolute path" },
    { "templates: {strict: yes}\n" MIN_QUEUE,
      "t.yaml:1:21: templates.strict: must be true or false" },
    { "templates: {dri: /x}\n" MIN_QUEUE, "t.yaml:1:13: templates.dri: unknown key" },
    { "templates: [/x]\n" MIN_QUEUE, "t.yaml:1:12: templates: must be a mapping, not a list" },
    { "redis: {prefix: ''}\n" MIN_QUEUE, "t.yaml:1:17: redis.prefix: must not be empty" },
    { "control:\n  socket: /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n" MIN_QUEUE,
      "t.yaml:2:11: control.socket: must be shorter than 108 bytes (a unix socket path)" },
    { "http:\n  listen: localhost\n  token_files: [/x]\n" MIN_QUEUE,
      "t.yaml:2:11: http.listen: must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080" },
    { "http:\n  listen: '[::1]:0'\n  token_files: [/x]\n" MIN_QUEUE,
      "t.yaml:2:11: http.listen: port must be 1..65535" },
    { "http:\n  tokens: []\n" MIN_QUEUE, "t.yaml:2:11: http.tokens: must list at least one item" },
    { "http:\n  tokens: [/x]\n" MIN_QUEUE,
      "t.yaml:2:12: http.tokens[0]: must be a mapping, not a scalar" },
    { "http:\n  tokens: [{file: /x, role: root}]\n" MIN_QUEUE,
      "t.yaml:2:29: http.tokens[0].role: must be one of read, admin" },
    { "http:\n  tokens: [{file: x, role: read}]\n" MIN_QUEUE,
      "t.yaml:2:19: http.tokens[0].file: must be an absolute path" },
    { "http:\n  max_body: 10\n" MIN_QUEUE, "t.yaml:2:13: http.max_body: must be 1024..1073741824" },
    { "http:\n  rate_limit: {max: -1}\n" MIN_QUEUE,
      "t.yaml:2:21: http.rate_limit.max: must be 0..1000000" },
    { "http:\n  token_files: []\n" MIN_QUEUE,
      "t.yaml:2:16: http.token_files: must list at least one file" },
    { "http:\n  token_files: [relative]\n" MIN_QUEUE,
      "t.yaml:2:17: http.token_files[0]: must be an absolute path" },
    { "redis: {password: '${NQ_TEST_UNSET}'}\n" MIN_QUEUE,
      "t.yaml:1:19: redis.password: environment variable NQ_TEST_UNSET is not set" },
    { "redis: {username: '${NQ'}\n" MIN_QUEUE,
      "t.yaml:1:19: redis.username: unterminated ${ (write $$ for a dollar)" },
    { "redis: {username: '${1X}'}\n" MIN_QUEUE,
      "t.yaml:1:19: redis.username: bad variable name in ${...}" },
    { "postgres:\n  batch_size: 10\n" MIN_QUEUE,
      "t.yaml:2:3: postgres.dsn: required (or dsn_file)" },
    { "postgres:\n  dsn: host=db\n  recipients: hash\n" MIN_QUEUE,
      "t.yaml:3:15: postgres.recipient_key: required (or recipient_key_file) with recipients: "
      "hash" },
    { "postgres:\n  dsn: host=db\n  recipients: sha1\n" MIN_QUEUE,
      "t.yaml:3:15: postgres.recipients: must be one of plain, hash" },
    { "postgres:\n  dsn: host=db\n  batch_size: 0\n" MIN_QUEUE,
      "t.yaml:3:15: postgres.batch_size: must be 1..10000" },
    { "postgres:\n  dsn: host=db\n  flush_interval: 1ms\n" MIN_QUEUE,
      "t.yaml:3:19: postgres.flush_interval: must be 10ms..10s" },
    /* YAML itself */
    { "queues:\n  email:\n    handler: noop\n  - sms\n",
      "t.yaml:4:3: did not find expected key (while parsing a block mapping at 2:3)" },
    { "queues: {email: *nope}\n", "t.yaml:1:17: found undefined alias" },
    { MIN_QUEUE "---\nqueues: {}\n", "t.yaml:5:1: only one YAML document is allowed" },
    { "a: \"\xff\"\n", "t.yaml: invalid leading UTF-8 octet at byte 4" },
/* exec */
#define EXEC_QUEUE "queues:\n  run:\n    handler: exec\n"
    { EXEC_QUEUE, "t.yaml:3:5: queues.run.exec: required with handler exec (exec: {argv: [...]})" },
    { MIN_QUEUE "    exec: {argv: [/bin/true]}\n",
      "t.yaml:4:5: queues.email.exec: the noop handler takes no exec" },
    { "defaults:\n  exec: {argv: [/bin/true]}\n" MIN_QUEUE,
      "t.yaml:2:3: defaults.exec: only allowed in a queue, not in defaults" },
    { EXEC_QUEUE "    exec: {timeout: 1s}\n",
      "t.yaml:4:11: queues.run.exec.argv: required key is missing" },
    { EXEC_QUEUE "    exec: {argv: /bin/true}\n",
      "t.yaml:4:18: queues.run.exec.argv: must be a list of strings, not a scalar" },
    { EXEC_QUEUE "    exec: {argv: []}\n",
      "t.yaml:4:18: queues.run.exec.argv: must list at least one string" },
    { EXEC_QUEUE "    exec: {argv: [/bin/true, [x]]}\n",
      "t.yaml:4:30: queues.run.exec.argv[1]: must be a string, not a list" },
    { EXEC_QUEUE "    exec: {argv: [true]}\n",
      "t.yaml:4:19: queues.run.exec.argv[0]: must be an absolute path (no shell or PATH search "
      "runs it)" },
    { EXEC_QUEUE "    exec: {argv: [/nonexistent/notify]}\n",
      "t.yaml:4:19: queues.run.exec.argv[0]: /nonexistent/notify: No such file or directory" },
    { EXEC_QUEUE "    exec: {argv: [/etc/passwd]}\n",
      "t.yaml:4:19: queues.run.exec.argv[0]: /etc/passwd: not an executable file" },
    { EXEC_QUEUE "    exec: {argv: [/bin]}\n",
      "t.yaml:4:19: queues.run.exec.argv[0]: /bin: not an executable file" },
    { EXEC_QUEUE "    exec: {argv: [/bin/true], cwd: /etc/passwd}\n",
      "t.yaml:4:11: queues.run.exec.cwd: /etc/passwd: not a directory" },
    { EXEC_QUEUE "    exec: {argv: [/bin/true], timeout: 0}\n",
      "t.yaml:4:40: queues.run.exec.timeout: must be 100ms..1d" },
    { EXEC_QUEUE "    exec: {argv: [/bin/true], env: {A-B: x}}\n",
      "t.yaml:4:37: queues.run.exec.env.A-B: an environment variable name must be letters, "
      "digits and '_', not starting with a digit" },
    { EXEC_QUEUE "    exec: {argv: [/bin/true], env: {A: x, A: y}}\n",
      "t.yaml:4:43: queues.run.exec.env.A: duplicate key (first at 4:37)" },
    { EXEC_QUEUE "    exec: {argv: [/bin/true], env: {A: [x]}}\n",
      "t.yaml:4:40: queues.run.exec.env.A: must be a string, not a list" },
    { EXEC_QUEUE "    exec: {argv: [/bin/true], env: [A=x]}\n",
      "t.yaml:4:36: queues.run.exec.env: must be a mapping of names to strings, not a list" },
#undef EXEC_QUEUE
    { MIN_QUEUE "    broadcast: {batch: 10}\n",
      "t.yaml:4:5: queues.email.broadcast: the noop handler takes no broadcast" },
    { "queues:\n  fan:\n    handler: broadcast\n    broadcast: {batch: 1001}\n",
      "t.yaml:4:24: queues.fan.broadcast.batch: must be 1..1000" },
    { "queues:\n  fan:\n    handler: broadcast\n    broadcast: {size: 10}\n",
      "t.yaml:4:17: queues.fan.broadcast.size: unknown key" },
    { "defaults:\n  broadcast: {batch: 10}\nqueues:\n  fan:\n    handler: broadcast\n",
      "t.yaml:2:3: defaults.broadcast: only allowed in a queue, not in defaults" },
};

static void errors_name_file_line_column_and_key(void **state)
{
    size_t failed = 0;

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad); i++)
        failed += !fails_with(bad[i].yaml, no_overrides, 0, bad[i].want);
    assert_int_equal(failed, 0);
}

/* redis.tls, redis.sentinel, redis.cluster: what they set, and what they refuse. */
static void redis_tls_and_sentinel(void **state)
{
    struct nq_config *cfg;

    (void) state;
    cfg = parse_ok("redis:\n  url: redis://h:1\n  tls:\n    ca_file: /etc/hostname\n"
                   "    server_name: redis.example\n    verify: false\n" MIN_QUEUE,
                   no_overrides, 0);
    assert_true(cfg->redis.tls.enabled);
    assert_false(cfg->redis.tls.verify);
    assert_string_equal(cfg->redis.tls.ca_file, "/etc/hostname");
    assert_string_equal(cfg->redis.tls.server_name, "redis.example");
    assert_null(cfg->redis.sentinel.master_name);
    (void) nq_config_free(cfg);
    cfg = parse_ok("redis:\n  sentinel:\n    master_name: m\n"
                   "    nodes: [10.0.0.5:26379, '[::1]:26380']\n    password: s\n" MIN_QUEUE,
                   no_overrides, 0);
    assert_string_equal(cfg->redis.sentinel.master_name, "m");
    assert_int_equal(cfg->redis.sentinel.n_nodes, 2);
    assert_string_equal(cfg->redis.sentinel.nodes[1], "[::1]:26380");
    assert_string_equal(cfg->redis.sentinel.password, "s");
    assert_false(cfg->redis.tls.enabled);
    (void) nq_config_free(cfg);

    parse_bad("redis:\n  sentinel:\n    nodes: [h:1]\n" MIN_QUEUE, no_overrides, 0,
              "t.yaml:3:5: redis.sentinel.master_name: is required");
    parse_bad("redis:\n  sentinel:\n    master_name: m\n" MIN_QUEUE, no_overrides, 0,
              "t.yaml:3:5: redis.sentinel.nodes: must list at least one sentinel (HOST:PORT)");
    parse_bad("redis:\n  sentinel:\n    master_name: m\n    nodes: [h]\n" MIN_QUEUE, no_overrides,
              0,
              "t.yaml:4:13: redis.sentinel.nodes[0]: must be HOST:PORT of a sentinel, e.g. "
              "10.0.0.5:26379 or [::1]:26379");
    parse_bad(
        "redis:\n  url: redis://h\n  sentinel:\n    master_name: m\n    nodes: [h:1]\n" MIN_QUEUE,
        no_overrides, 0,
        "t.yaml:2:3: redis.url: conflicts with redis.sentinel, which names the master "
        "(set username, password and db on their own)");
    parse_bad("redis:\n  socket: /run/r.sock\n  tls: {}\n" MIN_QUEUE, no_overrides, 0,
              "t.yaml:3:3: redis.tls: TLS is for a TCP connection, not a unix socket");
    parse_bad("redis:\n  url: rediss://h\n  tls:\n    cert_file: /etc/hostname\n" MIN_QUEUE,
              no_overrides, 0,
              "t.yaml:4:5: redis.tls.key_file: is required with tls.cert_file (a client "
              "certificate needs both)");
    parse_bad("redis:\n  cluster: true\n" MIN_QUEUE, no_overrides, 0,
              "t.yaml:5:5: queues.email.bullmq_queue: with redis.cluster, a queue's keys must "
              "share one hash slot: put a hash tag in redis.prefix (\"{bull}\") or in the BullMQ "
              "queue name (\"{email}\")");
    parse_bad("redis:\n  cluster: true\n  prefix: '{}bull'\n" MIN_QUEUE, no_overrides, 0,
              "t.yaml:6:5: queues.email.bullmq_queue: with redis.cluster, a queue's keys must "
              "share one hash slot: put a hash tag in redis.prefix (\"{{}bull}\") or in the "
              "BullMQ queue name (\"{email}\")");
    static const char *const tagged[] = {
        "redis:\n  cluster: true\n  prefix: '{bull}'\n" MIN_QUEUE,
        "redis:\n  cluster: true\n  prefix: 'app{'\n"
        "queues:\n  email:\n    handler: noop\n    bullmq_queue: 'q}'\n",
        "redis:\n  cluster: true\n"
        "queues:\n  email:\n    handler: noop\n    bullmq_queue: '{email}'\n",
    };
    for (size_t i = 0; i < NQ_ELEMENTSOF(tagged); i++)
        parse_bad(tagged[i], no_overrides, 0,
                  "t.yaml:2:3: redis.cluster: Redis Cluster is not supported yet: use one server "
                  "(redis.url) or redis.sentinel");
    parse_bad("redis:\n  url: rediss://h\n  tls:\n    ca_file: /nonexistent/ca.pem\n" MIN_QUEUE,
              no_overrides, 0,
              "t.yaml:4:5: redis.tls.ca_file: cannot read /nonexistent/ca.pem: No such file or "
              "directory");
}

static void redis_url_forms(void **state)
{
    (void) state;
    static const struct {
        const char *url, *host, *socket, *user, *password;
        unsigned port, db;
    } good[] = {
        { "redis://127.0.0.1:6379", "127.0.0.1", NULL, NULL, NULL, 6379, 0 },
        { "redis://cache", "cache", NULL, NULL, NULL, 6379, 0 },
        { "redis://cache:7000/", "cache", NULL, NULL, NULL, 7000, 0 },
        { "redis://[::1]:6380/15", "::1", NULL, NULL, NULL, 6380, 15 },
        { "redis://[::1]", "::1", NULL, NULL, NULL, 6379, 0 },
        { "redis://:s%3Acr%40t@h/2", "h", NULL, NULL, "s:cr@t", 6379, 2 },
        { "redis://bob:pw@h:1", "h", NULL, "bob", "pw", 1, 0 },
        { "redis://bob@h", "h", NULL, "bob", NULL, 6379, 0 },
        { "unix:///run/redis.sock", NULL, "/run/redis.sock", NULL, NULL, 0, 0 },
        { "unix:///run/redis.sock?db=7", NULL, "/run/redis.sock", NULL, NULL, 0, 7 },
        { "unix://u:p@/run/r.sock", NULL, "/run/r.sock", "u", "p", 0, 0 },
        { "rediss://u:p@cache.example:6380/3", "cache.example", NULL, "u", "p", 6380, 3 },
    };
    static const struct {
        const char *url, *problem;
    } bad_urls[] = {
        { "http://h", "must start with redis://, rediss:// or unix://" },
        { "rediss://h:0", "port must be 1..65535" },
        { "redis://", "has no host" },
        { "redis://h:0", "port must be 1..65535" },
        { "redis://h:65536", "port must be 1..65535" },
        { "redis://h:x", "port must be 1..65535" },
        { "redis://h/16", "database must be 0..15" },
        { "redis://h/a", "database must be 0..15" },
        { "redis://h?db=1", "query parameters are not supported" },
        { "redis://[::1", "has a bad [IPv6] host" },
        { "redis://:%zz@h", "bad percent-encoding in the user name or password" },
        { "redis://:%00@h", "bad percent-encoding in the user name or password" },
        { "unix://run/r.sock", "must be unix:///absolute/path" },
        { "unix:///r.sock?timeout=1", "the only query parameter supported is ?db=N" },
    };

    for (size_t i = 0; i < NQ_ELEMENTSOF(good); i++) {
        char yaml[256];
        struct nq_config *cfg;

        (void) snprintf(yaml, sizeof(yaml), "redis:\n  url: '%s'\n" MIN_QUEUE, good[i].url);
        cfg = parse_ok(yaml, no_overrides, 0);
        if (good[i].host)
            assert_string_equal(cfg->redis.host, good[i].host);
        else
            assert_null(cfg->redis.host);
        if (good[i].socket)
            assert_string_equal(cfg->redis.socket, good[i].socket);
        else
            assert_null(cfg->redis.socket);
        if (good[i].user)
            assert_string_equal(cfg->redis.username, good[i].user);
        else
            assert_null(cfg->redis.username);
        if (good[i].password)
            assert_string_equal(cfg->redis.password, good[i].password);
        else
            assert_null(cfg->redis.password);
        assert_int_equal(cfg->redis.port, good[i].port);
        assert_int_equal(cfg->redis.db, good[i].db);
        assert_int_equal(cfg->redis.tls.enabled, strncmp(good[i].url, "rediss:", 7) == 0);
        assert_true(cfg->redis.tls.verify); /* by default, with or without TLS */
        (void) nq_config_free(cfg);
    }
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad_urls); i++) {
        char yaml[256], want[256];

        (void) snprintf(yaml, sizeof(yaml), "redis:\n  url: '%s'\n" MIN_QUEUE, bad_urls[i].url);
        (void) snprintf(want, sizeof(want), "t.yaml:2:8: redis.url: %s", bad_urls[i].problem);
        parse_bad(yaml, no_overrides, 0, want);
    }
}

/* ---- --set ---- */

static void overrides_apply_after_the_file(void **state)
{
    (void) state;
    char *ov[] = {
        "queues.email.concurrency=10",
        "queues.email.concurrency=12",
        "defaults.attempts=6",
        "queues.email.retention.completed.count=50",
        "log_level=debug",
        "redis.url=redis://cache:7000/4",
        "control.mode=0600",
        "queues.sms.backoff.type=fixed",
        "tenants.acme.rate_limit.max=9",
        "redis.password_file=/dev/null",
        "redis.password=x=y",
    };
    struct nq_config *cfg =
        parse_ok("redis:\n  password_file: /nonexistent\n"
                 "queues:\n  email:\n    handler: noop\n    retention:\n      completed: true\n"
                 "  sms:\n    handler: sms\n    attempts: 2\n"
                 "tenants:\n  acme: {rate_limit: {max: 1, duration: 1s}}\n",
                 ov, NQ_ELEMENTSOF(ov));
    const struct nq_queue_cfg *email = nq_config_queue(cfg, "email"),
                              *sms = nq_config_queue(cfg, "sms");

    assert_int_equal(email->concurrency, 12);
    assert_int_equal(email->attempts, 6);
    assert_int_equal(sms->attempts, 2);
    assert_false(email->retention.completed.keep_all);
    assert_int_equal(email->retention.completed.count, 50);
    assert_int_equal(cfg->log_level, LOG_DEBUG);
    assert_string_equal(cfg->redis.host, "cache");
    assert_int_equal(cfg->redis.port, 7000);
    assert_int_equal(cfg->redis.db, 4);
    assert_int_equal(cfg->control.mode, 0600);
    assert_int_equal(sms->backoff.type, NQ_BACKOFF_FIXED);
    assert_int_equal(cfg->tenants[0].rate_limit.max, 9);
    assert_string_equal(cfg->redis.password, "x=y");
    (void) nq_config_free(cfg);
}

/* An override of one queue reached through an alias leaves the other alone. */
static void overrides_do_not_leak_through_aliases(void **state)
{
    (void) state;
    char *ov[] = { "queues.a.backoff.delay=9s" };
    struct nq_config *cfg = parse_ok("queues:\n  a: {handler: noop, backoff: &b {delay: 2s}}\n"
                                     "  b: {handler: noop, backoff: *b}\n",
                                     ov, NQ_ELEMENTSOF(ov));

    assert_int_equal(cfg->queues[0].backoff.delay_ms, 9000);
    assert_int_equal(cfg->queues[1].backoff.delay_ms, 2000);
    (void) nq_config_free(cfg);
}

static const struct {
    const char *set, *want;
} bad_sets[] = {
    { "queues.email.concurrency=0",
      "--set queues.email.concurrency=0: queues.email.concurrency: must be 1..10000" },
    { "queues.sms.concurrency=3",
      "--set queues.sms.concurrency=(hidden): queues.sms: no such queue" },
    { "tenants.x.rate_limit.max=3",
      "--set tenants.x.rate_limit.max=(hidden): tenants.x: no such tenant" },
    { "queues.email.concurency=3",
      "--set queues.email.concurency=(hidden): queues.email.concurency: unknown key" },
    { "queues.email=3",
      "--set queues.email=(hidden): queues.email: is a queue, set one of its keys" },
    { "queues.email.processes.x=1",
      "--set queues.email.processes.x=(hidden): queues.email.processes: has no keys below it" },
    { "defaults.handler=noop",
      "--set defaults.handler=(hidden): defaults.handler: only allowed in a queue, not in "
      "defaults" },
    { "concurrency",
      "--set concurrency=(hidden): expected KEY=VALUE, e.g. queues.email.concurrency=10" },
    { "=1", "--set =(hidden): expected KEY=VALUE, e.g. queues.email.concurrency=10" },
    { "queues..email=1", "--set queues..email=(hidden): queues: empty key in queues..email" },
    { "redis=x", "--set redis=x: redis: must be a mapping, not a scalar" },
    { "redis.db=", "--set redis.db=: redis.db: must be an integer" },
    { "queues.email.lock_duration=5x",
      "--set queues.email.lock_duration=5x: queues.email.lock_duration: invalid duration \"5x\": "
      "use a number with ms, s, m, h or d, e.g. 30s" },
    { "redis.password=${NQ_TEST_UNSET}",
      "--set redis.password=(hidden): redis.password: environment variable NQ_TEST_UNSET is "
      "not set" },
    { "redis.password_file=/nonexistent",
      "--set redis.password_file=/nonexistent: redis.password_file: cannot read /nonexistent: No "
      "such file or directory" },
    { "queues.email.rate_limit.max=5",
      "--set queues.email.rate_limit.max=5: queues.email.rate_limit.duration: required when max is "
      "set" },
    { "http.timeout=1ms", "--set http.timeout=1ms: http.timeout: must be 1s..10m" },
    { "log_level=\xc3(", "--set log_level=(hidden): not valid UTF-8" },
};

static void bad_overrides_name_the_override(void **state)
{
    size_t failed = 0;

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad_sets); i++) {
        char *ov[] = { (char *) bad_sets[i].set };
        failed += !fails_with(MIN_QUEUE, ov, 1, bad_sets[i].want);
    }
    assert_int_equal(failed, 0);
}

/* ---- secrets ---- */

struct tmp {
    char dir[64];
};

static void write_file(const char *dir, const char *name, const char *content, char *path,
                       size_t size)
{
    FILE *f;

    (void) snprintf(path, size, "%s/%s", dir, name);
    f = fopen(path, "we");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int make_tmp(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));

    if (!t)
        return -1;
    (void) snprintf(t->dir, sizeof(t->dir), "/tmp/nq-test-config-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int remove_tmp(void **state)
{
    struct tmp *t = *state;
    DIR *d = opendir(t->dir);
    struct dirent *e;
    int r = d ? 0 : -1;

    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            unlinkat(dirfd(d), e->d_name, 0) < 0)
            r = -1;
    }
    if (d)
        closedir(d);
    if (rmdir(t->dir) < 0)
        r = -1;
    free(t);
    return r;
}

static void secrets_come_from_files(void **state)
{
    struct tmp *t = *state;
    char pw[256], dsn[256], tok1[256], tok2[256], yaml[2048];
    struct nq_config *cfg;

    write_file(t->dir, "pw", "hunter2\n", pw, sizeof(pw));
    write_file(t->dir, "dsn", "host=db password=x\r\n\n", dsn, sizeof(dsn));
    write_file(t->dir, "t1", "token-one", tok1, sizeof(tok1));
    write_file(t->dir, "t2", "token-two\n", tok2, sizeof(tok2));
    (void) snprintf(yaml, sizeof(yaml),
                    "redis:\n  password_file: %s\npostgres:\n  dsn_file: %s\n"
                    "http:\n  token_files:\n    - %s\n    - %s\n" MIN_QUEUE,
                    pw, dsn, tok1, tok2);
    cfg = parse_ok(yaml, no_overrides, 0);
    assert_string_equal(cfg->redis.password, "hunter2");
    assert_string_equal(cfg->postgres.dsn, "host=db password=x");
    assert_true(cfg->http.enabled);
    assert_string_equal(cfg->http.listen, "127.0.0.1:8080");
    assert_int_equal(cfg->http.n_tokens, 2);
    /* token_files grant read only (tokens with roles replaced them). */
    assert_string_equal(cfg->http.tokens[0].secret, "token-one");
    assert_string_equal(cfg->http.tokens[1].secret, "token-two");
    assert_int_equal(cfg->http.tokens[0].role, NQ_HTTP_ROLE_READ);
    assert_int_equal(cfg->http.tokens[1].role, NQ_HTTP_ROLE_READ);
    assert_int_equal(cfg->http.max_body, 1048576);
    assert_int_equal(cfg->http.rate_limit.max, 100);
    assert_int_equal(cfg->http.rate_limit.duration_ms, 1000);
    assert_int_equal(cfg->http.timeout_ms, 30000);
    assert_false(cfg->http.metrics_auth);
    (void) nq_config_free(cfg);
    (void) snprintf(
        yaml, sizeof(yaml),
        "http:\n  tokens:\n    - {file: %s, role: admin}\n    - {file: %s, role: read}\n"
        "  token_files: [%s]\n" MIN_QUEUE,
        tok1, tok2, tok2);
    cfg = parse_ok(yaml, no_overrides, 0);
    assert_int_equal(cfg->http.n_tokens, 3);
    assert_string_equal(cfg->http.tokens[0].secret, "token-one");
    assert_int_equal(cfg->http.tokens[0].role, NQ_HTTP_ROLE_ADMIN);
    assert_int_equal(cfg->http.tokens[1].role, NQ_HTTP_ROLE_READ);
    assert_string_equal(cfg->http.tokens[2].secret, "token-two");
    assert_int_equal(cfg->http.tokens[2].role, NQ_HTTP_ROLE_READ);
    (void) nq_config_free(cfg);
}

static void unusable_secret_files_are_errors(void **state)
{
    struct tmp *t = *state;
    char empty[256], nul[256], yaml[1024], want[1024];
    static const char nul_content[] = "a\0b";
    FILE *f;

    write_file(t->dir, "empty", "\n", empty, sizeof(empty));
    (void) snprintf(nul, sizeof(nul), "%s/nul", t->dir);
    f = fopen(nul, "we");
    assert_non_null(f);
    assert_int_equal(fwrite(nul_content, 1, 3, f), 3);
    assert_int_equal(fclose(f), 0);

    (void) snprintf(yaml, sizeof(yaml), "redis:\n  password_file: %s\n" MIN_QUEUE, empty);
    (void) snprintf(want, sizeof(want), "t.yaml:2:3: redis.password_file: %s is empty", empty);
    parse_bad(yaml, no_overrides, 0, want);
    (void) snprintf(yaml, sizeof(yaml), "postgres:\n  dsn_file: %s\n" MIN_QUEUE, nul);
    (void) snprintf(want, sizeof(want), "t.yaml:2:3: postgres.dsn_file: %s contains a NUL byte",
                    nul);
    parse_bad(yaml, no_overrides, 0, want);
    (void) snprintf(yaml, sizeof(yaml), "redis:\n  password_file: %s\n" MIN_QUEUE, t->dir);
    (void) snprintf(want, sizeof(want),
                    "t.yaml:2:3: redis.password_file: %s is a directory, not a regular file",
                    t->dir);
    parse_bad(yaml, no_overrides, 0, want);
    (void) snprintf(yaml, sizeof(yaml),
                    "http:\n  token_files:\n    - %s\n    - /nonexistent\n" MIN_QUEUE, empty);
    (void) snprintf(want, sizeof(want), "t.yaml:3:7: http.token_files[0]: %s is empty", empty);
    parse_bad(yaml, no_overrides, 0, want);
}

static void environment_variables_expand(void **state)
{
    (void) state;
    char *ov[] = { "redis.username=${NQ_TEST_DIR}" };
    struct nq_config *cfg;

    assert_int_equal(setenv("NQ_TEST_PW", "s3cr${NQ_TEST_DIR}", 1), 0);
    assert_int_equal(setenv("NQ_TEST_DIR", "/srv", 1), 0);
    cfg = parse_ok("state_dir: ${NQ_TEST_DIR}/nq\n"
                   "redis:\n  password: ${NQ_TEST_PW}\n  prefix: a$$b$c$\n" MIN_QUEUE,
                   no_overrides, 0);
    assert_string_equal(cfg->state_dir, "/srv/nq");
    /* A variable's value is not expanded again. */
    assert_string_equal(cfg->redis.password, "s3cr${NQ_TEST_DIR}");
    assert_string_equal(cfg->redis.prefix, "a$b$c$");
    (void) nq_config_free(cfg);
    cfg = parse_ok(MIN_QUEUE, ov, 1);
    assert_string_equal(cfg->redis.username, "/srv");
    (void) nq_config_free(cfg);
}

/* ---- the key tables as data ---- */

struct doc_key {
    char path[256];
    bool commented;        /* "#key: value" */
    bool parent_commented; /* inside a commented-out block: an example */
    char value[128];
};

struct doc {
    struct doc_key keys[512];
    size_t n;
};

/* Keys of etc/notifyq.yaml, commented-out ones included: "#key:" with the
 * '#' standing in for indentation or before it. */
static void scan_yaml_doc(const char *text, struct doc *d)
{
    struct {
        size_t indent;
        char key[64];
        bool commented;
    } stack[16];
    size_t depth = 0;

    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n'), *p = line;
        size_t n1, n2 = 0, klen;
        bool commented = false;

        end = end ? end : line + strlen(line);
        n1 = strspn(p, " ");
        p += n1;
        if (*p == '#') {
            commented = true;
            p++;
            n2 = strspn(p, " ");
            p += n2;
        }
        /* A list item's first key ("- role: admin") is indented like the
         * keys after it. */
        if (p[0] == '-' && p[1] == ' ') {
            size_t dash = 1 + strspn(p + 1, " ");

            p += dash;
            n2 += dash;
        }
        klen = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
        if (klen > 0 && klen < 64 && p[klen] == ':' &&
            (p[klen + 1] == ' ' || p + klen + 1 == end)) {
            struct doc_key *k = &d->keys[d->n++];
            const char *v = p + klen + 1;
            size_t vlen, n = 0;

            assert_true(d->n < NQ_ELEMENTSOF(d->keys));
            while (depth > 0 && stack[depth - 1].indent >= n1 + n2)
                depth--;
            assert_true(depth < NQ_ELEMENTSOF(stack));
            k->commented = commented;
            k->parent_commented = false;
            for (size_t i = 0; i < depth; i++) {
                n += (size_t) snprintf(k->path + n, sizeof(k->path) - n, "%s.", stack[i].key);
                assert_true(n < sizeof(k->path));
                k->parent_commented |= stack[i].commented;
            }
            (void) snprintf(k->path + n, sizeof(k->path) - n, "%.*s", (int) klen, p);
            stack[depth].indent = n1 + n2;
            stack[depth].commented = commented;
            (void) snprintf(stack[depth].key, sizeof(stack[depth].key), "%.*s", (int) klen, p);
            depth++;
            v += strspn(v, " ");
            vlen = (size_t) (end - v);
            while (vlen > 0 && v[vlen - 1] == ' ')
                vlen--;
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
                v++, vlen -= 2;
            (void) snprintf(k->value, sizeof(k->value), "%.*s", (int) vlen, v);
        }
        line = *end ? end + 1 : end;
    }
}

/* pattern "queues.*.backoff" matches "queues.email.backoff". */
static bool path_matches(const char *pattern, const char *path)
{
    while (*pattern && *path) {
        if (*pattern == '*') {
            pattern++;
            path += strcspn(path, ".");
            continue;
        }
        if (*pattern++ != *path++)
            return false;
    }
    return !*pattern && !*path;
}

struct docs {
    struct doc etc;
    char **man_lines;
    size_t n_man;
    char missing[4096];
};

static void note(struct docs *d, const char *fmt, const char *path)
{
    size_t n = strlen(d->missing);
    (void) snprintf(d->missing + n, sizeof(d->missing) - n, fmt, path);
}

static int check_etc(const struct nq_config_key *k, struct docs *d)
{
    bool found = false;

    for (size_t i = 0; i < d->etc.n; i++) {
        const struct doc_key *e = &d->etc.keys[i];

        if (!path_matches(k->path, e->path))
            continue;
        found = true;
        /* An active section's commented-out key shows the default. */
        if (e->commented && !e->parent_commented && k->def && strcmp(k->type, "path") != 0 &&
            strcmp(e->value, k->def) != 0)
            note(d, "\n  etc/notifyq.yaml: %s does not show the default", e->path);
    }
    if (!found)
        note(d, "\n  etc/notifyq.yaml lacks %s", k->path);
    return 0;
}

/* "queues.\fINAME\fB.x" -> "queues.NAME.x"; drops font escapes, \- and \&. */
static void strip_roff(const char *in, char *out, size_t size)
{
    size_t n = 0;

    for (const char *p = in; *p && n + 1 < size; p++) {
        if (p[0] == '\\' && p[1] == 'f' && p[2]) {
            p += 2;
            continue;
        }
        if (p[0] == '\\' && (p[1] == '-' || p[1] == '&')) {
            p++;
            if (*p == '&')
                continue;
        }
        out[n++] = *p;
    }
    out[n] = '\0';
}

static int check_man(const struct nq_config_key *k, struct docs *d)
{
    char tag[320], want[300], text[4096] = "", line[1024];
    const char *path = k->path;
    size_t i;

    /* defaults.X is documented once, as queues.NAME.X. */
    if (strncmp(path, "defaults.", 9) == 0) {
        (void) snprintf(want, sizeof(want), "queues.NAME.%s", path + 9);
    } else {
        size_t n = 0;
        for (const char *p = path; *p && n + 5 < sizeof(want); p++) {
            if (*p == '*')
                n += (size_t) snprintf(want + n, sizeof(want) - n, "NAME");
            else
                want[n++] = *p;
        }
        want[n] = '\0';
    }
    (void) snprintf(tag, sizeof(tag), ".B %s", want);
    for (i = 0; i < d->n_man; i++) {
        strip_roff(d->man_lines[i], line, sizeof(line));
        if (strcmp(line, tag) == 0 && i > 0 && strcmp(d->man_lines[i - 1], ".TP") == 0)
            break;
    }
    if (i == d->n_man) {
        note(d, "\n  notifyq.yaml.5 lacks a .TP item for %s", k->path);
        return 0;
    }
    for (i++; i < d->n_man && strncmp(d->man_lines[i], ".TP", 3) != 0 &&
              strncmp(d->man_lines[i], ".S", 2) != 0;
         i++) {
        strip_roff(d->man_lines[i], line, sizeof(line));
        strncat(text, line[0] == '.' ? strchr(line, ' ') ? strchr(line, ' ') : "" : line,
                sizeof(text) - strlen(text) - 2);
        strcat(text, " ");
    }
    (void) snprintf(line, sizeof(line), "Default: %s", k->def ? k->def : "");
    if (k->def && strcmp(k->type, "path") != 0 && !strstr(text, line))
        note(d, "\n  notifyq.yaml.5: %s does not say its default", k->path);
    if (k->range && !strstr(text, k->range))
        note(d, "\n  notifyq.yaml.5: %s does not say its range", k->path);
    if (!k->reloadable && !strstr(text, "A reload cannot change it"))
        note(d, "\n  notifyq.yaml.5: %s does not say a reload cannot change it", k->path);
    return 0;
}

static int check_key(const struct nq_config_key *k, void *userdata)
{
    (void) check_etc(k, userdata);
    return check_man(k, userdata);
}

static int count_key(const struct nq_config_key *k, void *userdata)
{
    size_t *n = userdata;

    if (strcmp(k->path, "queues.*.concurrency") == 0) {
        assert_string_equal(k->range, "1..10000");
        assert_string_equal(k->def, "1");
        assert_string_equal(k->type, "integer");
    }
    if (strcmp(k->path, "control.socket") == 0)
        assert_false(k->reloadable);
    if (strcmp(k->path, "queues.*.handler") == 0)
        assert_true(k->required);
    if (strcmp(k->path, "defaults.handler") == 0)
        fail_msg("defaults takes no handler");
    ++*n;
    return 0;
}

static void every_key_is_documented(void **state)
{
    (void) state;
    struct docs *d = calloc(1, sizeof(*d));
    char *etc = slurp(NQ_SRCDIR "/etc/notifyq.yaml");
    char *man = slurp(NQ_SRCDIR "/man/notifyq.yaml.5");
    size_t n = 0;

    assert_non_null(d);
    scan_yaml_doc(etc, &d->etc);
    for (char *p = man; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        d->n_man++;
    d->man_lines = calloc(d->n_man, sizeof(char *));
    assert_non_null(d->man_lines);
    d->n_man = 0;
    for (char *p = strtok(man, "\n"); p; p = strtok(NULL, "\n"))
        d->man_lines[d->n_man++] = p;
    assert_int_equal(nq_config_foreach_key(check_key, d), 0);
    if (d->missing[0])
        fail_msg("undocumented:%s", d->missing);
    assert_int_equal(nq_config_foreach_key(count_key, &n), 0);
    assert_true(n > 80);
    free(d->man_lines);
    free(d);
    free(etc);
    free(man);
}

static int stop_at_third(const struct nq_config_key *k, void *userdata)
{
    int *n = userdata;

    (void) k;
    return ++*n == 3 ? 42 : 0;
}

static void foreach_key_stops_when_asked(void **state)
{
    (void) state;
    int n = 0;

    assert_int_equal(nq_config_foreach_key(stop_at_third, &n), 42);
    assert_int_equal(n, 3);
}

/* ---- the rest of the API ---- */

static void reload_cannot_change_the_control_socket(void **state)
{
    (void) state;
    char *mode[] = { "control.mode=0600" }, *procs[] = { "queues.email.processes=4" };
    struct nq_config *old = parse_ok(MIN_QUEUE, no_overrides, 0);
    struct nq_config *same = parse_ok(MIN_QUEUE, procs, 1);
    struct nq_config *changed = parse_ok(MIN_QUEUE, mode, 1);
    struct nq_err err = { { 0 } };

    assert_int_equal(nq_config_check_reload(old, same, &err), 0);
    assert_int_equal(nq_config_check_reload(old, changed, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "t.yaml: control.mode: changed, but a reload cannot "
                                          "change it; restart notifyqd to apply");
    (void) nq_config_free(old);
    (void) nq_config_free(same);
    (void) nq_config_free(changed);
}

static void load_reports_unreadable_files(void **state)
{
    (void) state;
    struct nq_config sentinel, *cfg = &sentinel;
    struct nq_err err = { { 0 } };

    assert_int_equal(nq_config_load("/nonexistent/notifyq.yaml", NULL, 0, &cfg, &err), -ENOENT);
    assert_string_equal(nq_err_str(&err), "/nonexistent/notifyq.yaml: No such file or directory");
    assert_int_equal(nq_config_load("/", NULL, 0, &cfg, &err), -EISDIR);
    assert_string_equal(nq_err_str(&err), "/: is a directory, not a regular file");
    assert_int_equal(nq_config_load("/dev/null", NULL, 0, &cfg, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "/dev/null: is a character device, not a regular file");
    assert_ptr_equal(cfg, &sentinel);
    assert_null(nq_config_free(NULL));
}

/* ---- handler: webhook ---- */

#define WEBHOOK_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define WEBHOOK_BLOCK "    webhook: {url: 'http://127.0.0.1:9/h', secret: " WEBHOOK_SECRET "}\n"
#define WEBHOOK_QUEUE "queues:\n  hooks:\n    handler: webhook\n"

static void webhook_keys_load_with_defaults_and_a_secret_file(void **state)
{
    char dir[] = "/tmp/nq-test-webhook-XXXXXX", path[64], yaml[512];
    struct nq_config *cfg;
    const struct nq_webhook_cfg *wh;
    FILE *f;

    (void) state;
    assert_non_null(mkdtemp(dir));
    (void) snprintf(path, sizeof(path), "%s/secret", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(WEBHOOK_SECRET "\n", f);
    fclose(f);
    (void) snprintf(yaml, sizeof(yaml),
                    WEBHOOK_QUEUE "    webhook:\n      url: https://example.org/hook\n"
                                  "      secret_file: %s\n      timeout: 5s\n",
                    path);
    cfg = parse_ok(yaml, no_overrides, 0);
    wh = &cfg->queues[0].webhook;
    assert_string_equal(wh->url, "https://example.org/hook");
    assert_string_equal(wh->secret, WEBHOOK_SECRET);
    assert_int_equal(wh->timeout_ms, 5000);
    assert_int_equal(wh->connect_timeout_ms, 5000); /* 10s, or timeout when shorter */
    (void) nq_config_free(cfg);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void email_api_keys_load_with_their_defaults(void **state)
{
    char dir[] = "/tmp/nq-test-emailapi-XXXXXX", path[64], yaml[1024];
    struct nq_config *cfg;
    const struct nq_provider_cfg *p;
    FILE *f;

    (void) state;
    assert_non_null(mkdtemp(dir));
    (void) snprintf(path, sizeof(path), "%s/key", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("SG.secret-key\n", f);
    fclose(f);
    (void) snprintf(yaml, sizeof(yaml),
                    "queues:\n"
                    "  a: {handler: email, provider: {type: sendgrid, api_key_file: %s}}\n"
                    "  b: {handler: email, provider: {type: mailgun, api_key: k, domain: mg.x, "
                    "region: eu}}\n"
                    "  c: {handler: email, provider: {type: mailgun, api_key: k, domain: mg.x}}\n"
                    "  d: {handler: email, provider: {type: ses, region: eu-west-1, "
                    "access_key_id: AKID, secret_access_key: s, session_token: t}}\n"
                    "  e: {handler: email, provider: {type: postmark, server_token: t, "
                    "base_url: 'http://127.0.0.1:8025', timeout: 5s}}\n"
                    "  f: {handler: email, provider: {type: resend, api_key: re_k}}\n",
                    path);
    cfg = parse_ok(yaml, no_overrides, 0);
    p = &cfg->queues[0].provider;
    assert_int_equal(p->kind, NQ_PROVIDER_SENDGRID);
    assert_string_equal(p->api_key, "SG.secret-key");
    assert_string_equal(p->base_url, "https://api.sendgrid.com");
    assert_int_equal(p->timeout_ms, 30000);
    assert_int_equal(p->verify, 1);
    assert_string_equal(cfg->queues[1].provider.base_url, "https://api.eu.mailgun.net");
    assert_string_equal(cfg->queues[2].provider.base_url, "https://api.mailgun.net");
    assert_string_equal(cfg->queues[2].provider.region, "us");
    p = &cfg->queues[3].provider;
    assert_int_equal(p->kind, NQ_PROVIDER_SES);
    assert_string_equal(p->base_url, "https://email.eu-west-1.amazonaws.com");
    assert_string_equal(p->session_token, "t");
    p = &cfg->queues[4].provider;
    assert_string_equal(p->base_url, "http://127.0.0.1:8025");
    assert_int_equal(p->timeout_ms, 5000);
    assert_null(p->message_stream);
    assert_string_equal(cfg->queues[5].provider.base_url, "https://api.resend.com");
    (void) nq_config_free(cfg);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void webhook_errors_name_the_key(void **state)
{
    static const struct {
        const char *yaml, *want;
    } wbad[] = {
        { WEBHOOK_QUEUE, "t.yaml:3:5: queues.hooks.webhook: required by handler: webhook (url, "
                         "secret_file)" },
        { WEBHOOK_QUEUE "    webhook: {url: 'http://h/'}\n",
          "t.yaml:4:14: queues.hooks.webhook.secret: required key is missing" },
        { WEBHOOK_QUEUE "    webhook: {secret: " WEBHOOK_SECRET "}\n",
          "t.yaml:4:14: queues.hooks.webhook.url: required key is missing" },
        { WEBHOOK_QUEUE "    webhook: {url: 'http://h/', secret: " WEBHOOK_SECRET ", retries: 3}\n",
          "t.yaml:4:81: queues.hooks.webhook.retries: unknown key" },
        { WEBHOOK_QUEUE "    webhook: {url: 'ftp://h/', secret: " WEBHOOK_SECRET "}\n",
          "t.yaml:4:20: queues.hooks.webhook.url: must be an http:// or https:// URL" },
        { WEBHOOK_QUEUE "    webhook: {url: 'http://h/', secret: hunter2hunter2}\n",
          "t.yaml:4:41: queues.hooks.webhook.secret: must start with whsec_ (the Standard "
          "Webhooks form)" },
        { WEBHOOK_QUEUE "    webhook: {url: 'http://h/', secret: whsec_c2hvcnQ=}\n",
          "t.yaml:4:41: queues.hooks.webhook.secret: must decode to 24..64 bytes" },
        { WEBHOOK_QUEUE
          "    webhook: {url: 'http://h/', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8I*PZIo2LaLaSw'}\n",
          "t.yaml:4:41: queues.hooks.webhook.secret: the part after whsec_ must be base64" },
        { WEBHOOK_QUEUE "    webhook: {url: 'http://h/', secret: " WEBHOOK_SECRET
                        ", timeout: 1s, connect_timeout: 2s}\n",
          "t.yaml:4:111: queues.hooks.webhook.connect_timeout: must not exceed timeout" },
        { MIN_QUEUE WEBHOOK_BLOCK, "t.yaml:4:5: queues.email.webhook: only for handler: webhook" },
        { "defaults:\n" WEBHOOK_BLOCK MIN_QUEUE,
          "t.yaml:2:5: defaults.webhook: only allowed in a queue, not in defaults" },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(wbad); i++)
        parse_bad(wbad[i].yaml, no_overrides, 0, wbad[i].want);
}

static void broadcast_batch_defaults_to_100(void **state)
{
    struct nq_config *cfg;

    (void) state;
    cfg = parse_ok("queues:\n  fan:\n    handler: broadcast\n", no_overrides, 0);
    assert_int_equal(cfg->queues[0].broadcast.batch, 100);
    (void) nq_config_free(cfg);
    cfg = parse_ok("queues:\n  fan:\n    handler: broadcast\n    broadcast: {batch: 7}\n",
                   no_overrides, 0);
    assert_int_equal(cfg->queues[0].broadcast.batch, 7);
    (void) nq_config_free(cfg);
}

static void handler_names_round_trip(void **state)
{
    (void) state;
    static const char *const names[] = { "noop",   "file",    "email",    "sms",
                                         "push",   "inapp",   "webhook",  "exec",
                                         "export", "cleanup", "broadcast" };

    for (size_t i = 0; i < NQ_ELEMENTSOF(names); i++) {
        char yaml[256];
        struct nq_config *cfg;

        assert_string_equal(nq_handler_name((enum nq_handler_kind) i), names[i]);
        (void) snprintf(yaml, sizeof(yaml), "queues:\n  q:\n    handler: %s\n%s", names[i],
                        !strcmp(names[i], "exec")      ? "    exec: {argv: [/bin/true]}\n"
                        : !strcmp(names[i], "webhook") ? WEBHOOK_BLOCK
                                                       : "");
        cfg = parse_ok(yaml, no_overrides, 0);
        assert_int_equal(cfg->queues[0].handler, i);
        (void) nq_config_free(cfg);
    }
    assert_null(nq_handler_name((enum nq_handler_kind) NQ_ELEMENTSOF(names)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_issues_minimal_file_is_valid),
        cmocka_unit_test(webhook_keys_load_with_defaults_and_a_secret_file),
        cmocka_unit_test(webhook_errors_name_the_key),
        cmocka_unit_test(email_api_keys_load_with_their_defaults),
        cmocka_unit_test(defaults_are_config_hs),
        cmocka_unit_test(the_shipped_file_is_valid),
        cmocka_unit_test(fixtures_say_what_their_expected_files_say),
        cmocka_unit_test(good_fixtures_load),
        cmocka_unit_test(queues_inherit_defaults),
        cmocka_unit_test(values_of_every_type),
        cmocka_unit_test(errors_name_file_line_column_and_key),
        cmocka_unit_test(redis_url_forms),
        cmocka_unit_test(redis_tls_and_sentinel),
        cmocka_unit_test(overrides_apply_after_the_file),
        cmocka_unit_test(overrides_do_not_leak_through_aliases),
        cmocka_unit_test(bad_overrides_name_the_override),
        cmocka_unit_test_setup_teardown(secrets_come_from_files, make_tmp, remove_tmp),
        cmocka_unit_test_setup_teardown(unusable_secret_files_are_errors, make_tmp, remove_tmp),
        cmocka_unit_test(environment_variables_expand),
        cmocka_unit_test(every_key_is_documented),
        cmocka_unit_test(templates_as_a_path_or_a_mapping),
        cmocka_unit_test(foreach_key_stops_when_asked),
        cmocka_unit_test(reload_cannot_change_the_control_socket),
        cmocka_unit_test(load_reports_unreadable_files),
        cmocka_unit_test(handler_names_round_trip),
        cmocka_unit_test(broadcast_batch_defaults_to_100),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
