/* SPDX-License-Identifier: MIT */
/*
 * The twilio provider's build and classify (see sms.h; PROVIDERS.md §8).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "providers/sms.h"

#define TWILIO_BASE_URL "https://api.twilio.com"

static int build(const void *cfg, const void *msg, const struct nq_delivery *d, int64_t now_s,
                 struct nq_http_request *ret, struct nq_err *err)
{
    const struct nq_provider_cfg *c = ((const struct nq_sms_out *) cfg)->cfg;
    const struct nq_sms *m = msg;
    const char *base = c->base_url ? c->base_url : TWILIO_BASE_URL;
    const char *from = m->from ? m->from : c->from;
    struct nq_http_request req = { .method = "POST" };
    nq_autofree char *auth = NULL;
    struct nq_sms_form f = { 0 };
    int r;

    (void) d, (void) now_s;
    r = nq_sms_form_add(&f, "To", m->to);
    if (r >= 0)
        r = from ? nq_sms_form_add(&f, "From", from)
                 : nq_sms_form_add(&f, "MessagingServiceSid", c->messaging_service_sid);
    if (r >= 0)
        r = nq_sms_form_add(&f, "Body", m->body);
    if (r >= 0 &&
        asprintf(&req.url, "%s/2010-04-01/Accounts/%s/Messages.json", base, c->account_sid) < 0) {
        req.url = NULL;
        r = -ENOMEM;
    }
    if (r >= 0)
        r = nq_sms_basic_auth(c->account_sid, c->auth_token, &auth);
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Authorization", auth);
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Content-Type", "application/x-www-form-urlencoded");
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Accept", "application/json");
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

/* Error codes (the reply's "code") and what they mean for the job. */
struct code_row {
    long code;
    enum nq_reply_class cls;
    bool config;
    const char *what;
};

static const struct code_row codes[] = {
    { 20003, NQ_REPLY_PERMANENT, true, "authentication failed" },
    { 20404, NQ_REPLY_PERMANENT, true, "account or resource not found" },
    { 20429, NQ_REPLY_RATE, false, "too many concurrent requests" },
    { 21211, NQ_REPLY_DEAD, false, "invalid To number" },
    { 21408, NQ_REPLY_PERMANENT, true, "SMS not enabled for the To region" },
    { 21610, NQ_REPLY_DEAD, false, "recipient unsubscribed (replied STOP)" },
    { 21614, NQ_REPLY_DEAD, false, "To is not a mobile number" },
    { 21612, NQ_REPLY_PERMANENT, false, "To not reachable from this sender" },
    { 21635, NQ_REPLY_DEAD, false, "To is a landline" },
    { 21606, NQ_REPLY_PERMANENT, true, "From is not an SMS-capable number of this account" },
    { 21601, NQ_REPLY_PERMANENT, true, "From is not an SMS-capable number of this account" },
    { 21212, NQ_REPLY_PERMANENT, true, "invalid From number" },
    { 21608, NQ_REPLY_PERMANENT, true, "trial account: To not verified" },
    { 21602, NQ_REPLY_PERMANENT, false, "Body missing" },
    { 21603, NQ_REPLY_PERMANENT, false, "From missing" },
    { 21604, NQ_REPLY_PERMANENT, false, "To missing" },
    { 21617, NQ_REPLY_PERMANENT, false, "Body over 1600 characters" },
};

static const struct code_row *code_find(long code)
{
    for (size_t i = 0; i < NQ_ELEMENTSOF(codes); i++)
        if (codes[i].code == code)
            return &codes[i];
    return NULL;
}

static void classify(const void *cfg, const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_http_verdict *v)
{
    json_t *o = reply->body_len ? json_loadb(reply->body, reply->body_len, 0, NULL) : NULL;
    json_t *jcode = json_object_get(o, "code");
    const char *text = json_string_value(json_object_get(o, "message"));
    long code = json_is_integer(jcode) ? (long) json_integer_value(jcode) : 0;
    const struct code_row *row = code ? code_find(code) : NULL;
    long s = reply->status;

    (void) cfg;
    nq_http_classify_common("twilio", reply, now_s, v);
    if (v->cls == NQ_REPLY_SENT) {
        nq_sms_copy_id(v, json_string_value(json_object_get(o, "sid")));
    } else if (row) {
        v->cls = row->cls;
        if (row->cls != NQ_REPLY_RATE)
            v->retry_after_ms = 0;
        (void) snprintf(v->reason, sizeof(v->reason), "twilio: HTTP %ld code %ld: %s%s%s", s, code,
                        row->what, row->config ? " " NQ_SMS_CONFIG_MARK ")" : "",
                        row->cls == NQ_REPLY_RATE ? " (never processed)" : "");
    } else if (code && (s >= 500 || s == 408 || s == 429)) {
        /* §0's class, with what Twilio said (20500/20503 are unconfirmed, PROVIDERS.md §15) */
        (void) snprintf(v->reason, sizeof(v->reason), "twilio: HTTP %ld code %ld%s%.120s", s, code,
                        text ? ": " : "", text ? text : "");
    } else if (s >= 400 && s < 500 && s != 408 && s != 429) {
        bool config = s == 401 || s == 403 || s == 404;
        char codebuf[32] = "";

        if (code)
            (void) snprintf(codebuf, sizeof(codebuf), " code %ld", code);
        (void) snprintf(v->reason, sizeof(v->reason), "twilio: HTTP %ld%s%s%.120s%s", s, codebuf,
                        text ? ": " : "", text ? text : "",
                        config ? " " NQ_SMS_CONFIG_MARK ": check account_sid and auth_token)" : "");
    }
    json_decref(o);
}

const struct nq_http_provider nq_sms_twilio = {
    .name = "twilio",
    .build = build,
    .classify = classify,
};
