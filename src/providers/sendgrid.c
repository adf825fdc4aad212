/* SPDX-License-Identifier: MIT */
/*
 * sendgrid: v3 Mail Send (PROVIDERS.md §3).
 *
 *   POST <base_url>/v3/mail/send
 *   Authorization: Bearer <api_key>
 *   Content-Type: application/json
 *
 *   {"personalizations":[{"to":[{"email":..,"name":..}],"cc":..,"bcc":..,
 *     "custom_args":{"queue":..,"job_id":..}}],
 *    "from":{..},"reply_to":{..},"subject":..,
 *    "content":[{"type":"text/plain",..},{"type":"text/html",..}],
 *    "headers":{..}}
 *
 * One personalization: one message to all its recipients (at most 1,000).
 * Replies: 202 sent (X-Message-Id); 200 sent (sandbox mode; the id when
 * given, else "sandbox"); 400, 413 permanent (errors[0].message and field
 * in the reason); 401, 403, 404, 451 permanent + alert; 429 rate
 * (X-RateLimit-Reset - now, else Retry-After, else the queue's backoff);
 * 5xx retry; the rest by http.h's common rules.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "providers/emailapi.h"

#define NAME "sendgrid"

static json_t *mailbox(const struct nq_mailbox *mb)
{
    json_t *o = json_pack("{s:s}", "email", mb->addr);

    if (o && mb->name && *mb->name && json_object_set_new(o, "name", json_string(mb->name)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Adds key: [mailbox...] to o unless n is 0; false on OOM. */
static bool add_list(json_t *o, const char *key, const struct nq_mailbox *v, size_t n)
{
    json_t *a;

    if (n == 0)
        return true;
    a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, mailbox(&v[i])) < 0) {
            json_decref(a);
            return false;
        }
    return a && json_object_set_new(o, key, a) == 0;
}

static json_t *body_json(const struct nq_email *e, const struct nq_delivery *d)
{
    json_t *pers =
        json_pack("{s:{s:s,s:s}}", "custom_args", "queue", d->queue, "job_id", d->job_id);
    json_t *o = json_object(), *content = json_array();
    bool ok = pers && o && content;

    ok = ok && add_list(pers, "to", e->to, e->n_to) && add_list(pers, "cc", e->cc, e->n_cc) &&
         add_list(pers, "bcc", e->bcc, e->n_bcc);
    ok = ok && json_object_set_new(o, "personalizations", json_pack("[O]", pers)) == 0;
    ok = ok && json_object_set_new(o, "from", mailbox(&e->from)) == 0;
    if (ok && e->reply_to.addr)
        ok = json_object_set_new(o, "reply_to", mailbox(&e->reply_to)) == 0;
    if (ok && e->subject)
        ok = json_object_set_new(o, "subject", json_string(e->subject)) == 0;
    /* text/plain before text/html, each once: SendGrid's rule */
    if (ok && e->text)
        ok = json_array_append_new(
                 content, json_pack("{s:s,s:s}", "type", "text/plain", "value", e->text)) == 0;
    if (ok && e->html)
        ok = json_array_append_new(
                 content, json_pack("{s:s,s:s}", "type", "text/html", "value", e->html)) == 0;
    ok = ok && json_object_set(o, "content", content) == 0;
    if (ok && e->n_headers) {
        json_t *h = json_object();

        for (size_t i = 0; h && i < e->n_headers; i++)
            if (json_object_set_new(h, e->headers[i].name, json_string(e->headers[i].value)) < 0)
                break;
        ok = h && json_object_set_new(o, "headers", h) == 0;
    }
    json_decref(pers);
    json_decref(content);
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
    size_t n = e->n_to + e->n_cc + e->n_bcc;
    json_t *body;
    int r = 0;

    (void) now_s;
    if (n > NQ_SENDGRID_RCPT_MAX)
        return nq_err_set(err, -EINVAL, "%zu recipients: at most %d per request", n,
                          NQ_SENDGRID_RCPT_MAX);
    body = body_json(e, d);
    if (!body)
        return nq_err_set(err, -ENOMEM, "out of memory");
    req.body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    req.body_len = req.body ? strlen(req.body) : 0;
    req.url = nq_emailapi_url(cfg, "/v3/mail/send");
    if (!req.body || !req.url || asprintf(&auth, "Bearer %s", cfg->api_key) < 0)
        r = -ENOMEM;
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Authorization", auth);
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Content-Type", "application/json");
    if (auth)
        memset(auth, 0, strlen(auth));
    if (r < 0) {
        nq_http_request_done(&req);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    *ret = req;
    return 0;
}

/* errors[0]'s message (and field), for the reason. */
static void error_detail(const struct nq_transfer_reply *reply, char *buf, size_t size)
{
    json_t *o = json_loadb(reply->body, reply->body_len, 0, NULL);
    json_t *first = json_array_get(json_object_get(o, "errors"), 0);
    const char *msg = json_string_value(json_object_get(first, "message"));
    const char *field = json_string_value(json_object_get(first, "field"));

    buf[0] = '\0';
    if (msg && field)
        (void) snprintf(buf, size, "%.160s (field %.60s)", msg, field);
    else if (msg)
        (void) snprintf(buf, size, "%.200s", msg);
    json_decref(o);
}

/* X-RateLimit-Reset is a Unix time in seconds. */
static uint64_t reset_wait_ms(const struct nq_transfer_reply *reply, int64_t now_s)
{
    const char *h = nq_transfer_reply_header(reply, "X-RateLimit-Reset");
    char *end;
    long long at;
    uint64_t ms = 0;

    if (!h)
        return 0;
    at = strtoll(h, &end, 10);
    if (end == h || *end)
        return 0;
    ms = at > now_s ? (uint64_t) (at - now_s) * 1000 : 0;
    if (ms < 1000)
        ms = 1000;
    return ms > NQ_HTTP_RETRY_AFTER_MAX_MS ? NQ_HTTP_RETRY_AFTER_MAX_MS : ms;
}

static void classify(const void *cfg, const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_http_verdict *v)
{
    long s = reply->status;
    const char *id = nq_transfer_reply_header(reply, "X-Message-Id");
    char detail[NQ_HTTP_REASON_MAX];

    (void) cfg;
    nq_http_classify_common(NAME, reply, now_s, v);
    if (s == 202 || s == 200) {
        (void) snprintf(v->message_id, sizeof(v->message_id), "%s",
                        id && *id  ? id
                        : s == 200 ? "sandbox"
                                   : "");
        return;
    }
    if (s < 400)
        return;
    error_detail(reply, detail, sizeof(detail));
    if (s == 401 || s == 403 || s == 404 || s == 451) {
        nq_emailapi_verdict(v, NAME, NQ_REPLY_PERMANENT, true, detail);
    } else if (s == 429) {
        uint64_t wait = reset_wait_ms(reply, now_s);

        nq_emailapi_verdict(v, NAME, NQ_REPLY_RATE, false, detail[0] ? detail : "rate limited");
        if (wait)
            v->retry_after_ms = wait;
    } else if (s < 500 && s != 408) {
        nq_emailapi_verdict(v, NAME, NQ_REPLY_PERMANENT, false, detail);
    } else if (detail[0]) {
        nq_emailapi_verdict(v, NAME, v->cls, false, detail);
    }
}

const struct nq_http_provider nq_sendgrid_http = {
    .name = NAME,
    .build = build,
    .classify = classify,
};
