/* SPDX-License-Identifier: MIT */
/*
 * The key tables of /etc/notifyq.yaml and the checks that span keys. One
 * table per YAML mapping; walk.c turns a document into a struct nq_config with
 * them, and they are also what nq_config_foreach_key lists, so the shipped
 * etc/notifyq.yaml and notifyq.yaml.5 are tested against this file.
 *
 * Changing a key: its row here, then etc/notifyq.yaml and man/notifyq.yaml.5
 * (test_config fails until both mention it).
 */
/* <>, not "": next to this file, "config.h" is config/config.h. */
#include <config.h>

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/cleanup.h"
#include "common/phone.h"
#include "config/config.h"
#include "config/internal.h"

#define SEC 1000ull
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

#define ROWS(a) .rows = (a), .n_rows = NQ_ELEMENTSOF(a)

_Static_assert(sizeof(enum nq_handler_kind) == sizeof(int), "CFG_ENUM stores an int");
_Static_assert(sizeof(enum nq_backoff_type) == sizeof(int), "CFG_ENUM stores an int");
_Static_assert(sizeof(enum nq_provider_kind) == sizeof(int), "CFG_ENUM stores an int");
_Static_assert(sizeof(enum nq_smtp_tls) == sizeof(int), "CFG_ENUM stores an int");
_Static_assert(sizeof(enum nq_apns_env) == sizeof(int), "CFG_ENUM stores an int");
_Static_assert(sizeof(enum nq_recipients) == sizeof(int), "CFG_ENUM stores an int");

/* In enum order: nq_handler_name indexes it. */
static const struct cfg_enum handler_enums[] = {
    { "noop", NQ_HANDLER_NOOP },           { "file", NQ_HANDLER_FILE },
    { "email", NQ_HANDLER_EMAIL },         { "sms", NQ_HANDLER_SMS },
    { "push", NQ_HANDLER_PUSH },           { "inapp", NQ_HANDLER_INAPP },
    { "webhook", NQ_HANDLER_WEBHOOK },     { "exec", NQ_HANDLER_EXEC },
    { "export", NQ_HANDLER_EXPORT },       { "cleanup", NQ_HANDLER_CLEANUP },
    { "broadcast", NQ_HANDLER_BROADCAST }, { NULL, 0 },
};

/* The names common/log.c's nq_log_priority_from_name accepts. */
static const struct cfg_enum log_level_enums[] = {
    { "debug", LOG_DEBUG },     { "info", LOG_INFO }, { "notice", LOG_NOTICE },
    { "warning", LOG_WARNING }, { "err", LOG_ERR },   { "error", LOG_ERR },
    { "crit", LOG_CRIT },       { NULL, 0 },
};

static const struct cfg_enum backoff_enums[] = {
    { "fixed", NQ_BACKOFF_FIXED },
    { "exponential", NQ_BACKOFF_EXPONENTIAL },
    { NULL, 0 },
};

static const struct cfg_enum provider_enums[] = {
    { "file", NQ_PROVIDER_FILE },
    { "smtp", NQ_PROVIDER_SMTP },
    /* sms */
    { "twilio", NQ_PROVIDER_TWILIO },
    { "vonage", NQ_PROVIDER_VONAGE },
    { "http", NQ_PROVIDER_HTTP },
    /* email APIs */
    { "sendgrid", NQ_PROVIDER_SENDGRID },
    { "resend", NQ_PROVIDER_RESEND },
    { "mailgun", NQ_PROVIDER_MAILGUN },
    { "postmark", NQ_PROVIDER_POSTMARK },
    { "ses", NQ_PROVIDER_SES },
    { "fcm", NQ_PROVIDER_FCM },
    { "apns", NQ_PROVIDER_APNS },
    { NULL, 0 },
};

static const struct cfg_enum smtp_tls_enums[] = {
    { "starttls", NQ_SMTP_TLS_STARTTLS },
    { "implicit", NQ_SMTP_TLS_IMPLICIT },
    { "none", NQ_SMTP_TLS_NONE },
    { NULL, 0 },
};

static const struct cfg_enum apns_env_enums[] = {
    { "production", NQ_APNS_ENV_PRODUCTION },
    { "sandbox", NQ_APNS_ENV_SANDBOX },
    { NULL, 0 },
};

static const struct cfg_enum bool_enums[] = {
    { "true", 1 },
    { "false", 2 },
    { NULL, 0 },
};

/* ---- value checks ---- */

static const char *check_socket_path(const char *s)
{
    if (strlen(s) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
        return "must be shorter than 108 bytes (a unix socket path)";
    return NULL;
}

/* HOST:PORT or [V6]:PORT, as the http child binds it. */
static const char *check_listen(const char *s)
{
    const char *colon = strrchr(s, ':'), *p;
    unsigned long port = 0;

    if (!colon || colon == s || (s[0] == '[' && colon[-1] != ']') ||
        (s[0] != '[' && memchr(s, ':', (size_t) (colon - s))))
        return "must be HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080";
    for (p = colon + 1; *p >= '0' && *p <= '9' && port <= 65535; p++)
        port = port * 10 + (unsigned long) (*p - '0');
    if (p == colon + 1 || *p || port == 0 || port > 65535)
        return "port must be 1..65535";
    return NULL;
}

static const char *check_sentinel_node(const char *s)
{
    return check_listen(s) ? "must be HOST:PORT of a sentinel, e.g. 10.0.0.5:26379 or "
                             "[::1]:26379"
                           : NULL;
}

static const char *check_bullmq_name(const char *s)
{
    return strchr(s, ':') ? "must not contain ':' (BullMQ's key separator)" : NULL;
}

static const struct cfg_seen *seen_of(const struct cfg_table *t, const struct cfg_seen *seen,
                                      const char *key)
{
    for (size_t i = 0; i < t->n_rows; i++) {
        if (strcmp(t->rows[i].key, key) == 0)
            return &seen[i];
    }
    abort(); /* a finish hook named a key its table lacks */
}

/* ---- queues ---- */

static const struct cfg_row backoff_rows[] = {
    { "type", CFG_ENUM, .offset = offsetof(struct nq_backoff_cfg, type), .def = "exponential",
      .enums = backoff_enums },
    { "delay", CFG_DURATION, .offset = offsetof(struct nq_backoff_cfg, delay_ms), .min = 0,
      .max = 7 * DAY, .def = "0" },
    { "max", CFG_DURATION, .offset = offsetof(struct nq_backoff_cfg, max_ms), .min = 0,
      .max = 30 * DAY, .def = "0" },
    { "jitter", CFG_FLOAT, .offset = offsetof(struct nq_backoff_cfg, jitter), .fmin = 0, .fmax = 1,
      .def = "0" },
};
static const struct cfg_table backoff_table = { ROWS(backoff_rows) };

static int finish_rate_limit(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    const struct nq_rate_limit_cfg *rl = base;

    (void) seen;
    if (rl->max > 0 && rl->duration_ms == 0)
        return cfg_fail_key(c, node, "duration", "required when max is set");
    return 0;
}

static const struct cfg_row rate_limit_rows[] = {
    { "max", CFG_UINT, .offset = offsetof(struct nq_rate_limit_cfg, max), .min = 0, .max = 1000000,
      .def = "0" },
    { "duration", CFG_DURATION, .offset = offsetof(struct nq_rate_limit_cfg, duration_ms), .min = 1,
      .max = DAY },
};
static const struct cfg_table rate_limit_table = { ROWS(rate_limit_rows),
                                                   .finish = finish_rate_limit };

static const struct cfg_row keep_rows[] = {
    { "count", CFG_UINT, .offset = offsetof(struct nq_keep_cfg, count), .min = 0,
      .max = 1000000000 },
    { "age", CFG_DURATION, .offset = offsetof(struct nq_keep_cfg, age_ms), .min = SEC,
      .max = 3650 * DAY },
};

static int finish_keep(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node);

static const struct cfg_table keep_table = { ROWS(keep_rows), .finish = finish_keep };

/* A mapping naming neither count nor age keeps everything, as `true`. */
static int finish_keep(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    struct nq_keep_cfg *k = base;

    (void) c, (void) node;
    k->keep_all =
        !seen_of(&keep_table, seen, "count")->key && !seen_of(&keep_table, seen, "age")->key;
    return 0;
}

static const struct cfg_row retention_rows[] = {
    { "completed", CFG_KEEP, .offset = offsetof(struct nq_retention_cfg, completed), .def = "true",
      .sub = &keep_table },
    { "failed", CFG_KEEP, .offset = offsetof(struct nq_retention_cfg, failed), .def = "true",
      .sub = &keep_table },
};
static const struct cfg_table retention_table = { ROWS(retention_rows) };

/* ---- provider ---- */

/* HOST[:PORT] after a URL's scheme (a bracketed IPv6 host allowed): NULL,
 * or what is wrong with it. The callers refused user, path and spaces. */
static const char *authority_problem(const char *host)
{
    const char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':'), *p;
    unsigned long port = 0;

    if (colon && host[0] == '[')
        colon++;
    if ((colon ? colon : host + strlen(host)) == host)
        return "names no host";
    if (!colon)
        return NULL;
    for (p = colon + 1; *p >= '0' && *p <= '9' && port <= 65535; p++)
        port = port * 10 + (unsigned long) (*p - '0');
    return p == colon + 1 || *p || port == 0 || port > 65535 ? "port must be 1..65535" : NULL;
}

/* smtp://HOST[:PORT] or smtps://HOST[:PORT], nothing else (no user info:
 * credentials have their own keys, and a URL would show in messages). */
static const char *check_smtp_url(const char *s)
{
    size_t scheme = strncasecmp(s, "smtp://", 7) == 0    ? 7
                    : strncasecmp(s, "smtps://", 8) == 0 ? 8
                                                         : 0;
    const char *host = s + scheme;

    if (!scheme)
        return "must be smtp://HOST:PORT or smtps://HOST:PORT";
    if (strpbrk(host, " \t\r\n@/?#"))
        return "must be smtp://HOST:PORT or smtps://HOST:PORT (no user, path or spaces)";
    return authority_problem(host);
}

/* The sender, one line. Email providers take "addr" or "Name <addr>"
 * (email_from_problem; the email handler parses it fully at start), SMS
 * providers a number or a sender id (sms_from_problem). */
static const char *check_from(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return "must be one line without control characters";
    return NULL;
}

static const char *email_from_problem(const char *s)
{
    return strchr(s, '@') ? NULL : "must be an email address (addr or \"Name <addr>\")";
}

static const struct cfg_table provider_table;

/* The keys each type takes besides `type`. */
static const char *const file_keys[] = { "spool_dir", NULL };
static const char *const smtp_keys[] = { "url",     "tls",    "username", "password", "from",
                                         "ca_file", "verify", "timeout",  NULL };
/* sms (providers/sms.h) */
static const char *const twilio_keys[] = {
    "account_sid", "auth_token", "from",           "messaging_service_sid", "base_url", "timeout",
    "ca_file",     "verify",     "default_region", "max_segments",          NULL
};
static const char *const vonage_keys[] = { "api_key",      "api_secret", "from",   "base_url",
                                           "timeout",      "ca_file",    "verify", "default_region",
                                           "max_segments", NULL };
static const char *const http_keys[] = { "url",    "headers",        "body_template",
                                         "from",   "timeout",        "ca_file",
                                         "verify", "default_region", "max_segments",
                                         NULL };
/* email APIs */
#define HTTP_KEYS "base_url", "timeout", "ca_file", "verify", "from"
static const char *const sendgrid_keys[] = { HTTP_KEYS, "api_key", NULL };
static const char *const resend_keys[] = { HTTP_KEYS, "api_key", NULL };
static const char *const mailgun_keys[] = { HTTP_KEYS, "api_key", "domain", "region", NULL };
static const char *const postmark_keys[] = { HTTP_KEYS, "server_token", "message_stream", NULL };
static const char *const ses_keys[] = { HTTP_KEYS,           "region",        "access_key_id",
                                        "secret_access_key", "session_token", NULL };
#undef HTTP_KEYS
/* push (providers/fcm.h, providers/apns.h) */
static const char *const fcm_keys[] = { "service_account", "project_id", "base_url", "token_url",
                                        "timeout",         "ca_file",    "verify",   NULL };
static const char *const apns_keys[] = { "key",      "key_id",  "team_id", "topic",  "environment",
                                         "base_url", "timeout", "ca_file", "verify", NULL };

struct provider_type {
    enum nq_provider_kind kind;
    const char *name;
    const char *const *keys;
};

static const struct provider_type provider_types[] = {
    { NQ_PROVIDER_FILE, "file", file_keys },
    { NQ_PROVIDER_SMTP, "smtp", smtp_keys },
    /* sms */
    { NQ_PROVIDER_TWILIO, "twilio", twilio_keys },
    { NQ_PROVIDER_VONAGE, "vonage", vonage_keys },
    { NQ_PROVIDER_HTTP, "http", http_keys },
    /* email APIs */
    { NQ_PROVIDER_SENDGRID, "sendgrid", sendgrid_keys },
    { NQ_PROVIDER_RESEND, "resend", resend_keys },
    { NQ_PROVIDER_MAILGUN, "mailgun", mailgun_keys },
    { NQ_PROVIDER_POSTMARK, "postmark", postmark_keys },
    { NQ_PROVIDER_SES, "ses", ses_keys },
    /* push */
    { NQ_PROVIDER_FCM, "fcm", fcm_keys },
    { NQ_PROVIDER_APNS, "apns", apns_keys },
};

static const struct provider_type *provider_type_of(enum nq_provider_kind kind)
{
    for (size_t i = 0; i < NQ_ELEMENTSOF(provider_types); i++)
        if (provider_types[i].kind == kind)
            return &provider_types[i];
    return &provider_types[0];
}

static bool key_in(const char *const *keys, const char *key)
{
    for (; *keys; keys++)
        if (strcmp(*keys, key) == 0)
            return true;
    return false;
}

/* KEY_file of a secret KEY, as the file spells it. */
static const char *twin_name(const char *key)
{
    static const char *const twins[] = { "password_file", "auth_token_file", "api_key_file",
                                         "api_secret_file" };

    for (size_t i = 0; i < NQ_ELEMENTSOF(twins); i++)
        if (strncmp(twins[i], key, strlen(key)) == 0 &&
            strcmp(twins[i] + strlen(key), "_file") == 0)
            return twins[i];
    return key;
}

/* `type` selects the block of keys: one of another type is an error at
 * that key, as an unknown key is. */
static int provider_keys_check(struct cfg_ctx *c, const struct nq_provider_cfg *p,
                               const struct cfg_seen *seen)
{
    const char *const *keys = provider_type_of(p->kind)->keys;
    const char *type = provider_type_of(p->kind)->name;

    for (size_t i = 0; i < provider_table.n_rows; i++) {
        const char *key = provider_table.rows[i].key;
        char list[320] = "";

        if (!seen[i].key || strcmp(key, "type") == 0 || key_in(keys, key))
            continue;
        for (const char *const *k = keys; *k; k++)
            (void) snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                            k == keys ? "" : ", ", *k);
        return cfg_fail_key(c, seen[i].key, seen[i].twin ? twin_name(key) : key,
                            "not a key of provider type %s (its keys: type, %s)", type, list);
    }
    return 0;
}

/* ---- sms providers ---- */

static const char *check_http_url(const char *s);
static const char *check_base_url(const char *s);

/* A value that goes into a URL path as it is. */
static const char *check_path_safe(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            return "must be letters and digits (as the provider shows it)";
    return NULL;
}

/* An HTTP field name (RFC 9110 token). */
static const char *check_header_name(const char *s)
{
    if (!*s || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                         "!#$%&'*+-.^_`|~") != strlen(s))
        return "a header name must be letters, digits and !#$%&'*+-.^_`|~";
    return NULL;
}

static const char *check_region(const char *s)
{
    return nq_phone_region_known(s) ? NULL
                                    : "not a region of the table in notifyq.yaml(5) (an upper-case "
                                      "ISO 3166 code such as US, GB, DE)";
}

/* A number in international form or a sender id (1..11 letters, digits,
 * spaces, at least one letter), as the sms handler's data.from. */
static const char *sms_from_problem(const char *s)
{
    char e164[NQ_PHONE_E164_SIZE];
    const char *why;
    size_t n = strlen(s);
    bool letter = false;

    if (s[0] == '+' || (s[0] == '0' && s[1] == '0'))
        return nq_phone_e164(s, NULL, e164, sizeof(e164), &why) == 0 ? NULL : why;
    for (const char *p = s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
            letter = true;
        else if (!(*p >= '0' && *p <= '9') && *p != ' ')
            n = 0;
    }
    return n >= 1 && n <= 11 && letter
               ? NULL
               : "must be a number in international form (+...) or a sender id of 1 to 11 "
                 "letters, digits and spaces";
}

static int sms_required(struct cfg_ctx *c, int node, const char *type, const char *key,
                        const void *value)
{
    return value ? 0 : cfg_fail_key(c, node, key, "required by provider type %s", type);
}

static int finish_sms(struct cfg_ctx *c, struct nq_provider_cfg *p, const struct cfg_seen *seen,
                      int node)
{
    const struct cfg_seen *from = seen_of(&provider_table, seen, "from");
    const struct cfg_seen *msid = seen_of(&provider_table, seen, "messaging_service_sid");
    const struct cfg_seen *url = seen_of(&provider_table, seen, "url");
    const struct cfg_seen *ca = seen_of(&provider_table, seen, "ca_file");
    const char *type = provider_type_of(p->kind)->name, *problem;
    int r = 0;

    if (p->from && (problem = sms_from_problem(p->from)))
        return cfg_fail_key(c, from->val, "from", "%s", problem);
    switch (p->kind) {
    case NQ_PROVIDER_TWILIO:
        r = sms_required(c, node, type, "account_sid", p->account_sid);
        if (r >= 0)
            r = sms_required(c, node, type, "auth_token_file", p->auth_token);
        if (r >= 0 && !p->from && !p->messaging_service_sid)
            r = cfg_fail_key(c, node, "from",
                             "required by provider type twilio (or messaging_service_sid)");
        if (r >= 0 && p->from && p->messaging_service_sid)
            r = cfg_fail_key(c, msid->key, "messaging_service_sid",
                             "given with from: give one of them");
        break;
    case NQ_PROVIDER_VONAGE:
        r = sms_required(c, node, type, "api_key", p->api_key);
        if (r >= 0)
            r = sms_required(c, node, type, "api_secret_file", p->api_secret);
        if (r >= 0)
            r = sms_required(c, node, type, "from", p->from);
        break;
    default:
        r = sms_required(c, node, type, "url", p->url);
        if (r >= 0 && (problem = check_http_url(p->url)))
            r = cfg_fail_key(c, url->val, "url", "%s", problem);
        if (r >= 0)
            r = sms_required(c, node, type, "body_template", p->body_template);
        break;
    }
    if (r >= 0 && p->ca_file && access(p->ca_file, R_OK) < 0)
        r = cfg_fail_key(c, ca->val, "ca_file", "cannot read %s: %s", p->ca_file, strerror(errno));
    if (!p->verify)
        p->verify = 1;
    if (!p->timeout_ms)
        p->timeout_ms = 30 * SEC;
    return r;
}

static int finish_smtp(struct cfg_ctx *c, struct nq_provider_cfg *p, const struct cfg_seen *seen,
                       int node)
{
    const struct cfg_seen *tls = seen_of(&provider_table, seen, "tls");
    const struct cfg_seen *pw = seen_of(&provider_table, seen, "password");
    const struct cfg_seen *user = seen_of(&provider_table, seen, "username");
    const struct cfg_seen *ca = seen_of(&provider_table, seen, "ca_file");
    bool smtps;

    const struct cfg_seen *url = seen_of(&provider_table, seen, "url");
    const struct cfg_seen *from = seen_of(&provider_table, seen, "from");
    const char *problem;

    if (!p->url)
        return cfg_fail_key(c, node, "url", "required by provider type smtp");
    if ((problem = check_smtp_url(p->url)))
        return cfg_fail_key(c, url->val, "url", "%s", problem);
    if (p->from && (problem = email_from_problem(p->from)))
        return cfg_fail_key(c, from->val, "from", "%s", problem);
    smtps = strncasecmp(p->url, "smtps://", 8) == 0;
    if (p->tls == NQ_SMTP_TLS_UNSET)
        p->tls = smtps ? NQ_SMTP_TLS_IMPLICIT : NQ_SMTP_TLS_STARTTLS;
    if (smtps && p->tls != NQ_SMTP_TLS_IMPLICIT)
        return cfg_fail_key(c, tls->val, "tls", "an smtps:// URL is implicit TLS");
    if (!smtps && p->tls == NQ_SMTP_TLS_IMPLICIT)
        return cfg_fail_key(c, tls->val, "tls", "implicit TLS needs an smtps:// URL");
    if (user->key && !pw->key)
        return cfg_fail_key(c, user->key, "password_file", "required with username");
    if (pw->key && !user->key)
        return cfg_fail_key(c, pw->key, pw->twin ? "password_file" : "password",
                            "given without username");
    if (pw->key && p->tls == NQ_SMTP_TLS_NONE)
        return cfg_fail_key(c, tls->val ? tls->val : pw->key, "tls",
                            "none would send the password in clear; use starttls or implicit");
    if (p->ca_file && access(p->ca_file, R_OK) < 0)
        return cfg_fail_key(c, ca->val, "ca_file", "cannot read %s: %s", p->ca_file,
                            strerror(errno));
    if (!p->verify)
        p->verify = 1;
    if (!p->timeout_ms)
        p->timeout_ms = 30 * SEC;
    return 0;
}

/* ---- email APIs ---- */

/* http(s)://HOST[:PORT] and nothing more: the provider appends its path. */
static const char *check_base_url(const char *s)
{
    size_t scheme = strncasecmp(s, "http://", 7) == 0    ? 7
                    : strncasecmp(s, "https://", 8) == 0 ? 8
                                                         : 0;
    const char *host = s + scheme;

    if (!scheme)
        return "must be http://HOST[:PORT] or https://HOST[:PORT]";
    if (strpbrk(host, " \t\r\n@/?#"))
        return "must be scheme, host and port only (no user, path or query: the provider "
               "appends its own path)";
    return authority_problem(host);
}

/* An AWS region name: eu-west-1, us-gov-west-1. */
static bool aws_region_ok(const char *s)
{
    return *s && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(s) && s[0] != '-';
}

static int default_base_url(struct nq_provider_cfg *p)
{
    const char *fixed = NULL;

    if (p->base_url)
        return 0;
    switch (p->kind) {
    case NQ_PROVIDER_SENDGRID:
        fixed = "https://api.sendgrid.com";
        break;
    case NQ_PROVIDER_RESEND:
        fixed = "https://api.resend.com";
        break;
    case NQ_PROVIDER_MAILGUN:
        fixed =
            strcmp(p->region, "eu") == 0 ? "https://api.eu.mailgun.net" : "https://api.mailgun.net";
        break;
    case NQ_PROVIDER_POSTMARK:
        fixed = "https://api.postmarkapp.com";
        break;
    case NQ_PROVIDER_SES:
        return asprintf(&p->base_url, "https://email.%s.amazonaws.com", p->region) < 0
                   ? (p->base_url = NULL, -ENOMEM)
                   : 0;
    default:
        return 0;
    }
    p->base_url = strdup(fixed);
    return p->base_url ? 0 : -ENOMEM;
}

/* The keys an email API needs, its region, its default base URL. */
static int finish_emailapi(struct cfg_ctx *c, struct nq_provider_cfg *p,
                           const struct cfg_seen *seen, int node)
{
    const struct cfg_seen *region = seen_of(&provider_table, seen, "region");
    const struct cfg_seen *ca = seen_of(&provider_table, seen, "ca_file");
    const char *type = provider_type_of(p->kind)->name;

    if ((p->kind == NQ_PROVIDER_SENDGRID || p->kind == NQ_PROVIDER_RESEND ||
         p->kind == NQ_PROVIDER_MAILGUN) &&
        !p->api_key)
        return cfg_fail_key(c, node, "api_key_file", "required by provider type %s", type);
    if (p->kind == NQ_PROVIDER_POSTMARK && !p->server_token)
        return cfg_fail_key(c, node, "server_token_file", "required by provider type postmark");
    if (p->kind == NQ_PROVIDER_MAILGUN) {
        if (!p->domain)
            return cfg_fail_key(c, node, "domain", "required by provider type mailgun");
        if (p->region && strcmp(p->region, "us") != 0 && strcmp(p->region, "eu") != 0)
            return cfg_fail_key(c, region->val, "region", "must be us or eu");
        if (!p->region && !(p->region = strdup("us")))
            return cfg_fail(c, node, "out of memory");
    }
    if (p->kind == NQ_PROVIDER_SES) {
        if (!p->region)
            return cfg_fail_key(c, node, "region", "required by provider type ses");
        if (!aws_region_ok(p->region))
            return cfg_fail_key(c, region->val, "region", "must be an AWS region, e.g. eu-west-1");
        if (!p->access_key_id)
            return cfg_fail_key(c, node, "access_key_id", "required by provider type ses");
        if (!p->secret_access_key)
            return cfg_fail_key(c, node, "secret_access_key_file", "required by provider type ses");
    }
    if (p->ca_file && access(p->ca_file, R_OK) < 0)
        return cfg_fail_key(c, ca->val, "ca_file", "cannot read %s: %s", p->ca_file,
                            strerror(errno));
    if (default_base_url(p) < 0)
        return cfg_fail(c, node, "out of memory");
    if (!p->verify)
        p->verify = 1;
    if (!p->timeout_ms)
        p->timeout_ms = 30 * SEC;
    return 0;
}

static bool is_emailapi(enum nq_provider_kind kind)
{
    return kind == NQ_PROVIDER_SENDGRID || kind == NQ_PROVIDER_RESEND ||
           kind == NQ_PROVIDER_MAILGUN || kind == NQ_PROVIDER_POSTMARK || kind == NQ_PROVIDER_SES;
}

static const char *check_token_url(const char *s)
{
    size_t scheme = strncasecmp(s, "http://", 7) == 0    ? 7
                    : strncasecmp(s, "https://", 8) == 0 ? 8
                                                         : 0;

    if (!scheme || !s[scheme] || s[scheme] == '/')
        return "must be an http:// or https:// URL";
    return strpbrk(s, " \t\r\n") ? "must not contain spaces or control characters" : NULL;
}

/* Ids, bundle ids and project ids become URL paths and header values. */
static const char *check_push_id(const char *s)
{
    if (!*s)
        return "must not be empty";
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
                   strlen(s)
               ? "must hold only letters, digits, '.', '-' and '_'"
               : NULL;
}

static int secret_key_fail(struct cfg_ctx *c, const struct cfg_seen *s, const char *key,
                           const char *fmt, const char *what)
{
    char twin[64];

    (void) snprintf(twin, sizeof(twin), "%s_file", key);
    return cfg_fail_key(c, s->val ? s->val : s->key, s->twin ? twin : key, fmt, what);
}

static int finish_tls_peer(struct cfg_ctx *c, struct nq_provider_cfg *p,
                           const struct cfg_seen *seen)
{
    const struct cfg_seen *ca = seen_of(&provider_table, seen, "ca_file");

    if (p->ca_file && access(p->ca_file, R_OK) < 0)
        return cfg_fail_key(c, ca->val, "ca_file", "cannot read %s: %s", p->ca_file,
                            strerror(errno));
    if (!p->verify)
        p->verify = 1;
    if (!p->timeout_ms)
        p->timeout_ms = 30 * SEC;
    return 0;
}

/* ---- push providers: fcm, apns ---- */

static int set_default(struct cfg_ctx *c, char **field, const char *value)
{
    if (*field)
        return 0;
    *field = strdup(value);
    return *field ? 0 : cfg_oom(c);
}

/* The service account's JSON: the fields the OAuth2 assertion needs, and
 * a private key OpenSSL reads as RSA (never quoted in messages). */
static const char *service_account_problem(const char *text, json_t **ret)
{
    json_t *o = json_loads(text, 0, NULL);
    const char *pem, *type;
    EVP_PKEY *k = NULL;
    BIO *b;

    *ret = o;
    if (!json_is_object(o))
        return "is not a JSON object (the service account's key file from the Firebase console)";
    type = json_string_value(json_object_get(o, "type"));
    if (type && strcmp(type, "service_account") != 0)
        return "is not a service account's key file (its type is not service_account)";
    if (!json_is_string(json_object_get(o, "client_email")))
        return "lacks client_email";
    if (!json_is_string(json_object_get(o, "private_key")))
        return "lacks private_key";
    pem = json_string_value(json_object_get(o, "private_key"));
    b = BIO_new_mem_buf(pem, -1);
    if (b)
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k || !EVP_PKEY_is_a(k, "RSA")) {
        EVP_PKEY_free(k);
        return "has a private_key that is not an RSA key in PEM";
    }
    EVP_PKEY_free(k);
    return NULL;
}

static int finish_fcm(struct cfg_ctx *c, struct nq_provider_cfg *p, const struct cfg_seen *seen,
                      int node)
{
    const struct cfg_seen *sa = seen_of(&provider_table, seen, "service_account");
    const char *why, *v;
    json_t *o = NULL;
    int r = 0;

    if (!p->service_account)
        return cfg_fail_key(c, node, "service_account_file", "required by provider type fcm");
    why = service_account_problem(p->service_account, &o);
    if (why)
        r = secret_key_fail(c, sa, "service_account", "the service account %s", why);
    if (r >= 0 && !p->project_id) {
        v = json_string_value(json_object_get(o, "project_id"));
        if (!v || check_push_id(v))
            r = cfg_fail_key(c, node, "project_id",
                             "required: the service account names no usable project_id");
        else
            r = set_default(c, &p->project_id, v);
    }
    if (r >= 0 && !p->token_url) {
        v = json_string_value(json_object_get(o, "token_uri"));
        r = set_default(c, &p->token_url,
                        v && !check_token_url(v) ? v : "https://oauth2.googleapis.com/token");
    }
    json_decref(o);
    if (r >= 0)
        r = set_default(c, &p->base_url, "https://fcm.googleapis.com");
    return r < 0 ? r : finish_tls_peer(c, p, seen);
}

static int finish_apns(struct cfg_ctx *c, struct nq_provider_cfg *p, const struct cfg_seen *seen,
                       int node)
{
    static const char *const required[] = { "key_id", "team_id", "topic" };
    const struct cfg_seen *key = seen_of(&provider_table, seen, "key");
    char group[64] = "";
    EVP_PKEY *k = NULL;
    BIO *b;
    int r;

    if (!p->key)
        return cfg_fail_key(c, node, "key_file", "required by provider type apns");
    for (size_t i = 0; i < NQ_ELEMENTSOF(required); i++)
        if (!seen_of(&provider_table, seen, required[i])->key)
            return cfg_fail_key(c, node, required[i], "required by provider type apns");
    b = BIO_new_mem_buf(p->key, -1);
    if (b)
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (k && EVP_PKEY_is_a(k, "EC"))
        (void) EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                              NULL);
    EVP_PKEY_free(k);
    if (strcmp(group, "prime256v1") != 0)
        return secret_key_fail(c, key, "key", "%s",
                               "is not an EC P-256 private key in PEM (the .p8 file from Apple)");
    if (!p->environment)
        p->environment = NQ_APNS_ENV_PRODUCTION;
    r = set_default(c, &p->base_url,
                    p->environment == NQ_APNS_ENV_SANDBOX ? "https://api.sandbox.push.apple.com"
                                                          : "https://api.push.apple.com");
    return r < 0 ? r : finish_tls_peer(c, p, seen);
}

static int finish_provider(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    struct nq_provider_cfg *p = base;
    int r;

    if (!seen_of(&provider_table, seen, "type")->key)
        return 0; /* absent: the queue's checks pick the default */
    r = provider_keys_check(c, p, seen);
    if (r >= 0 && p->kind == NQ_PROVIDER_SMTP)
        r = finish_smtp(c, p, seen, node);
    if (r >= 0 && (p->kind == NQ_PROVIDER_TWILIO || p->kind == NQ_PROVIDER_VONAGE ||
                   p->kind == NQ_PROVIDER_HTTP))
        r = finish_sms(c, p, seen, node);
    if (r >= 0 && is_emailapi(p->kind))
        r = finish_emailapi(c, p, seen, node);
    if (r >= 0 && p->kind == NQ_PROVIDER_FCM)
        r = finish_fcm(c, p, seen, node);
    if (r >= 0 && p->kind == NQ_PROVIDER_APNS)
        r = finish_apns(c, p, seen, node);
    return r;
}

#define P(f) .offset = offsetof(struct nq_provider_cfg, f)
static const struct cfg_row provider_rows[] = {
    { "type", CFG_ENUM, CFG_REQUIRED, P(kind), .enums = provider_enums },
    { "spool_dir", CFG_PATH, P(spool_dir) },
    { "url", CFG_STRING, P(url) }, /* smtp: smtp(s)://; http: http(s):// (finish_*) */
    { "tls", CFG_ENUM, P(tls), .enums = smtp_tls_enums },
    { "username", CFG_STRING, P(username) },
    { "password", CFG_SECRET, P(password) },
    { "from", CFG_STRING, P(from), .check = check_from },
    { "ca_file", CFG_PATH, P(ca_file) },
    { "verify", CFG_ENUM, P(verify), .def = "true", .enums = bool_enums },
    { "timeout", CFG_DURATION, P(timeout_ms), .min = SEC, .max = 10 * MINUTE, .def = "30s" },
    /* sms: twilio, vonage, http */
    { "base_url", CFG_STRING, P(base_url), .check = check_base_url },
    { "account_sid", CFG_STRING, P(account_sid), .check = check_path_safe },
    { "auth_token", CFG_SECRET, P(auth_token) },
    { "messaging_service_sid", CFG_STRING, P(messaging_service_sid), .check = check_path_safe },
    { "api_key", CFG_SECRET, P(api_key) },
    { "api_secret", CFG_SECRET, P(api_secret) },
    { "headers", CFG_STRING_MAP, P(headers),
      .count_offset = offsetof(struct nq_provider_cfg, n_headers), .check = check_header_name },
    { "body_template", CFG_STRING, P(body_template) },
    { "default_region", CFG_STRING, P(default_region), .check = check_region },
    { "max_segments", CFG_UINT, P(max_segments), .min = 1, .max = 255 },
    /* email APIs */
    { "domain", CFG_STRING, P(domain) },
    { "region", CFG_STRING, P(region) },
    { "server_token", CFG_SECRET, P(server_token) },
    { "message_stream", CFG_STRING, P(message_stream) },
    { "access_key_id", CFG_STRING, P(access_key_id) },
    { "secret_access_key", CFG_SECRET, P(secret_access_key) },
    { "session_token", CFG_SECRET, P(session_token) },
    /* push: fcm, apns */
    { "token_url", CFG_STRING, P(token_url), .check = check_token_url },
    { "service_account", CFG_SECRET, P(service_account) },
    { "project_id", CFG_STRING, P(project_id), .check = check_push_id },
    { "key", CFG_SECRET, P(key) },
    { "key_id", CFG_STRING, P(key_id), .check = check_push_id },
    { "team_id", CFG_STRING, P(team_id), .check = check_push_id },
    { "topic", CFG_STRING, P(topic), .check = check_push_id },
    { "environment", CFG_ENUM, P(environment), .enums = apns_env_enums },
};
#undef P
static const struct cfg_table provider_table = { ROWS(provider_rows), .finish = finish_provider };

/* An environment variable's name, as execve passes it and shells read it. */
static const char *check_env_name(const char *s)
{
    if (!*s ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(s) ||
        (*s >= '0' && *s <= '9'))
        return "an environment variable name must be letters, digits and '_', not starting "
               "with a digit";
    return NULL;
}

#define E(f) .offset = offsetof(struct nq_exec_cfg, f)
static const struct cfg_row exec_rows[] = {
    { "argv", CFG_STRING_LIST, CFG_REQUIRED, E(argv),
      .count_offset = offsetof(struct nq_exec_cfg, argc) },
    { "timeout", CFG_DURATION, E(timeout_ms), .min = 100, .max = DAY, .def = "30s" },
    { "cwd", CFG_PATH, E(cwd) },
    { "env", CFG_STRING_MAP, E(env), .count_offset = offsetof(struct nq_exec_cfg, n_env),
      .check = check_env_name },
};
#undef E
static const struct cfg_table exec_table = { ROWS(exec_rows) };
/* ---- webhook ---- */

static const char *check_http_url(const char *s)
{
    if (strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0)
        return "must be an http:// or https:// URL";
    if (strpbrk(s, " \t\r\n"))
        return "must not contain white space";
    return NULL;
}

static bool is_b64(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/';
}

/* The Standard Webhooks form, checked here so that -t refuses a bad one;
 * providers/webhook.c decodes it. */
static const char *whsec_problem(const char *secret)
{
    const char *p = secret + 6;
    size_t n, pad = 0, body, bytes;

    if (strncmp(secret, "whsec_", 6) != 0)
        return "must start with whsec_ (the Standard Webhooks form)";
    n = strlen(p);
    while (pad < n && pad < 3 && p[n - 1 - pad] == '=')
        pad++;
    body = n - pad;
    /* cppcheck-suppress knownConditionTrueFalse ; cppcheck 2.10 takes pad == n here */
    for (size_t i = 0; i < body; i++)
        if (!is_b64(p[i]))
            return "the part after whsec_ must be base64";
    if (pad > 2 || body % 4 == 1 || (pad && n % 4))
        return "the part after whsec_ must be base64";
    bytes = body / 4 * 3 + (body % 4 ? body % 4 - 1 : 0);
    if (bytes < 24 || bytes > 64)
        return "must decode to 24..64 bytes";
    return NULL;
}

static const struct cfg_table webhook_table;

static int finish_webhook(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    struct nq_webhook_cfg *wh = base;
    const struct cfg_seen *secret = seen_of(&webhook_table, seen, "secret");
    const struct cfg_seen *ct = seen_of(&webhook_table, seen, "connect_timeout");
    const char *problem;

    /* Absent (the walk finishes absent sections too): nothing to derive. A
     * present one has its required url. */
    if (!seen_of(&webhook_table, seen, "url")->key)
        return 0;
    /* `defaults` has no webhook (it is per queue), so nothing gave these
     * their defaults yet; 0 is below each one's minimum. */
    if (!wh->timeout_ms)
        wh->timeout_ms = 30 * SEC;
    /* Unset here, it is the default (10s, from `defaults` or below) cut to
     * the timeout; set, it must fit. */
    if (!ct->key && (!wh->connect_timeout_ms || wh->connect_timeout_ms > wh->timeout_ms))
        wh->connect_timeout_ms = wh->timeout_ms < 10 * SEC ? wh->timeout_ms : 10 * SEC;
    if (wh->secret && (problem = whsec_problem(wh->secret)))
        return cfg_fail_key(c, secret->val ? secret->val : node,
                            secret->twin ? "secret_file" : "secret", "%s", problem);
    if (wh->connect_timeout_ms > wh->timeout_ms)
        return cfg_fail_key(c, ct->val ? ct->val : node, "connect_timeout",
                            "must not exceed timeout");
    return 0;
}

#define W(f) .offset = offsetof(struct nq_webhook_cfg, f)
static const struct cfg_row webhook_rows[] = {
    { "url", CFG_STRING, CFG_REQUIRED, W(url), .check = check_http_url },
    { "secret", CFG_SECRET, CFG_REQUIRED, W(secret) },
    { "timeout", CFG_DURATION, W(timeout_ms), .min = 100, .max = 10 * MINUTE, .def = "30s" },
    { "connect_timeout", CFG_DURATION, W(connect_timeout_ms), .min = 100, .max = 5 * MINUTE,
      .def = "10s" },
};
#undef W
static const struct cfg_table webhook_table = { ROWS(webhook_rows), .finish = finish_webhook };

/* A batch is one MULTI/EXEC of that many adds: bounded by the store's batch. */
static const struct cfg_row broadcast_rows[] = {
    { "batch", CFG_UINT, .offset = offsetof(struct nq_broadcast_cfg, batch), .min = 1, .max = 1000,
      .def = "100" },
};
static const struct cfg_table broadcast_table = { ROWS(broadcast_rows) };

#define Q(f) .offset = offsetof(struct nq_queue_cfg, f)
static const struct cfg_row queue_rows[] = {
    { "handler", CFG_ENUM, CFG_REQUIRED | CFG_QUEUE_ONLY, Q(handler), .enums = handler_enums },
    { "bullmq_queue", CFG_STRING, CFG_QUEUE_ONLY, Q(bullmq_queue), .check = check_bullmq_name },
    { "processes", CFG_UINT, Q(processes), .min = 1, .max = 256, .def = "1" },
    { "concurrency", CFG_UINT, Q(concurrency), .min = 1, .max = 10000, .def = "1" },
    { "attempts", CFG_UINT, Q(attempts), .min = 1, .max = 1000000, .def = "1" },
    { "backoff", CFG_MAP, Q(backoff), .sub = &backoff_table },
    { "rate_limit", CFG_MAP, Q(rate_limit), .sub = &rate_limit_table },
    { "retention", CFG_MAP, Q(retention), .sub = &retention_table },
    { "lock_duration", CFG_DURATION, Q(lock_duration_ms), .min = 100, .max = DAY, .def = "30s" },
    { "stalled_interval", CFG_DURATION, Q(stalled_interval_ms), .min = 100, .max = DAY,
      .def = "30s" },
    { "max_stalled", CFG_UINT, Q(max_stalled), .min = 0, .max = 1000, .def = "1" },
    { "drain_timeout", CFG_DURATION, Q(drain_timeout_ms), .min = 0, .max = HOUR, .def = "30s" },
    { "min_uptime", CFG_DURATION, Q(min_uptime_ms), .min = 0, .max = HOUR, .def = "5s" },
    { "max_jobs", CFG_UINT, Q(max_jobs), .min = 0, .max = 1000000000, .def = "0" },
    { "max_rss", CFG_UINT, Q(max_rss_mib), .min = 0, .max = 1048576, .def = "0" },
    { "max_crashes", CFG_UINT, Q(max_crashes), .min = 1, .max = 1000, .def = "3" },
    { "unresponsive_after", CFG_DURATION, Q(unresponsive_after_ms), .min = 2 * SEC, .max = DAY,
      .def = "10s" },
    { "kill_after", CFG_DURATION, Q(kill_after_ms), .min = 0, .max = DAY, .def = "60s" },
    { "provider", CFG_MAP, CFG_QUEUE_ONLY, Q(provider), .sub = &provider_table },
    { "exec", CFG_MAP, CFG_QUEUE_ONLY, Q(exec), .sub = &exec_table },
    { "webhook", CFG_MAP, CFG_QUEUE_ONLY, Q(webhook), .sub = &webhook_table },
    { "broadcast", CFG_MAP, CFG_QUEUE_ONLY, Q(broadcast), .sub = &broadcast_table },
};
#undef Q
_Static_assert(NQ_ELEMENTSOF(queue_rows) <= CFG_MAX_ROWS, "raise CFG_MAX_ROWS");

static int finish_queue(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node);

static const struct cfg_table queue_table = { ROWS(queue_rows), .finish = finish_queue };

/* `defaults` is a queue without the keys that only make sense per queue. */
static const struct cfg_table defaults_table = {
    ROWS(queue_rows),
    .exclude = CFG_QUEUE_ONLY,
    .exclude_why = "only allowed in a queue, not in defaults",
};

static bool takes_provider(enum nq_handler_kind h)
{
    return h == NQ_HANDLER_EMAIL || h == NQ_HANDLER_SMS || h == NQ_HANDLER_PUSH;
}

/* Two queues fetching one BullMQ queue would race each other's handlers. */
static int check_bullmq_unique(struct cfg_ctx *c, const struct nq_queue_cfg *q,
                               const struct cfg_seen *seen, int node)
{
    const struct nq_config *cfg = c->cfg;
    const struct cfg_seen *bq = seen_of(&queue_table, seen, "bullmq_queue");

    for (const struct nq_queue_cfg *o = cfg->queues; o < q; o++) {
        if (strcmp(o->bullmq_queue, q->bullmq_queue) == 0)
            return cfg_fail_key(c, bq->val ? bq->val : node, "bullmq_queue",
                                "BullMQ queue \"%s\" is already served by queues.%s",
                                q->bullmq_queue, o->name);
    }
    return 0;
}

/* Whether the keys "<prefix>:<queue>:..." carry a hash tag: Redis Cluster
 * hashes only what is between the first '{' and the next '}', if not empty. */
static bool hash_tagged(const char *prefix, const char *queue)
{
    const char *open = strchr(prefix, '{'), *close;

    if (open) {
        close = strchr(open + 1, '}');
        if (close)
            return close > open + 1;
        /* "{" in the prefix, "}" in the queue name: the ':' between is hashed */
        close = strchr(queue, '}');
        return close != NULL;
    }
    open = strchr(queue, '{');
    close = open ? strchr(open + 1, '}') : NULL;
    return close && close > open + 1;
}

/* BullMQ's scripts touch many keys of a queue at once, which Redis Cluster
 * allows only within one hash slot. */
static int check_cluster_tag(struct cfg_ctx *c, const struct nq_queue_cfg *q,
                             const struct cfg_seen *seen, int node)
{
    const struct nq_redis_cfg *rc = &c->cfg->redis;
    const struct cfg_seen *bq = seen_of(&queue_table, seen, "bullmq_queue");
    const char *prefix = rc->prefix ? rc->prefix : "bull";

    if (!rc->cluster || hash_tagged(prefix, q->bullmq_queue))
        return 0;
    return cfg_fail_key(c, bq->val ? bq->val : node, "bullmq_queue",
                        "with redis.cluster, a queue's keys must share one hash slot: put a hash "
                        "tag in redis.prefix (\"{%s}\") or in the BullMQ queue name (\"{%s}\")",
                        prefix, q->bullmq_queue);
}

/* The node of exec.argv[0], for messages; exec if it cannot be found. */
static int argv0_node(struct cfg_ctx *c, int exec)
{
    yaml_node_t *m = yaml_document_get_node(&c->doc, exec), *k, *v;

    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        k = yaml_document_get_node(&c->doc, p->key);
        v = yaml_document_get_node(&c->doc, p->value);
        if (k->type == YAML_SCALAR_NODE && !strcmp((const char *) k->data.scalar.value, "argv") &&
            v->type == YAML_SEQUENCE_NODE &&
            v->data.sequence.items.start < v->data.sequence.items.top)
            return *v->data.sequence.items.start;
    }
    return exec;
}

/* What the exec handler will run must be there now: `notifyqd -t` says so,
 * not each job's failedReason later. Paths are absolute, so no search. */
static int check_exec(struct cfg_ctx *c, const struct nq_queue_cfg *q, const struct cfg_seen *seen,
                      int node)
{
    const struct cfg_seen *ex = seen_of(&queue_table, seen, "exec");
    const char *prog;
    struct stat st;
    int at;

    if (q->handler != NQ_HANDLER_EXEC) {
        if (ex->key)
            return cfg_fail_key(c, ex->key, "exec", "the %s handler takes no exec",
                                nq_handler_name(q->handler));
        return 0;
    }
    if (!ex->key)
        return cfg_fail_key(c, node, "exec", "required with handler exec (exec: {argv: [...]})");
    prog = q->exec.argv[0];
    at = argv0_node(c, ex->val);
    if (prog[0] != '/')
        return cfg_fail_key(c, at, "exec.argv[0]",
                            "must be an absolute path (no shell or PATH search runs it)");
    if (stat(prog, &st) < 0)
        return cfg_fail_key(c, at, "exec.argv[0]", "%s: %s", prog, strerror(errno));
    if (!S_ISREG(st.st_mode) || access(prog, X_OK) < 0)
        return cfg_fail_key(c, at, "exec.argv[0]", "%s: not an executable file", prog);
    if (q->exec.cwd && (stat(q->exec.cwd, &st) < 0 || !S_ISDIR(st.st_mode)))
        return cfg_fail_key(c, ex->val, "exec.cwd", "%s: not a directory", q->exec.cwd);
    return 0;
}

static int check_broadcast(struct cfg_ctx *c, const struct nq_queue_cfg *q,
                           const struct cfg_seen *seen)
{
    const struct cfg_seen *b = seen_of(&queue_table, seen, "broadcast");

    if (b->key && q->handler != NQ_HANDLER_BROADCAST)
        return cfg_fail_key(c, b->key, "broadcast", "the %s handler takes no broadcast",
                            nq_handler_name(q->handler));
    return 0;
}

static int finish_queue(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    struct nq_queue_cfg *q = base;
    const struct cfg_seen *provider = seen_of(&queue_table, seen, "provider");
    int r;
    const struct cfg_seen *webhook = seen_of(&queue_table, seen, "webhook");

    if (!q->bullmq_queue && !(q->bullmq_queue = strdup(q->name)))
        return cfg_oom(c);
    if (webhook->key && q->handler != NQ_HANDLER_WEBHOOK)
        return cfg_fail_key(c, webhook->key, "webhook", "only for handler: webhook");
    if (!webhook->key && q->handler == NQ_HANDLER_WEBHOOK)
        return cfg_fail_key(c, node, "webhook", "required by handler: webhook (url, secret_file)");
    if (provider->key && !takes_provider(q->handler))
        return cfg_fail_key(c, provider->key, "provider", "the %s handler takes no provider",
                            nq_handler_name(q->handler));
    if (takes_provider(q->handler) && q->provider.kind == NQ_PROVIDER_NONE)
        q->provider.kind = NQ_PROVIDER_FILE;
    if ((q->provider.kind == NQ_PROVIDER_TWILIO || q->provider.kind == NQ_PROVIDER_VONAGE ||
         q->provider.kind == NQ_PROVIDER_HTTP) &&
        q->handler != NQ_HANDLER_SMS)
        return cfg_fail_key(c, provider->val, "provider.type",
                            "%s sends text messages: only with handler: sms",
                            provider_type_of(q->provider.kind)->name);
    if ((q->provider.kind == NQ_PROVIDER_FCM || q->provider.kind == NQ_PROVIDER_APNS) &&
        q->handler != NQ_HANDLER_PUSH)
        return cfg_fail_key(c, provider->key, "provider", "type %s sends push only, not %s",
                            q->provider.kind == NQ_PROVIDER_FCM ? "fcm" : "apns",
                            nq_handler_name(q->handler));
    if (q->provider.kind == NQ_PROVIDER_FILE && !q->provider.spool_dir &&
        asprintf(&q->provider.spool_dir, "%s/spool/%s", c->cfg->state_dir, q->name) < 0) {
        q->provider.spool_dir = NULL;
        return cfg_oom(c);
    }
    r = check_exec(c, q, seen, node);
    if (r >= 0)
        r = check_broadcast(c, q, seen);
    if (r >= 0)
        r = check_cluster_tag(c, q, seen, node);
    return r < 0 ? r : check_bullmq_unique(c, q, seen, node);
}

/* Names become process titles ("worker email/1"), log fields and --set
 * paths, so they stay plain. */
static int init_queue(struct cfg_ctx *c, void *item, int key)
{
    struct nq_queue_cfg *q = item;
    const char *name = (const char *) yaml_document_get_node(&c->doc, key)->data.scalar.value;
    size_t n = strlen(name);

    if (n == 0 || n > 64 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
        return cfg_fail(c, key, "a queue name must be 1..64 letters, digits, '_' or '-'");
    if (cfg_copy(&queue_table, q, &c->cfg->defaults, sizeof(*q)) < 0)
        return cfg_oom(c);
    cfg_node_mark(c, key, &q->line, &q->column);
    return 0;
}

static const struct cfg_named queue_named = {
    .what = "queue",
    .item_size = sizeof(struct nq_queue_cfg),
    .name_offset = offsetof(struct nq_queue_cfg, name),
    .init = init_queue,
};

/* ---- tenants ---- */

static const struct cfg_row tenant_rows[] = {
    { "rate_limit", CFG_MAP, .offset = offsetof(struct nq_tenant_cfg, rate_limit),
      .sub = &rate_limit_table },
};
static const struct cfg_table tenant_table = { ROWS(tenant_rows) };

static int init_tenant(struct cfg_ctx *c, void *item, int key)
{
    (void) item;
    if (!*yaml_document_get_node(&c->doc, key)->data.scalar.value)
        return cfg_fail(c, key, "a tenant name must not be empty");
    return 0;
}

static const struct cfg_named tenant_named = {
    .what = "tenant",
    .item_size = sizeof(struct nq_tenant_cfg),
    .name_offset = offsetof(struct nq_tenant_cfg, name),
    .init = init_tenant,
};

/* ---- redis ---- */

/* A value redis.url carries moves into its field, unless the key of that
 * field was given too: then which one is meant is unclear. */
static int adopt(struct cfg_ctx *c, char **field, char **value, const struct cfg_seen *s,
                 const char *key, const char *what)
{
    if (!*value)
        return 0;
    if (s->key)
        return cfg_fail_key(c, s->key, key, "conflicts with the %s in redis.url", what);
    cfg_free_secret(*field);
    *field = *value;
    *value = NULL;
    return 0;
}

static const struct cfg_table redis_table;

#define S(f) .offset = offsetof(struct nq_sentinel_cfg, f)
static const struct cfg_row sentinel_rows[] = {
    { "master_name", CFG_STRING, S(master_name) },
    { "nodes", CFG_STRING_LIST, S(nodes), .count_offset = offsetof(struct nq_sentinel_cfg, n_nodes),
      .check = check_sentinel_node },
    { "password", CFG_SECRET, S(password) },
};
#undef S
static const struct cfg_table sentinel_table = { ROWS(sentinel_rows) };

#define T(f) .offset = offsetof(struct nq_redis_tls_cfg, f)
static const struct cfg_row redis_tls_rows[] = {
    { "ca_file", CFG_PATH, T(ca_file) },
    { "cert_file", CFG_PATH, T(cert_file) },
    { "key_file", CFG_PATH, T(key_file) },
    { "server_name", CFG_STRING, T(server_name) },
    { "verify", CFG_BOOL, T(verify), .def = "true" },
};
#undef T
static const struct cfg_table redis_tls_table = { ROWS(redis_tls_rows) };

/* Files are read when a connection is made; a file that cannot be read then
 * would fail every connection, so it is refused now. */
static int check_readable(struct cfg_ctx *c, int node, const char *key, const char *path)
{
    if (path && access(path, R_OK) < 0)
        return cfg_fail_key(c, node, key, "cannot read %s: %s", path, strerror(errno));
    return 0;
}

static int check_tls(struct cfg_ctx *c, struct nq_redis_cfg *rc, const struct cfg_seen *seen,
                     bool rediss)
{
    const struct cfg_seen *tls = seen_of(&redis_table, seen, "tls");
    struct nq_redis_tls_cfg *t = &rc->tls;
    int r;

    t->enabled = rediss || tls->key;
    if (!t->enabled)
        return 0;
    if (rc->socket)
        return cfg_fail_key(c, tls->key ? tls->key : seen_of(&redis_table, seen, "url")->val,
                            tls->key ? "tls" : "url",
                            "TLS is for a TCP connection, not a unix socket");
    if (!t->cert_file != !t->key_file)
        return cfg_fail_key(c, tls->val, t->cert_file ? "tls.key_file" : "tls.cert_file",
                            "is required with tls.%s (a client certificate needs both)",
                            t->cert_file ? "cert_file" : "key_file");
    if ((r = check_readable(c, tls->val, "tls.ca_file", t->ca_file)) < 0 ||
        (r = check_readable(c, tls->val, "tls.cert_file", t->cert_file)) < 0 ||
        (r = check_readable(c, tls->val, "tls.key_file", t->key_file)) < 0)
        return r;
    return 0;
}

/* With redis.sentinel the sentinels name the master: an address given as
 * well would be ignored, so it is refused. */
static int check_sentinel(struct cfg_ctx *c, const struct nq_sentinel_cfg *sc,
                          const struct cfg_seen *seen)
{
    const struct cfg_table *t = &redis_table;
    const struct cfg_seen *sen = seen_of(t, seen, "sentinel");

    if (!sen->key)
        return 0;
    if (!sc->master_name)
        return cfg_fail_key(c, sen->val, "sentinel.master_name", "is required");
    if (sc->n_nodes == 0)
        return cfg_fail_key(c, sen->val, "sentinel.nodes",
                            "must list at least one sentinel (HOST:PORT)");
    if (seen_of(t, seen, "socket")->key)
        return cfg_fail_key(c, seen_of(t, seen, "socket")->key, "socket",
                            "conflicts with redis.sentinel, which names the master");
    if (seen_of(t, seen, "url")->key)
        return cfg_fail_key(c, seen_of(t, seen, "url")->key, "url",
                            "conflicts with redis.sentinel, which names the master (set "
                            "username, password and db on their own)");
    return 0;
}

static int finish_redis(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    struct nq_redis_cfg *rc = base;
    const struct cfg_table *t = &redis_table;
    const struct cfg_seen *url = seen_of(t, seen, "url");
    struct cfg_redis_url u = { .db = -1 };
    const char *problem = NULL;
    int r = cfg_redis_url_parse(rc->url, &u, &problem);

    if (r == -ENOMEM)
        return cfg_oom(c);
    if (r < 0)
        return cfg_fail_key(c, url->val ? url->val : node, "url", "%s", problem);
    free(rc->host);
    rc->host = NQ_TAKE_PTR(u.host);
    rc->port = u.port;
    r = adopt(c, &rc->socket, &u.socket, seen_of(t, seen, "socket"), "socket", "unix socket");
    if (r >= 0)
        r = adopt(c, &rc->username, &u.username, seen_of(t, seen, "username"), "username",
                  "user name");
    if (r >= 0)
        r = adopt(c, &rc->password, &u.password, seen_of(t, seen, "password"),
                  seen_of(t, seen, "password")->twin ? "password_file" : "password", "password");
    if (r >= 0 && u.db >= 0) {
        const struct cfg_seen *db = seen_of(t, seen, "db");
        if (db->key)
            r = cfg_fail_key(c, db->key, "db", "conflicts with the database in redis.url");
        else
            rc->db = (uint32_t) u.db;
    }
    bool rediss = u.tls;
    cfg_redis_url_done(&u);
    if (r >= 0)
        r = check_sentinel(c, &rc->sentinel, seen);
    return r < 0 ? r : check_tls(c, rc, seen, rediss);
}

#define R(f) .offset = offsetof(struct nq_redis_cfg, f)
static const struct cfg_row redis_rows[] = {
    { "url", CFG_STRING, R(url), .def = "redis://127.0.0.1:6379" },
    { "socket", CFG_PATH, R(socket), .check = check_socket_path },
    { "prefix", CFG_STRING, R(prefix), .def = "bull" },
    { "db", CFG_UINT, R(db), .min = 0, .max = 15, .def = "0" },
    { "username", CFG_STRING, R(username) },
    { "password", CFG_SECRET, R(password) },
    { "connect_timeout", CFG_DURATION, R(connect_timeout_ms), .min = 100, .max = 5 * MINUTE,
      .def = "5s" },
    { "sentinel", CFG_MAP, R(sentinel), .sub = &sentinel_table },
    { "tls", CFG_MAP, R(tls), .sub = &redis_tls_table },
    { "cluster", CFG_BOOL, R(cluster), .def = "false" },
};
#undef R
static const struct cfg_table redis_table = { ROWS(redis_rows), .finish = finish_redis };

/* ---- postgres, control, http ---- */

static const struct cfg_enum recipients_enums[] = {
    { "plain", NQ_RECIPIENTS_PLAIN },
    { "hash", NQ_RECIPIENTS_HASH },
    { NULL, 0 },
};

static const struct cfg_table postgres_table;

static int finish_postgres(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    const struct nq_postgres_cfg *pg = base;
    const struct cfg_seen *rcp = seen_of(&postgres_table, seen, "recipients");
    bool any = false;

    for (size_t i = 0; i < postgres_table.n_rows; i++)
        any |= seen[i].key != 0;
    if (!any)
        return 0; /* absent: no delivery log */
    if (!pg->dsn)
        return cfg_fail_key(c, node, "dsn", "required (or dsn_file)");
    if (pg->recipients == NQ_RECIPIENTS_HASH && !pg->recipient_key)
        return cfg_fail_key(c, rcp->val ? rcp->val : node, "recipient_key",
                            "required (or recipient_key_file) with recipients: hash");
    return 0;
}

#define P(f) .offset = offsetof(struct nq_postgres_cfg, f)
static const struct cfg_row postgres_rows[] = {
    { "dsn", CFG_SECRET, P(dsn) },
    { "batch_size", CFG_UINT, P(batch_size), .min = 1, .max = 10000, .def = "500" },
    { "flush_interval", CFG_DURATION, P(flush_interval_ms), .min = 10, .max = 10 * SEC,
      .def = "100ms" },
    { "spool_max", CFG_UINT, P(spool_max), .min = 100, .max = 10000000, .def = "100000" },
    { "recipients", CFG_ENUM, P(recipients), .def = "plain", .enums = recipients_enums },
    { "recipient_key", CFG_SECRET, P(recipient_key) },
    { "store_bodies", CFG_BOOL, P(store_bodies), .def = "false" },
};
#undef P
static const struct cfg_table postgres_table = { ROWS(postgres_rows), .finish = finish_postgres };

/* 1 when group name exists, 0 when not, -errno when the lookup failed. */
static int group_exists(const char *name)
{
    size_t size = 16384;

    for (;;) {
        nq_autofree char *buf = malloc(size);
        struct group gr, *res = NULL;
        int r;

        if (!buf)
            return -ENOMEM;
        r = getgrnam_r(name, &gr, buf, size, &res);
        if (r == ERANGE && size < (1u << 22)) {
            size *= 2;
            continue;
        }
        /* getgrnam_r(3): some backends say "not found" with these. */
        if (r == 0 || r == ENOENT || r == ESRCH || r == EBADF || r == EPERM)
            return res != NULL;
        return -r;
    }
}

static const struct cfg_table control_table;

/* Without `group`, the packages' group notifyq is used where it exists, so
 * the shipped file works before and after the package made it. */
static int finish_control(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    struct nq_control_cfg *cc = base;
    const struct cfg_seen *g = seen_of(&control_table, seen, "group");
    const char *name = g->key ? cc->group : "notifyq";
    int r = group_exists(name);

    if (r < 0)
        return cfg_fail_key(c, g->key ? g->val : node, "group", "cannot look up group %s: %s", name,
                            strerror(-r));
    if (r == 0 && g->key)
        return cfg_fail_key(c, g->val, "group", "no such group");
    if (r > 0 && !g->key && !(cc->group = strdup(name)))
        return cfg_oom(c);
    return 0;
}

#define C(f) .offset = offsetof(struct nq_control_cfg, f)
static const struct cfg_row control_rows[] = {
    { "socket", CFG_PATH, CFG_NO_RELOAD, C(socket), .def = NQ_RUNSTATEDIR "/notifyq/control.sock",
      .check = check_socket_path },
    { "mode", CFG_MODE, CFG_NO_RELOAD, C(mode), .max = 0777, .def = "0660" },
    { "group", CFG_STRING, CFG_NO_RELOAD, C(group) },
};
#undef C
static const struct cfg_table control_table = { ROWS(control_rows), .finish = finish_control };

static const struct cfg_enum http_role_enums[] = {
    { "read", NQ_HTTP_ROLE_READ },
    { "admin", NQ_HTTP_ROLE_ADMIN },
    { NULL, 0 },
};

/* role first: a bad role is reported before an unreadable file. */
static const struct cfg_row http_token_rows[] = {
    { "role", CFG_ENUM, CFG_REQUIRED, .offset = offsetof(struct nq_http_token, role),
      .enums = http_role_enums },
    { "file", CFG_SECRET_FILE, CFG_REQUIRED, .offset = offsetof(struct nq_http_token, secret) },
};
static const struct cfg_table http_token_table = { ROWS(http_token_rows) };
static const struct cfg_named http_token_item = { .item_size = sizeof(struct nq_http_token) };

static const struct cfg_row http_tls_rows[] = {
    { "cert_file", CFG_PATH, CFG_REQUIRED, .offset = offsetof(struct nq_http_tls, cert_file) },
    { "key_file", CFG_PATH, CFG_REQUIRED, .offset = offsetof(struct nq_http_tls, key_file) },
};
static const struct cfg_table http_tls_table = { ROWS(http_tls_rows) };

static const struct cfg_row http_rate_rows[] = {
    { "max", CFG_UINT, .offset = offsetof(struct nq_rate_limit_cfg, max), .min = 0, .max = 1000000,
      .def = "100" },
    { "duration", CFG_DURATION, .offset = offsetof(struct nq_rate_limit_cfg, duration_ms), .min = 1,
      .max = DAY, .def = "1s" },
};
static const struct cfg_table http_rate_table = { ROWS(http_rate_rows) };

/* The older `token_files` grant read only: they were listed before tokens
 * had roles, so nothing in them may gain the right to change queues
 * unless the file is listed again under `tokens` with role admin. */
static int finish_http(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    struct nq_http_cfg *h = base;
    struct nq_http_token *t;

    (void) seen;
    (void) node;
    if (h->n_token_files == 0)
        return 0;
    t = realloc(h->tokens, (h->n_tokens + h->n_token_files) * sizeof(*t));
    if (!t)
        return cfg_oom(c);
    h->tokens = t;
    for (size_t i = 0; i < h->n_token_files; i++) {
        t[h->n_tokens].role = NQ_HTTP_ROLE_READ;
        t[h->n_tokens++].secret = NQ_TAKE_PTR(h->token_files[i]);
    }
    h->n_token_files = 0;
    return 0;
}

#define H(f) .offset = offsetof(struct nq_http_cfg, f)
static const struct cfg_row http_rows[] = {
    { "listen", CFG_STRING, H(listen), .def = "127.0.0.1:8080", .check = check_listen },
    { "tokens", CFG_LIST, H(tokens), .count_offset = offsetof(struct nq_http_cfg, n_tokens),
      .sub = &http_token_table, .named = &http_token_item },
    { "token_files", CFG_SECRET_FILES, H(token_files),
      .count_offset = offsetof(struct nq_http_cfg, n_token_files) },
    { "tls", CFG_MAP, H(tls), .sub = &http_tls_table },
    { "max_body", CFG_UINT, H(max_body), .min = 1024, .max = 1073741824, .def = "1048576" },
    { "rate_limit", CFG_MAP, H(rate_limit), .sub = &http_rate_table },
    { "timeout", CFG_DURATION, H(timeout_ms), .min = SEC, .max = 10 * MINUTE, .def = "30s" },
    { "metrics_auth", CFG_BOOL, H(metrics_auth), .def = "false" },
};
#undef H
static const struct cfg_table http_table = { ROWS(http_rows), .finish = finish_http };

static const struct cfg_row templates_rows[] = {
    { "dir", CFG_PATH, .offset = offsetof(struct nq_templates_cfg, dir),
      .def = NQ_SYSCONFDIR "/notifyq/templates" },
    { "strict", CFG_BOOL, .offset = offsetof(struct nq_templates_cfg, strict), .def = "false" },
};
static const struct cfg_table templates_table = { ROWS(templates_rows) };
static const struct cfg_row health_rows[] = {
    { "max_waiting", CFG_UINT, .offset = offsetof(struct nq_health_cfg, max_waiting), .min = 0,
      .max = 1000000000, .def = "10000" },
    { "max_failure_rate", CFG_FLOAT, .offset = offsetof(struct nq_health_cfg, max_failure_rate),
      .fmin = 0, .fmax = 1, .def = "0.5" },
};
static const struct cfg_table health_table = { ROWS(health_rows) };

static const struct cfg_row inapp_rows[] = {
    { "channel_prefix", CFG_STRING, .offset = offsetof(struct nq_inapp_cfg, channel_prefix),
      .def = "notifyq:inapp" },
};
static const struct cfg_table inapp_table = { ROWS(inapp_rows) };

/* ---- the top level ---- */

static int finish_top(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node)
{
    struct nq_config *cfg = base;
    const struct cfg_seen *queues = seen_of(&nq_cfg_top_table, seen, "queues");

    cfg->http.enabled = seen_of(&nq_cfg_top_table, seen, "http")->key != 0;
    if (cfg->n_queues == 0)
        return cfg_fail_key(c, queues->val ? queues->val : node, "queues",
                            "must have at least one queue");
    /* After the queues' hash tags were checked, so that a file can be made
     * ready for it. */
    if (cfg->redis.cluster)
        return cfg_fail_key(c, seen_of(&nq_cfg_top_table, seen, "redis")->val, "redis.cluster",
                            "Redis Cluster is not supported yet: use one server (redis.url) "
                            "or redis.sentinel");
    return 0;
}

/* Table order is parse order: state_dir before queues (spool_dir defaults
 * under it), defaults before queues (each queue starts as a copy). */
#define T(f) .offset = offsetof(struct nq_config, f)
static const struct cfg_row top_rows[] = {
    { "log_level", CFG_ENUM, T(log_level), .def = "info", .enums = log_level_enums },
    { "state_dir", CFG_PATH, T(state_dir), .def = NQ_LOCALSTATEDIR "/lib/notifyq" },
    { "templates", CFG_MAP, T(templates), .sub = &templates_table, .shorthand = "dir" },
    { "redis", CFG_MAP, T(redis), .sub = &redis_table },
    { "postgres", CFG_MAP, T(postgres), .sub = &postgres_table },
    { "control", CFG_MAP, T(control), .sub = &control_table },
    { "http", CFG_MAP, T(http), .sub = &http_table },
    { "health", CFG_MAP, T(health), .sub = &health_table },
    { "defaults", CFG_MAP, T(defaults), .sub = &defaults_table },
    { "queues", CFG_NAMED, CFG_REQUIRED, T(queues),
      .count_offset = offsetof(struct nq_config, n_queues), .sub = &queue_table,
      .named = &queue_named },
    { "tenants", CFG_NAMED, T(tenants), .count_offset = offsetof(struct nq_config, n_tenants),
      .sub = &tenant_table, .named = &tenant_named },
    { "inapp", CFG_MAP, T(inapp), .sub = &inapp_table },
};
#undef T

const struct cfg_table nq_cfg_top_table = { ROWS(top_rows), .finish = finish_top };

/* ---- small public helpers ---- */

const struct nq_queue_cfg *nq_config_queue(const struct nq_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_queues; i++) {
        if (strcmp(cfg->queues[i].name, name) == 0)
            return &cfg->queues[i];
    }
    return NULL;
}

const char *nq_handler_name(enum nq_handler_kind kind)
{
    if ((size_t) kind >= NQ_ELEMENTSOF(handler_enums) - 1)
        return NULL;
    return handler_enums[kind].name;
}
