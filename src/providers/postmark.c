/* SPDX-License-Identifier: MIT */
/*
 * postmark: POST /email (PROVIDERS.md §6).
 *
 *   POST <base_url>/email
 *   Accept: application/json
 *   Content-Type: application/json
 *   X-Postmark-Server-Token: <server_token>
 *
 *   {"From":..,"To":"a, b","Cc":..,"Bcc":..,"ReplyTo":..,"Subject":..,
 *    "TextBody":..,"HtmlBody":..,"Headers":[{"Name":..,"Value":..}],
 *    "MessageStream":..,"Metadata":{"queue":..,"job_id":..}}
 *
 * At most 50 recipients. The reply's ErrorCode decides (the table below);
 * 406 (inactive recipient) makes the recipients dead. A 403 whose body has
 * no ErrorCode (an HTML page from a filter in front of the API) is retried,
 * and fails with an alert from attempt NQ_EMAILAPI_403_RETRIES on
 * (emailapi.c).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "providers/emailapi.h"

#define NAME "postmark"

/* "a, b" of a list; NULL on OOM. */
static char *address_line(const struct nq_mailbox *v, size_t n)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    bool ok = f != NULL;

    for (size_t i = 0; ok && i < n; i++) {
        char *t = nq_emailapi_mailbox_text(&v[i]);

        ok = t != NULL;
        if (t)
            fprintf(f, "%s%s", i ? ", " : "", t);
        free(t);
    }
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

static bool set_line(json_t *o, const char *key, const struct nq_mailbox *v, size_t n)
{
    char *t;
    bool ok;

    if (n == 0)
        return true;
    t = address_line(v, n);
    ok = t && json_object_set_new(o, key, json_string(t)) == 0;
    free(t);
    return ok;
}

static json_t *body_json(const struct nq_provider_cfg *cfg, const struct nq_email *e,
                         const struct nq_delivery *d)
{
    json_t *o = json_object();
    bool ok = o && set_line(o, "From", &e->from, 1) && set_line(o, "To", e->to, e->n_to) &&
              set_line(o, "Cc", e->cc, e->n_cc) && set_line(o, "Bcc", e->bcc, e->n_bcc);

    if (ok && e->reply_to.addr)
        ok = set_line(o, "ReplyTo", &e->reply_to, 1);
    if (ok && e->subject)
        ok = json_object_set_new(o, "Subject", json_string(e->subject)) == 0;
    if (ok && e->text)
        ok = json_object_set_new(o, "TextBody", json_string(e->text)) == 0;
    if (ok && e->html)
        ok = json_object_set_new(o, "HtmlBody", json_string(e->html)) == 0;
    if (ok && e->n_headers) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < e->n_headers; i++)
            if (json_array_append_new(a, json_pack("{s:s,s:s}", "Name", e->headers[i].name, "Value",
                                                   e->headers[i].value)) < 0)
                break;
        ok = a && json_object_set_new(o, "Headers", a) == 0;
    }
    if (ok && cfg->message_stream)
        ok = json_object_set_new(o, "MessageStream", json_string(cfg->message_stream)) == 0;
    ok = ok &&
         json_object_set_new(o, "Metadata",
                             json_pack("{s:s,s:s}", "queue", d->queue, "job_id", d->job_id)) == 0;
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
    size_t n = e->n_to + e->n_cc + e->n_bcc;
    json_t *body;
    int r = 0;

    (void) now_s;
    if (n > NQ_POSTMARK_RCPT_MAX)
        return nq_err_set(err, -EINVAL, "%zu recipients: at most %d per message", n,
                          NQ_POSTMARK_RCPT_MAX);
    body = body_json(cfg, e, d);
    if (!body)
        return nq_err_set(err, -ENOMEM, "out of memory");
    req.body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    req.body_len = req.body ? strlen(req.body) : 0;
    req.url = nq_emailapi_url(cfg, "/email");
    if (!req.body || !req.url)
        r = -ENOMEM;
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Accept", "application/json");
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Content-Type", "application/json");
    if (r >= 0)
        r = nq_http_request_add_header(&req, "X-Postmark-Server-Token", cfg->server_token);
    if (r < 0) {
        nq_http_request_done(&req);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    *ret = req;
    return 0;
}

/* ErrorCode -> outcome (PROVIDERS.md §6). */
static const struct postmark_error {
    int code;
    enum nq_reply_class cls;
    bool config;
} errors[] = {
    { 10, NQ_REPLY_PERMANENT, true },   { 300, NQ_REPLY_PERMANENT, false },
    { 400, NQ_REPLY_PERMANENT, true },  { 401, NQ_REPLY_PERMANENT, true },
    { 402, NQ_REPLY_PERMANENT, false }, { 403, NQ_REPLY_PERMANENT, false },
    { 405, NQ_REPLY_PERMANENT, true },  { 406, NQ_REPLY_DEAD, false },
    { 409, NQ_REPLY_PERMANENT, false }, { 410, NQ_REPLY_PERMANENT, false },
    { 411, NQ_REPLY_PERMANENT, false }, { 412, NQ_REPLY_PERMANENT, true },
    { 413, NQ_REPLY_PERMANENT, true },  { 429, NQ_REPLY_RATE, false },
    { 100, NQ_REPLY_RETRY, false },
};

static void classify(const void *cfg, const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_http_verdict *v)
{
    long s = reply->status;
    json_t *o = json_loadb(reply->body, reply->body_len, 0, NULL);
    json_t *code = json_object_get(o, "ErrorCode");
    const char *msg = json_string_value(json_object_get(o, "Message"));
    char detail[NQ_HTTP_REASON_MAX] = "";
    long ec = json_is_integer(code) ? (long) json_integer_value(code) : -1;

    (void) cfg;
    nq_http_classify_common(NAME, reply, now_s, v);
    if (s >= 200 && s < 300 && ec <= 0) {
        const char *id = json_string_value(json_object_get(o, "MessageID"));

        (void) snprintf(v->message_id, sizeof(v->message_id), "%s", id ? id : "");
        json_decref(o);
        return;
    }
    if (ec >= 0)
        (void) snprintf(detail, sizeof(detail), "ErrorCode %ld: %.200s", ec, msg ? msg : "");
    for (size_t i = 0; ec >= 0 && i < NQ_ELEMENTSOF(errors); i++) {
        uint64_t given = v->retry_after_ms;

        if (errors[i].code != ec)
            continue;
        /* 300 naming the sender signature is about our account */
        nq_emailapi_verdict(v, NAME, errors[i].cls,
                            errors[i].config || (ec == 300 && msg && strcasestr(msg, "signature")),
                            detail);
        v->retry_after_ms = given;
        json_decref(o);
        return;
    }
    if (s == 403 && ec < 0) {
        nq_emailapi_verdict(v, NAME, NQ_REPLY_RETRY, false,
                            "not from Postmark's API (no ErrorCode: a network filter in front "
                            "of it?)");
    } else if (s == 401 || s == 404) {
        nq_emailapi_verdict(v, NAME, NQ_REPLY_PERMANENT, true, detail);
    } else if (s >= 200 && s < 300) {
        /* 2xx with an ErrorCode we do not know: it was not sent */
        nq_emailapi_verdict(v, NAME, NQ_REPLY_PERMANENT, false, detail);
    } else if (detail[0]) {
        nq_emailapi_verdict(v, NAME, v->cls, false, detail);
    }
    json_decref(o);
}

const struct nq_http_provider nq_postmark_http = {
    .name = NAME,
    .build = build,
    .classify = classify,
};
