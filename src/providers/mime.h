/* SPDX-License-Identifier: MIT */
/*
 * An email message in its RFC 5322 / MIME form, as the file provider spools
 * it and an SMTP provider will submit it: header fields (non-ASCII display
 * names and subjects as RFC 2047 encoded-words, address lists folded), then a
 * body in quoted-printable UTF-8: text/plain or text/html alone, or
 * multipart/alternative with both (text first, as RFC 2046 §5.1.4 wants the
 * plainest part first). Lines end in CRLF and stay within 78 characters
 * except where a caller's header value is longer (≤ 998, RFC 5322 §2.1.1).
 * Non-logging module.
 */
#ifndef NQ_PROVIDERS_MIME_H
#define NQ_PROVIDERS_MIME_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "providers/provider.h"

/* What a message carries besides its content. Strings borrowed. */
struct nq_mime_env {
    const char *message_id; /* "<left@right>", the whole field value */
    time_t date;
    const char *queue;  /* written as X-Notifyq-Queue */
    const char *job_id; /* written as X-Notifyq-Job-Id */
    bool omit_bcc;      /* a transport's copy: Bcc goes in the envelope only */
};

/* Writes email m (type NQ_MSG_EMAIL) to f. The caller checks f for write
 * errors (ferror, fflush). Bcc is written too unless env->omit_bcc: a
 * spooled message records every recipient, as sendmail -t input does; a
 * transport strips it. */
void nq_mime_write(FILE *f, const struct nq_msg *m, const struct nq_mime_env *env);

/* Whether every value that becomes a header field of m (subject, names and
 * addresses, extra headers, tenantId, notificationId) is safe to send: no
 * CR, LF or NUL (header injection: the value would end its field and start
 * another) and valid UTF-8. 0, or -EINVAL with *ret_field the job field
 * ("data.subject", "data.to[1]", "data.headers.X-Campaign") written into
 * field (size bytes) and *ret_why static text. Nothing is written to the
 * wire before this passes. */
int nq_mime_check(const struct nq_msg *m, char *field, size_t size,
                  const char **ret_why) NQ_MUSTCHECK;

/* Whether s (n bytes) is well-formed UTF-8 (no overlongs, surrogates or
 * code points past U+10FFFF). */
bool nq_utf8_valid(const char *s, size_t n);

/* Standard base64 of n bytes into out (4 * ((n + 2) / 3) + 1 bytes, NUL-terminated). */
void nq_base64(const unsigned char *in, size_t n, char *out);

#endif
