/* SPDX-License-Identifier: MIT */
/*
 * resend: POST /emails (PROVIDERS.md §4).
 *
 *   POST <base_url>/emails
 *   Authorization: Bearer <api_key>
 *   Content-Type: application/json
 *   Idempotency-Key: notifyq-<64 hex>     the same on every attempt
 *
 *   {"from":"App <app@example.com>","to":[..],"cc":[..],"bcc":[..],
 *    "reply_to":"..","subject":..,"text":..,"html":..,"headers":{..},
 *    "tags":[{"name":"job_id","value":..}]}    (tag only for a job id of
 *                                               [A-Za-z0-9_-], Resend's rule)
 *
 * At most 50 recipients. Replies are classified by the error's name, the
 * status deciding only for names not in the table: see the table below.
 * A retried send carries the same Idempotency-Key, so Resend answers a
 * repeat of an accepted send with its first reply instead of sending again.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/cleanup.h"
#include "providers/emailapi.h"

#define NAME "resend"
#define TAG_MAX 256

int nq_resend_idempotency_key(const struct nq_delivery *d, const struct nq_email *e,
                              char buf[NQ_RESEND_KEY_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const char **rcpt = NULL;
    size_t n = 0;
    char ts[24];
    int ok;

    if (!ctx || nq_emailapi_recipients(e, &rcpt, &n) < 0) {
        EVP_MD_CTX_free(ctx);
        return -ENOMEM;
    }
    (void) snprintf(ts, sizeof(ts), "%" PRIu64, d->job_timestamp_ms);
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(ctx, d->queue, strlen(d->queue) + 1) &&
         EVP_DigestUpdate(ctx, d->job_id, strlen(d->job_id) + 1) &&
         EVP_DigestUpdate(ctx, ts, strlen(ts) + 1);
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(ctx, rcpt[i], strlen(rcpt[i]) + 1);
    ok = ok && EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    free(rcpt);
    if (!ok)
        return -ENOMEM;
    strcpy(buf, "notifyq-");
    for (size_t i = 0; i < 32; i++)
        (void) snprintf(buf + 8 + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static bool tag_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= TAG_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static json_t *address_list(const struct nq_mailbox *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < n; i++) {
        char *t = nq_emailapi_mailbox_text(&v[i]);

        if (!t || json_array_append_new(a, json_string(t)) < 0) {
            free(t);
            json_decref(a);
            return NULL;
        }
        free(t);
    }
    return a;
}

static bool set_text(json_t *o, const char *key, const struct nq_mailbox *mb)
{
    char *t = nq_emailapi_mailbox_text(mb);
    bool ok = t && json_object_set_new(o, key, json_string(t)) == 0;

    free(t);
    return ok;
}

static json_t *body_json(const struct nq_email *e, const struct nq_delivery *d)
{
    json_t *o = json_object();
    bool ok = o && set_text(o, "from", &e->from) &&
              json_object_set_new(o, "to", address_list(e->to, e->n_to)) == 0;

    if (ok && e->n_cc)
        ok = json_object_set_new(o, "cc", address_list(e->cc, e->n_cc)) == 0;
    if (ok && e->n_bcc)
        ok = json_object_set_new(o, "bcc", address_list(e->bcc, e->n_bcc)) == 0;
    if (ok && e->reply_to.addr)
        ok = set_text(o, "reply_to", &e->reply_to);
    ok = ok && json_object_set_new(o, "subject", json_string(e->subject ? e->subject : "")) == 0;
    if (ok && e->text)
        ok = json_object_set_new(o, "text", json_string(e->text)) == 0;
    if (ok && e->html)
        ok = json_object_set_new(o, "html", json_string(e->html)) == 0;
    if (ok && e->n_headers) {
        json_t *h = json_object();

        for (size_t i = 0; h && i < e->n_headers; i++)
            if (json_object_set_new(h, e->headers[i].name, json_string(e->headers[i].value)) < 0)
                break;
        ok = h && json_object_set_new(o, "headers", h) == 0;
    }
    if (ok && tag_ok(d->job_id))
        ok = json_object_set_new(
                 o, "tags", json_pack("[{s:s,s:s}]", "name", "job_id", "value", d->job_id)) == 0;
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int build(const void *cfg_, const void *msg, const struct nq_delivery *d, int64_t now_s,
                 struct nq_http_request *ret, struct nq_err *err)
{
    const struct nq_provider_cfg *cfg = cfg_;
    const struct nq_email *e = &((const struct nq_msg *) msg)->email;
    struct nq_http_request req = { .method = "POST" };
    nq_autofree char *auth = NULL;
    char key[NQ_RESEND_KEY_SIZE];
    size_t n = e->n_to + e->n_cc + e->n_bcc;
    json_t *body;
    int r = 0;

    (void) now_s;
    if (n > NQ_RESEND_RCPT_MAX)
        return nq_err_set(err, -EINVAL, "%zu recipients: at most %d per message", n,
                          NQ_RESEND_RCPT_MAX);
    body = body_json(e, d);
    if (!body)
        return nq_err_set(err, -ENOMEM, "out of memory");
    req.body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    req.body_len = req.body ? strlen(req.body) : 0;
    req.url = nq_emailapi_url(cfg, "/emails");
    if (!req.body || !req.url || asprintf(&auth, "Bearer %s", cfg->api_key) < 0 ||
        nq_resend_idempotency_key(d, e, key) < 0)
        r = -ENOMEM;
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Authorization", auth);
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Content-Type", "application/json");
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Idempotency-Key", key);
    if (auth)
        memset(auth, 0, strlen(auth));
    if (r < 0) {
        nq_http_request_done(&req);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    *ret = req;
    return 0;
}

/* What an error name means (PROVIDERS.md §4). */
enum { WAIT_NONE, WAIT_1S, WAIT_QUOTA };

static const struct resend_error {
    const char *name;
    enum nq_reply_class cls;
    bool config;
    int wait;
} errors[] = {
    { "missing_required_field", NQ_REPLY_PERMANENT, false, WAIT_NONE },
    { "invalid_parameter", NQ_REPLY_PERMANENT, false, WAIT_NONE },
    { "invalid_attachment", NQ_REPLY_PERMANENT, false, WAIT_NONE },
    { "invalid_from_address", NQ_REPLY_PERMANENT, true, WAIT_NONE },
    { "invalid_region", NQ_REPLY_PERMANENT, false, WAIT_NONE },
    { "invalid_access", NQ_REPLY_PERMANENT, false, WAIT_NONE },
    { "invalid_idempotency_key", NQ_REPLY_PERMANENT, false, WAIT_NONE },
    { "missing_api_key", NQ_REPLY_PERMANENT, true, WAIT_NONE },
    { "restricted_api_key", NQ_REPLY_PERMANENT, true, WAIT_NONE },
    { "invalid_api_key", NQ_REPLY_PERMANENT, true, WAIT_NONE },
    { "not_found", NQ_REPLY_PERMANENT, true, WAIT_NONE },
    { "method_not_allowed", NQ_REPLY_PERMANENT, true, WAIT_NONE },
    { "invalid_idempotent_request", NQ_REPLY_PERMANENT, false, WAIT_NONE },
    { "concurrent_idempotent_requests", NQ_REPLY_RATE, false, WAIT_1S },
    { "rate_limit_exceeded", NQ_REPLY_RATE, false, WAIT_NONE },
    { "daily_quota_exceeded", NQ_REPLY_RATE, true, WAIT_QUOTA },
    { "monthly_quota_exceeded", NQ_REPLY_RATE, true, WAIT_QUOTA },
    { "security_error", NQ_REPLY_PERMANENT, false, WAIT_NONE },
    { "application_error", NQ_REPLY_RETRY, false, WAIT_NONE },
    { "internal_server_error", NQ_REPLY_RETRY, false, WAIT_NONE },
};

/* ratelimit-reset: seconds until the window resets. */
static uint64_t reset_ms(const struct nq_transfer_reply *reply)
{
    const char *h = nq_transfer_reply_header(reply, "ratelimit-reset");
    uint64_t ms = 0;

    return h && nq_http_retry_after_ms(h, 0, &ms) == 0 && h[0] >= '0' && h[0] <= '9' ? ms : 0;
}

static void classify(const void *cfg, const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_http_verdict *v)
{
    long s = reply->status;
    json_t *o;
    const char *name, *msg;
    char detail[NQ_HTTP_REASON_MAX];

    (void) cfg;
    nq_http_classify_common(NAME, reply, now_s, v);
    if (s >= 200 && s < 300) {
        o = json_loadb(reply->body, reply->body_len, 0, NULL);
        const char *id = json_string_value(json_object_get(o, "id"));

        (void) snprintf(v->message_id, sizeof(v->message_id), "%s", id ? id : "");
        json_decref(o);
        return;
    }
    if (s < 400)
        return;
    o = json_loadb(reply->body, reply->body_len, 0, NULL);
    name = json_string_value(json_object_get(o, "name"));
    msg = json_string_value(json_object_get(o, "message"));
    (void) snprintf(detail, sizeof(detail), "%.60s%s%.180s", name ? name : "",
                    name && msg ? ": " : "", msg ? msg : "");
    if (name && strcmp(name, "validation_error") == 0) {
        /* 403: a testing domain may only send to its owner */
        nq_emailapi_verdict(v, NAME, NQ_REPLY_PERMANENT, s == 403, detail);
        json_decref(o);
        return;
    }
    for (size_t i = 0; name && i < NQ_ELEMENTSOF(errors); i++) {
        const struct resend_error *x = &errors[i];
        const char *ra = nq_transfer_reply_header(reply, "Retry-After");
        uint64_t given = 0;

        if (strcmp(x->name, name) != 0)
            continue;
        if (ra && nq_http_retry_after_ms(ra, now_s, &given) < 0)
            given = 0;
        nq_emailapi_verdict(v, NAME, x->cls, x->config, detail);
        v->retry_after_ms = x->cls == NQ_REPLY_RATE ? given : v->retry_after_ms;
        if (x->wait == WAIT_1S && !given)
            v->retry_after_ms = 1000;
        else if (x->wait == WAIT_QUOTA)
            v->retry_after_ms = given             ? given
                                : reset_ms(reply) ? reset_ms(reply)
                                                  : NQ_HTTP_RETRY_AFTER_MAX_MS;
        else if (x->cls == NQ_REPLY_RATE && !given)
            v->retry_after_ms = reset_ms(reply);
        json_decref(o);
        return;
    }
    /* a name not in the table: by status */
    if (s == 401 || s == 403)
        nq_emailapi_verdict(v, NAME, NQ_REPLY_PERMANENT, true, detail);
    else if (detail[0])
        nq_emailapi_verdict(v, NAME, v->cls, false, detail);
    json_decref(o);
}

const struct nq_http_provider nq_resend_http = {
    .name = NAME,
    .build = build,
    .classify = classify,
};
