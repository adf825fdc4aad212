/* SPDX-License-Identifier: MIT */
/*
 * The vonage provider's build and classify: the SMS API (see sms.h;
 * PROVIDERS.md §9a).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "providers/sms.h"

#define VONAGE_BASE_URL "https://rest.nexmo.com"
#define CLIENT_REF_MAX 100 /* bytes Vonage keeps */

static int build(const void *cfg, const void *msg, const struct nq_delivery *d, int64_t now_s,
                 struct nq_http_request *ret, struct nq_err *err)
{
    const struct nq_provider_cfg *c = ((const struct nq_sms_out *) cfg)->cfg;
    const struct nq_sms *m = msg;
    const char *base = c->base_url ? c->base_url : VONAGE_BASE_URL;
    struct nq_http_request req = { .method = "POST" };
    struct nq_sms_form f = { 0 };
    struct nq_sms_count count;
    char ref[CLIENT_REF_MAX + 1];
    int r;

    (void) now_s;
    nq_sms_count(m->body, &count);
    (void) snprintf(ref, sizeof(ref), "%s", d->job_id);
    r = nq_sms_form_add(&f, "api_key", c->api_key);
    if (r >= 0)
        r = nq_sms_form_add(&f, "api_secret", c->api_secret);
    if (r >= 0) /* a number goes without its '+' */
        r = nq_sms_form_add(
            &f, "from", m->from ? m->from + (m->from[0] == '+') : c->from + (c->from[0] == '+'));
    if (r >= 0)
        r = nq_sms_form_add(&f, "to", m->to + (m->to[0] == '+'));
    if (r >= 0)
        r = nq_sms_form_add(&f, "text", m->body);
    if (r >= 0 && count.encoding == NQ_SMS_UCS2)
        r = nq_sms_form_add(&f, "type", "unicode");
    if (r >= 0)
        r = nq_sms_form_add(&f, "client-ref", ref);
    if (r >= 0 && asprintf(&req.url, "%s/sms/json", base) < 0) {
        req.url = NULL;
        r = -ENOMEM;
    }
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Content-Type", "application/x-www-form-urlencoded");
    if (r < 0) {
        nq_sms_form_done(&f);
        nq_http_request_done(&req);
        return nq_err_set(err, r, "out of memory");
    }
    req.body = f.buf;
    req.body_len = f.len;
    *ret = req;
    return 0;
}

struct status_row {
    int status;
    enum nq_reply_class cls;
    bool config;
    const char *what;
};

static const struct status_row statuses[] = {
    { 1, NQ_REPLY_RATE, false, "throttled" },
    { 2, NQ_REPLY_PERMANENT, false, "missing parameters" },
    { 3, NQ_REPLY_PERMANENT, false, "invalid parameters" },
    { 4, NQ_REPLY_PERMANENT, true, "invalid credentials" },
    { 5, NQ_REPLY_RETRY, false, "internal error" },
    { 6, NQ_REPLY_DEAD, false, "invalid message (unrecognised number prefix)" },
    { 7, NQ_REPLY_DEAD, false, "number barred" },
    { 8, NQ_REPLY_PERMANENT, true, "account suspended" },
    { 9, NQ_REPLY_PERMANENT, true, "partner quota violation (no credit)" },
    { 10, NQ_REPLY_RETRY, false, "too many existing binds" },
    { 11, NQ_REPLY_PERMANENT, true, "account not enabled for HTTP" },
    { 12, NQ_REPLY_PERMANENT, false, "message too long" },
    { 14, NQ_REPLY_PERMANENT, true, "invalid signature" },
    { 15, NQ_REPLY_PERMANENT, true, "unauthorised sender id" },
    { 22, NQ_REPLY_PERMANENT, false, "invalid network code" },
    { 23, NQ_REPLY_PERMANENT, true, "invalid callback URL" },
    { 29, NQ_REPLY_PERMANENT, true, "non-whitelisted destination" },
    { 32, NQ_REPLY_PERMANENT, true, "signature and api secret both given" },
    { 33, NQ_REPLY_DEAD, false, "number de-activated" },
};

static const struct status_row unlisted = { -1, NQ_REPLY_PERMANENT, false, "unlisted status" };

static const struct status_row *status_find(int status)
{
    for (size_t i = 0; i < NQ_ELEMENTSOF(statuses); i++)
        if (statuses[i].status == status)
            return &statuses[i];
    return &unlisted;
}

/* Which failing part decides: one that cannot succeed beats one that could
 * later. */
static int weight(const struct status_row *row)
{
    switch (row->cls) {
    case NQ_REPLY_DEAD:
        return 5;
    case NQ_REPLY_PERMANENT:
        return row->config ? 6 : 4;
    case NQ_REPLY_RATE:
        return 2;
    default:
        return 1;
    }
}

#define RATE_WAIT_MS 1000

/* A part's status as a number; -1 (unlisted) when absent or not a number. */
static int status_of(const char *st)
{
    char *end;
    long v;

    if (!st)
        return -1;
    errno = 0;
    v = strtol(st, &end, 10);
    return errno || end == st || *end || v < 0 || v > INT_MAX ? -1 : (int) v;
}

static void parts_verdict(json_t *parts, struct nq_http_verdict *v)
{
    const struct status_row *worst = NULL;
    const char *first_id = NULL, *text = NULL;
    size_t ok = 0, i;
    json_t *part;
    int worst_status = 0;

    json_array_foreach (parts, i, part) {
        const char *st = json_string_value(json_object_get(part, "status"));
        int status = status_of(st);
        const struct status_row *row;

        if (st && status == 0 && strcmp(st, "0") == 0) {
            ok++;
            /* cppcheck-suppress knownConditionTrueFalse ; cppcheck does not see the loop */
            if (!first_id)
                first_id = json_string_value(json_object_get(part, "message-id"));
            continue;
        }
        row = status_find(status);
        /* cppcheck-suppress knownConditionTrueFalse ; cppcheck does not see the loop */
        if (!worst || weight(row) > weight(worst)) {
            worst = row;
            worst_status = status;
            text = json_string_value(json_object_get(part, "error-text"));
        }
    }
    nq_sms_copy_id(v, first_id);
    if (!worst)
        return; /* every part accepted (or none listed: sent without an id) */
    v->cls = worst->cls;
    v->retry_after_ms = worst->cls == NQ_REPLY_RATE ? RATE_WAIT_MS : 0;
    if (ok && (worst->cls == NQ_REPLY_RATE || worst->cls == NQ_REPLY_RETRY)) {
        v->cls = NQ_REPLY_UNKNOWN; /* a resend repeats the parts accepted */
        v->retry_after_ms = 0;
    }
    (void) snprintf(v->reason, sizeof(v->reason), "vonage: status %d: %s%s%.100s%s%s", worst_status,
                    worst->what, text ? ": " : "", text ? text : "",
                    worst->config ? " " NQ_SMS_CONFIG_MARK ")" : "",
                    ok ? " (some parts were accepted: a resend repeats them)" : "");
}

static void classify(const void *cfg, const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_http_verdict *v)
{
    json_t *o;

    (void) cfg;
    nq_http_classify_common("vonage", reply, now_s, v);
    if (reply->status == 401 || reply->status == 403) {
        (void) snprintf(v->reason, sizeof(v->reason),
                        "vonage: HTTP %ld " NQ_SMS_CONFIG_MARK ": check api_key and api_secret)",
                        reply->status);
        return;
    }
    if (v->cls != NQ_REPLY_SENT)
        return;
    o = json_loadb(reply->body, reply->body_len, 0, NULL);
    parts_verdict(json_object_get(o, "messages"), v);
    json_decref(o);
}

const struct nq_http_provider nq_sms_vonage = {
    .name = "vonage",
    .build = build,
    .classify = classify,
};
