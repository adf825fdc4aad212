/* SPDX-License-Identifier: MIT */
/*
 * AWS Signature Version 4, the header form (PROVIDERS.md §7): canonical
 * request, string to sign, the HMAC-SHA256 key chain and the
 * Authorization value, with OpenSSL. Pure: the time is an argument, so the
 * signer is tested against AWS's published vectors.
 *
 * Ownership: everything is borrowed; results are malloc'd (free them) or
 * written to the caller's buffers.
 */
#ifndef NQ_PROVIDERS_SIGV4_H
#define NQ_PROVIDERS_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "common/macros.h"

#define NQ_SIGV4_DATE_SIZE 17 /* "20150830T123600Z" + NUL */

struct nq_sigv4_key {
    const char *access_key_id;
    const char *secret_access_key;
    const char *region;  /* "us-east-1" */
    const char *service; /* "ses" */
};

struct nq_sigv4_header {
    const char *name; /* any case; signed lower-cased */
    const char *value;
};

/* "YYYYMMDDTHHMMSSZ" of now_s (UTC). */
void nq_sigv4_date(int64_t now_s, char buf[NQ_SIGV4_DATE_SIZE]);

/* kSigning = HMAC chain over "AWS4"+secret, date (YYYYMMDD), region,
 * service, "aws4_request". 0 or -ENOMEM. */
int nq_sigv4_signing_key(const struct nq_sigv4_key *k, const char *yyyymmdd,
                         unsigned char out[32]) NQ_MUSTCHECK;

/* The Authorization header's value for a request: method, path (already
 * URI-encoded, as sent), query (canonical, "" for none), the headers to
 * sign (host and x-amz-date among them; values trimmed here), the body,
 * and amz_date (the x-amz-date value). *ret is malloc'd. 0, -EINVAL (no
 * x-amz-date among headers, or one not of amz_date's form) or -ENOMEM. */
int nq_sigv4_authorization(const struct nq_sigv4_key *k, const char *method, const char *path,
                           const char *query, const struct nq_sigv4_header *headers, size_t n,
                           const void *body, size_t body_len, const char *amz_date,
                           char **ret) NQ_MUSTCHECK;

#endif
