/* SPDX-License-Identifier: MIT */
/*
 * The fcm provider: Firebase Cloud Messaging HTTP v1 (PROVIDERS.md §10),
 * one request per device token (v1 has no multicast; pushsend.h does the
 * fan-out and the per-token results).
 *
 * Credentials: the service account's RSA key signs an RS256 assertion
 * (iss = client_email, scope firebase.messaging, aud = token_url, an hour)
 * that token_url trades for an OAuth2 access token, on the worker's
 * transport like any request. The token is cached until shortly before it
 * expires (5 minutes, or half its life when that is shorter); sends wait
 * while a new one is fetched. A plain 401 from the send endpoint drops the
 * token and resends once with a fresh one.
 *
 *   POST <base_url>/v1/projects/<project_id>/messages:send
 *   authorization: Bearer <access token>
 *   content-type: application/json
 *
 *   {"message":{"token":T,"notification":{"title","body"},"data":{..},
 *               "android":{..},"apns":{..},"webpush":{..}}}
 *
 * The message without its token must be at most NQ_FCM_PAYLOAD_MAX bytes
 * of JSON, checked before sending (FCM's 4 KiB limit on the payload).
 *
 * Replies, by FcmError errorCode or else error.status: 200 sent (id: the
 * reply's name); UNREGISTERED, 404, SENDER_ID_MISMATCH dead; INVALID_ARGUMENT
 * permanent (dead when it says the registration token is not valid);
 * THIRD_PARTY_AUTH_ERROR, PERMISSION_DENIED, other 401/403 permanent with
 * an alert; QUOTA_EXCEEDED and 429 rate (Retry-After, else 60 s);
 * UNAVAILABLE, INTERNAL, other 5xx retry (with Retry-After when given).
 * The token endpoint: 200 {access_token, expires_in}; 400 invalid_grant,
 * 401, 403 permanent with an alert; 5xx and transport errors retry.
 */
#ifndef NQ_PROVIDERS_FCM_H
#define NQ_PROVIDERS_FCM_H

#include <stdint.h>

#include <openssl/evp.h>

#include "common/err.h"
#include "common/macros.h"
#include "providers/http.h"
#include "providers/provider.h"
#include "providers/pushsend.h"

#define NQ_FCM_PAYLOAD_MAX 4096
#define NQ_FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define NQ_FCM_QUOTA_WAIT_MS 60000 /* 429 without Retry-After: FCM asks for >= 1 min */

extern const struct nq_provider_ops nq_provider_fcm;

/* What the assertion needs of the service account. */
struct nq_fcm_account {
    char *client_email;
    char *key_id; /* private_key_id; NULL: none */
    EVP_PKEY *key;
};

/* Reads the service account's JSON. 0, -EINVAL with err (never quoting
 * the key), or -ENOMEM. */
int nq_fcm_account_load(const char *json, struct nq_fcm_account *ret,
                        struct nq_err *err) NQ_MUSTCHECK;
void nq_fcm_account_done(struct nq_fcm_account *a);

/* The signed assertion for token_url, issued at now_s. 0 or -ENOMEM/-EINVAL. */
int nq_fcm_assertion(const struct nq_fcm_account *a, const char *token_url, int64_t now_s,
                     char **ret) NQ_MUSTCHECK;
/* POST token_url with the jwt-bearer grant. 0 or -ENOMEM. */
int nq_fcm_token_request(const char *token_url, const char *assertion,
                         struct nq_http_request *ret) NQ_MUSTCHECK;
/* The token endpoint's reply: 0 with *ret_token (free it) and the
 * lifetime in seconds, or -1 with *v saying what the held sends become. */
int nq_fcm_token_reply(const struct nq_transfer_reply *reply, int64_t now_s, char **ret_token,
                       int64_t *ret_expires_in, struct nq_push_verdict *v);

/* One token's send request. -EINVAL with err naming the field (payload too
 * large, a reserved data key), or -ENOMEM. */
int nq_fcm_build(const char *base_url, const char *project_id, const char *access_token,
                 const struct nq_push *m, const char *token, struct nq_http_request *ret,
                 struct nq_err *err) NQ_MUSTCHECK;
void nq_fcm_classify(const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_push_verdict *v);

#endif
