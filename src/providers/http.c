/* SPDX-License-Identifier: MIT */
/*
 * What every network provider shares: requests, Retry-After, PROVIDERS.md
 * §0's default classification, and the glue that runs a provider's build
 * and classify around one transfer (see http.h).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "providers/http.h"

#define SEC_MS 1000ull

void nq_http_request_done(struct nq_http_request *r)
{
    free(r->url);
    for (size_t i = 0; i < r->n_headers; i++)
        free(r->headers[i]);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int nq_http_request_add_header(struct nq_http_request *r, const char *name, const char *value)
{
    char *line;

    if (r->n_headers == NQ_HTTP_REQUEST_HEADERS_MAX)
        return -E2BIG;
    if (asprintf(&line, "%s: %s", name, value) < 0)
        return -ENOMEM;
    r->headers[r->n_headers++] = line;
    return 0;
}

const char *nq_reply_class_name(enum nq_reply_class cls)
{
    static const char *const names[] = {
        [NQ_REPLY_SENT] = "sent", [NQ_REPLY_RETRY] = "retry",
        [NQ_REPLY_RATE] = "rate", [NQ_REPLY_PERMANENT] = "permanent",
        [NQ_REPLY_DEAD] = "dead", [NQ_REPLY_UNKNOWN] = "unknown",
    };

    return (size_t) cls < NQ_ELEMENTSOF(names) ? names[cls] : "?";
}

static uint64_t clamp_ms(uint64_t ms)
{
    if (ms < SEC_MS)
        return SEC_MS;
    return ms > NQ_HTTP_RETRY_AFTER_MAX_MS ? NQ_HTTP_RETRY_AFTER_MAX_MS : ms;
}

int nq_http_retry_after_ms(const char *value, int64_t now_s, uint64_t *ret)
{
    const char *p = value;
    uint64_t secs = 0;
    int64_t when;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p >= '0' && *p <= '9') {
        for (; *p >= '0' && *p <= '9'; p++)
            if (secs < NQ_HTTP_RETRY_AFTER_MAX_MS / SEC_MS)
                secs = secs * 10 + (uint64_t) (*p - '0');
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p)
            return -EINVAL;
        *ret = clamp_ms(secs * SEC_MS);
        return 0;
    }
    if (nq_transfer_http_date(p, &when) < 0)
        return -EINVAL;
    *ret = clamp_ms(when > now_s ? (uint64_t) (when - now_s) * SEC_MS : 0);
    return 0;
}

static void verdict(struct nq_http_verdict *v, enum nq_reply_class cls, const char *fmt, ...)
    NQ_PRINTF(3, 4);

static void verdict(struct nq_http_verdict *v, enum nq_reply_class cls, const char *fmt, ...)
{
    va_list ap;

    v->cls = cls;
    va_start(ap, fmt);
    (void) vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
}

/* ms of the reply's Retry-After, 0 when absent or unreadable. */
static uint64_t retry_after(const struct nq_transfer_reply *reply, int64_t now_s)
{
    const char *ra = nq_transfer_reply_header(reply, "Retry-After");
    uint64_t ms = 0;

    return ra && nq_http_retry_after_ms(ra, now_s, &ms) == 0 ? ms : 0;
}

void nq_http_classify_common(const char *name, const struct nq_transfer_reply *reply, int64_t now_s,
                             struct nq_http_verdict *v)
{
    long s = reply->status;

    memset(v, 0, sizeof(*v));
    v->status = s;
    if (s == 0) {
        if (reply->error == NQ_XFER_UNKNOWN)
            verdict(v, NQ_REPLY_UNKNOWN, "%s: %s after the request was sent (possible duplicate)",
                    name, reply->timed_out ? "timeout" : "connection lost");
        else
            verdict(v, NQ_REPLY_RETRY, "%s: %s (nothing sent)", name,
                    *reply->error_text ? reply->error_text : "no reply");
        return;
    }
    if (s >= 200 && s < 300) {
        v->cls = NQ_REPLY_SENT;
        return;
    }
    if (s == 429) {
        verdict(v, NQ_REPLY_RATE, "%s: HTTP 429 (rate limited)", name);
        v->retry_after_ms = retry_after(reply, now_s);
    } else if (s == 408 || s >= 500) {
        verdict(v, NQ_REPLY_RETRY, "%s: HTTP %ld", name, s);
        v->retry_after_ms = retry_after(reply, now_s);
    } else if (s >= 300 && s < 400) {
        verdict(v, NQ_REPLY_RETRY, "%s: HTTP %ld redirect not followed (fix the URL)", name, s);
    } else if (s == 401 || s == 403) {
        verdict(v, NQ_REPLY_PERMANENT, "%s: HTTP %ld (check the credentials)", name, s);
    } else {
        verdict(v, NQ_REPLY_PERMANENT, "%s: HTTP %ld", name, s);
    }
}

/* ---- a send ------------------------------------------------------------- */

struct nq_http_send {
    struct nq_transfer *t;
    struct nq_xfer *x;
    const struct nq_http_provider *p;
    const void *cfg;
    struct nq_http_request req;
    nq_http_done_fn done;
    void *userdata;
};

static void send_free(struct nq_http_send *s)
{
    nq_http_request_done(&s->req);
    free(s);
}

static void on_reply(const struct nq_transfer_reply *reply, void *userdata)
{
    struct nq_http_send *s = userdata;
    struct nq_http_verdict v;

    s->p->classify(s->cfg, reply, (int64_t) time(NULL), &v);
    s->x = NULL;
    s->done(&v, s->userdata);
    send_free(s);
}

int nq_http_send_start(struct nq_transfer *t, const struct nq_http_provider *p, const void *cfg,
                       const void *msg, const struct nq_delivery *d,
                       const struct nq_http_send_opts *opts, nq_http_done_fn done, void *userdata,
                       struct nq_http_send **ret, struct nq_err *err)
{
    struct nq_http_send *s = calloc(1, sizeof(*s));
    struct nq_transfer_req tr;
    int r;

    if (!s)
        return nq_err_set(err, -ENOMEM, "out of memory");
    r = p->build(cfg, msg, d, (int64_t) time(NULL), &s->req, err);
    if (r < 0) {
        free(s);
        return r;
    }
    s->t = t;
    s->p = p;
    s->cfg = cfg;
    s->done = done;
    s->userdata = userdata;
    tr = (struct nq_transfer_req){
        .url = s->req.url,
        .method = s->req.method,
        .headers = (const char *const *) s->req.headers,
        .n_headers = s->req.n_headers,
        .body = s->req.body,
        .body_len = s->req.body_len,
        .connect_timeout_ms = opts->connect_timeout_ms,
        .timeout_ms = opts->timeout_ms,
        .ca_file = opts->ca_file,
        .insecure = opts->insecure,
    };
    r = nq_transfer_start(t, &tr, on_reply, s, &s->x);
    if (r < 0) {
        send_free(s);
        return nq_err_set(err, r, "%s: cannot start the request: %s", p->name, strerror(-r));
    }
    *ret = s;
    return 0;
}

void nq_http_send_cancel(struct nq_http_send *s)
{
    if (!s)
        return;
    nq_transfer_cancel(s->t, s->x);
    send_free(s);
}
