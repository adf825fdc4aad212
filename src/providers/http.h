/* SPDX-License-Identifier: MIT */
/*
 * Network providers (webhook now; sendgrid, twilio, fcm, apns... later) as
 * two pure functions the transport drives:
 *
 *   build(cfg, msg, delivery, now) -> method, URL, headers, body
 *   classify(cfg, status, headers, body | transport error, now)
 *        -> outcome {sent, retry, rate(retry_after), permanent, dead,
 *           unknown} + the provider's message id + a reason
 *
 * Neither touches the network, a clock or a global: "now" is an argument,
 * so both are unit-tested against exact bytes. nq_http_send_start() is the
 * one piece that joins them to the transport (transfer/transfer.h): it
 * builds, sends, classifies and reports the verdict.
 *
 * The outcome names are PROVIDERS.md §0's. They map onto the worker's
 * outcomes so: sent -> ok; retry and unknown -> retry (an attempt spent;
 * unknown is also counted as a possible duplicate); rate -> delayed by
 * retry_after_ms without spending an attempt; permanent and dead -> failed
 * now (dead: the address or token is gone and the app should forget it).
 *
 * Ownership: a struct nq_http_request owns its strings
 * (nq_http_request_done). A verdict is a plain value. A send in flight owns
 * its request; msg and cfg are borrowed only during build.
 *
 * See: provider.h (the message-level interface), PROVIDERS.md §0.
 */
#ifndef NQ_PROVIDERS_HTTP_H
#define NQ_PROVIDERS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/macros.h"
#include "providers/provider.h"
#include "transfer/transfer.h"

/* Retry-After is clamped to [1 s, this] (PROVIDERS.md §0's max_retry_after). */
#define NQ_HTTP_RETRY_AFTER_MAX_MS (3600ull * 1000)
#define NQ_HTTP_REQUEST_HEADERS_MAX 32

struct nq_http_request {
    const char *method; /* static text: "POST" */
    char *url;
    char *headers[NQ_HTTP_REQUEST_HEADERS_MAX]; /* "Name: value" */
    size_t n_headers;
    char *body;
    size_t body_len;
};

/* Frees the strings; leaves r zeroed. */
void nq_http_request_done(struct nq_http_request *r);
/* Appends "name: value"; 0, -ENOMEM, or -E2BIG past the cap. */
int nq_http_request_add_header(struct nq_http_request *r, const char *name,
                               const char *value) NQ_MUSTCHECK;

enum nq_reply_class {
    NQ_REPLY_SENT,
    NQ_REPLY_RETRY,
    NQ_REPLY_RATE,
    NQ_REPLY_PERMANENT,
    NQ_REPLY_DEAD,
    NQ_REPLY_UNKNOWN,
};

#define NQ_HTTP_ID_MAX 256
#define NQ_HTTP_REASON_MAX 300

struct nq_http_verdict {
    enum nq_reply_class cls;
    uint64_t retry_after_ms;         /* RATE (0: none given: the queue's backoff), RETRY */
    long status;                     /* the HTTP status, 0 without reply */
    char message_id[NQ_HTTP_ID_MAX]; /* SENT: the provider's id, "" when none */
    char reason[NQ_HTTP_REASON_MAX]; /* all but SENT: "webhook: HTTP 500" */
    /* PROVIDERS.md §0's perm+config (and a quota that waiting seconds will
     * not lift): our credentials, sender or account are wrong, every later
     * job will fail the same way: alert. */
    bool config;
};

/* "sent", "retry", "rate", "permanent", "dead", "unknown". */
const char *nq_reply_class_name(enum nq_reply_class cls);

typedef int (*nq_http_build_fn)(const void *cfg, const void *msg, const struct nq_delivery *d,
                                int64_t now_s, struct nq_http_request *ret, struct nq_err *err);
typedef void (*nq_http_classify_fn)(const void *cfg, const struct nq_transfer_reply *reply,
                                    int64_t now_s, struct nq_http_verdict *ret);

/* A network provider: its name (reasons start with it) and its two
 * functions. build returns 0, -EINVAL with err naming the field (the job
 * fails permanently), or -ENOMEM. */
struct nq_http_provider {
    const char *name;
    nq_http_build_fn build;
    nq_http_classify_fn classify;
};

/* A Retry-After value (delta-seconds or an HTTP-date) as ms from now_s,
 * clamped to [1 s, NQ_HTTP_RETRY_AFTER_MAX_MS] (a date in the past is 1 s).
 * 0, or -EINVAL for anything else. */
int nq_http_retry_after_ms(const char *value, int64_t now_s, uint64_t *ret) NQ_MUSTCHECK;

/* PROVIDERS.md §0's rules for what a provider's table does not list:
 * transport errors (not sent -> retry, unknown -> unknown), 2xx -> sent,
 * 408 and 5xx -> retry (with Retry-After when given), 429 -> rate
 * (Retry-After or the backoff), 401/403 and other 4xx -> permanent, 3xx ->
 * retry (redirects are not followed: the URL needs fixing). */
void nq_http_classify_common(const char *name, const struct nq_transfer_reply *reply, int64_t now_s,
                             struct nq_http_verdict *ret);

/* ---- driving a provider through the transport --------------------------- */

struct nq_http_send;

struct nq_http_send_opts {
    uint64_t connect_timeout_ms;
    uint64_t timeout_ms;
    const char *ca_file;
    bool insecure;
};

typedef void (*nq_http_done_fn)(const struct nq_http_verdict *v, void *userdata);

/* Builds the request (build's errors are returned with err; nothing is
 * sent), starts it on t and, once the reply or a transport error is in,
 * classifies it and calls done from the loop. 0 and *ret (for
 * nq_http_send_cancel), -EINVAL from build, -EBUSY, or -ENOMEM. */
int nq_http_send_start(struct nq_transfer *t, const struct nq_http_provider *p, const void *cfg,
                       const void *msg, const struct nq_delivery *d,
                       const struct nq_http_send_opts *opts, nq_http_done_fn done, void *userdata,
                       struct nq_http_send **ret, struct nq_err *err) NQ_MUSTCHECK;
/* Abandons s: done is not called; s is freed. */
void nq_http_send_cancel(struct nq_http_send *s);

#endif
