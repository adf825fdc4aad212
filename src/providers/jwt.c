/* SPDX-License-Identifier: MIT */
/*
 * JWT signing with OpenSSL (see jwt.h).
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>

#include "providers/jwt.h"

#define ES256_HALF 32

char *nq_base64url(const void *data, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(cap);
    int n;

    if (!out)
        return NULL;
    n = EVP_EncodeBlock((unsigned char *) out, data, (int) len);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (char *p = out; *p; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
    }
    return out;
}

static bool key_fits(EVP_PKEY *k, enum nq_jwt_alg alg)
{
    char group[64] = "";

    if (alg == NQ_JWT_RS256)
        return EVP_PKEY_is_a(k, "RSA");
    return EVP_PKEY_is_a(k, "EC") &&
           EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                          NULL) &&
           strcmp(group, "prime256v1") == 0;
}

EVP_PKEY *nq_jwt_key_from_pem(const char *pem, enum nq_jwt_alg alg)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    if (k && !key_fits(k, alg)) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

/* DER ECDSA-Sig-Value to r||s, each left-padded to 32 bytes. */
static int der_to_raw(const unsigned char *der, size_t der_len, unsigned char raw[2 * ES256_HALF])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long) der_len);
    const BIGNUM *r, *s;
    int ok;

    if (!sig)
        return -EINVAL;
    ECDSA_SIG_get0(sig, &r, &s);
    ok = BN_bn2binpad(r, raw, ES256_HALF) == ES256_HALF &&
         BN_bn2binpad(s, raw + ES256_HALF, ES256_HALF) == ES256_HALF;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -EINVAL;
}

static int sign(EVP_PKEY *key, const char *input, size_t len, unsigned char **ret, size_t *ret_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t n = 0;
    int r = -EINVAL;

    if (!ctx)
        return -ENOMEM;
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(ctx, NULL, &n, (const unsigned char *) input, len) == 1) {
        sig = malloc(n);
        r = !sig                                                                    ? -ENOMEM
            : EVP_DigestSign(ctx, sig, &n, (const unsigned char *) input, len) == 1 ? 0
                                                                                    : -EINVAL;
    }
    EVP_MD_CTX_free(ctx);
    if (r < 0) {
        free(sig);
        return r;
    }
    *ret = sig;
    *ret_len = n;
    return 0;
}

int nq_jwt_sign(EVP_PKEY *key, enum nq_jwt_alg alg, const char *header_json,
                const char *claims_json, char **ret)
{
    char *h = nq_base64url(header_json, strlen(header_json));
    char *c = nq_base64url(claims_json, strlen(claims_json));
    char *input = NULL, *s64 = NULL, *out = NULL;
    unsigned char *sig = NULL, raw[2 * ES256_HALF];
    size_t sig_len = 0;
    int r = -ENOMEM;

    if (!key_fits(key, alg))
        r = -EINVAL;
    else if (h && c && asprintf(&input, "%s.%s", h, c) >= 0)
        r = sign(key, input, strlen(input), &sig, &sig_len);
    else
        input = NULL;
    if (r >= 0 && alg == NQ_JWT_ES256)
        r = der_to_raw(sig, sig_len, raw);
    if (r >= 0) {
        s64 = alg == NQ_JWT_ES256 ? nq_base64url(raw, sizeof(raw)) : nq_base64url(sig, sig_len);
        if (!s64 || asprintf(&out, "%s.%s", input, s64) < 0) {
            out = NULL;
            r = -ENOMEM;
        }
    }
    free(h);
    free(c);
    free(input);
    free(sig);
    free(s64);
    if (r < 0)
        return r;
    *ret = out;
    return 0;
}
