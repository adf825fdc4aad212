/* SPDX-License-Identifier: MIT */
/*
 * The webhook provider's build and classify (see webhook.h). HMAC, SHA-256
 * and base64 are OpenSSL's.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/cleanup.h"
#include "providers/webhook.h"

#define PREFIX "whsec_"
#define PREFIX_LEN 6
#define B64_MAX ((size_t) (NQ_WEBHOOK_KEY_MAX + 2) / 3 * 4)

int nq_webhook_init(struct nq_webhook *w, const char *url, const char *secret, struct nq_err *err)
{
    const char *p = secret + PREFIX_LEN;
    unsigned char in[B64_MAX + 4], out[B64_MAX + 4];
    size_t n, pad = 0;
    int len;

    memset(w, 0, sizeof(*w));
    if (strncmp(secret, PREFIX, PREFIX_LEN) != 0 || (n = strnlen(p, B64_MAX + 1)) > B64_MAX)
        return nq_err_set(err, -EINVAL, "webhook: secret: not whsec_ and base64 of 24..64 bytes");
    /* EVP_DecodeBlock wants whole quads; put back padding left off. */
    memcpy(in, p, n);
    while (n % 4)
        in[n++] = '=';
    for (size_t i = n; i > 0 && in[i - 1] == '='; i--)
        pad++;
    len = EVP_DecodeBlock(out, in, (int) n);
    OPENSSL_cleanse(in, sizeof(in));
    if (len < 0 || pad > 2 || (size_t) len - pad < NQ_WEBHOOK_KEY_MIN ||
        (size_t) len - pad > NQ_WEBHOOK_KEY_MAX) {
        OPENSSL_cleanse(out, sizeof(out));
        return nq_err_set(err, -EINVAL, "webhook: secret: not whsec_ and base64 of 24..64 bytes");
    }
    w->key_len = (size_t) len - pad;
    memcpy(w->key, out, w->key_len);
    OPENSSL_cleanse(out, sizeof(out));
    w->url = strdup(url);
    if (!w->url) {
        nq_webhook_done(w);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

void nq_webhook_done(struct nq_webhook *w)
{
    free(w->url);
    OPENSSL_cleanse(w, sizeof(*w));
}

int nq_webhook_id(const struct nq_delivery *d, char buf[NQ_WEBHOOK_ID_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    char ts[24];
    int ok;

    if (!ctx)
        return -ENOMEM;
    (void) snprintf(ts, sizeof(ts), "%" PRIu64, d->job_timestamp_ms);
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(ctx, d->queue, strlen(d->queue) + 1) &&
         EVP_DigestUpdate(ctx, d->job_id, strlen(d->job_id) + 1) &&
         EVP_DigestUpdate(ctx, ts, strlen(ts)) && EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -ENOMEM;
    strcpy(buf, "msg_");
    for (size_t i = 0; i < 16; i++)
        (void) snprintf(buf + 4 + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int nq_webhook_sign(const unsigned char *key, size_t key_len, const char *id, int64_t timestamp,
                    const char *body, size_t body_len, char buf[NQ_WEBHOOK_SIGNATURE_SIZE])
{
    char head[NQ_HTTP_ID_MAX + 32];
    int n = snprintf(head, sizeof(head), "%s.%" PRId64 ".", id, timestamp);
    nq_autofree unsigned char *msg = NULL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (n < 0 || (size_t) n >= sizeof(head))
        return -EINVAL;
    msg = malloc((size_t) n + body_len + 1);
    if (!msg)
        return -ENOMEM;
    memcpy(msg, head, (size_t) n);
    if (body_len)
        memcpy(msg + n, body, body_len);
    if (!HMAC(EVP_sha256(), key, (int) key_len, msg, (size_t) n + body_len, mac, &mac_len))
        return -ENOMEM;
    strcpy(buf, "v1,");
    EVP_EncodeBlock((unsigned char *) buf + 3, mac, (int) mac_len);
    return 0;
}

/* ISO 8601 in UTC with milliseconds, as JavaScript's toISOString(). */
static void iso8601(uint64_t ms, char buf[64])
{
    time_t s = (time_t) (ms / 1000);
    struct tm tm;

    if (!gmtime_r(&s, &tm))
        memset(&tm, 0, sizeof(tm));
    (void) snprintf(buf, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    (unsigned) (ms % 1000));
}

/* The envelope, the exact bytes sent and signed. */
static int envelope(const struct nq_webhook_event *ev, char **ret, size_t *ret_len,
                    struct nq_err *err)
{
    json_t *type = json_string(ev->type ? ev->type : "");
    nq_autofree char *type_json = NULL;
    const char *data = ev->data_json ? ev->data_json : "null";
    size_t data_len = ev->data_json ? ev->data_len : 4;
    char ts[64];
    char *body;
    int n;

    if (!type)
        return nq_err_set(err, -EINVAL, "name: not valid UTF-8");
    type_json = json_dumps(type, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(type);
    if (!type_json)
        return nq_err_set(err, -ENOMEM, "out of memory");
    iso8601(ev->timestamp_ms, ts);
    n = asprintf(&body, "{\"type\":%s,\"timestamp\":\"%s\",\"data\":%.*s}", type_json, ts,
                 (int) data_len, data);
    if (n < 0)
        return nq_err_set(err, -ENOMEM, "out of memory");
    *ret = body;
    *ret_len = (size_t) n;
    return 0;
}

static int build(const void *cfg, const void *msg, const struct nq_delivery *d, int64_t now_s,
                 struct nq_http_request *ret, struct nq_err *err)
{
    const struct nq_webhook *w = cfg;
    const struct nq_webhook_event *ev = msg;
    struct nq_http_request req = { .method = "POST" };
    char id[NQ_WEBHOOK_ID_SIZE], ts[24], sig[NQ_WEBHOOK_SIGNATURE_SIZE];
    int r;

    if (ev->data_json && ev->data_len > INT32_MAX)
        return nq_err_set(err, -EINVAL, "data: too large");
    r = envelope(ev, &req.body, &req.body_len, err);
    if (r < 0)
        return r;
    r = nq_webhook_id(d, id);
    if (r < 0) {
        nq_http_request_done(&req);
        return nq_err_set(err, r, "out of memory");
    }
    (void) snprintf(ts, sizeof(ts), "%" PRId64, now_s);
    r = nq_webhook_sign(w->key, w->key_len, id, now_s, req.body, req.body_len, sig);
    if (r >= 0 && !(req.url = strdup(w->url)))
        r = -ENOMEM;
    if (r >= 0)
        r = nq_http_request_add_header(&req, "content-type", "application/json");
    if (r >= 0)
        r = nq_http_request_add_header(&req, "webhook-id", id);
    if (r >= 0)
        r = nq_http_request_add_header(&req, "webhook-timestamp", ts);
    if (r >= 0)
        r = nq_http_request_add_header(&req, "webhook-signature", sig);
    if (r < 0) {
        nq_http_request_done(&req);
        return nq_err_set(err, r, "out of memory");
    }
    *ret = req;
    return 0;
}

static void classify(const void *cfg, const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_http_verdict *v)
{
    long s = reply->status;
    const char *ra = nq_transfer_reply_header(reply, "Retry-After");
    uint64_t wait_ms = 0;

    (void) cfg;
    nq_http_classify_common("webhook", reply, now_s, v);
    if (s == 410) {
        v->cls = NQ_REPLY_PERMANENT;
        (void) snprintf(v->reason, sizeof(v->reason),
                        "webhook: HTTP 410 Gone (the endpoint is gone: fix or remove it)");
    } else if ((s == 502 || s == 503 || s == 504) && ra &&
               nq_http_retry_after_ms(ra, now_s, &wait_ms) == 0) {
        v->cls = NQ_REPLY_RATE;
        v->retry_after_ms = wait_ms;
        (void) snprintf(v->reason, sizeof(v->reason), "webhook: HTTP %ld with Retry-After", s);
    }
}

const struct nq_http_provider nq_webhook_provider = {
    .name = "webhook",
    .build = build,
    .classify = classify,
};
