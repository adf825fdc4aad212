/* SPDX-License-Identifier: MIT */
/*
 * ses: SES v2 SendEmail, signed with SigV4 (PROVIDERS.md §7, sigv4.h).
 *
 *   POST <base_url>/v2/email/outbound-emails
 *   Content-Type: application/json
 *   Host: <base_url's host[:port]>
 *   X-Amz-Date: <YYYYMMDDTHHMMSSZ>
 *   X-Amz-Security-Token: <session_token>       (temporary credentials only)
 *   Authorization: AWS4-HMAC-SHA256 Credential=<id>/<day>/<region>/ses/aws4_request,
 *                  SignedHeaders=content-type;host;x-amz-date[;x-amz-security-token],
 *                  Signature=<hex>
 *
 *   {"FromEmailAddress":..,"Destination":{"ToAddresses":[..],"CcAddresses":[..],
 *    "BccAddresses":[..]},"ReplyToAddresses":[..],
 *    "Content":{"Simple":{"Subject":{"Data":..,"Charset":"UTF-8"},
 *      "Body":{"Text":{..},"Html":{..}},"Headers":[{"Name":..,"Value":..}]}},
 *    "EmailTags":[{"Name":"job_id","Value":..}]}   (tag only for a job id SES takes)
 *
 * At most 50 recipients. Errors are classified by name (x-amzn-ErrorType,
 * else body code, else __type; cut at ':' and after '#'), not by status.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "providers/emailapi.h"
#include "providers/sigv4.h"

#define NAME "ses"
#define PATH "/v2/email/outbound-emails"
#define ERROR_NAME_MAX 80
#define QUOTA_WAIT_MS ((uint64_t) 10 * 60 * 1000)

static json_t *addresses(const struct nq_mailbox *v, size_t n)
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

static bool tag_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= 256 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static json_t *body_json(const struct nq_email *e, const struct nq_delivery *d)
{
    json_t *o = json_object(), *dest = json_object(), *simple = json_object(),
           *body = json_object();
    char *from = nq_emailapi_mailbox_text(&e->from);
    bool ok = o && dest && simple && body && from;

    ok = ok && json_object_set_new(o, "FromEmailAddress", json_string(from)) == 0;
    ok = ok && json_object_set_new(dest, "ToAddresses", addresses(e->to, e->n_to)) == 0;
    if (ok && e->n_cc)
        ok = json_object_set_new(dest, "CcAddresses", addresses(e->cc, e->n_cc)) == 0;
    if (ok && e->n_bcc)
        ok = json_object_set_new(dest, "BccAddresses", addresses(e->bcc, e->n_bcc)) == 0;
    ok = ok && json_object_set(o, "Destination", dest) == 0;
    if (ok && e->reply_to.addr)
        ok = json_object_set_new(o, "ReplyToAddresses", addresses(&e->reply_to, 1)) == 0;
    ok = ok && json_object_set_new(simple, "Subject",
                                   json_pack("{s:s,s:s}", "Data", e->subject ? e->subject : "",
                                             "Charset", "UTF-8")) == 0;
    if (ok && e->text)
        ok = json_object_set_new(body, "Text",
                                 json_pack("{s:s,s:s}", "Data", e->text, "Charset", "UTF-8")) == 0;
    if (ok && e->html)
        ok = json_object_set_new(body, "Html",
                                 json_pack("{s:s,s:s}", "Data", e->html, "Charset", "UTF-8")) == 0;
    ok = ok && json_object_set(simple, "Body", body) == 0;
    if (ok && e->n_headers) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < e->n_headers; i++)
            if (json_array_append_new(a, json_pack("{s:s,s:s}", "Name", e->headers[i].name, "Value",
                                                   e->headers[i].value)) < 0)
                break;
        ok = a && json_object_set_new(simple, "Headers", a) == 0;
    }
    ok = ok && json_object_set_new(o, "Content", json_pack("{s:O}", "Simple", simple)) == 0;
    if (ok && tag_ok(d->job_id))
        ok = json_object_set_new(o, "EmailTags",
                                 json_pack("[{s:s,s:s}]", "Name", "job_id", "Value", d->job_id)) ==
             0;
    free(from);
    json_decref(dest);
    json_decref(simple);
    json_decref(body);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int sign(const struct nq_provider_cfg *cfg, struct nq_http_request *req, int64_t now_s)
{
    const struct nq_sigv4_key key = { .access_key_id = cfg->access_key_id,
                                      .secret_access_key = cfg->secret_access_key,
                                      .region = cfg->region,
                                      .service = "ses" };
    const char *host = strstr(cfg->base_url, "://") + 3;
    char date[NQ_SIGV4_DATE_SIZE];
    struct nq_sigv4_header h[4] = {
        { "content-type", "application/json" },
        { "host", host },
        { "x-amz-date", date },
        { "x-amz-security-token", cfg->session_token },
    };
    size_t n = cfg->session_token ? 4 : 3;
    nq_autofree char *auth = NULL;
    int r;

    nq_sigv4_date(now_s, date);
    r = nq_sigv4_authorization(&key, "POST", PATH, "", h, n, req->body, req->body_len, date, &auth);
    for (size_t i = 0; r >= 0 && i < n; i++)
        r = nq_http_request_add_header(req, h[i].name, h[i].value);
    if (r >= 0)
        r = nq_http_request_add_header(req, "authorization", auth);
    return r;
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

    if (n > NQ_SES_RCPT_MAX)
        return nq_err_set(err, -EINVAL, "%zu recipients: at most %d per message", n,
                          NQ_SES_RCPT_MAX);
    body = body_json(e, d);
    if (!body)
        return nq_err_set(err, -ENOMEM, "out of memory");
    req.body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    req.body_len = req.body ? strlen(req.body) : 0;
    req.url = nq_emailapi_url(cfg, PATH);
    if (!req.body || !req.url)
        r = -ENOMEM;
    if (r >= 0)
        r = sign(cfg, &req, now_s);
    if (r < 0) {
        nq_http_request_done(&req);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    *ret = req;
    return 0;
}

/* The error's name as AWS's restJson protocol gives it. */
static void error_name(const struct nq_transfer_reply *reply, json_t *o, char *buf)
{
    const char *raw = nq_transfer_reply_header(reply, "x-amzn-ErrorType"), *hash;
    size_t n;

    if (!raw)
        raw = json_string_value(json_object_get(o, "code"));
    if (!raw)
        raw = json_string_value(json_object_get(o, "__type"));
    if (!raw)
        raw = "";
    n = strcspn(raw, ":");
    hash = memchr(raw, '#', n);
    if (hash) {
        n -= (size_t) (hash + 1 - raw);
        raw = hash + 1;
    }
    (void) snprintf(buf, ERROR_NAME_MAX, "%.*s", (int) n, raw);
}

/* name -> outcome (PROVIDERS.md §7); ThrottlingException is decided by its
 * message. */
static const struct ses_error {
    const char *name;
    enum nq_reply_class cls;
    bool config;
} errors[] = {
    { "MessageRejected", NQ_REPLY_PERMANENT, false },
    { "MailFromDomainNotVerifiedException", NQ_REPLY_PERMANENT, true },
    { "AccountSuspendedException", NQ_REPLY_PERMANENT, true },
    { "SendingPausedException", NQ_REPLY_PERMANENT, true },
    { "BadRequestException", NQ_REPLY_PERMANENT, false },
    { "NotFoundException", NQ_REPLY_PERMANENT, true },
    { "LimitExceededException", NQ_REPLY_PERMANENT, false },
    { "TooManyRequestsException", NQ_REPLY_RATE, false },
    { "InternalFailure", NQ_REPLY_RETRY, false },
    { "InternalServiceErrorException", NQ_REPLY_RETRY, false },
    { "ServiceUnavailable", NQ_REPLY_RETRY, false },
    { "RequestExpired", NQ_REPLY_RETRY, true },
    { "ExpiredTokenException", NQ_REPLY_RETRY, true },
    { "SignatureDoesNotMatch", NQ_REPLY_PERMANENT, true },
    { "IncompleteSignature", NQ_REPLY_PERMANENT, true },
    { "InvalidClientTokenId", NQ_REPLY_PERMANENT, true },
    { "UnrecognizedClientException", NQ_REPLY_PERMANENT, true },
    { "AccessDeniedException", NQ_REPLY_PERMANENT, true },
    { "MissingAuthenticationToken", NQ_REPLY_PERMANENT, true },
};

static void classify(const void *cfg, const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_http_verdict *v)
{
    long s = reply->status;
    json_t *o = json_loadb(reply->body, reply->body_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(o, "message"));
    char name[ERROR_NAME_MAX], detail[NQ_HTTP_REASON_MAX];
    uint64_t given;

    (void) cfg;
    nq_http_classify_common(NAME, reply, now_s, v);
    given = v->retry_after_ms;
    if (!msg)
        msg = json_string_value(json_object_get(o, "Message"));
    if (s >= 200 && s < 300) {
        const char *id = json_string_value(json_object_get(o, "MessageId"));

        (void) snprintf(v->message_id, sizeof(v->message_id), "%s", id ? id : "");
        json_decref(o);
        return;
    }
    if (s < 400) {
        json_decref(o);
        return;
    }
    error_name(reply, o, name);
    (void) snprintf(detail, sizeof(detail), "%s%s%.200s", name, name[0] && msg ? ": " : "",
                    msg ? msg : "");
    if (strcmp(name, "ThrottlingException") == 0) {
        bool quota = msg && strcasestr(msg, "quota");

        nq_emailapi_verdict(v, NAME, NQ_REPLY_RATE, quota, detail);
        v->retry_after_ms = quota ? QUOTA_WAIT_MS : given ? given : 1000;
        json_decref(o);
        return;
    }
    for (size_t i = 0; i < NQ_ELEMENTSOF(errors); i++) {
        if (strcmp(errors[i].name, name) != 0)
            continue;
        nq_emailapi_verdict(v, NAME, errors[i].cls, errors[i].config, detail);
        v->retry_after_ms = errors[i].cls == NQ_REPLY_RATE && !given ? 1000 : given;
        json_decref(o);
        return;
    }
    nq_emailapi_verdict(v, NAME, v->cls, s == 401 || s == 403, detail[0] ? detail : NULL);
    json_decref(o);
}

const struct nq_http_provider nq_ses_http = {
    .name = NAME,
    .build = build,
    .classify = classify,
};
