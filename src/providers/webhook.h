/* SPDX-License-Identifier: MIT */
/*
 * The webhook provider: a job as a Standard Webhooks v1 event, POSTed to
 * the queue's URL and signed with its secret (PROVIDERS.md §12).
 *
 *   POST <url>
 *   content-type: application/json
 *   webhook-id: msg_<32 hex>          the same on every attempt of a job
 *   webhook-timestamp: <unix seconds of this attempt>
 *   webhook-signature: v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>
 *
 *   {"type":<job name>,"timestamp":"<job's creation, ISO 8601 UTC>","data":<job data>}
 *
 * The key is the base64-decoded part of the secret after "whsec_". The id
 * is derived from the queue, the job id and the job's creation timestamp:
 * stable across the job's retries (receivers dedupe on it), new for a job
 * that reuses an id after the first was removed.
 *
 * Replies (PROVIDERS.md §12 and §0): 2xx sent (the id is the webhook-id);
 * 410 permanent (the endpoint is gone); 429 rate (Retry-After, else the
 * queue's backoff; no attempt spent); 502/503/504 with Retry-After rate,
 * without it retry; other 5xx, 408, 3xx (never followed) and transport
 * errors retry (unknown when the request was sent); other 4xx permanent.
 *
 * See: http.h for the provider shape.
 */
#ifndef NQ_PROVIDERS_WEBHOOK_H
#define NQ_PROVIDERS_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/macros.h"
#include "providers/http.h"

#define NQ_WEBHOOK_KEY_MIN 24 /* bytes, Standard Webhooks' range */
#define NQ_WEBHOOK_KEY_MAX 64
#define NQ_WEBHOOK_ID_SIZE 37        /* "msg_" + 32 hex + NUL */
#define NQ_WEBHOOK_SIGNATURE_SIZE 48 /* "v1," + 44 base64 + NUL */

/* What build needs of the queue: the endpoint and the decoded key. */
struct nq_webhook {
    char *url;
    unsigned char key[NQ_WEBHOOK_KEY_MAX];
    size_t key_len;
};

/* One event: borrowed strings. */
struct nq_webhook_event {
    const char *type;      /* the job's name */
    const char *data_json; /* the job's data as JSON text; NULL: null */
    size_t data_len;
    uint64_t timestamp_ms; /* when the job was created */
};

/* Decodes secret ("whsec_" + base64 of 24..64 bytes) into w->key and copies
 * url. 0, -EINVAL with err saying what is wrong (never quoting the secret),
 * or -ENOMEM. */
int nq_webhook_init(struct nq_webhook *w, const char *url, const char *secret,
                    struct nq_err *err) NQ_MUSTCHECK;
/* Frees the URL and wipes the key. */
void nq_webhook_done(struct nq_webhook *w);

/* Whether secret has the whsec_ form, without decoding it for use; NULL
 * when fine, else why not (for the config's checks). */
const char *nq_webhook_secret_problem(const char *secret);

/* "msg_" + 32 lower-case hex digits of SHA-256(queue NUL job id NUL
 * timestamp in ms as decimal); buf must hold NQ_WEBHOOK_ID_SIZE. 0 or
 * -ENOMEM. */
int nq_webhook_id(const struct nq_delivery *d, char buf[NQ_WEBHOOK_ID_SIZE]) NQ_MUSTCHECK;

/* "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" into buf
 * (NQ_WEBHOOK_SIGNATURE_SIZE). 0 or -ENOMEM. */
int nq_webhook_sign(const unsigned char *key, size_t key_len, const char *id, int64_t timestamp,
                    const char *body, size_t body_len,
                    char buf[NQ_WEBHOOK_SIGNATURE_SIZE]) NQ_MUSTCHECK;

/* build: cfg is a struct nq_webhook, msg a struct nq_webhook_event;
 * classify: cfg unused. */
extern const struct nq_http_provider nq_webhook_provider;

#endif
