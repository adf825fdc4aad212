/* SPDX-License-Identifier: MIT */
/*
 * The sms handler: job data to a text message, sent through the queue's
 * provider (see channel.h for what all channel handlers share).
 *
 * Data keys:
 *   to        required: a phone number, normalised to E.164 ("+1 (555)
 *             123-4567" -> "+15551234567"); a number without its country
 *             code is completed from the provider's default_region
 *             (nq_sms_settle), or refused without one, never guessed
 *   from      optional: a number (normalised likewise) or an alphanumeric
 *             sender id (1..11 letters, digits and spaces, at least one letter)
 *   body      required, at most 1600 characters; `message` and `text` are
 *             its aliases (the seeds' SmsJobData.message)
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/phone.h"
#include "handlers/channel.h"
#include "providers/sms.h"

#define E164_BUF 17
#define REASON_NUMBER_MAX 40

static const struct nq_field sms_rows[] = {
    { "to", NQ_FIELD_READ, NULL },   { "from", NQ_FIELD_READ, NULL },
    { "body", NQ_FIELD_READ, NULL }, { "message", NQ_FIELD_READ, NULL },
    { "text", NQ_FIELD_READ, NULL }, NQ_CHANNEL_FIELDS("body"),
};

const struct nq_field_table nq_sms_fields = { "sms", sms_rows, NQ_ELEMENTSOF(sms_rows), false };

static int bad(const char **ret_why, const char *why)
{
    *ret_why = why;
    return -EINVAL;
}

int nq_e164_normalize(const char *in, char *out, size_t size, const char **ret_why)
{
    const char *p = in;
    size_t n = 0;
    int depth = 0, pairs = 0;

    *ret_why = NULL;
    if (size < E164_BUF)
        return -ENOBUFS;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '+')
        p++;
    else if (p[0] == '0' && p[1] == '0')
        p += 2;
    else
        return bad(ret_why, "no country code (write it as +<country code><number>)");
    out[n++] = '+';
    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (n == 1 && *p == '0')
                return bad(ret_why, "a country code does not start with 0");
            if (n > 15)
                return bad(ret_why, "more than 15 digits");
            out[n++] = *p;
        } else if (*p == '(' && depth == 0 && pairs == 0) {
            depth = 1;
        } else if (*p == ')' && depth == 1) {
            depth = 0;
            pairs++;
        } else if (*p == '(' || *p == ')') {
            return bad(ret_why, "parentheses that do not pair up");
        } else if (!strchr(" \t-.", *p)) {
            return bad(ret_why, "a character other than digits, spaces, '-', '.' and parentheses");
        }
    }
    if (depth)
        return bad(ret_why, "parentheses that do not pair up");
    if (n - 1 < 7)
        return bad(ret_why, "fewer than 7 digits");
    out[n] = '\0';
    return 0;
}

static int number_field(const char *key, const char *value, char **ret, struct nq_err *err)
{
    char e164[E164_BUF];
    const char *why;

    if (nq_e164_normalize(value, e164, sizeof(e164), &why) < 0)
        return nq_err_set(err, -EINVAL,
                          "data.%s: \"%.*s\" is not a phone number in "
                          "international form: %s",
                          key, REASON_NUMBER_MAX, value, why);
    *ret = strdup(e164);
    return *ret ? 0 : nq_err_set(err, -ENOMEM, "out of memory");
}

static bool is_sender_id(const char *s)
{
    bool letter = false;
    size_t n = strlen(s);

    if (n == 0 || n > 11)
        return false;
    for (; *s; s++) {
        if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
            letter = true;
        else if (!(*s >= '0' && *s <= '9') && *s != ' ')
            return false;
    }
    return letter;
}

static int from_field(const json_t *data, struct nq_sms *s, struct nq_err *err)
{
    static const char *const keys[] = { "from", NULL };
    nq_autofree char *from = NULL;
    int r;

    r = nq_field_string(data, keys, false, &from, err);
    if (r < 0 || !from)
        return r;
    if (is_sender_id(from)) {
        s->from = NQ_TAKE_PTR(from);
        return 0;
    }
    if (from[0] != '+' && !(from[0] == '0' && from[1] == '0'))
        return nq_err_set(err, -EINVAL,
                          "data.from: must be a phone number in international "
                          "form or a sender id of 1 to 11 letters, digits and spaces");
    return number_field("from", from, &s->from, err);
}

/* Characters, not bytes: the limit is what the carrier counts. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char) *s & 0xc0) != 0x80;
    return n;
}

/* A national number, kept as written until nq_sms_settle knows the
 * region: digits first (after spaces or a parenthesis). */
static bool national_form(const char *s)
{
    s += strspn(s, " \t(");
    return *s >= '1' && *s <= '9' ? true : *s == '0' && s[1] != '0';
}

static int to_field(const char *to, struct nq_sms *s, struct nq_err *err)
{
    if (!national_form(to))
        return number_field("to", to, &s->to, err);
    s->to = strdup(to);
    return s->to ? 0 : nq_err_set(err, -ENOMEM, "out of memory");
}

int nq_sms_settle(struct nq_sms *s, const char *region, uint32_t max_segments, struct nq_err *err)
{
    char e164[NQ_PHONE_E164_SIZE];
    struct nq_sms_count count;
    const char *why;
    char *n;

    if (s->to[0] != '+') {
        if (nq_phone_e164(s->to, region, e164, sizeof(e164), &why) < 0)
            return region ? nq_err_set(err, -EINVAL,
                                       "data.to: \"%.*s\" is not a phone number of default_region "
                                       "%s: %s",
                                       REASON_NUMBER_MAX, s->to, region, why)
                          : nq_err_set(err, -EINVAL,
                                       "data.to: \"%.*s\" is not a phone number in "
                                       "international form: %s",
                                       REASON_NUMBER_MAX, s->to, why);
        if (!(n = strdup(e164)))
            return nq_err_set(err, -ENOMEM, "out of memory");
        free(s->to);
        s->to = n;
    }
    nq_sms_count(s->body, &count);
    if (max_segments && count.segments > max_segments)
        return nq_err_set(err, -EINVAL,
                          "data.body: %zu segments (%s, %zu units) is more than the provider's "
                          "max_segments %u",
                          count.segments, nq_sms_encoding_name(count.encoding), count.units,
                          (unsigned) max_segments);
    return 0;
}

static int sms_fields(const json_t *data, struct nq_sms *s, struct nq_err *err)
{
    static const char *const to_keys[] = { "to", NULL };
    static const char *const body_keys[] = { "body", "message", "text", NULL };
    nq_autofree char *to = NULL;
    int r;

    r = nq_field_string(data, to_keys, true, &to, err);
    if (r >= 0)
        r = to_field(to, s, err);
    if (r >= 0)
        r = from_field(data, s, err);
    if (r >= 0)
        r = nq_field_string(data, body_keys, true, &s->body, err);
    if (r < 0)
        return r;
    if (!*s->body)
        return nq_err_set(err, -EINVAL, "data.body: must not be empty");
    if (utf8_chars(s->body) > NQ_SMS_BODY_MAX)
        return nq_err_set(err, -EINVAL, "data.body: longer than %d characters", NQ_SMS_BODY_MAX);
    return 0;
}

int nq_compose_sms(const json_t *data, struct nq_msg *ret, struct nq_err *err)
{
    struct nq_msg m NQ_CLEANUP(nq_msg_done);
    int r;

    nq_msg_init(&m, NQ_MSG_SMS);
    r = nq_compose_common(data, &nq_sms_fields, &m, err);
    if (r >= 0)
        r = sms_fields(data, &m.sms, err);
    if (r < 0)
        return r;
    *ret = m;
    nq_msg_init(&m, NQ_MSG_SMS);
    return 0;
}

static int sms_init(const struct nq_handler_env *env, void **ret_state, struct nq_err *err)
{
    return nq_channel_handler_init(env, NQ_MSG_SMS, nq_compose_sms, ret_state, err);
}

const struct nq_handler_ops nq_handler_sms = {
    .kind = NQ_HANDLER_SMS,
    .fields = &nq_sms_fields,
    .init = sms_init,
    .free = nq_channel_handler_free,
    .validate = nq_channel_handler_validate,
    .start = nq_channel_handler_start,
    .cancel = nq_channel_handler_cancel,
};
