/* SPDX-License-Identifier: MIT */
/*
 * The email handler: job data to an email message, sent through the queue's
 * provider (see channel.h for what all channel handlers share).
 *
 * Data keys:
 *   to          required: an address, or a list of them; an address is
 *               "bob@example.org" or "Bob <bob@example.org>"
 *   cc, bcc     optional, as to; at most 1000 recipients in all
 *   from        optional address; default NQ_EMAIL_DEFAULT_FROM
 *   replyTo     optional address (or reply_to)
 *   subject     optional, one line
 *   text, html  the body: at least one of them; `message` is text's alias
 *               (the seeds' EmailJobData.message is the plain text)
 *   headers     optional object of extra header fields: printable ASCII,
 *               one line, at most 900 bytes a value; not the ones notifyq
 *               writes itself (From, To, Subject, Content-Type...)
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cleanup.h"
#include "handlers/channel.h"

#define REASON_ADDR_MAX 100

static const struct nq_field email_rows[] = {
    { "to", NQ_FIELD_READ, NULL },
    { "cc", NQ_FIELD_READ, NULL },
    { "bcc", NQ_FIELD_READ, NULL },
    { "from", NQ_FIELD_READ, NULL },
    { "replyTo", NQ_FIELD_READ, NULL },
    { "reply_to", NQ_FIELD_READ, NULL },
    { "subject", NQ_FIELD_READ, NULL },
    { "text", NQ_FIELD_READ, NULL },
    { "message", NQ_FIELD_READ, NULL },
    { "html", NQ_FIELD_READ, NULL },
    { "headers", NQ_FIELD_READ, NULL },
    { "attachments", NQ_FIELD_REFUSED,
      "attachments are not supported yet; the job fails rather than go out without them" },
    NQ_CHANNEL_FIELDS("text or html"),
};

const struct nq_field_table nq_email_fields = { "email", email_rows, NQ_ELEMENTSOF(email_rows),
                                                false };

static bool is_atext(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static bool is_ldh(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-';
}

static const char *local_part_check(const char *s, size_t n)
{
    if (n == 0)
        return "empty local part";
    if (n > 64)
        return "local part longer than 64 bytes";
    if (s[0] == '"')
        return "quoted local parts are not supported";
    if (s[0] == '.' || s[n - 1] == '.')
        return "local part starts or ends with a dot";
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' && s[i + 1] == '.')
            return "two dots in a row in the local part";
        if (s[i] != '.' && !is_atext((unsigned char) s[i]))
            return "character not allowed in the local part";
    }
    return NULL;
}

static const char *domain_check(const char *s)
{
    size_t label = 0;

    if (!*s)
        return "empty domain";
    if (*s == '[')
        return "address literals are not supported";
    if (strlen(s) > 253)
        return "domain longer than 253 bytes";
    for (const char *p = s;; p++) {
        if (*p == '.' || !*p) {
            if (label == 0)
                return "empty label in the domain";
            if (p[-1] == '-' || p[-(ptrdiff_t) label] == '-')
                return "domain label starts or ends with '-'";
            if (!*p)
                return NULL;
            label = 0;
        } else if (!is_ldh((unsigned char) *p)) {
            return "character not allowed in the domain";
        } else if (++label > 63) {
            return "domain label longer than 63 bytes";
        }
    }
}

static const char *addr_check(const char *a)
{
    const char *at = strrchr(a, '@');
    const char *why;

    for (const char *p = a; *p; p++)
        if ((unsigned char) *p >= 0x80)
            return "non-ASCII addresses are not supported";
    if (!*a)
        return "empty";
    if (strlen(a) > 254)
        return "longer than 254 bytes";
    if (!at)
        return "no '@'";
    why = local_part_check(a, (size_t) (at - a));
    return why ? why : domain_check(at + 1);
}

/* A display name as written, without its quotes and backslash escapes. */
static char *display_name(const char *s, size_t n, const char **ret_why)
{
    char *out, *o;

    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
        s++, n -= 2;
    o = out = malloc(n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f) {
            *ret_why = "control character in the display name";
            free(out);
            return NULL;
        }
        if (s[i] == '\\' && i + 1 < n)
            i++;
        *o++ = s[i];
    }
    *o = '\0';
    return out;
}

int nq_mailbox_parse(const char *s, struct nq_mailbox *ret, const char **ret_why)
{
    size_t n = strlen(s);
    const char *lt;
    struct nq_mailbox mb = { NULL, NULL };

    *ret_why = NULL;
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    lt = n > 0 && s[n - 1] == '>' ? memrchr(s, '<', n) : NULL;
    if (lt) {
        mb.name = display_name(s, (size_t) (lt - s), ret_why);
        if (!mb.name)
            return *ret_why ? -EINVAL : -ENOMEM;
        if (!*mb.name) {
            free(mb.name);
            mb.name = NULL;
        }
        mb.addr = strndup(lt + 1, n - (size_t) (lt - s) - 2);
    } else {
        mb.addr = strndup(s, n);
    }
    if (!mb.addr) {
        free(mb.name);
        return -ENOMEM;
    }
    *ret_why = addr_check(mb.addr);
    if (*ret_why) {
        free(mb.name);
        free(mb.addr);
        return -EINVAL;
    }
    *ret = mb;
    return 0;
}

/* One address from v, reported as field (e.g. "to[2]") on error. */
static int mailbox_of(const json_t *v, const char *field, struct nq_mailbox *ret,
                      struct nq_err *err)
{
    const char *why;
    int r;

    if (!json_is_string(v))
        return nq_err_set(err, -EINVAL, "data.%s: must be a string", field);
    r = nq_mailbox_parse(json_string_value(v), ret, &why);
    if (r == -EINVAL)
        return nq_err_set(err, r, "data.%s: invalid address \"%.*s\": %s", field, REASON_ADDR_MAX,
                          json_string_value(v), why);
    return r < 0 ? nq_err_set(err, r, "out of memory") : 0;
}

/* A single optional address under key; ret->addr stays NULL when absent. */
static int mailbox_field(const json_t *data, const char *key, struct nq_mailbox *ret,
                         struct nq_err *err)
{
    json_t *v = json_object_get(data, key);

    if (!v || json_is_null(v))
        return 0;
    return mailbox_of(v, key, ret, err);
}

/* An address or a list of them under key, appended to *v. */
static int mailbox_list(const json_t *data, const char *key, bool required, size_t *total,
                        struct nq_mailbox **v, size_t *n, struct nq_err *err)
{
    json_t *x = json_object_get(data, key), *item;
    size_t count, i;
    char field[64];
    int r;

    if (!x || json_is_null(x))
        return required ? nq_err_set(err, -EINVAL, "data.%s: required", key) : 0;
    if (!json_is_string(x) && !json_is_array(x))
        return nq_err_set(err, -EINVAL, "data.%s: must be an address or a list of addresses", key);
    count = json_is_array(x) ? json_array_size(x) : 1;
    if (count == 0 && required)
        return nq_err_set(err, -EINVAL, "data.%s: must not be empty", key);
    if (*total + count > NQ_EMAIL_RECIPIENTS_MAX)
        return nq_err_set(err, -EINVAL, "data.%s: more than %d recipients in to, cc and bcc", key,
                          NQ_EMAIL_RECIPIENTS_MAX);
    *v = calloc(count ? count : 1, sizeof(**v));
    if (!*v)
        return nq_err_set(err, -ENOMEM, "out of memory");
    if (json_is_string(x)) {
        r = mailbox_of(x, key, &(*v)[0], err);
        *n = r < 0 ? 0 : 1;
        *total += *n;
        return r;
    }
    json_array_foreach (x, i, item) {
        snprintf(field, sizeof(field), "%s[%zu]", key, i);
        r = mailbox_of(item, field, &(*v)[i], err);
        if (r < 0)
            return r;
        (*n)++;
        (*total)++;
    }
    return 0;
}

/* Fields notifyq writes itself: an extra header may not repeat or replace them. */
static bool header_reserved(const char *name)
{
    static const char *const reserved[] = {
        "From",
        "To",
        "Cc",
        "Bcc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Sender",
    };

    for (size_t i = 0; i < NQ_ELEMENTSOF(reserved); i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return true;
    return strncasecmp(name, "X-Notifyq-", 10) == 0;
}

static const char *header_name_check(const char *s)
{
    if (!*s || strlen(s) > 76)
        return "header names are 1 to 76 characters";
    for (; *s; s++)
        if ((unsigned char) *s <= 0x20 || (unsigned char) *s >= 0x7f || *s == ':')
            return "header names are printable ASCII without spaces or ':'";
    return NULL;
}

static const char *header_value_check(const char *s)
{
    if (strlen(s) > NQ_HEADER_VALUE_MAX)
        return "longer than 900 bytes";
    for (; *s; s++)
        if (((unsigned char) *s < 0x20 && *s != '\t') || (unsigned char) *s >= 0x7f)
            return "must be one line of printable ASCII";
    return NULL;
}

static int headers_field(const json_t *data, struct nq_email *e, struct nq_err *err)
{
    json_t *h = json_object_get(data, "headers"), *v;
    const char *name, *why;

    if (!h || json_is_null(h))
        return 0;
    if (!json_is_object(h))
        return nq_err_set(err, -EINVAL, "data.headers: must be an object");
    e->headers = calloc(json_object_size(h) + 1, sizeof(*e->headers));
    if (!e->headers)
        return nq_err_set(err, -ENOMEM, "out of memory");
    json_object_foreach (h, name, v) {
        struct nq_kv *kv = &e->headers[e->n_headers];

        if ((why = header_name_check(name)))
            return nq_err_set(err, -EINVAL, "data.headers: \"%.76s\": %s", name, why);
        if (header_reserved(name))
            return nq_err_set(err, -EINVAL,
                              "data.headers.%s: written by notifyq; use the data "
                              "keys (to, subject...) instead",
                              name);
        if (!json_is_string(v))
            return nq_err_set(err, -EINVAL, "data.headers.%s: must be a string", name);
        if ((why = header_value_check(json_string_value(v))))
            return nq_err_set(err, -EINVAL, "data.headers.%s: %s", name, why);
        kv->name = strdup(name);
        kv->value = strdup(json_string_value(v));
        if (!kv->name || !kv->value) {
            e->n_headers++;
            return nq_err_set(err, -ENOMEM, "out of memory");
        }
        e->n_headers++;
    }
    return 0;
}

static int addresses(const json_t *data, struct nq_email *e, struct nq_err *err)
{
    static const char *const reply_keys[] = { "replyTo", "reply_to", NULL };
    size_t total = 0;
    const char *key = NULL;
    int r;

    r = mailbox_list(data, "to", true, &total, &e->to, &e->n_to, err);
    if (r >= 0)
        r = mailbox_list(data, "cc", false, &total, &e->cc, &e->n_cc, err);
    if (r >= 0)
        r = mailbox_list(data, "bcc", false, &total, &e->bcc, &e->n_bcc, err);
    if (r >= 0)
        r = mailbox_field(data, "from", &e->from, err);
    if (r >= 0 && !e->from.addr && !(e->from.addr = strdup(NQ_EMAIL_DEFAULT_FROM)))
        r = nq_err_set(err, -ENOMEM, "out of memory");
    for (const char *const *k = reply_keys; r >= 0 && *k; k++) {
        json_t *v = json_object_get(data, *k);
        if (!v || json_is_null(v))
            continue;
        if (key)
            return nq_err_set(err, -EINVAL, "data.%s: give only one of data.%s and data.%s", *k,
                              key, *k);
        key = *k;
        r = mailbox_field(data, *k, &e->reply_to, err);
    }
    return r;
}

static int content(const json_t *data, struct nq_email *e, struct nq_err *err)
{
    static const char *const subject_keys[] = { "subject", NULL };
    static const char *const text_keys[] = { "text", "message", NULL };
    static const char *const html_keys[] = { "html", NULL };
    int r;

    r = nq_field_string(data, subject_keys, false, &e->subject, err);
    if (r < 0)
        return r;
    if (e->subject && strpbrk(e->subject, "\r\n"))
        return nq_err_set(err, -EINVAL, "data.subject: must be one line");
    r = nq_field_string(data, text_keys, false, &e->text, err);
    if (r >= 0)
        r = nq_field_string(data, html_keys, false, &e->html, err);
    if (r < 0)
        return r;
    if (!e->text && !e->html)
        return nq_err_set(err, -EINVAL, "data.text: required (or data.html, or data.message)");
    return headers_field(data, e, err);
}

int nq_compose_email(const json_t *data, struct nq_msg *ret, struct nq_err *err)
{
    struct nq_msg m NQ_CLEANUP(nq_msg_done);
    int r;

    nq_msg_init(&m, NQ_MSG_EMAIL);
    r = nq_compose_common(data, &nq_email_fields, &m, err);
    if (r >= 0)
        r = addresses(data, &m.email, err);
    if (r >= 0)
        r = content(data, &m.email, err);
    if (r < 0)
        return r;
    *ret = m;
    nq_msg_init(&m, NQ_MSG_EMAIL);
    return 0;
}

static int email_init(const struct nq_handler_env *env, void **ret_state, struct nq_err *err)
{
    return nq_channel_handler_init(env, NQ_MSG_EMAIL, nq_compose_email, ret_state, err);
}

const struct nq_handler_ops nq_handler_email = {
    .kind = NQ_HANDLER_EMAIL,
    .fields = &nq_email_fields,
    .init = email_init,
    .free = nq_channel_handler_free,
    .validate = nq_channel_handler_validate,
    .start = nq_channel_handler_start,
    .cancel = nq_channel_handler_cancel,
};
