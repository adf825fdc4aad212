/* SPDX-License-Identifier: MIT */
/*
 * The apns provider: Apple Push Notification service over HTTP/2 with
 * token authentication (PROVIDERS.md §11), one request per device token on
 * connections the transport keeps open and multiplexes (pushsend.h does
 * the fan-out and the per-token results). On an http:// base_url (tests)
 * it speaks HTTP/2 without TLS, with prior knowledge; over https:// HTTP/2
 * is negotiated by ALPN.
 *
 * Provider token: an ES256 JWT (header {"alg":"ES256","kid":key_id},
 * claims {"iss":team_id,"iat":now}) signed with the .p8 key, minted when
 * the last is NQ_APNS_TOKEN_REFRESH_S old (Apple wants 20..60 minutes) or
 * was refused as expired (403 ExpiredProviderToken: that token is resent
 * once with a new one).
 *
 *   POST <base_url>/3/device/<token>
 *   authorization: bearer <JWT>
 *   apns-topic: <topic>                 (the job's apns.headers may override)
 *   apns-push-type: alert | background | ...   default alert, background
 *                                        when there is neither title nor body
 *   apns-priority: 10 (5 for background), or the job's
 *   apns-expiration, apns-collapse-id:  from the job's apns.headers
 *   apns-id: a UUID derived from the delivery and the token: the same on
 *            every attempt, to trace a duplicate
 *
 *   body: the job's apns.payload, with aps.alert {title, body} from the
 *         job's title and body when it has none, content-available for
 *         background pushes, and the job's data keys beside aps; at most
 *         NQ_APNS_PAYLOAD_MAX bytes (voip: NQ_APNS_PAYLOAD_VOIP_MAX).
 *
 * Replies ({"reason"}): 200 sent (id: apns-id); 400 BadDeviceToken,
 * DeviceTokenNotForTopic and 410 Unregistered/ExpiredToken dead; 400
 * TopicDisallowed and 403 InvalidProviderToken, MissingProviderToken,
 * BadCertificate, BadCertificateEnvironment, BadEnvironmentKeyIdInToken,
 * Forbidden permanent with an alert; 400 IdleTimeout, 403
 * UnrelatedKeyIdInToken, 500, 503 retry; 429 TooManyRequests rate (1 s, or
 * Retry-After); 429 TooManyProviderTokenUpdates retry with an alert; other
 * 4xx permanent. A transport error before any reply (a stream refused by
 * GOAWAY, a reset before the request left) retries; after the request was
 * written it is unknown, retried with the duplicate risk counted.
 */
#ifndef NQ_PROVIDERS_APNS_H
#define NQ_PROVIDERS_APNS_H

#include <stdint.h>

#include <openssl/evp.h>

#include "common/err.h"
#include "common/macros.h"
#include "providers/http.h"
#include "providers/provider.h"
#include "providers/pushsend.h"

#define NQ_APNS_PAYLOAD_MAX 4096
#define NQ_APNS_PAYLOAD_VOIP_MAX 5120
#define NQ_APNS_TOKEN_REFRESH_S (45L * 60)
#define NQ_APNS_RATE_WAIT_MS 1000

extern const struct nq_provider_ops nq_provider_apns;

/* The provider token. 0, -EINVAL (not an EC P-256 key), or -ENOMEM. */
int nq_apns_provider_token(EVP_PKEY *key, const char *key_id, const char *team_id, int64_t now_s,
                           char **ret) NQ_MUSTCHECK;

/* apns-id for the delivery and token: a lower-case 8-4-4-4-12 UUID. */
#define NQ_APNS_ID_SIZE 37
int nq_apns_id(const struct nq_delivery *d, const char *token,
               char buf[NQ_APNS_ID_SIZE]) NQ_MUSTCHECK;

/* One token's request. -EINVAL with err naming the field (a token that is
 * not hex, a bad apns header, payload too large), or -ENOMEM. */
int nq_apns_build(const char *base_url, const char *topic, const char *jwt, const struct nq_push *m,
                  const char *token, const struct nq_delivery *d, struct nq_http_request *ret,
                  struct nq_err *err) NQ_MUSTCHECK;
void nq_apns_classify(const struct nq_transfer_reply *reply, int64_t now_s,
                      struct nq_push_verdict *v);

#endif
