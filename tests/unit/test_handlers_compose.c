/* SPDX-License-Identifier: MIT */
/* The channel handlers' validation: job data (the seeds' shapes and bad
 * ones) to messages or to the exact reason the job fails with; addresses;
 * E.164 normalisation. */
#include "config.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "handlers/channel.h"

struct bad_case {
    const char *data; /* JSON */
    const char *want; /* the reason */
};

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);

    if (!j)
        fail_msg("bad test JSON: %s: %s", s, e.text);
    return j;
}

static void check_bad(nq_compose_fn compose, const struct bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *data = parse(cases[i].data);
        struct nq_err err = { { 0 } };
        struct nq_msg m = { .type = NQ_MSG_SMS, .tenant_id = (char *) "untouched" };

        if (compose(data, &m, &err) != -EINVAL)
            fail_msg("accepted: %s", cases[i].data);
        if (strcmp(nq_err_str(&err), cases[i].want) != 0)
            fail_msg("%s\n  got:  %s\n  want: %s", cases[i].data, nq_err_str(&err), cases[i].want);
        assert_string_equal(m.tenant_id, "untouched"); /* ret untouched on failure */
        json_decref(data);
    }
}

static void compose_ok(nq_compose_fn compose, const char *json, struct nq_msg *m)
{
    json_t *data = parse(json);
    struct nq_err err = { { 0 } };

    if (compose(data, m, &err) != 0)
        fail_msg("refused: %s: %s", json, nq_err_str(&err));
    json_decref(data);
}

/* ---- email ------------------------------------------------------------------ */

static void email_accepts_the_seed_shapes(void **state)
{
    struct nq_msg m;

    (void) state;
    /* EmailJobData of the NestJS seed: message is the plain text. */
    compose_ok(nq_compose_email,
               "{\"to\":\"user@example.com\",\"subject\":\"Welcome\",\"message\":\"Hi there\","
               "\"tenantId\":\"t-1\",\"userId\":\"u-1\",\"notificationId\":\"n-1\","
               "\"category\":\"account\",\"priority\":\"HIGH\",\"templateId\":null}",
               &m);
    assert_int_equal(m.type, NQ_MSG_EMAIL);
    assert_int_equal(m.email.n_to, 1);
    assert_string_equal(m.email.to[0].addr, "user@example.com");
    assert_null(m.email.to[0].name);
    assert_string_equal(m.email.from.addr, NQ_EMAIL_DEFAULT_FROM);
    assert_string_equal(m.email.subject, "Welcome");
    assert_string_equal(m.email.text, "Hi there");
    assert_null(m.email.html);
    assert_string_equal(m.tenant_id, "t-1");
    assert_string_equal(m.notification_id, "n-1");
    nq_msg_done(&m);

    /* The worker seed: html and text, no tenant. */
    compose_ok(nq_compose_email,
               "{\"notificationId\":\"507f1f77bcf86cd7994390e\",\"to\":\"user@example.com\","
               "\"subject\":\"Welcome to Uzima\",\"html\":\"<h1>Welcome!</h1>\","
               "\"text\":\"Welcome!\",\"type\":\"welcome\"}",
               &m);
    assert_string_equal(m.email.html, "<h1>Welcome!</h1>");
    assert_string_equal(m.email.text, "Welcome!");
    assert_null(m.tenant_id);
    nq_msg_done(&m);
}

static void email_takes_every_field(void **state)
{
    struct nq_msg m;

    (void) state;
    compose_ok(nq_compose_email,
               "{\"to\":[\"a@x.io\",\"Bob <b@y.example.org>\"],\"cc\":\"c@z.io\","
               "\"bcc\":[\"<d@z.io>\"],\"from\":\"\\\"App, Inc\\\" <app@x.io>\","
               "\"replyTo\":\"r@x.io\",\"html\":\"<p>h</p>\",\"headers\":{\"X-Campaign\":\"c1\","
               "\"List-Unsubscribe\":\"<mailto:u@x.io>\"},\"tenantId\":7,\"notificationId\":42}",
               &m);
    assert_int_equal(m.email.n_to, 2);
    assert_string_equal(m.email.to[1].name, "Bob");
    assert_string_equal(m.email.to[1].addr, "b@y.example.org");
    assert_int_equal(m.email.n_cc, 1);
    assert_string_equal(m.email.cc[0].addr, "c@z.io");
    assert_int_equal(m.email.n_bcc, 1);
    assert_string_equal(m.email.bcc[0].addr, "d@z.io");
    assert_null(m.email.bcc[0].name);
    assert_string_equal(m.email.from.name, "App, Inc");
    assert_string_equal(m.email.from.addr, "app@x.io");
    assert_string_equal(m.email.reply_to.addr, "r@x.io");
    assert_null(m.email.subject);
    assert_null(m.email.text);
    assert_int_equal(m.email.n_headers, 2);
    assert_string_equal(m.email.headers[0].name, "X-Campaign");
    assert_string_equal(m.email.headers[1].value, "<mailto:u@x.io>");
    assert_string_equal(m.tenant_id, "7");
    assert_string_equal(m.notification_id, "42");
    nq_msg_done(&m);

    compose_ok(nq_compose_email, "{\"to\":\"a@x.io\",\"text\":\"t\",\"reply_to\":\"r@x.io\"}", &m);
    assert_string_equal(m.email.reply_to.addr, "r@x.io");
    nq_msg_done(&m);
}

static const struct bad_case email_bad[] = {
    { "[]", "data: must be a JSON object" },
    { "\"to\"", "data: must be a JSON object" },
    { "{}", "data.to: required" },
    { "{\"to\":null,\"text\":\"t\"}", "data.to: required" },
    { "{\"to\":5,\"text\":\"t\"}", "data.to: must be an address or a list of addresses" },
    { "{\"to\":[],\"text\":\"t\"}", "data.to: must not be empty" },
    { "{\"to\":\"bob\"}", "data.to: invalid address \"bob\": no '@'" },
    { "{\"to\":\"bob@\"}", "data.to: invalid address \"bob@\": empty domain" },
    { "{\"to\":\"@x.io\"}", "data.to: invalid address \"@x.io\": empty local part" },
    { "{\"to\":\"\"}", "data.to: invalid address \"\": empty" },
    { "{\"to\":\"a..b@x.io\"}",
      "data.to: invalid address \"a..b@x.io\": two dots in a row in the local part" },
    { "{\"to\":\".a@x.io\"}",
      "data.to: invalid address \".a@x.io\": local part starts or ends with a dot" },
    { "{\"to\":\"a b@x.io\"}",
      "data.to: invalid address \"a b@x.io\": character not allowed in the local part" },
    { "{\"to\":\"a@-x.io\"}",
      "data.to: invalid address \"a@-x.io\": domain label starts or ends with '-'" },
    { "{\"to\":\"a@x-.io\"}",
      "data.to: invalid address \"a@x-.io\": domain label starts or ends with '-'" },
    { "{\"to\":\"a@x..io\"}", "data.to: invalid address \"a@x..io\": empty label in the domain" },
    { "{\"to\":\"a@x.io.\"}", "data.to: invalid address \"a@x.io.\": empty label in the domain" },
    { "{\"to\":\"a@x_y.io\"}",
      "data.to: invalid address \"a@x_y.io\": character not allowed in the domain" },
    { "{\"to\":\"a@[1.2.3.4]\"}",
      "data.to: invalid address \"a@[1.2.3.4]\": address literals are not supported" },
    { "{\"to\":\"\\\"a\\\"@x.io\"}",
      "data.to: invalid address \"\"a\"@x.io\": quoted local parts are not supported" },
    { "{\"to\":\"j\\u00e9@x.io\"}",
      "data.to: invalid address \"j\xc3\xa9@x.io\": non-ASCII addresses are not supported" },
    { "{\"to\":\"a@x.io, b@x.io\"}",
      "data.to: invalid address \"a@x.io, b@x.io\": character not allowed in the local part" },
    { "{\"to\":\"Bob <a@x.io\"}",
      "data.to: invalid address \"Bob <a@x.io\": character not allowed in the local part" },
    { "{\"to\":\"Bo\\nb <a@x.io>\"}",
      "data.to: invalid address \"Bo\nb <a@x.io>\": control character in the display name" },
    { "{\"to\":[\"a@x.io\",7]}", "data.to[1]: must be a string" },
    { "{\"to\":[\"a@x.io\",\"bad\"]}", "data.to[1]: invalid address \"bad\": no '@'" },
    { "{\"to\":[{\"email\":\"a@x.io\"}]}", "data.to[0]: must be a string" },
    { "{\"to\":\"a@x.io\",\"cc\":\"nope\"}", "data.cc: invalid address \"nope\": no '@'" },
    { "{\"to\":\"a@x.io\",\"bcc\":{}}", "data.bcc: must be an address or a list of addresses" },
    { "{\"to\":\"a@x.io\",\"from\":\"x\"}", "data.from: invalid address \"x\": no '@'" },
    { "{\"to\":\"a@x.io\",\"from\":[\"a@x.io\"]}", "data.from: must be a string" },
    { "{\"to\":\"a@x.io\",\"replyTo\":\"a@x.io\",\"reply_to\":\"b@x.io\",\"text\":\"t\"}",
      "data.reply_to: give only one of data.replyTo and data.reply_to" },
    { "{\"to\":\"a@x.io\"}", "data.text: required (or data.html, or data.message)" },
    { "{\"to\":\"a@x.io\",\"subject\":\"s\",\"text\":null}",
      "data.text: required (or data.html, or data.message)" },
    { "{\"to\":\"a@x.io\",\"text\":\"a\",\"message\":\"b\"}",
      "data.message: give only one of data.text and data.message" },
    { "{\"to\":\"a@x.io\",\"text\":5}", "data.text: must be a string" },
    { "{\"to\":\"a@x.io\",\"html\":true}", "data.html: must be a string" },
    { "{\"to\":\"a@x.io\",\"subject\":[],\"text\":\"t\"}", "data.subject: must be a string" },
    { "{\"to\":\"a@x.io\",\"subject\":\"a\\r\\nBcc: x@y.io\",\"text\":\"t\"}",
      "data.subject: must be one line" },
    { "{\"to\":\"a@x.io\",\"subject\":\"Hi\",\"template\":\"welcome\"}",
      "data.template: not supported; name the template with data.templateId or send text or "
      "html" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"headers\":{\"Subject\":\"x\"}}",
      "data.headers.Subject: written by notifyq; use the data keys (to, subject...) instead" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"headers\":{\"content-type\":\"x\"}}",
      "data.headers.content-type: written by notifyq; use the data keys (to, subject...) "
      "instead" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"headers\":{\"X-Notifyq-Queue\":\"x\"}}",
      "data.headers.X-Notifyq-Queue: written by notifyq; use the data keys (to, subject...) "
      "instead" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"headers\":{\"X-A\":\"a\\r\\nBcc: evil@x.io\"}}",
      "data.headers.X-A: must be one line of printable ASCII" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"headers\":{\"X-A\":\"caf\\u00e9\"}}",
      "data.headers.X-A: must be one line of printable ASCII" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"headers\":{\"Bad Name\":\"x\"}}",
      "data.headers: \"Bad Name\": header names are printable ASCII without spaces or ':'" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"headers\":{\"\":\"x\"}}",
      "data.headers: \"\": header names are 1 to 76 characters" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"headers\":{\"X-N\":1}}",
      "data.headers.X-N: must be a string" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"headers\":[]}", "data.headers: must be an object" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"tenantId\":{}}",
      "data.tenantId: must be a string or an integer" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"notificationId\":1.5}",
      "data.notificationId: must be a string or an integer" },
};

static void email_refusals_name_the_field(void **state)
{
    (void) state;
    check_bad(nq_compose_email, email_bad, NQ_ELEMENTSOF(email_bad));
}

/* Lengths are limits of RFC 5321; built here rather than spelled out. */
static void email_length_limits(void **state)
{
    char local[80], label[80], json[4096], want[512];
    struct nq_msg m;

    (void) state;
    memset(local, 'l', 64);
    local[64] = '\0';
    memset(label, 'd', 63);
    label[63] = '\0';
    snprintf(json, sizeof(json), "{\"to\":\"%s@%s.io\",\"text\":\"t\"}", local, label);
    compose_ok(nq_compose_email, json, &m);
    nq_msg_done(&m);

    strcat(local, "l");
    snprintf(json, sizeof(json), "{\"to\":\"%s@x.io\"}", local);
    snprintf(want, sizeof(want),
             "data.to: invalid address \"%s@x.io\": local part longer "
             "than 64 bytes",
             local);
    check_bad(nq_compose_email, &(struct bad_case){ json, want }, 1);

    strcat(label, "d");
    snprintf(json, sizeof(json), "{\"to\":\"a@%s.io\"}", label);
    snprintf(want, sizeof(want),
             "data.to: invalid address \"a@%s.io\": domain label longer "
             "than 63 bytes",
             label);
    check_bad(nq_compose_email, &(struct bad_case){ json, want }, 1);

    /* 254 bytes in all at most: 64 + 1 + 4 labels of 63 and dots = 320. */
    label[63] = '\0';
    local[64] = '\0';
    snprintf(json, sizeof(json), "{\"to\":\"%s@%s.%s.%s.%s\"}", local, label, label, label, label);
    assert_true(strstr(json, "\"}") - strstr(json, "\"l") - 1 > 254);
    *strrchr(json, '"') = '\0';
    snprintf(want, sizeof(want), "data.to: invalid address \"%.100s\": longer than 254 bytes",
             strstr(json, "\"l") + 1);
    strcat(json, "\"}");
    check_bad(nq_compose_email, &(struct bad_case){ json, want }, 1);
}

static void email_caps_recipients(void **state)
{
    size_t n = NQ_EMAIL_RECIPIENTS_MAX;
    char *json = malloc(n * 16 + 64), *p = json;
    struct nq_msg m;

    (void) state;
    assert_non_null(json);
    p += sprintf(p, "{\"text\":\"t\",\"to\":[");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s\"u%zu@x.io\"", i ? "," : "", i);
    strcpy(p, "]}");
    compose_ok(nq_compose_email, json, &m);
    assert_int_equal(m.email.n_to, n);
    nq_msg_done(&m);
    strcpy(p, "],\"cc\":\"one@more.io\"}");
    check_bad(nq_compose_email,
              &(struct bad_case){ json, "data.cc: more than 1000 recipients in to, cc and bcc" },
              1);
    free(json);
}

static void mailbox_forms(void **state)
{
    static const struct {
        const char *in, *name, *addr;
    } cases[] = {
        { "bob@example.org", NULL, "bob@example.org" },
        { "  bob@example.org\t", NULL, "bob@example.org" },
        { "Bob <bob@example.org>", "Bob", "bob@example.org" },
        { "<bob@example.org>", NULL, "bob@example.org" },
        { "\"Doe, John\" <j@x.io>", "Doe, John", "j@x.io" },
        { "\"A \\\"q\\\"\" <a@x.io>", "A \"q\"", "a@x.io" },
        { "\xc3\x89lodie <e@x.io>", "\xc3\x89lodie", "e@x.io" },
        { "first.last+tag@sub.example.co.uk", NULL, "first.last+tag@sub.example.co.uk" },
        { "o'brien@x.io", NULL, "o'brien@x.io" },
        { "user@localhost", NULL, "user@localhost" },
        { "x@123.45.com", NULL, "x@123.45.com" },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        struct nq_mailbox mb;
        const char *why = "unset";

        if (nq_mailbox_parse(cases[i].in, &mb, &why) != 0)
            fail_msg("%s: %s", cases[i].in, why);
        assert_null(why);
        if (cases[i].name)
            assert_string_equal(mb.name, cases[i].name);
        else
            assert_null(mb.name);
        assert_string_equal(mb.addr, cases[i].addr);
        free(mb.name);
        free(mb.addr);
    }
}

/* ---- sms --------------------------------------------------------------------- */

static void e164_normalisation(void **state)
{
    static const struct {
        const char *in, *want; /* want NULL: refused with why */
        const char *why;
    } cases[] = {
        { "+15551234567", "+15551234567", NULL },
        { "+1 (555) 123-4567", "+15551234567", NULL },
        { " +44 20 7946 0958 ", "+442079460958", NULL },
        { "+33.1.23.45.67.89", "+33123456789", NULL },
        { "0044 7700 900123", "+447700900123", NULL },
        { "+683 4002", "+6834002", NULL },                /* 7 digits: Niue */
        { "+123456789012345", "+123456789012345", NULL }, /* 15 digits */
        { "5551234567", NULL, "no country code (write it as +<country code><number>)" },
        { "(555) 123-4567", NULL, "no country code (write it as +<country code><number>)" },
        { "", NULL, "no country code (write it as +<country code><number>)" },
        { "+0123456789", NULL, "a country code does not start with 0" },
        { "+123456", NULL, "fewer than 7 digits" },
        { "+", NULL, "fewer than 7 digits" },
        { "+1234567890123456", NULL, "more than 15 digits" },
        { "+1 (555 1234567", NULL, "parentheses that do not pair up" },
        { "+1 555) 1234567", NULL, "parentheses that do not pair up" },
        { "+1 (55)(5) 1234567", NULL, "parentheses that do not pair up" },
        { "+1 ((555)) 1234567", NULL, "parentheses that do not pair up" },
        { "+1 555 CALL NOW", NULL,
          "a character other than digits, spaces, '-', '.' and parentheses" },
        { "+1 555 123 4567 x89", NULL,
          "a character other than digits, spaces, '-', '.' and parentheses" },
        { "++15551234567", NULL,
          "a character other than digits, spaces, '-', '.' and parentheses" },
    };
    char out[17];

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        const char *why = "unset";
        int r = nq_e164_normalize(cases[i].in, out, sizeof(out), &why);

        if (cases[i].want) {
            if (r != 0)
                fail_msg("%s: refused: %s", cases[i].in, why);
            assert_string_equal(out, cases[i].want);
            assert_null(why);
        } else {
            if (r != -EINVAL)
                fail_msg("%s: accepted as %s", cases[i].in, out);
            assert_string_equal(why, cases[i].why);
        }
    }
    assert_int_equal(nq_e164_normalize("+15551234567", out, 16, &(const char *){ NULL }), -ENOBUFS);
}

static void sms_accepts_the_seed_shapes(void **state)
{
    struct nq_msg m;

    (void) state;
    compose_ok(nq_compose_sms,
               "{\"to\":\"+1 (555) 123-4567\",\"message\":\"Your code is 123456\","
               "\"tenantId\":\"t-1\",\"notificationId\":\"n-2\",\"userId\":\"u\","
               "\"category\":\"otp\",\"priority\":\"URGENT\"}",
               &m);
    assert_int_equal(m.type, NQ_MSG_SMS);
    assert_string_equal(m.sms.to, "+15551234567");
    assert_string_equal(m.sms.body, "Your code is 123456");
    assert_null(m.sms.from);
    assert_string_equal(m.tenant_id, "t-1");
    nq_msg_done(&m);

    compose_ok(nq_compose_sms, "{\"to\":\"0044 20 7946 0958\",\"body\":\"x\",\"from\":\"ACME 2\"}",
               &m);
    assert_string_equal(m.sms.to, "+442079460958");
    assert_string_equal(m.sms.from, "ACME 2");
    nq_msg_done(&m);

    compose_ok(nq_compose_sms,
               "{\"to\":\"+15551234567\",\"text\":\"x\",\"from\":\"+44 7700 900123\"}", &m);
    assert_string_equal(m.sms.from, "+447700900123");
    assert_string_equal(m.sms.body, "x");
    nq_msg_done(&m);
}

static const struct bad_case sms_bad[] = {
    { "{}", "data.to: required" },
    { "{\"to\":15551234567,\"body\":\"x\"}", "data.to: must be a string" },
    { "{\"to\":\"+1 555 CALL NOW\",\"body\":\"x\"}",
      "data.to: \"+1 555 CALL NOW\" is not a phone number in international form: a character "
      "other than digits, spaces, '-', '.' and parentheses" },
    { "{\"to\":\"+123\",\"body\":\"x\"}",
      "data.to: \"+123\" is not a phone number in international form: fewer than 7 digits" },
    { "{\"to\":\"+15551234567\"}", "data.body: required (or data.message)" },
    { "{\"to\":\"+15551234567\",\"body\":\"\"}", "data.body: must not be empty" },
    { "{\"to\":\"+15551234567\",\"body\":7}", "data.body: must be a string" },
    { "{\"to\":\"+15551234567\",\"body\":\"x\",\"message\":\"y\"}",
      "data.message: give only one of data.body and data.message" },
    { "{\"to\":\"+15551234567\",\"message\":\"x\",\"text\":\"y\"}",
      "data.text: give only one of data.message and data.text" },
    { "{\"to\":\"+15551234567\",\"body\":\"x\",\"from\":\"TOO LONG SENDER\"}",
      "data.from: must be a phone number in international form or a sender id of 1 to 11 "
      "letters, digits and spaces" },
    { "{\"to\":\"+15551234567\",\"body\":\"x\",\"from\":\"12345\"}",
      "data.from: must be a phone number in international form or a sender id of 1 to 11 "
      "letters, digits and spaces" },
    { "{\"to\":\"+15551234567\",\"body\":\"x\",\"from\":\"+12\"}",
      "data.from: \"+12\" is not a phone number in international form: fewer than 7 digits" },
    { "{\"to\":\"+15551234567\",\"body\":\"x\",\"template\":\"otp\"}",
      "data.template: not supported; name the template with data.templateId or send body" },
    { "[1]", "data: must be a JSON object" },
};

static void sms_refusals_name_the_field(void **state)
{
    (void) state;
    check_bad(nq_compose_sms, sms_bad, NQ_ELEMENTSOF(sms_bad));
}

/* A national number passes the composer as written; nq_sms_settle
 * completes it with the provider's default_region, or refuses it without
 * one, and refuses a body over max_segments with its count. */
static void sms_settle_applies_region_and_segments(void **state)
{
    static const struct {
        const char *to, *region, *body;
        uint32_t max;
        const char *want_to, *want_err;
    } cases[] = {
        { "5551234567", "US", "x", 0, "+15551234567", NULL },
        { "(555) 123-4567", "CA", "x", 1, "+15551234567", NULL },
        { "020 7946 0958", "GB", "x", 0, "+442079460958", NULL },
        { "+15551234567", "GB", "x", 0, "+15551234567", NULL },
        { "5551234567", NULL, "x", 0, NULL,
          "data.to: \"5551234567\" is not a phone number in international form: no country code "
          "(write it as +<country code><number>)" },
        { "555 1234", "US", "x", 0, NULL,
          "data.to: \"555 1234\" is not a phone number of default_region US: not a national "
          "number of the default region (wrong length)" },
        { "+15551234567", NULL,
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          1, NULL,
          "data.body: 2 segments (GSM-7, 174 units) is more than the provider's max_segments 1" },
        { "+15551234567", NULL, "\xe4\xbd\xa0", 1, "+15551234567", NULL },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        char json[512];
        struct nq_err err = { { 0 } };
        struct nq_msg m;
        int r;

        (void) snprintf(json, sizeof(json), "{\"to\":\"%s\",\"body\":\"%s\"}", cases[i].to,
                        cases[i].body);
        compose_ok(nq_compose_sms, json, &m);
        r = nq_sms_settle(&m.sms, cases[i].region, cases[i].max, &err);
        if (cases[i].want_to) {
            if (r != 0)
                fail_msg("%s: %s", cases[i].to, nq_err_str(&err));
            assert_string_equal(m.sms.to, cases[i].want_to);
        } else {
            assert_int_equal(r, -EINVAL);
            assert_string_equal(nq_err_str(&err), cases[i].want_err);
        }
        nq_msg_done(&m);
    }
}

static void sms_body_limit_counts_characters(void **state)
{
    char *json = malloc(NQ_SMS_BODY_MAX * 2 + 64), *p;
    struct nq_msg m;

    (void) state;
    assert_non_null(json);
    p = json + sprintf(json, "{\"to\":\"+15551234567\",\"body\":\"");
    for (int i = 0; i < NQ_SMS_BODY_MAX; i++)
        p += sprintf(p, "\xc3\xa9"); /* 2 bytes, 1 character */
    strcpy(p, "\"}");
    compose_ok(nq_compose_sms, json, &m);
    nq_msg_done(&m);
    strcpy(p, "x\"}");
    check_bad(nq_compose_sms, &(struct bad_case){ json, "data.body: longer than 1600 characters" },
              1);
    free(json);
}

/* ---- push -------------------------------------------------------------------- */

static void push_accepts_the_seed_shapes(void **state)
{
    struct nq_msg m;

    (void) state;
    compose_ok(nq_compose_push,
               "{\"notificationId\":\"507f1f77bcf86cd7994390f\",\"userId\":\"u\","
               "\"token\":\"fGc-registration:token_1\",\"title\":\"New Appointment\","
               "\"message\":\"You have a new appointment scheduled.\",\"platform\":\"ios\","
               "\"data\":{\"appointmentId\":\"a1\",\"count\":3,\"urgent\":true,\"score\":1.5}}",
               &m);
    assert_int_equal(m.type, NQ_MSG_PUSH);
    assert_int_equal(m.push.n_tokens, 1);
    assert_string_equal(m.push.tokens[0], "fGc-registration:token_1");
    assert_string_equal(m.push.platform, "ios");
    assert_string_equal(m.push.title, "New Appointment");
    assert_string_equal(m.push.body, "You have a new appointment scheduled.");
    assert_int_equal(m.push.n_data, 4);
    assert_string_equal(m.push.data[0].name, "appointmentId");
    assert_string_equal(m.push.data[0].value, "a1");
    assert_string_equal(m.push.data[1].value, "3");
    assert_string_equal(m.push.data[2].value, "true");
    assert_string_equal(m.push.data[3].value, "1.5");
    assert_string_equal(m.notification_id, "507f1f77bcf86cd7994390f");
    nq_msg_done(&m);

    compose_ok(nq_compose_push, "{\"tokens\":[\"a\",\"b\"],\"body\":\"x\"}", &m);
    assert_int_equal(m.push.n_tokens, 2);
    assert_string_equal(m.push.tokens[1], "b");
    assert_null(m.push.title);
    nq_msg_done(&m);

    /* Data only: a silent push. */
    compose_ok(nq_compose_push, "{\"token\":\"a\",\"data\":{\"k\":\"v\"}}", &m);
    assert_null(m.push.body);
    assert_int_equal(m.push.n_data, 1);
    nq_msg_done(&m);
}

static const struct bad_case push_bad[] = {
    /* The seeds' "test push" names a user, and notifyq has no device registry. */
    { "{\"userId\":\"507f1f77bcf86cd7994390e\",\"title\":\"Test Push\",\"message\":\"hi\"}",
      "data.token: required (or data.tokens)" },
    { "{\"token\":\"\",\"title\":\"x\"}", "data.token: must not be empty" },
    { "{\"token\":\"a b\",\"title\":\"x\"}",
      "data.token: must not contain spaces or control characters" },
    { "{\"token\":5,\"title\":\"x\"}", "data.token: must be a string" },
    { "{\"token\":\"a\",\"tokens\":[\"b\"],\"title\":\"x\"}",
      "data.tokens: give only one of data.token and data.tokens" },
    { "{\"tokens\":[],\"title\":\"x\"}", "data.tokens: must hold 1 to 500 device tokens" },
    { "{\"tokens\":\"a\",\"title\":\"x\"}", "data.tokens: must be a list of device tokens" },
    { "{\"tokens\":[\"a\",\"\"],\"title\":\"x\"}", "data.tokens[1]: must not be empty" },
    { "{\"tokens\":[\"a\",null],\"title\":\"x\"}", "data.tokens[1]: must be a string" },
    { "{\"token\":\"a\"}", "data.body: required (or data.title, or data.data)" },
    { "{\"token\":\"a\",\"data\":{}}", "data.body: required (or data.title, or data.data)" },
    { "{\"token\":\"a\",\"title\":\"t\",\"platform\":\"windows\"}",
      "data.platform: must be android, ios or web" },
    { "{\"token\":\"a\",\"data\":{\"x\":{\"y\":1}}}",
      "data.data.x: must be a string, number or boolean" },
    { "{\"token\":\"a\",\"data\":{\"x\":null}}",
      "data.data.x: must be a string, number or boolean" },
    { "{\"token\":\"a\",\"data\":[1]}", "data.data: must be an object" },
    { "{\"token\":\"a\",\"title\":7}", "data.title: must be a string" },
    { "{\"token\":\"a\",\"body\":\"b\",\"message\":\"m\"}",
      "data.message: give only one of data.body and data.message" },
    { "{\"token\":\"a\",\"title\":\"t\",\"template\":\"x\"}",
      "data.template: not supported; name the template with data.templateId or send title and "
      "body" },
};

static void push_refusals_name_the_field(void **state)
{
    (void) state;
    check_bad(nq_compose_push, push_bad, NQ_ELEMENTSOF(push_bad));
}

static void push_token_limits(void **state)
{
    char *json = malloc(NQ_PUSH_TOKEN_MAX + 600 * 6 + 64), *p;
    struct nq_msg m;

    (void) state;
    assert_non_null(json);
    p = json + sprintf(json, "{\"title\":\"t\",\"token\":\"");
    memset(p, 'k', NQ_PUSH_TOKEN_MAX);
    strcpy(p + NQ_PUSH_TOKEN_MAX, "\"}");
    compose_ok(nq_compose_push, json, &m);
    nq_msg_done(&m);
    strcpy(p + NQ_PUSH_TOKEN_MAX, "k\"}");
    check_bad(nq_compose_push, &(struct bad_case){ json, "data.token: longer than 4096 bytes" }, 1);

    p = json + sprintf(json, "{\"title\":\"t\",\"tokens\":[");
    for (int i = 0; i < NQ_PUSH_TOKENS_MAX; i++)
        p += sprintf(p, "%s\"t%d\"", i ? "," : "", i);
    strcpy(p, "]}");
    compose_ok(nq_compose_push, json, &m);
    assert_int_equal(m.push.n_tokens, NQ_PUSH_TOKENS_MAX);
    nq_msg_done(&m);
    strcpy(p, ",\"extra\"]}");
    check_bad(nq_compose_push,
              &(struct bad_case){ json, "data.tokens: must hold 1 to 500 device tokens" }, 1);
    free(json);
}

/* ---- field tables (issue 9: unknown fields are not dropped silently) ---------- */

static const struct bad_case email_fields_bad[] = {
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"attachments\":[{\"path\":\"../../etc/shadow\"}]}",
      "data.attachments: attachments are not supported yet; the job fails rather than go out "
      "without them" },
    { "{\"to\":\"a@x.io\",\"subjct\":\"typo\",\"text\":\"t\"}",
      "data.subjct: not a field of email jobs (see notifyq-jobs(7))" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"template\":\"welcome\"}",
      "data.template: not supported; name the template with data.templateId or send "
      "text or html" },
    { "{\"to\":\"a@x.io\",\"text\":\"t\",\"token\":\"x\"}",
      "data.token: not a field of email jobs (see notifyq-jobs(7))" },
};

static const struct bad_case sms_fields_bad[] = {
    { "{\"to\":\"+15551234567\",\"body\":\"x\",\"subject\":\"s\"}",
      "data.subject: not a field of sms jobs (see notifyq-jobs(7))" },
    { "{\"to\":\"+15551234567\",\"body\":\"x\",\"variables\":{}}",
      "data.variables: not supported; name the template with data.templateId or send "
      "body" },
};

static const struct bad_case push_fields_bad[] = {
    { "{\"token\":\"t\",\"body\":\"x\",\"badge\":3}",
      "data.badge: not a field of push jobs (see notifyq-jobs(7))" },
};

static void fields_outside_the_table_are_refused(void **state)
{
    struct nq_msg m;

    (void) state;
    check_bad(nq_compose_email, email_fields_bad, NQ_ELEMENTSOF(email_fields_bad));
    check_bad(nq_compose_sms, sms_fields_bad, NQ_ELEMENTSOF(sms_fields_bad));
    check_bad(nq_compose_push, push_fields_bad, NQ_ELEMENTSOF(push_fields_bad));
    /* A refused field given as null is not given. */
    compose_ok(nq_compose_email, "{\"to\":\"a@x.io\",\"text\":\"t\",\"attachments\":null}", &m);
    nq_msg_done(&m);
    /* The seeds' bookkeeping keys are accepted, whatever their value. */
    compose_ok(nq_compose_sms,
               "{\"to\":\"+15551234567\",\"body\":\"x\",\"metadata\":{\"a\":[1]},"
               "\"type\":\"otp\",\"priority\":5}",
               &m);
    nq_msg_done(&m);
}

/* The tables the worker's validation uses are the handlers' own. */
static void each_handler_has_its_table(void **state)
{
    const struct nq_field_table *t;

    (void) state;
    assert_ptr_equal(nq_handler_fields(NQ_HANDLER_EMAIL), &nq_email_fields);
    assert_ptr_equal(nq_handler_fields(NQ_HANDLER_SMS), &nq_sms_fields);
    assert_ptr_equal(nq_handler_fields(NQ_HANDLER_PUSH), &nq_push_fields);
    t = nq_handler_fields(NQ_HANDLER_NOOP);
    assert_non_null(t);
    assert_true(t->open);
    assert_non_null(nq_field_find(t, "sleep_ms"));
    assert_int_equal(nq_field_find(&nq_email_fields, "attachments")->use, NQ_FIELD_REFUSED);
    assert_int_equal(nq_field_find(&nq_email_fields, "to")->use, NQ_FIELD_READ);
    assert_int_equal(nq_field_find(&nq_push_fields, "userId")->use, NQ_FIELD_KEPT);
    assert_null(nq_field_find(&nq_sms_fields, "html"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(email_accepts_the_seed_shapes),
        cmocka_unit_test(email_takes_every_field),
        cmocka_unit_test(email_refusals_name_the_field),
        cmocka_unit_test(email_length_limits),
        cmocka_unit_test(email_caps_recipients),
        cmocka_unit_test(mailbox_forms),
        cmocka_unit_test(e164_normalisation),
        cmocka_unit_test(sms_settle_applies_region_and_segments),
        cmocka_unit_test(sms_accepts_the_seed_shapes),
        cmocka_unit_test(sms_refusals_name_the_field),
        cmocka_unit_test(sms_body_limit_counts_characters),
        cmocka_unit_test(push_accepts_the_seed_shapes),
        cmocka_unit_test(push_refusals_name_the_field),
        cmocka_unit_test(push_token_limits),
        cmocka_unit_test(fields_outside_the_table_are_refused),
        cmocka_unit_test(each_handler_has_its_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
