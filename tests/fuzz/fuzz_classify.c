/* SPDX-License-Identifier: MIT */
/* Every network provider's reply classifier on any reply (status, headers,
 * body, transport error): a verdict of a known class, with a reason and a
 * message id that fit their buffers, and Retry-After within its bounds.
 * The input is two bytes of status, one of flags, header lines up to an
 * empty line, then the body. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "providers/apns.h"
#include "providers/emailapi.h"
#include "providers/fcm.h"
#include "providers/http.h"
#include "providers/pushsend.h"
#include "providers/sms.h"
#include "providers/webhook.h"
#include "transfer/transfer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADERS_MAX 16

static const struct nq_http_provider *const providers[] = {
    &nq_sendgrid_http, &nq_resend_http, &nq_mailgun_http, &nq_postmark_http,    &nq_ses_http,
    &nq_sms_twilio,    &nq_sms_vonage,  &nq_sms_http,     &nq_webhook_provider,
};

static void check(const struct nq_http_verdict *v)
{
    if (v->cls > NQ_REPLY_UNKNOWN)
        abort();
    if (!memchr(v->reason, '\0', sizeof(v->reason)) ||
        !memchr(v->message_id, '\0', sizeof(v->message_id)))
        abort();
    if (v->cls != NQ_REPLY_SENT && !v->reason[0])
        abort();
    if (v->retry_after_ms > NQ_HTTP_RETRY_AFTER_MAX_MS)
        abort();
}

/* Splits "Name: value" lines (in place, in a copy) up to an empty line. */
static size_t parse_headers(char *s, size_t len, struct nq_transfer_header *h, size_t *ret_used)
{
    size_t n = 0, at = 0;

    while (at < len) {
        char *nl = memchr(s + at, '\n', len - at);
        size_t end = nl ? (size_t) (nl - s) : len;
        char *colon = memchr(s + at, ':', end - at);

        if (end == at) {
            at = end + 1;
            break;
        }
        s[end] = '\0';
        if (colon && n < HEADERS_MAX) {
            *colon = '\0';
            h[n].name = s + at;
            h[n].value = colon + 1 + (colon[1] == ' ');
            n++;
        }
        at = end + 1;
    }
    *ret_used = at < len ? at : len;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nq_transfer_header h[HEADERS_MAX];
    struct nq_transfer_reply r = { 0 };
    size_t used = 0;
    char *copy;

    if (size < 3)
        return 0;
    copy = malloc(size - 3 + 1);
    if (!copy)
        return 0;
    memcpy(copy, data + 3, size - 3);
    copy[size - 3] = '\0';
    r.status = (long) (data[0] << 8 | data[1]) % 700;
    r.error = (enum nq_transfer_error)(data[2] % 3);
    r.timed_out = data[2] & 4;
    r.body_truncated = data[2] & 8;
    r.error_text = r.error ? "fuzz: transport error" : "";
    r.headers = h;
    r.n_headers = parse_headers(copy, size - 3, h, &used);
    r.body = copy + used;
    r.body_len = strlen(r.body);
    for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++) {
        struct nq_http_verdict v;

        memset(&v, 0xa5, sizeof(v));
        providers[i]->classify(NULL, &r, 1733580000, &v);
        check(&v);
    }
    struct nq_push_verdict pv;
    memset(&pv, 0xa5, sizeof(pv));
    nq_fcm_classify(&r, 1733580000, &pv);
    check(&pv.v);
    memset(&pv, 0xa5, sizeof(pv));
    nq_apns_classify(&r, 1733580000, &pv);
    check(&pv.v);
    free(copy);
    return 0;
}
