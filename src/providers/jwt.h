/* SPDX-License-Identifier: MIT */
/*
 * JSON Web Tokens as the push providers sign them (RFC 7515/7519, compact
 * form): base64url(header) "." base64url(claims) "." base64url(signature),
 * base64url without padding. RS256 (RSASSA-PKCS1-v1_5 with SHA-256: FCM's
 * OAuth2 assertion) and ES256 (ECDSA P-256 with SHA-256: APNs provider
 * tokens) through OpenSSL's EVP_DigestSign. ES256's signature is the raw
 * 64-byte r||s; OpenSSL gives DER, converted here.
 *
 * Ownership: keys are EVP_PKEY (free with EVP_PKEY_free); returned strings
 * are the caller's (free). Keys and tokens are secrets: never logged.
 */
#ifndef NQ_PROVIDERS_JWT_H
#define NQ_PROVIDERS_JWT_H

#include <stddef.h>

#include <openssl/evp.h>

#include "common/macros.h"

enum nq_jwt_alg { NQ_JWT_RS256, NQ_JWT_ES256 };

/* base64url of len bytes, without padding; NULL on OOM. */
char *nq_base64url(const void *data, size_t len);

/* A private key from PEM text (PKCS#8 or traditional); NULL when it is
 * not one. With alg, also NULL when the key's type does not fit it (RSA
 * for RS256, an EC P-256 key for ES256). */
EVP_PKEY *nq_jwt_key_from_pem(const char *pem, enum nq_jwt_alg alg);

/* "<b64url(header_json)>.<b64url(claims_json)>.<b64url(signature)>" into
 * *ret. 0, -EINVAL (the key does not fit alg, or OpenSSL refused), or
 * -ENOMEM. */
int nq_jwt_sign(EVP_PKEY *key, enum nq_jwt_alg alg, const char *header_json,
                const char *claims_json, char **ret) NQ_MUSTCHECK;

#endif
