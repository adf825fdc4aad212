/* SPDX-License-Identifier: MIT */
/*
 * AWS SigV4 (see sigv4.h). SHA-256 and HMAC are OpenSSL's.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/cleanup.h"
#include "providers/sigv4.h"

#define HEX_SHA256 65

void nq_sigv4_date(int64_t now_s, char buf[NQ_SIGV4_DATE_SIZE])
{
    time_t t = (time_t) now_s;
    struct tm tm;

    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof(tm));
    (void) strftime(buf, NQ_SIGV4_DATE_SIZE, "%Y%m%dT%H%M%SZ", &tm);
}

static void hex(const unsigned char *md, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        (void) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int sha256_hex(const void *data, size_t len, char out[HEX_SHA256])
{
    unsigned char md[32];

    if (!EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL))
        return -ENOMEM;
    hex(md, 32, out);
    return 0;
}

static int hmac(const void *key, size_t key_len, const char *msg, unsigned char out[32])
{
    unsigned int n = 0;

    return HMAC(EVP_sha256(), key, (int) key_len, (const unsigned char *) msg, strlen(msg), out,
                &n) &&
                   n == 32
               ? 0
               : -ENOMEM;
}

int nq_sigv4_signing_key(const struct nq_sigv4_key *k, const char *yyyymmdd, unsigned char out[32])
{
    nq_autofree char *first = NULL;
    unsigned char a[32], b[32];
    int r;

    if (asprintf(&first, "AWS4%s", k->secret_access_key) < 0)
        return -ENOMEM;
    r = hmac(first, strlen(first), yyyymmdd, a);
    OPENSSL_cleanse(first, strlen(first));
    if (r >= 0)
        r = hmac(a, 32, k->region, b);
    if (r >= 0)
        r = hmac(b, 32, k->service, a);
    if (r >= 0)
        r = hmac(a, 32, "aws4_request", out);
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return r;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* "name:value" lines, lower-cased names, values trimmed with inner runs of
 * spaces folded to one, sorted by name. */
static char **canonical_headers(const struct nq_sigv4_header *h, size_t n)
{
    char **v = calloc(n + 1, sizeof(*v));

    for (size_t i = 0; v && i < n; i++) {
        const char *p = h[i].value;
        size_t len = strlen(h[i].name), k;

        v[i] = malloc(len + strlen(p) + 2);
        if (!v[i]) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return NULL;
        }
        for (k = 0; k < len; k++)
            v[i][k] = (char) tolower((unsigned char) h[i].name[k]);
        v[i][k++] = ':';
        while (*p == ' ' || *p == '\t')
            p++;
        for (; *p; p++) {
            if ((*p == ' ' || *p == '\t') && (p[1] == ' ' || p[1] == '\t' || !p[1]))
                continue;
            v[i][k++] = *p;
        }
        v[i][k] = '\0';
    }
    if (v)
        qsort(v, n, sizeof(*v), by_name);
    return v;
}

static void lines_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int nq_sigv4_authorization(const struct nq_sigv4_key *k, const char *method, const char *path,
                           const char *query, const struct nq_sigv4_header *headers, size_t n,
                           const void *body, size_t body_len, const char *amz_date, char **ret)
{
    char **lines = canonical_headers(headers, n);
    char *creq = NULL, *signed_list = NULL;
    size_t creq_len = 0, list_len = 0;
    char body_hash[HEX_SHA256], creq_hash[HEX_SHA256], sig_hex[HEX_SHA256], day[9];
    nq_autofree char *to_sign = NULL;
    unsigned char key[32], sig[32];
    FILE *f, *g;
    bool has_date = false;
    int r = 0;

    if (!lines)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        has_date |= strncmp(lines[i], "x-amz-date:", 11) == 0;
    if (!has_date || strlen(amz_date) != NQ_SIGV4_DATE_SIZE - 1) {
        lines_free(lines, n);
        return -EINVAL;
    }
    memcpy(day, amz_date, 8);
    day[8] = '\0';
    f = open_memstream(&creq, &creq_len);
    g = open_memstream(&signed_list, &list_len);
    if (!f || !g || sha256_hex(body, body_len, body_hash) < 0) {
        r = -ENOMEM;
    } else {
        fprintf(f, "%s\n%s\n%s\n", method, path, query);
        for (size_t i = 0; i < n; i++) {
            fprintf(f, "%s\n", lines[i]);
            fprintf(g, "%s%.*s", i ? ";" : "", (int) strcspn(lines[i], ":"), lines[i]);
        }
    }
    if (g && fclose(g) != 0)
        r = -ENOMEM;
    if (f) {
        if (r >= 0)
            fprintf(f, "\n%s\n%s", signed_list, body_hash);
        if (fclose(f) != 0)
            r = -ENOMEM;
    }
    lines_free(lines, n);
    if (r >= 0)
        r = sha256_hex(creq, creq_len, creq_hash);
    if (r >= 0 && asprintf(&to_sign, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz_date,
                           day, k->region, k->service, creq_hash) < 0) {
        to_sign = NULL;
        r = -ENOMEM;
    }
    if (r >= 0)
        r = nq_sigv4_signing_key(k, day, key);
    if (r >= 0)
        r = hmac(key, 32, to_sign, sig);
    OPENSSL_cleanse(key, sizeof(key));
    if (r >= 0) {
        hex(sig, 32, sig_hex);
        if (asprintf(ret,
                     "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                     "Signature=%s",
                     k->access_key_id, day, k->region, k->service, signed_list, sig_hex) < 0)
            r = -ENOMEM;
    }
    free(creq);
    free(signed_list);
    return r;
}
