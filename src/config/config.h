/* SPDX-License-Identifier: MIT */
/*
 * The configuration: /etc/notifyq.yaml parsed with libyaml into one
 * struct nq_config. Each load yields a whole new config or an error, never an
 * edit of the running one (nginx's cycle); the master keeps the old one when a
 * reload fails. Parsing is strict: unknown keys, wrong types, out-of-range
 * numbers and missing required fields are errors naming file:line:column and
 * the key path, e.g.
 *   /etc/notifyq.yaml:14:7: queues.email.concurrency: must be 1..10000
 * Non-logging module: errors go to the caller's struct nq_err.
 *
 * Ownership: nq_config_load/parse_string return a heap config the caller
 * frees with nq_config_free; every string inside is owned by it.
 * See: man/notifyq.yaml.5, etc/notifyq.yaml.
 */
#ifndef NQ_CONFIG_CONFIG_H
#define NQ_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/macros.h"

#define NQ_DEFAULT_CONFIG_PATH NQ_SYSCONFDIR "/notifyq.yaml"

enum nq_handler_kind {
    NQ_HANDLER_NOOP,
    NQ_HANDLER_FILE,
    NQ_HANDLER_EMAIL,
    NQ_HANDLER_SMS,
    NQ_HANDLER_PUSH,
    NQ_HANDLER_INAPP,
    NQ_HANDLER_WEBHOOK,
    NQ_HANDLER_EXEC,
    NQ_HANDLER_EXPORT,
    NQ_HANDLER_CLEANUP,
    NQ_HANDLER_BROADCAST,
};

enum nq_backoff_type { NQ_BACKOFF_FIXED, NQ_BACKOFF_EXPONENTIAL };

/* The backoff of jobs whose options set none. The default, delay 0, is
 * BullMQ's: such a job is retried at once. */
struct nq_backoff_cfg {
    enum nq_backoff_type type; /* default exponential */
    uint64_t delay_ms;         /* default 0: retry at once */
    uint64_t max_ms;           /* cap on one such delay; 0 = none (default) */
    double jitter;             /* 0..1, default 0 */
};

struct nq_rate_limit_cfg {
    uint32_t max;         /* jobs per duration; 0 = no limiter */
    uint64_t duration_ms; /* required when max > 0 */
};

/* BullMQ's removeOnComplete / removeOnFail as a queue default. */
struct nq_keep_cfg {
    bool keep_all;   /* neither count nor age set: keep everything (BullMQ's default) */
    uint32_t count;  /* keep the newest count; 0 with keep_all=false and age 0: remove at once */
    uint64_t age_ms; /* 0 = no age limit */
};

struct nq_retention_cfg {
    struct nq_keep_cfg completed;
    struct nq_keep_cfg failed;
};

/* How a handler's messages leave: `provider: {type: ..., ...}`, where type
 * selects the keys that may follow (file: spool_dir; smtp: url, tls...). */
enum nq_provider_kind {
    NQ_PROVIDER_NONE,
    NQ_PROVIDER_FILE,
    NQ_PROVIDER_SMTP,
    /* sms (providers/sms.h) */
    NQ_PROVIDER_TWILIO,
    NQ_PROVIDER_VONAGE,
    NQ_PROVIDER_HTTP,
    /* email APIs (providers/emailapi.h) */
    NQ_PROVIDER_SENDGRID,
    NQ_PROVIDER_RESEND,
    NQ_PROVIDER_MAILGUN,
    NQ_PROVIDER_POSTMARK,
    NQ_PROVIDER_SES,
    /* push */
    NQ_PROVIDER_FCM,
    NQ_PROVIDER_APNS,
};

/* smtp's tls: 0 until the config's checks derive it from the URL's scheme. */
enum nq_smtp_tls {
    NQ_SMTP_TLS_UNSET,
    NQ_SMTP_TLS_STARTTLS,
    NQ_SMTP_TLS_IMPLICIT,
    NQ_SMTP_TLS_NONE
};

/* apns's environment: which of Apple's hosts base_url defaults to. */
enum nq_apns_env { NQ_APNS_ENV_UNSET, NQ_APNS_ENV_PRODUCTION, NQ_APNS_ENV_SANDBOX };

struct nq_provider_cfg {
    enum nq_provider_kind kind;
    char *spool_dir; /* file: default <state_dir>/spool/<queue> */
    /* smtp (providers/smtp.h) */
    char *url;            /* smtp://HOST[:PORT] or smtps://HOST[:PORT]; required */
    enum nq_smtp_tls tls; /* default starttls for smtp://, implicit for smtps:// */
    char *username;       /* AUTH; NULL: none */
    char *password;       /* secret: password_file or ${ENV}; with username only */
    char *from;           /* the sender of jobs that name none */
    char *ca_file;        /* TLS trust; NULL: the system's */
    int verify;           /* 1 (default): check the server's certificate; 2: don't */
    uint64_t timeout_ms;  /* one message, connect to the final reply; default 30s */
    /* sms providers: twilio, vonage, http (providers/sms.h); from above is
     * their default sender, ca_file, verify and timeout apply to them too,
     * url is http's endpoint */
    char *base_url;              /* HTTP APIs: scheme://host[:port]; NULL: the real API */
    char *account_sid;           /* twilio: AC...; required */
    char *auth_token;            /* twilio: secret, auth_token_file or ${ENV}; required */
    char *messaging_service_sid; /* twilio: MG..., instead of from */
    char *api_key;               /* vonage; secret: sendgrid, resend, mailgun; required */
    char *api_secret;            /* vonage: secret, api_secret_file or ${ENV}; required */
    char **headers;              /* http: "Name=value", NULL-terminated */
    size_t n_headers;
    char *body_template;   /* http: Mustache rendering the JSON body; required */
    char *default_region;  /* sms: ISO 3166 alpha-2 for national numbers; NULL: none */
    uint32_t max_segments; /* sms: 0 = no limit */
    /* email APIs (providers/emailapi.h); ca_file, verify, timeout and from too */
    char *domain;            /* mailgun: the sending domain; required */
    char *region;            /* mailgun: us (default) or eu; ses: e.g. eu-west-1, required */
    char *server_token;      /* secret: postmark */
    char *message_stream;    /* postmark: NULL: the server's default (outbound) */
    char *access_key_id;     /* ses */
    char *secret_access_key; /* secret: ses */
    char *session_token;     /* secret: ses, temporary credentials; NULL: none */
    /* push: fcm (providers/fcm.h) and apns (providers/apns.h); also ca_file,
     * verify, timeout */
    char *token_url;              /* fcm: OAuth2 token endpoint; default the account's token_uri */
    char *service_account;        /* fcm: secret: the service-account JSON (service_account_file) */
    char *project_id;             /* fcm: default the service account's project_id */
    char *key;                    /* apns: secret: the .p8 PEM key (key_file) */
    char *key_id;                 /* apns: the key's 10-character id */
    char *team_id;                /* apns: the 10-character team id */
    char *topic;                  /* apns: the app's bundle id */
    enum nq_apns_env environment; /* apns: default production */
};

/* The exec handler: a command run per job (handlers/exec.c). */
struct nq_exec_cfg {
    char **argv; /* NULL-terminated; argv[0] an absolute path to an executable file */
    size_t argc;
    uint64_t timeout_ms; /* per run; default 30s */
    char *cwd;           /* working directory; NULL: / */
    char **env;          /* "NAME=value", NULL-terminated: the child's environment but PATH */
    size_t n_env;
};

/* handler: webhook. Standard Webhooks signing; see providers/webhook.h. */
struct nq_webhook_cfg {
    char *url;                   /* http:// or https:// endpoint; required */
    char *secret;                /* "whsec_" + base64 of 24..64 bytes, from secret_file or ${ENV} */
    uint64_t timeout_ms;         /* the whole request; default 30s */
    uint64_t connect_timeout_ms; /* default 10s, at most timeout */
};

/* The broadcast handler: a job's recipients become jobs of another queue
 * (handlers/broadcast.c). */
struct nq_broadcast_cfg {
    uint32_t batch; /* jobs added per round trip; default 100 */
};

/* Everything a queue has; `defaults` is the same struct, and each queue starts
 * as a copy of it before its own keys apply. */
struct nq_queue_cfg {
    char *name;         /* the map key under `queues` */
    char *bullmq_queue; /* BullMQ queue name; default: name */
    enum nq_handler_kind handler;
    uint32_t processes;   /* 1..256, default 1 */
    uint32_t concurrency; /* 1..10000, default 1 */
    uint32_t attempts;    /* default attempts for jobs without opts.attempts; default 1 */
    struct nq_backoff_cfg backoff;
    struct nq_rate_limit_cfg rate_limit;
    struct nq_retention_cfg retention;
    uint64_t lock_duration_ms;      /* 30s */
    uint64_t stalled_interval_ms;   /* 30s */
    uint32_t max_stalled;           /* 1 */
    uint64_t drain_timeout_ms;      /* 30s */
    uint64_t min_uptime_ms;         /* 5s: a child dying sooner counts as a quick crash */
    uint32_t max_jobs;              /* recycle a worker after N finished jobs; 0 = never */
    uint32_t max_rss_mib;           /* recycle a worker above N MiB RSS; 0 = never */
    uint32_t max_crashes;           /* poison job threshold; default 3 */
    uint64_t unresponsive_after_ms; /* 10s: a worker silent this long is unresponsive */
    uint64_t kill_after_ms;         /* 60s: ... and this long is killed and replaced; 0 = never */
    struct nq_provider_cfg provider;
    struct nq_exec_cfg exec;           /* handler exec only */
    struct nq_webhook_cfg webhook;     /* handler: webhook */
    struct nq_broadcast_cfg broadcast; /* handler broadcast only */
    unsigned line, column;             /* 1-based position of the queue's key, for messages */
};

/* redis.sentinel: the master is whichever server the sentinels name. */
struct nq_sentinel_cfg {
    char *master_name; /* NULL: no sentinel; the master is url/socket */
    char **nodes;      /* "HOST:PORT" or "[V6]:PORT" of the sentinels, in order of asking */
    size_t n_nodes;
    char *password; /* the sentinels' own requirepass; secret; NULL: none */
};

/* redis.tls, or a rediss:// url: TLS to the Redis server. */
struct nq_redis_tls_cfg {
    bool enabled;    /* a rediss:// url or a redis.tls section */
    char *ca_file;   /* PEM CAs to verify the server with; NULL: the system's */
    char *cert_file; /* client certificate (PEM chain) for mutual TLS, with key_file */
    char *key_file;
    char *server_name; /* name the certificate must hold (and SNI); NULL: the host */
    bool verify;       /* default true: certificate chain and name checked */
};

struct nq_redis_cfg {
    char *url;      /* redis[s]://[user:pass@]host[:port][/db] or unix:///path[?db=N];
                     * default redis://127.0.0.1:6379 */
    char *socket;   /* unix socket path (or url's unix://); wins over host:port when set */
    char *host;     /* derived from url; NULL for a unix:// url */
    uint16_t port;  /* derived from url; 0 for a unix:// url */
    char *prefix;   /* default "bull" */
    uint32_t db;    /* default 0, or url's /db */
    char *username; /* optional ACL user */
    char *password; /* secret: from password, password_file or ${ENV}; never logged */
    uint64_t connect_timeout_ms; /* default 5s */
    struct nq_sentinel_cfg sentinel;
    struct nq_redis_tls_cfg tls;
    bool cluster; /* Redis Cluster: every queue hash-tagged; not supported yet */
};

/* How the delivery log stores a job's recipient. */
enum nq_recipients { NQ_RECIPIENTS_PLAIN, NQ_RECIPIENTS_HASH };

struct nq_postgres_cfg {
    char *dsn;                     /* NULL: no delivery log */
    uint32_t batch_size;           /* events per statement at most; default 500 */
    uint64_t flush_interval_ms;    /* default 100ms */
    uint32_t spool_max;            /* events waiting before the worker stops fetching; 100000 */
    enum nq_recipients recipients; /* default plain */
    char *recipient_key;           /* secret, for recipients: hash (HMAC-SHA256) */
    bool store_bodies;             /* store the job's data; default false */
};

struct nq_control_cfg {
    char *socket; /* default NQ_RUNSTATEDIR/notifyq/control.sock */
    mode_t mode;  /* default 0660 */
    char *group;  /* group allowed besides root; default "notifyq" if it exists, else none */
};

enum nq_http_role { NQ_HTTP_ROLE_READ, NQ_HTTP_ROLE_ADMIN };

/* One bearer token of the admin API. */
struct nq_http_token {
    char *secret;           /* read from `file`; never logged */
    enum nq_http_role role; /* admin may do what read may, and change things */
};

struct nq_http_tls {
    char *cert_file; /* PEM; with key_file, the API speaks HTTPS only */
    char *key_file;
};

struct nq_http_cfg {
    bool enabled;                 /* true when the section is present */
    char *listen;                 /* "127.0.0.1:8080" */
    struct nq_http_token *tokens; /* from `tokens`; then `token_files`, each role admin */
    size_t n_tokens;
    char **token_files; /* the older form's secrets, folded into tokens */
    size_t n_token_files;
    struct nq_http_tls tls;
    uint32_t max_body;                   /* bytes a request body may have; default 1 MiB */
    struct nq_rate_limit_cfg rate_limit; /* per token; default 100 per 1s */
    uint64_t timeout_ms; /* an idle or slow connection is closed after it; default 30s */
    bool metrics_auth;   /* /metrics wants a read token too; default false */
};

/* When notifyqctl status (and the admin API's /health) call a queue
 * unhealthy. */
struct nq_health_cfg {
    uint32_t max_waiting;    /* waiting jobs above this; 0 = no limit. default 10000 */
    double max_failure_rate; /* failed share of the last 5 minutes' attempts; 1 = never. 0.5 */
};

/* Per-tenant overrides (a tenant is job data's tenantId). */
struct nq_tenant_cfg {
    char *name;
    struct nq_rate_limit_cfg rate_limit;
};

/* `templates: DIR`, or the mapping {dir, strict}. */
struct nq_templates_cfg {
    char *dir;   /* default NQ_SYSCONFDIR/notifyq/templates */
    bool strict; /* a missing variable fails the job instead of rendering empty */
};

/* The inapp handler's live messages. */
struct nq_inapp_cfg {
    char *channel_prefix; /* Redis channel <prefix>:<tenant or _>:<user>; default notifyq:inapp */
};

struct nq_config {
    char *path;      /* the file it was read from, for messages */
    int log_level;   /* syslog priority, from `log_level`, default info */
    char *state_dir; /* default NQ_LOCALSTATEDIR/lib/notifyq */
    struct nq_redis_cfg redis;
    struct nq_postgres_cfg postgres;
    struct nq_control_cfg control;
    struct nq_http_cfg http;
    struct nq_health_cfg health;
    struct nq_queue_cfg defaults;
    struct nq_queue_cfg *queues; /* in file order */
    size_t n_queues;
    struct nq_tenant_cfg *tenants;
    size_t n_tenants;
    struct nq_templates_cfg templates;
    struct nq_inapp_cfg inapp;
};

/* Reads and validates path, then applies the `--set KEY=VALUE` overrides in
 * order (each validated as if written in the file). On success *ret_cfg owns
 * the new config; on failure err names file:line:column and the key path,
 * *ret_cfg is untouched, and a negative errno is returned. */
int nq_config_load(const char *path, char *const *overrides, size_t n_overrides,
                   struct nq_config **ret_cfg, struct nq_err *err) NQ_MUSTCHECK;

/* Same from a string; name stands for the file in messages. */
int nq_config_parse_string(const char *name, const char *yaml, char *const *overrides,
                           size_t n_overrides, struct nq_config **ret_cfg,
                           struct nq_err *err) NQ_MUSTCHECK;

struct nq_config *nq_config_free(struct nq_config *cfg);

/* The queue named name (map key), or NULL. Borrowed from cfg. */
const struct nq_queue_cfg *nq_config_queue(const struct nq_config *cfg, const char *name);

/* "noop", "email", ...: the names the config accepts; NULL for a value
 * outside the enum. */
const char *nq_handler_name(enum nq_handler_kind kind);

/* 0 when a reload may go from old to new; -EINVAL with err naming the key
 * (FILE: key.path: message) when new changes one a reload cannot: the
 * master's control socket (control.socket, control.mode, control.group). */
int nq_config_check_reload(const struct nq_config *old, const struct nq_config *new,
                           struct nq_err *err) NQ_MUSTCHECK;

/* One key the file accepts, from the parser's own tables: docs as data (a
 * unit test checks each appears in etc/notifyq.yaml and notifyq.yaml.5).
 * The strings are valid during the callback only. */
struct nq_config_key {
    const char *path;  /* "redis.url", "queues.*.backoff.delay": * is a queue or tenant name */
    const char *type;  /* "string", "path", "secret", "file", "integer", "number", "duration",
                        * "enum", "octal mode", "mapping", "retention", "mapping of names",
                        * "list of files", "list of strings", "mapping of strings" */
    const char *def;   /* the default as written in the file; NULL: none, or computed */
    const char *range; /* "1..10000", "100ms..1d", "fixed, exponential"; NULL: any value */
    bool required;
    bool reloadable; /* false: nq_config_check_reload refuses a change */
};

typedef int (*nq_config_key_fn)(const struct nq_config_key *key, void *userdata);

/* Calls fn for every key, parents before children; stops at fn's first
 * non-zero result and returns it. */
int nq_config_foreach_key(nq_config_key_fn fn, void *userdata);

#endif
