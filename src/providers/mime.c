/* SPDX-License-Identifier: MIT */
/*
 * The RFC 5322 / MIME writer (see mime.h). Everything non-ASCII goes out
 * encoded (RFC 2047 "B" words in headers, quoted-printable bodies), so the
 * result is 7-bit clean and survives any transport. The multipart boundary
 * starts with "=_", which quoted-printable output can never contain (a
 * literal '=' is always written =3D), so no body can end a part early.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "providers/mime.h"

#define LINE_SOFT_MAX 78
#define QP_LINE_MAX 76
/* Bytes of text per encoded-word: 40 bytes = 56 base64 characters, 68 with
 * "=?UTF-8?B?" and "?=", so a word plus its field name stays near 78. */
#define WORD_BYTES 40

static const char *const wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const month[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

void nq_base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t) in[i] << 16 | (i + 1 < n ? (uint32_t) in[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = (char) (i + 1 < n ? tab[(v >> 6) & 63] : '=');
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* Date in RFC 5322 §3.3 form, in UTC; spelled out by hand because
 * strftime's %a and %b follow the locale. */
static void put_date(FILE *f, time_t t)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    fprintf(f, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", wday[tm.tm_wday], tm.tm_mday,
            month[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool is_printable_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
            return false;
    return true;
}

/* RFC 5322 atext plus space: a display name made of these needs no quotes. */
static bool is_atext_phrase(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;
        if (!(c == ' ' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
              (c >= 'a' && c <= 'z') || strchr("!#$%&'*+-/=?^_`{|}~", c)))
            return false;
    }
    return true;
}

/* Length of the longest prefix of s (at most max bytes) that does not cut a
 * UTF-8 sequence; at least one byte, so malformed input still advances. */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
    size_t n;

    if (len <= max)
        return len;
    n = max;
    while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
        n--;
    return n > 0 ? n : max;
}

/* s as RFC 2047 encoded-words separated by folding whitespace; returns the
 * column after the last word. */
static size_t put_words(FILE *f, const char *s, size_t col)
{
    size_t len = strlen(s);
    char b64[(WORD_BYTES + 2) / 3 * 4 + 1];
    bool first = true;

    while (len > 0) {
        size_t n = utf8_prefix(s, len, WORD_BYTES);
        size_t w;

        nq_base64((const unsigned char *) s, n, b64);
        w = strlen(b64) + 12;
        if (!first) {
            fputs(col + 1 + w > LINE_SOFT_MAX ? "\r\n " : " ", f);
            col = col + 1 + w > LINE_SOFT_MAX ? 1 : col + 1;
        }
        col += (size_t) fprintf(f, "=?UTF-8?B?%s?=", b64);
        s += n;
        len -= n;
        first = false;
    }
    return col;
}

/* An unstructured field (Subject, X-...): printable ASCII as is (RFC 5322
 * allows 998 characters a line), anything else as encoded-words. A value
 * that looks like an encoded-word is encoded too, so a reader shows it as
 * written. */
static void put_unstructured(FILE *f, const char *name, const char *value)
{
    size_t col = (size_t) fprintf(f, "%s: ", name);

    if (is_printable_ascii(value) && !strstr(value, "=?") && strlen(value) + col <= 998)
        fputs(value, f);
    else if (*value)
        put_words(f, value, col);
    fputs("\r\n", f);
}

/* Returns the column after the mailbox. */
static size_t put_mailbox(FILE *f, const struct nq_mailbox *mb, size_t col)
{
    /* A name as written must fit the line with room for its quotes and
     * escapes (RFC 5322: 998 characters); a longer one goes out as
     * encoded-words, which fold. */
    bool fits;

    if (!mb->name || !*mb->name)
        return col + (size_t) fprintf(f, "%s", mb->addr);
    fits = col + 2 * strlen(mb->name) + 2 <= 998;
    if (fits && is_atext_phrase(mb->name)) {
        col += (size_t) fprintf(f, "%s", mb->name);
    } else if (fits && is_printable_ascii(mb->name) && !strstr(mb->name, "=?")) {
        fputc('"', f);
        col++;
        for (const char *p = mb->name; *p; p++) {
            if (*p == '"' || *p == '\\') {
                fputc('\\', f);
                col++;
            }
            fputc(*p, f);
            col++;
        }
        fputc('"', f);
        col++;
    } else {
        col = put_words(f, mb->name, col);
    }
    if (col + strlen(mb->addr) + 3 > LINE_SOFT_MAX) {
        fputs("\r\n", f);
        col = 0;
    }
    return col + (size_t) fprintf(f, " <%s>", mb->addr);
}

static void put_addresses(FILE *f, const char *name, const struct nq_mailbox *v, size_t n)
{
    size_t col;

    if (n == 0)
        return;
    col = (size_t) fprintf(f, "%s: ", name);
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            fputc(',', f);
            col++;
            if (col + strlen(v[i].addr) + 2 > LINE_SOFT_MAX) {
                fputs("\r\n", f);
                col = 0;
            }
            fputc(' ', f);
            col++;
        }
        col = put_mailbox(f, &v[i], col);
    }
    fputs("\r\n", f);
}

/* Quoted-printable (RFC 2045 §6.7) with every line break of the text as a
 * CRLF hard break ("\r\n", "\n" and a lone "\r" alike). */
static void put_qp(FILE *f, const char *s)
{
    size_t col = 0;

    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;
        bool at_eol = s[1] == '\0' || s[1] == '\n' || s[1] == '\r';
        char enc[4];
        size_t w;

        if (c == '\r' || c == '\n') {
            if (c == '\r' && s[1] == '\n')
                s++;
            fputs("\r\n", f);
            col = 0;
            continue;
        }
        if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol)) {
            enc[0] = (char) c;
            enc[1] = '\0';
            w = 1;
        } else {
            snprintf(enc, sizeof(enc), "=%02X", c);
            w = 3;
        }
        /* A soft break "=" needs the last column of the line. */
        if (col + w > QP_LINE_MAX - (at_eol ? 0 : 1)) {
            fputs("=\r\n", f);
            col = 0;
        }
        fputs(enc, f);
        col += w;
    }
    fputs("\r\n", f);
}

static void put_part_headers(FILE *f, const char *subtype)
{
    fprintf(f,
            "Content-Type: text/%s; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n",
            subtype);
}

/* A boundary unique to this message, stable across its retries. */
static void boundary_of(const char *message_id, char *buf, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (const char *p = message_id; *p; p++)
        h = (h ^ (unsigned char) *p) * 0x100000001b3ULL;
    snprintf(buf, size, "=_notifyq_%016llx", (unsigned long long) h);
}

static void put_body(FILE *f, const struct nq_email *e, const char *message_id)
{
    char boundary[40];

    if (!e->text || !e->html) {
        put_part_headers(f, e->text ? "plain" : "html");
        fputs("\r\n", f);
        put_qp(f, e->text ? e->text : e->html);
        return;
    }
    boundary_of(message_id, boundary, sizeof(boundary));
    fprintf(f, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n", boundary);
    fprintf(f, "This is a multi-part message in MIME format.\r\n\r\n--%s\r\n", boundary);
    put_part_headers(f, "plain");
    fputs("\r\n", f);
    put_qp(f, e->text);
    fprintf(f, "--%s\r\n", boundary);
    put_part_headers(f, "html");
    fputs("\r\n", f);
    put_qp(f, e->html);
    fprintf(f, "--%s--\r\n", boundary);
}

void nq_mime_write(FILE *f, const struct nq_msg *m, const struct nq_mime_env *env)
{
    const struct nq_email *e = &m->email;

    put_date(f, env->date);
    put_addresses(f, "From", &e->from, 1);
    put_addresses(f, "To", e->to, e->n_to);
    put_addresses(f, "Cc", e->cc, e->n_cc);
    if (!env->omit_bcc)
        put_addresses(f, "Bcc", e->bcc, e->n_bcc);
    if (e->reply_to.addr)
        put_addresses(f, "Reply-To", &e->reply_to, 1);
    if (e->subject)
        put_unstructured(f, "Subject", e->subject);
    fprintf(f, "Message-ID: %s\r\n", env->message_id);
    fputs("MIME-Version: 1.0\r\n", f);
    put_unstructured(f, "X-Notifyq-Queue", env->queue);
    put_unstructured(f, "X-Notifyq-Job-Id", env->job_id);
    if (m->tenant_id)
        put_unstructured(f, "X-Notifyq-Tenant-Id", m->tenant_id);
    if (m->notification_id)
        put_unstructured(f, "X-Notifyq-Notification-Id", m->notification_id);
    for (size_t i = 0; i < e->n_headers; i++)
        put_unstructured(f, e->headers[i].name, e->headers[i].value);
    put_body(f, e, env->message_id);
}

bool nq_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *) s, *end = p + n;

    while (p < end) {
        unsigned c = *p++;
        size_t more;
        uint32_t cp, min;

        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf)
            more = 1, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            more = 2, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            more = 3, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if ((size_t) (end - p) < more)
            return false;
        for (size_t i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (*p & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
    }
    return true;
}

/* NULL when s may go into a header, else why not. */
static const char *value_problem(const char *s)
{
    if (strpbrk(s, "\r\n"))
        return "contains CR or LF (header injection); nothing was sent";
    if (!nq_utf8_valid(s, strlen(s)))
        return "not valid UTF-8";
    return NULL;
}

static int mailboxes_check(const char *key, const struct nq_mailbox *v, size_t n, bool list,
                           char *field, size_t size, const char **ret_why)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = value_problem(v[i].addr);

        if (!why && v[i].name)
            why = value_problem(v[i].name);
        if (!why)
            continue;
        if (list)
            (void) snprintf(field, size, "data.%s[%zu]", key, i);
        else
            (void) snprintf(field, size, "data.%s", key);
        *ret_why = why;
        return -EINVAL;
    }
    return 0;
}

static int value_check(const char *key, const char *value, char *field, size_t size,
                       const char **ret_why)
{
    const char *why = value ? value_problem(value) : NULL;

    if (!why)
        return 0;
    (void) snprintf(field, size, "data.%s", key);
    *ret_why = why;
    return -EINVAL;
}

/* Bodies are encoded (quoted-printable), so line breaks there are safe;
 * they must still be text. */
static int body_check(const char *key, const char *body, char *field, size_t size,
                      const char **ret_why)
{
    if (!body || nq_utf8_valid(body, strlen(body)))
        return 0;
    (void) snprintf(field, size, "data.%s", key);
    *ret_why = "not valid UTF-8";
    return -EINVAL;
}

/* Strings cannot hold a NUL (they end there): a value with one arrives
 * cut, so NUL is refused where values are read (JSON parsing refuses
 * \u0000 in job data). */
int nq_mime_check(const struct nq_msg *m, char *field, size_t size, const char **ret_why)
{
    const struct nq_email *e = &m->email;
    const struct nq_mailbox *reply_to = e->reply_to.addr ? &e->reply_to : NULL;
    char key[96];
    int r;

    r = mailboxes_check("from", &e->from, e->from.addr ? 1 : 0, false, field, size, ret_why);
    if (r >= 0)
        r = mailboxes_check("to", e->to, e->n_to, e->n_to > 1, field, size, ret_why);
    if (r >= 0)
        r = mailboxes_check("cc", e->cc, e->n_cc, true, field, size, ret_why);
    if (r >= 0)
        r = mailboxes_check("bcc", e->bcc, e->n_bcc, true, field, size, ret_why);
    if (r >= 0)
        r = mailboxes_check("replyTo", reply_to, reply_to ? 1 : 0, false, field, size, ret_why);
    if (r >= 0)
        r = value_check("subject", e->subject, field, size, ret_why);
    if (r >= 0)
        r = value_check("tenantId", m->tenant_id, field, size, ret_why);
    if (r >= 0)
        r = value_check("notificationId", m->notification_id, field, size, ret_why);
    for (size_t i = 0; r >= 0 && i < e->n_headers; i++) {
        (void) snprintf(key, sizeof(key), "headers.%.76s", e->headers[i].name);
        r = value_check(key, e->headers[i].value, field, size, ret_why);
    }
    if (r >= 0)
        r = body_check("text", e->text, field, size, ret_why);
    if (r >= 0)
        r = body_check("html", e->html, field, size, ret_why);
    return r;
}
