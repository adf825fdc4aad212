/* SPDX-License-Identifier: MIT */
/*
 * What the SMS providers share (see sms.h): segment counting, form
 * bodies, Basic auth, ids.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "providers/sms.h"

/* ---- segments ----------------------------------------------------------------- */

#define GSM7_SINGLE 160
#define GSM7_PART 153
#define UCS2_SINGLE 70
#define UCS2_PART 67

/* The non-ASCII characters of the GSM 03.38 default alphabet. */
static const uint16_t gsm_basic_extra[] = {
    0x00A3, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, 0x00F2, 0x00C7, 0x00D8, 0x00F8,
    0x00C5, 0x00E5, 0x0394, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8, 0x03A3,
    0x0398, 0x039E, 0x00C6, 0x00E6, 0x00DF, 0x00C9, 0x00A4, 0x00A1, 0x00C4, 0x00D6,
    0x00D1, 0x00DC, 0x00A7, 0x00BF, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0,
};

/* Septets of code point c in GSM-7: 1, 2 (extension table), 0 (not GSM). */
static unsigned gsm_septets(uint32_t c)
{
    if (c == '\n' || c == '\r')
        return 1;
    if (c == '\f' || c == 0x20AC)
        return 2;
    if (c >= 0x20 && c < 0x7f) {
        if (c == '`')
            return 0;
        return strchr("^{}\\[~]|", (int) c) ? 2 : 1;
    }
    for (size_t i = 0; i < NQ_ELEMENTSOF(gsm_basic_extra); i++)
        if (gsm_basic_extra[i] == c)
            return 1;
    return 0;
}

/* The next code point of valid UTF-8 at *s, advancing it. */
static uint32_t next_cp(const unsigned char **s)
{
    const unsigned char *p = *s;
    uint32_t c = p[0];
    size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;

    if (len > 1)
        c &= 0x3f >> (len - 1);
    for (size_t i = 1; i < len && p[i]; i++)
        c = (c << 6) | (p[i] & 0x3f);
    for (size_t i = 0; i < len && **s; i++)
        (*s)++;
    return c;
}

/* Parts of size per_part that units of the given widths fill, no unit
 * split between parts. */
static size_t parts(const char *text, bool gsm, size_t per_part)
{
    const unsigned char *s = (const unsigned char *) text;
    size_t n = 1, used = 0;

    while (*s) {
        uint32_t c = next_cp(&s);
        size_t w = gsm ? gsm_septets(c) : (c > 0xffff ? 2 : 1);

        if (used + w > per_part) {
            n++;
            used = 0;
        }
        used += w;
    }
    return n;
}

void nq_sms_count(const char *text, struct nq_sms_count *ret)
{
    const unsigned char *s = (const unsigned char *) text;
    size_t septets = 0, units = 0;
    bool gsm = true;

    while (*s) {
        uint32_t c = next_cp(&s);
        unsigned w = gsm_septets(c);

        gsm = gsm && w;
        septets += w;
        units += c > 0xffff ? 2 : 1;
    }
    ret->encoding = gsm ? NQ_SMS_GSM7 : NQ_SMS_UCS2;
    ret->units = gsm ? septets : units;
    if (ret->units <= (gsm ? GSM7_SINGLE : UCS2_SINGLE))
        ret->segments = 1;
    else
        ret->segments = parts(text, gsm, gsm ? GSM7_PART : UCS2_PART);
}

const char *nq_sms_encoding_name(enum nq_sms_encoding e)
{
    return e == NQ_SMS_GSM7 ? "GSM-7" : "UCS-2";
}

bool nq_sms_verdict_is_config(const struct nq_http_verdict *v)
{
    return v->cls == NQ_REPLY_PERMANENT && strstr(v->reason, NQ_SMS_CONFIG_MARK);
}

/* ---- for the providers ------------------------------------------------------- */

int nq_sms_form_add(struct nq_sms_form *f, const char *name, const char *value)
{
    char *n = curl_easy_escape(NULL, name, 0), *v = curl_easy_escape(NULL, value, 0);
    size_t add = n && v ? strlen(n) + strlen(v) + 2 : 0;
    char *buf = add ? realloc(f->buf, f->len + add + 1) : NULL;

    if (buf) {
        f->buf = buf;
        f->len += (size_t) sprintf(buf + f->len, "%s%s=%s", f->len ? "&" : "", n, v);
    }
    curl_free(n);
    curl_free(v);
    return buf ? 0 : -ENOMEM;
}

void nq_sms_form_done(struct nq_sms_form *f)
{
    free(f->buf);
    f->buf = NULL;
    f->len = 0;
}

int nq_sms_basic_auth(const char *user, const char *password, char **ret)
{
    size_t n = strlen(user) + 1 + strlen(password);
    char *plain = malloc(n + 1), *out = malloc(6 + 4 * ((n + 2) / 3) + 1);

    if (!plain || !out) {
        free(plain);
        free(out);
        return -ENOMEM;
    }
    (void) sprintf(plain, "%s:%s", user, password);
    strcpy(out, "Basic ");
    EVP_EncodeBlock((unsigned char *) out + 6, (const unsigned char *) plain, (int) n);
    OPENSSL_cleanse(plain, n);
    free(plain);
    *ret = out;
    return 0;
}

void nq_sms_copy_id(struct nq_http_verdict *v, const char *id)
{
    (void) snprintf(v->message_id, sizeof(v->message_id), "%s", id ? id : "");
}
