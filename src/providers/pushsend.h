/* SPDX-License-Identifier: MIT */
/*
 * What the push providers (fcm, apns) share: one HTTP request per device
 * token (neither API has multicast), per-token results, and credentials
 * that must be fresh before a request goes out.
 *
 * A send takes the message's tokens less those earlier attempts settled
 * (the job's progress, as smtp keeps recipients), and keeps at most
 * NQ_PUSH_WINDOW requests in flight on the worker's transport. Each reply is
 * classified by the provider (struct nq_push_verdict) into a token status:
 *   sent     accepted; id = the provider's message id
 *   dead     the token is gone (uninstalled, expired, another project's):
 *            the app should forget it
 *   failed   will not succeed as is (a bad field, a payload too large,
 *            credentials refused)
 *   pending  retry, rate or unknown: tried again on the job's next attempt
 * The job completes when none is pending and one was sent; fails when none
 * was sent; is retried while any is pending (delayed without spending an
 * attempt when every pending token was rate limited: the longest wait
 * given). The returnvalue, and the progress kept between attempts:
 *   {"provider":"fcm", "recipients":[{"to":TOKEN, "status":"sent"|"failed"|
 *    "dead", "id":ID or null, "reason":null or why}], "unknownAttempts":N}
 *
 * Credentials: before a send's first request the provider's auth hook says
 * whether its credentials are fresh (0), being fetched (1: the send is held
 * until nq_pushsend_auth_done), or unobtainable (< 0: every token of the
 * send stays pending or fails, as the hook's verdict says). A reply that
 * calls them stale (FCM's plain 401, APNs's ExpiredProviderToken) marks
 * them stale and resends that token once, at once, after fresh ones came.
 * A verdict with config set (credentials or account refused) is logged at
 * LOG_ALERT once per send: every later job would fail the same way.
 * Tokens and credentials are never logged.
 */
#ifndef NQ_PROVIDERS_PUSHSEND_H
#define NQ_PROVIDERS_PUSHSEND_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "common/err.h"
#include "common/macros.h"
#include "providers/http.h"
#include "providers/provider.h"
#include "transfer/transfer.h"

#define NQ_PUSH_WINDOW 8 /* requests in flight per send */

struct nq_push_verdict {
    struct nq_http_verdict v;
    bool config; /* perm+config: our credentials or account are refused (alert) */
    bool stale;  /* the credentials expired: get fresh ones and resend once */
};

struct nq_pushsend;

/* The provider's side (fcm.c, apns.c). */
struct nq_pushsend_class {
    const struct nq_provider_ops *ops;
    /* One token's request with the current credentials. 0, -EINVAL with
     * err saying why (the token fails), or -ENOMEM. */
    int (*build)(struct nq_pushsend *ps, const struct nq_push *m, const char *token,
                 const struct nq_delivery *d, int64_t now_s, struct nq_http_request *ret,
                 struct nq_err *err);
    void (*classify)(const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_push_verdict *ret);
    /* 0: fresh; 1: being fetched; -1: none to be had, *ret says why. */
    int (*auth)(struct nq_pushsend *ps, int64_t now_s, struct nq_push_verdict *ret);
    /* The credentials a request used were called stale. */
    void (*stale)(struct nq_pushsend *ps);
    /* Frees the provider's own state (the rest is nq_pushsend_done's). */
    void (*done)(struct nq_pushsend *ps);
};

struct nq_send;

/* The first member of fcm's and apns's provider structs. */
struct nq_pushsend {
    struct nq_provider base;
    const struct nq_pushsend_class *cls;
    const struct nq_provider_cfg *cfg;
    const char *queue;
    struct event_base *ev;
    struct nq_transfer *t;
    bool prior_knowledge; /* apns: HTTP/2 without TLS (prior knowledge) on http:// */
    struct nq_send *held; /* sends waiting for credentials */
};

/* Sets up ps's shared part (the transport for env's concurrency). 0 or a
 * negative errno with err. */
int nq_pushsend_init(struct nq_pushsend *ps, const struct nq_provider_env *env,
                     const struct nq_pushsend_class *cls, struct nq_err *err) NQ_MUSTCHECK;

/* The provider ops of every push provider. */
int nq_pushsend_send(struct nq_provider *p, const struct nq_msg *msg, const struct nq_delivery *d,
                     nq_send_done_fn done, void *userdata, struct nq_send **ret_send);
void nq_pushsend_cancel(struct nq_provider *p, struct nq_send *s);
void nq_pushsend_free(struct nq_provider *p);

/* The credentials auth said were being fetched are in (v NULL), or could
 * not be had (v says how each held token ends). Held sends go on. */
void nq_pushsend_auth_done(struct nq_pushsend *ps, const struct nq_push_verdict *v);

/* Options every request of ps is sent with. */
void nq_pushsend_request(const struct nq_pushsend *ps, const struct nq_http_request *hr,
                         struct nq_transfer_req *ret);

#endif
