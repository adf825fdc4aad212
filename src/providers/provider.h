/* SPDX-License-Identifier: MIT */
/*
 * Providers: how a message leaves (file, later smtp, sendgrid, twilio, fcm,
 * apns...). A handler validates a job's data into a struct nq_msg (one
 * struct per channel: email, sms, push) and hands it to its queue's
 * provider, which delivers it and classifies what happened:
 *
 *   NQ_SEND_SENT           accepted; message_id is the provider's id
 *   NQ_SEND_RETRY          transient (5xx, timeout, disk full); retry_after_ms
 *                          > 0 when the provider said how long to wait
 *   NQ_SEND_RATE_LIMITED   throttled (429): wait retry_after_ms, no attempt spent
 *   NQ_SEND_PERMANENT      will never succeed as is (invalid address, 4xx)
 *
 * Providers know nothing of Redis, jobs or queues beyond struct
 * nq_delivery, the identity of one delivery that stays the same across a
 * job's retries (file names, Message-IDs and idempotency keys derive from it,
 * so a retried send overwrites or is recognised rather than duplicated).
 *
 * Asynchrony: nq_provider_send() only starts a send; the provider calls
 * done exactly once, always later from the event base's loop, never from
 * inside nq_provider_send(). nq_provider_cancel() abandons a send in flight:
 * done is then never called. Everything runs in the worker's one thread.
 *
 * Ownership: nq_msg owns every string in it (nq_msg_init/nq_msg_done). The
 * message and the delivery passed to nq_provider_send() are borrowed until
 * done is called or the send is cancelled. A struct nq_send_result and all
 * it points to are valid during the done callback only. A provider is
 * nq_provider_new/nq_provider_free; free it only with no send in flight
 * (cancel them first).
 *
 * Logging: providers do not log a message's content (addresses aside) and
 * never credentials; outcome reasons name the provider: "file: write
 * /var/lib/notifyq/spool/email/...: No space left on device".
 *
 * Network providers (webhook, later the HTTP catalogue) are shaped as two
 * pure functions, build and classify, that providers/http.h drives through
 * the worker's transport (transfer/transfer.h).
 *
 * See: ../shared/PROVIDERS.md for the wire facts of each provider.
 */
#ifndef NQ_PROVIDERS_PROVIDER_H
#define NQ_PROVIDERS_PROVIDER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/macros.h"
#include "config/config.h"

struct event_base;

/* ---- messages ------------------------------------------------------------ */

enum nq_msg_type { NQ_MSG_EMAIL, NQ_MSG_SMS, NQ_MSG_PUSH };

/* An email address with an optional display name (UTF-8, unencoded). */
struct nq_mailbox {
    char *name; /* NULL: none */
    char *addr; /* addr-spec, ASCII, checked by the handler */
};

struct nq_kv {
    char *name;
    char *value;
};

struct nq_email {
    struct nq_mailbox from;
    struct nq_mailbox *to; /* at least one */
    size_t n_to;
    struct nq_mailbox *cc;
    size_t n_cc;
    struct nq_mailbox *bcc;
    size_t n_bcc;
    struct nq_mailbox reply_to; /* addr NULL: none */
    char *subject;              /* NULL: none */
    char *text;                 /* at least one of text and html */
    char *html;
    struct nq_kv *headers; /* extra header fields, printable ASCII, one line each */
    size_t n_headers;
};

struct nq_sms {
    char *from; /* E.164 number or alphanumeric sender id; NULL: the provider's default */
    char *to;   /* E.164: "+" and 7..15 digits */
    char *body;
};

struct nq_push {
    char **tokens; /* device tokens, at least one */
    size_t n_tokens;
    char *platform;     /* "android", "ios", "web", or NULL */
    char *title;        /* NULL: none */
    char *body;         /* NULL: none */
    struct nq_kv *data; /* string -> string, as FCM requires */
    size_t n_data;
    /* FCM's per-platform blocks as compact JSON objects, passed through;
     * NULL: none. */
    char *android;
    char *apns;
    char *webpush;
};

struct nq_msg {
    enum nq_msg_type type;
    char *tenant_id;       /* from the job's tenantId, or NULL */
    char *notification_id; /* from the job's notificationId, or NULL */
    union {
        struct nq_email email;
        struct nq_sms sms;
        struct nq_push push;
    };
};

void nq_msg_init(struct nq_msg *m, enum nq_msg_type type);
/* Frees every string and array; leaves m as after nq_msg_init. */
void nq_msg_done(struct nq_msg *m);

/* "email", "sms", "push". */
const char *nq_msg_type_name(enum nq_msg_type type);

/* ---- sends --------------------------------------------------------------- */

/* One delivery: the same across a job's attempts, and different for a job
 * id used again (BullMQ allows it once the first job is removed, and numeric
 * ids restart when Redis is emptied): the job's timestamp, set when it was
 * added and kept through its retries, tells the two apart. Strings
 * borrowed. */
struct nq_delivery {
    const char *queue;         /* the queue's name in the config */
    const char *job_id;        /* BullMQ job id: any bytes but NUL (':' and '/' included) */
    uint64_t timestamp;        /* the job's timestamp (ms since the epoch), 0 if unknown */
    uint32_t attempt;          /* 1 for the first attempt */
    uint64_t job_timestamp_ms; /* the job's creation time: with job_id, tells a
                                * job from a later one reusing its id (webhook-id) */
    /* What earlier attempts left in the job's progress (a provider's
     * nq_send_result.progress, stored with the retry), or NULL: a provider
     * that sends to many recipients skips those already done. */
    const char *progress_json;
};

enum nq_send_status {
    NQ_SEND_SENT,
    NQ_SEND_RETRY,
    NQ_SEND_RATE_LIMITED,
    NQ_SEND_PERMANENT,
};

struct nq_send_result {
    enum nq_send_status status;
    const char *message_id;  /* SENT: the provider's id, or NULL when it gave none */
    const char *reason;      /* otherwise: what failed, naming the provider */
    uint64_t retry_after_ms; /* RETRY (0: the queue's backoff), RATE_LIMITED */
    const json_t *details;   /* SENT, and PERMANENT with per-recipient results:
                              * an object of extra fields for the job's
                              * returnvalue ({"path": ...}), or NULL */
    /* Not SENT: what this and earlier attempts achieved (recipients already
     * reached), stored as the job's progress with the retry and handed back
     * as nq_delivery.progress_json to the next attempt; NULL: none. */
    const json_t *progress;
};

typedef void (*nq_send_done_fn)(const struct nq_send_result *res, void *userdata);

struct nq_provider;
struct nq_send; /* one send in flight, owned by its provider */

/* What a provider is made from. Borrowed; outlives the provider. */
struct nq_provider_env {
    struct event_base *base;
    const char *queue; /* the queue's name, for messages */
    const struct nq_provider_cfg *cfg;
    enum nq_msg_type type; /* what the queue's handler sends */
    unsigned concurrency;  /* sends in flight at once, at most (the queue's) */
};

/* Makes the provider env->cfg->kind names. 0, or a negative errno with err
 * saying why ("provider file: spool_dir /x: Permission denied"): -EINVAL
 * when the provider cannot carry env->type, -EOPNOTSUPP for a kind without
 * an implementation. */
int nq_provider_new(const struct nq_provider_env *env, struct nq_provider **ret,
                    struct nq_err *err) NQ_MUSTCHECK;
struct nq_provider *nq_provider_free(struct nq_provider *p);

/* "file", ... */
const char *nq_provider_name(const struct nq_provider *p);

/* Starts sending msg (of the provider's type). Returns 0 and *ret_send, the
 * handle for nq_provider_cancel, when done will be called; a negative errno
 * (-ENOMEM) when nothing was started and done will not be called. */
int nq_provider_send(struct nq_provider *p, const struct nq_msg *msg, const struct nq_delivery *d,
                     nq_send_done_fn done, void *userdata, struct nq_send **ret_send) NQ_MUSTCHECK;
/* Abandons s: done will not be called, s is freed. */
void nq_provider_cancel(struct nq_provider *p, struct nq_send *s);

/* ---- for implementations -------------------------------------------------- */

struct nq_provider_ops {
    enum nq_provider_kind kind;
    const char *name;
    unsigned types; /* (1u << NQ_MSG_x) for each message type it can carry */
    int (*make)(const struct nq_provider_env *env, struct nq_provider **ret, struct nq_err *err);
    void (*free)(struct nq_provider *p);
    int (*send)(struct nq_provider *p, const struct nq_msg *msg, const struct nq_delivery *d,
                nq_send_done_fn done, void *userdata, struct nq_send **ret_send);
    void (*cancel)(struct nq_provider *p, struct nq_send *s);
};

/* The first member of every provider's own struct; make() sets ops. */
struct nq_provider {
    const struct nq_provider_ops *ops;
};

/* d as one name that is safe as a file name and as an RFC 5322 dot-atom:
 * "<queue>.<job id>.<timestamp>", queue and id with each byte outside
 * [A-Za-z0-9_-] written %XX (so ':', '/' and '.' never appear raw and
 * distinct deliveries get distinct names), an empty id as %00, the
 * timestamp in decimal. When "<queue>.<job id>" does not fit in
 * NQ_DELIVERY_STEM_MAX with the timestamp, its head is kept and followed by
 * "~" and 16 hex digits of a hash of the whole. Returns the length, or
 * -ENOBUFS when size < NQ_DELIVERY_STEM_MAX + 1. */
#define NQ_DELIVERY_STEM_MAX 200
int nq_delivery_stem(const struct nq_delivery *d, char *buf, size_t size) NQ_MUSTCHECK;

/* "<stem@host>": the same on every attempt of a delivery, so a receiver can
 * tell a retry from a new message (PROVIDERS.md §13). host is this
 * machine's name when it is a plain dot-atom, else "notifyq". Returns its
 * length or -ENOBUFS (size < NQ_DELIVERY_STEM_MAX + 260 is always enough). */
int nq_delivery_message_id(const struct nq_delivery *d, char *buf, size_t size) NQ_MUSTCHECK;

#endif
