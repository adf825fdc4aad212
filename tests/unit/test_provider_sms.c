/* SPDX-License-Identifier: MIT */
/* The SMS providers without a network: E.164 with default regions,
 * GSM-7/UCS-2 segment counting, each provider's exact request, and each
 * classifier against a table covering the rows of PROVIDERS.md §8 (twilio),
 * §9a (vonage) and §0 (http), Retry-After as seconds and as an HTTP-date. */
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

#include "common/phone.h"
#include "providers/sms.h"
#include "template/template.h"

#define NOW 1700000000 /* Tue, 14 Nov 2023 22:13:20 GMT */

/* ---- numbers ---------------------------------------------------------------- */

static void numbers_become_e164(void **state)
{
    static const struct {
        const char *in, *region, *out; /* out NULL: refused */
    } cases[] = {
        { "+1 (555) 123-4567", NULL, "+15551234567" },
        { "0044 20 7946 0958", NULL, "+442079460958" },
        { "+44 (0)20 7946 0958", NULL, "+442079460958" },
        { "(555) 123-4567", "US", "+15551234567" },
        { "1 555 123 4567", "US", "+15551234567" },
        { "555.123.4567", "CA", "+15551234567" },
        { "020 7946 0958", "GB", "+442079460958" },
        { "07911 123456", "GB", "+447911123456" },
        { "7911 123456", "GB", "+447911123456" },
        { "030 1234567", "DE", "+49301234567" },
        { "06 12 34 56 78", "FR", "+33612345678" },
        { "8 916 123-45-67", "RU", "+79161234567" },
        { "06 30 123 4567", "HU", "+36301234567" },
        { "06 20 1234567", "HU", "+36201234567" },
        { "312 345 6789", "IT", "+393123456789" },
        { "06 1234 5678", "IT", "+390612345678" }, /* Italy keeps its 0 */
        { "0412 345 678", "AU", "+61412345678" },
        { "+15551234567", "GB", "+15551234567" }, /* international wins */
        { "5551234567", NULL, NULL },             /* no region */
        { "555 1234", "US", NULL },               /* too short for NANP */
        { "020 7946 0958 12345", "GB", NULL },    /* too long */
        { "+1 555 CALL NOW", NULL, NULL },
        { "+123", NULL, NULL },
        { "+1234567890123456", NULL, NULL },
        { "+0 555 1234567", NULL, NULL },
        { "(555 123-4567", "US", NULL },
    };
    char out[NQ_PHONE_E164_SIZE];

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        const char *why = NULL;
        int r = nq_phone_e164(cases[i].in, cases[i].region, out, sizeof(out), &why);

        if (cases[i].out) {
            if (r != 0)
                fail_msg("%s/%s: %s", cases[i].in, cases[i].region, why);
            assert_string_equal(out, cases[i].out);
        } else {
            if (r != -EINVAL)
                fail_msg("%s/%s: accepted as %s", cases[i].in, cases[i].region, out);
            assert_non_null(why);
        }
    }
    assert_true(nq_phone_region_known("US"));
    assert_false(nq_phone_region_known("us"));
    assert_false(nq_phone_region_known("XX"));
    assert_int_equal(nq_phone_e164("+15551234567", NULL, out, 16, &(const char *){ NULL }),
                     -ENOBUFS);
}

/* ---- segments --------------------------------------------------------------- */

static char *repeat(const char *unit, size_t n)
{
    size_t len = strlen(unit);
    char *s = malloc(len * n + 1);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, unit, len);
    s[len * n] = '\0';
    return s;
}

static void segments_are_counted(void **state)
{
    static const struct {
        const char *unit;
        size_t n;
        const char *prefix; /* before the repeats */
        enum nq_sms_encoding enc;
        size_t units, segments;
    } cases[] = {
        { "a", 0, "", NQ_SMS_GSM7, 0, 1 },
        { "a", 160, "", NQ_SMS_GSM7, 160, 1 },
        { "a", 161, "", NQ_SMS_GSM7, 161, 2 },
        { "a", 306, "", NQ_SMS_GSM7, 306, 2 },
        { "a", 307, "", NQ_SMS_GSM7, 307, 3 },
        { "\xc3\xa9", 160, "", NQ_SMS_GSM7, 160, 1 },    /* é is in the alphabet */
        { "\xe2\x82\xac", 80, "", NQ_SMS_GSM7, 160, 1 }, /* € counts double */
        { "\xe2\x82\xac", 81, "", NQ_SMS_GSM7, 162, 2 },
        { "{", 80, "", NQ_SMS_GSM7, 160, 1 },
        { "a", 70, "\xc3\xa7", NQ_SMS_UCS2, 71, 2 }, /* ç (lower case) is not GSM */
        { "a", 69, "\xc3\xa7", NQ_SMS_UCS2, 70, 1 },
        { "\xe4\xbd\xa0", 70, "", NQ_SMS_UCS2, 70, 1 },
        { "\xe4\xbd\xa0", 71, "", NQ_SMS_UCS2, 71, 2 },
        { "\xe4\xbd\xa0", 134, "", NQ_SMS_UCS2, 134, 2 },
        { "\xe4\xbd\xa0", 135, "", NQ_SMS_UCS2, 135, 3 },
        { "\xf0\x9f\x98\x80", 35, "", NQ_SMS_UCS2, 70, 1 }, /* emoji: a surrogate pair */
        { "\xf0\x9f\x98\x80", 36, "", NQ_SMS_UCS2, 72, 2 },
        { "`", 1, "", NQ_SMS_UCS2, 1, 1 }, /* the backtick is not GSM */
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        char *body = repeat(cases[i].unit, cases[i].n);
        char *text = malloc(strlen(cases[i].prefix) + strlen(body) + 1);
        struct nq_sms_count c;

        assert_non_null(text);
        (void) sprintf(text, "%s%s", cases[i].prefix, body);
        nq_sms_count(text, &c);
        if (c.encoding != cases[i].enc || c.units != cases[i].units ||
            c.segments != cases[i].segments)
            fail_msg("case %zu: %s %zu units %zu segments", i, nq_sms_encoding_name(c.encoding),
                     c.units, c.segments);
        free(text);
        free(body);
    }
}

/* Parts never split a character: a GSM-7 escape pair or a UTF-16
 * surrogate pair that does not fit goes whole to the next part, so these
 * need one part more than units / per-part says. */
static void splits_keep_pairs_whole(void **state)
{
    char *a = repeat("a", 152), *b = repeat("b", 152), text[700];
    struct nq_sms_count c;

    (void) state;
    (void) snprintf(text, sizeof(text), "%s^%s", a, b); /* 306 septets = 2 x 153 */
    nq_sms_count(text, &c);
    assert_int_equal(c.encoding, NQ_SMS_GSM7);
    assert_int_equal(c.units, 306);
    assert_int_equal(c.segments, 3);
    free(a);
    free(b);
    a = repeat("a", 66);
    b = repeat("b", 66);
    (void) snprintf(text, sizeof(text), "%s\xf0\x9f\x98\x80%s", a, b); /* 134 = 2 x 67 */
    nq_sms_count(text, &c);
    assert_int_equal(c.encoding, NQ_SMS_UCS2);
    assert_int_equal(c.units, 134);
    assert_int_equal(c.segments, 3);
    free(a);
    free(b);
}

/* ---- requests ---------------------------------------------------------------- */

static const struct nq_delivery delivery = { .queue = "sms", .job_id = "42", .attempt = 1 };

static void assert_headers(const struct nq_http_request *req, const char *const *want, size_t n)
{
    assert_int_equal(req->n_headers, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(req->headers[i], want[i]);
}

static void twilio_request_is_exact(void **state)
{
    struct nq_provider_cfg c = { .kind = NQ_PROVIDER_TWILIO,
                                 .account_sid = "AC0123456789abcdef0123456789abcdef",
                                 .auth_token = "tok3n",
                                 .from = "+15005550006",
                                 .base_url = "http://127.0.0.1:8025" };
    struct nq_sms_out out = { .cfg = &c };
    struct nq_sms m = { .to = "+14155550100", .body = "Your code is 123456 & more" };
    struct nq_http_request req;
    struct nq_err err = { { 0 } };
    static const char *const want[] = {
        /* base64("AC0123456789abcdef0123456789abcdef:tok3n") */
        "Authorization: Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0b2szbg==",
        "Content-Type: application/x-www-form-urlencoded",
        "Accept: application/json",
    };

    (void) state;
    assert_int_equal(nq_sms_twilio.build(&out, &m, &delivery, NOW, &req, &err), 0);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, "http://127.0.0.1:8025/2010-04-01/Accounts/"
                                 "AC0123456789abcdef0123456789abcdef/Messages.json");
    assert_headers(&req, want, NQ_ELEMENTSOF(want));
    assert_string_equal(
        req.body,
        "To=%2B14155550100&From=%2B15005550006&Body=Your%20code%20is%20123456%20%26%20more");
    assert_int_equal(req.body_len, strlen(req.body));
    nq_http_request_done(&req);

    /* no from: the messaging service; the job's from wins over the config's */
    c.from = NULL;
    /* cppcheck-suppress unreadVariable ; build reads it through out */
    c.messaging_service_sid = "MG0123";
    c.base_url = NULL;
    assert_int_equal(nq_sms_twilio.build(&out, &m, &delivery, NOW, &req, &err), 0);
    assert_string_equal(req.url, "https://api.twilio.com/2010-04-01/Accounts/"
                                 "AC0123456789abcdef0123456789abcdef/Messages.json");
    assert_string_equal(
        req.body,
        "To=%2B14155550100&MessagingServiceSid=MG0123&Body=Your%20code%20is%20123456%20%26%20more");
    nq_http_request_done(&req);
    m.from = "ACME";
    assert_int_equal(nq_sms_twilio.build(&out, &m, &delivery, NOW, &req, &err), 0);
    assert_string_equal(req.body,
                        "To=%2B14155550100&From=ACME&Body=Your%20code%20is%20123456%20%26%20more");
    nq_http_request_done(&req);
}

static void vonage_request_is_exact(void **state)
{
    struct nq_provider_cfg c = { .kind = NQ_PROVIDER_VONAGE,
                                 .api_key = "abcd1234",
                                 .api_secret = "s3cr3t",
                                 .from = "+447700900001",
                                 .base_url = "http://127.0.0.1:8025" };
    struct nq_sms_out out = { .cfg = &c };
    struct nq_sms m = { .to = "+447700900000", .body = "Hi" };
    struct nq_http_request req;
    struct nq_err err = { { 0 } };
    static const char *const want[] = { "Content-Type: application/x-www-form-urlencoded" };

    (void) state;
    assert_int_equal(nq_sms_vonage.build(&out, &m, &delivery, NOW, &req, &err), 0);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, "http://127.0.0.1:8025/sms/json");
    assert_headers(&req, want, NQ_ELEMENTSOF(want));
    assert_string_equal(req.body, "api_key=abcd1234&api_secret=s3cr3t&from=447700900001&to="
                                  "447700900000&text=Hi&client-ref=42");
    nq_http_request_done(&req);
    /* not GSM-7: type=unicode; a sender id as it is */
    m.body = "\xe4\xbd\xa0\xe5\xa5\xbd";
    m.from = "ACME";
    c.base_url = NULL;
    assert_int_equal(nq_sms_vonage.build(&out, &m, &delivery, NOW, &req, &err), 0);
    assert_string_equal(req.url, "https://rest.nexmo.com/sms/json");
    assert_string_equal(req.body, "api_key=abcd1234&api_secret=s3cr3t&from=ACME&to=447700900000&"
                                  "text=%E4%BD%A0%E5%A5%BD&type=unicode&client-ref=42");
    nq_http_request_done(&req);
}

static void http_request_renders_the_template(void **state)
{
    static char *headers[] = { "Authorization=Bearer k", "X-Tenant=acme", NULL };
    static const char *tpl =
        "{\"to\":\"{{to}}\",\"text\":\"{{body}}\",\"ref\":\"{{queue}}/{{jobId}}\","
        "\"parts\":{{segments}},\"enc\":\"{{encoding}}\"}";
    struct nq_provider_cfg c = { .kind = NQ_PROVIDER_HTTP,
                                 .url = "http://127.0.0.1:8025/send",
                                 .headers = headers,
                                 .n_headers = 2 };
    struct nq_sms m = { .to = "+447700900000", .body = "say \"hi\"\n\\ok" };
    struct nq_sms_out out = { .cfg = &c };
    struct nq_http_request req;
    struct nq_err err = { { 0 } };
    static const char *const want[] = { "Authorization: Bearer k", "X-Tenant: acme",
                                        "Content-Type: application/json" };
    struct nq_template *t;

    (void) state;
    assert_int_equal(nq_template_compile("body_template", tpl, strlen(tpl), &t, &err), 0);
    out.body_template = t;
    assert_int_equal(nq_sms_http.build(&out, &m, &delivery, NOW, &req, &err), 0);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, "http://127.0.0.1:8025/send");
    assert_headers(&req, want, NQ_ELEMENTSOF(want));
    assert_string_equal(req.body, "{\"to\":\"+447700900000\",\"text\":\"say \\\"hi\\\"\\n\\\\ok\","
                                  "\"ref\":\"sms/42\",\"parts\":1,\"enc\":\"GSM-7\"}");
    nq_http_request_done(&req);
    nq_template_free(t);

    /* a template that does not render JSON fails the build, naming it */
    assert_int_equal(nq_template_compile("body_template", "{{body}}", 8, &t, &err), 0);
    out.body_template = t;
    assert_int_equal(nq_sms_http.build(&out, &m, &delivery, NOW, &req, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "body_template does not render JSON"));
    nq_template_free(t);
}

/* ---- classifiers --------------------------------------------------------------- */

struct reply_case {
    long status;
    const char *retry_after; /* NULL: none */
    const char *body;
    enum nq_reply_class cls;
    uint64_t wait_ms;
    const char *id;     /* SENT: expected id */
    const char *reason; /* a part of the reason; NULL: not checked */
    bool config;
};

static void check_table(const struct nq_http_provider *p, const struct reply_case *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct nq_transfer_header h = { .name = "Retry-After", .value = (char *) t[i].retry_after };
        struct nq_transfer_reply reply = {
            .status = t[i].status,
            .headers = &h,
            .n_headers = t[i].retry_after ? 1 : 0,
            .body = t[i].body ? t[i].body : "",
            .body_len = t[i].body ? strlen(t[i].body) : 0,
            .error_text = "",
        };
        struct nq_http_verdict v;

        p->classify(NULL, &reply, NOW, &v);
        if (v.cls != t[i].cls || v.retry_after_ms != t[i].wait_ms ||
            nq_sms_verdict_is_config(&v) != t[i].config ||
            (t[i].id && strcmp(v.message_id, t[i].id) != 0) ||
            (t[i].reason && !strstr(v.reason, t[i].reason)))
            fail_msg("%s row %zu (HTTP %ld): %s wait %llu id %s reason %s", p->name, i, t[i].status,
                     nq_reply_class_name(v.cls), (unsigned long long) v.retry_after_ms,
                     v.message_id, v.reason);
    }
}

#define TWILIO_ERR(code, status)                                                                   \
    "{\"code\":" #code ",\"message\":\"m" #code                                                    \
    "\",\"more_info\":\"https://www.twilio.com/docs/errors/" #code "\",\"status\":" #status "}"

static void twilio_replies_are_classified(void **state)
{
    static const struct reply_case t[] = {
        { 201, NULL,
          "{\"sid\":\"SM0123456789abcdef0123456789abcdef\",\"status\":\"queued\",\"error_code\":"
          "null,"
          "\"num_segments\":\"1\",\"to\":\"+14155550100\"}",
          NQ_REPLY_SENT, 0, "SM0123456789abcdef0123456789abcdef", NULL, false },
        { 201, NULL, "not json", NQ_REPLY_SENT, 0, "", NULL, false },
        { 401, NULL, TWILIO_ERR(20003, 401), NQ_REPLY_PERMANENT, 0, NULL, "20003", true },
        { 401, NULL, "", NQ_REPLY_PERMANENT, 0, NULL, "HTTP 401", true },
        { 403, NULL, "", NQ_REPLY_PERMANENT, 0, NULL, "HTTP 403", true },
        { 404, NULL, TWILIO_ERR(20404, 404), NQ_REPLY_PERMANENT, 0, NULL, "20404", true },
        { 429, NULL, TWILIO_ERR(20429, 429), NQ_REPLY_RATE, 0, NULL, "20429", false },
        { 429, "7", TWILIO_ERR(20429, 429), NQ_REPLY_RATE, 7000, NULL, "never processed", false },
        { 429, "Tue, 14 Nov 2023 22:14:20 GMT", TWILIO_ERR(20429, 429), NQ_REPLY_RATE, 60000, NULL,
          NULL, false },
        { 429, "Tue, 14 Nov 2023 22:00:00 GMT", "", NQ_REPLY_RATE, 1000, NULL, NULL, false },
        { 400, NULL, TWILIO_ERR(21211, 400), NQ_REPLY_DEAD, 0, NULL, "invalid To number", false },
        { 400, NULL, TWILIO_ERR(21408, 400), NQ_REPLY_PERMANENT, 0, NULL, "21408", true },
        { 400, NULL, TWILIO_ERR(21610, 400), NQ_REPLY_DEAD, 0, NULL, "unsubscribed", false },
        { 400, NULL, TWILIO_ERR(21614, 400), NQ_REPLY_DEAD, 0, NULL, "21614", false },
        { 400, NULL, TWILIO_ERR(21612, 400), NQ_REPLY_PERMANENT, 0, NULL, "21612", false },
        { 400, NULL, TWILIO_ERR(21635, 400), NQ_REPLY_DEAD, 0, NULL, "landline", false },
        { 400, NULL, TWILIO_ERR(21606, 400), NQ_REPLY_PERMANENT, 0, NULL, "21606", true },
        { 400, NULL, TWILIO_ERR(21601, 400), NQ_REPLY_PERMANENT, 0, NULL, "21601", true },
        { 400, NULL, TWILIO_ERR(21212, 400), NQ_REPLY_PERMANENT, 0, NULL, "21212", true },
        { 400, NULL, TWILIO_ERR(21608, 400), NQ_REPLY_PERMANENT, 0, NULL, "21608", true },
        { 400, NULL, TWILIO_ERR(21602, 400), NQ_REPLY_PERMANENT, 0, NULL, "21602", false },
        { 400, NULL, TWILIO_ERR(21603, 400), NQ_REPLY_PERMANENT, 0, NULL, "21603", false },
        { 400, NULL, TWILIO_ERR(21604, 400), NQ_REPLY_PERMANENT, 0, NULL, "21604", false },
        { 400, NULL, TWILIO_ERR(21617, 400), NQ_REPLY_PERMANENT, 0, NULL, "21617", false },
        { 400, NULL, TWILIO_ERR(21999, 400), NQ_REPLY_PERMANENT, 0, NULL, "code 21999: m21999",
          false },
        /* ⚠ 5xx with and without 20500/20503 codes, with and without Retry-After */
        { 500, NULL, TWILIO_ERR(20500, 500), NQ_REPLY_RETRY, 0, NULL, "HTTP 500", false },
        { 503, "30", TWILIO_ERR(20503, 503), NQ_REPLY_RETRY, 30000, NULL, "HTTP 503", false },
        { 502, NULL, "<html>bad gateway</html>", NQ_REPLY_RETRY, 0, NULL, "HTTP 502", false },
    };

    (void) state;
    check_table(&nq_sms_twilio, t, NQ_ELEMENTSOF(t));
}

#define PART(st) "{\"to\":\"447700900000\",\"status\":\"" #st "\",\"error-text\":\"e" #st "\"}"
#define ONE(st) "{\"message-count\":\"1\",\"messages\":[" PART(st) "]}"

static void vonage_replies_are_classified(void **state)
{
    static const struct reply_case t[] = {
        { 200, NULL,
          "{\"message-count\":\"1\",\"messages\":[{\"to\":\"447700900000\",\"message-id\":"
          "\"0C000000217B7F02\",\"status\":\"0\",\"remaining-balance\":\"15.53590000\","
          "\"message-price\":\"0.03330000\",\"network\":\"23410\"}]}",
          NQ_REPLY_SENT, 0, "0C000000217B7F02", NULL, false },
        { 200, NULL,
          "{\"message-count\":\"2\",\"messages\":[{\"message-id\":\"A1\",\"status\":\"0\"},"
          "{\"message-id\":\"A2\",\"status\":\"0\"}]}",
          NQ_REPLY_SENT, 0, "A1", NULL, false },
        { 200, NULL, ONE(1), NQ_REPLY_RATE, 1000, NULL, "throttled", false },
        { 200, NULL, ONE(2), NQ_REPLY_PERMANENT, 0, NULL, "status 2", false },
        { 200, NULL, ONE(3), NQ_REPLY_PERMANENT, 0, NULL, "status 3", false },
        { 200, NULL, ONE(4), NQ_REPLY_PERMANENT, 0, NULL, "invalid credentials", true },
        { 200, NULL, ONE(5), NQ_REPLY_RETRY, 0, NULL, "status 5", false },
        { 200, NULL, ONE(6), NQ_REPLY_DEAD, 0, NULL, "status 6", false },
        { 200, NULL, ONE(7), NQ_REPLY_DEAD, 0, NULL, "barred", false },
        { 200, NULL, ONE(8), NQ_REPLY_PERMANENT, 0, NULL, "status 8", true },
        { 200, NULL, ONE(9), NQ_REPLY_PERMANENT, 0, NULL, "quota", true },
        { 200, NULL, ONE(10), NQ_REPLY_RETRY, 0, NULL, "status 10", false },
        { 200, NULL, ONE(11), NQ_REPLY_PERMANENT, 0, NULL, "status 11", true },
        { 200, NULL, ONE(12), NQ_REPLY_PERMANENT, 0, NULL, "too long", false },
        { 200, NULL, ONE(14), NQ_REPLY_PERMANENT, 0, NULL, "status 14", true },
        { 200, NULL, ONE(15), NQ_REPLY_PERMANENT, 0, NULL, "status 15", true },
        { 200, NULL, ONE(22), NQ_REPLY_PERMANENT, 0, NULL, "status 22", false },
        { 200, NULL, ONE(23), NQ_REPLY_PERMANENT, 0, NULL, "status 23", true },
        { 200, NULL, ONE(29), NQ_REPLY_PERMANENT, 0, NULL, "e29", true },
        { 200, NULL, ONE(32), NQ_REPLY_PERMANENT, 0, NULL, "status 32", true },
        { 200, NULL, ONE(33), NQ_REPLY_DEAD, 0, NULL, "de-activated", false },
        { 200, NULL, ONE(99), NQ_REPLY_PERMANENT, 0, NULL, "status 99", false },
        /* one part accepted, one throttled: resending repeats the first */
        { 200, NULL,
          "{\"message-count\":\"2\",\"messages\":[{\"message-id\":\"A1\",\"status\":\"0\"}," PART(
              1) "]}",
          NQ_REPLY_UNKNOWN, 0, NULL, "some parts were accepted", false },
        /* one part accepted, one dead: permanent */
        { 200, NULL,
          "{\"message-count\":\"2\",\"messages\":[{\"message-id\":\"A1\",\"status\":\"0\"}," PART(
              7) "]}",
          NQ_REPLY_DEAD, 0, NULL, "barred", false },
        { 200, NULL, "garbage", NQ_REPLY_SENT, 0, "", NULL, false },
        { 401, NULL, "", NQ_REPLY_PERMANENT, 0, NULL, "HTTP 401", true },
        { 403, NULL, "", NQ_REPLY_PERMANENT, 0, NULL, "HTTP 403", true },
        { 429, "2", "", NQ_REPLY_RATE, 2000, NULL, NULL, false },
        { 500, NULL, "", NQ_REPLY_RETRY, 0, NULL, "HTTP 500", false },
        { 503, "Tue, 14 Nov 2023 22:13:50 GMT", "", NQ_REPLY_RETRY, 30000, NULL, NULL, false },
    };

    (void) state;
    check_table(&nq_sms_vonage, t, NQ_ELEMENTSOF(t));
}

static void http_replies_are_classified(void **state)
{
    static const struct reply_case t[] = {
        { 200, NULL, "{\"id\":\"abc\"}", NQ_REPLY_SENT, 0, "abc", NULL, false },
        { 202, NULL, "{\"messageId\":\"m-1\"}", NQ_REPLY_SENT, 0, "m-1", NULL, false },
        { 201, NULL, "{\"message_id\":17}", NQ_REPLY_SENT, 0, "17", NULL, false },
        { 200, NULL, "", NQ_REPLY_SENT, 0, "", NULL, false },
        { 400, NULL, "{\"error\":\"bad\"}", NQ_REPLY_PERMANENT, 0, NULL, "HTTP 400", false },
        { 401, NULL, "", NQ_REPLY_PERMANENT, 0, NULL, "HTTP 401", true },
        { 403, NULL, "", NQ_REPLY_PERMANENT, 0, NULL, "HTTP 403", true },
        { 408, NULL, "", NQ_REPLY_RETRY, 0, NULL, "HTTP 408", false },
        { 429, NULL, "", NQ_REPLY_RATE, 0, NULL, "HTTP 429", false },
        { 429, "120", "", NQ_REPLY_RATE, 120000, NULL, NULL, false },
        { 429, "Tue, 14 Nov 2023 22:15:20 GMT", "", NQ_REPLY_RATE, 120000, NULL, NULL, false },
        { 500, NULL, "", NQ_REPLY_RETRY, 0, NULL, "HTTP 500", false },
        { 302, NULL, "", NQ_REPLY_RETRY, 0, NULL, "redirect", false },
    };

    (void) state;
    check_table(&nq_sms_http, t, NQ_ELEMENTSOF(t));
}

static void transport_errors_are_classified(void **state)
{
    const struct nq_http_provider *ps[] = { &nq_sms_twilio, &nq_sms_vonage, &nq_sms_http };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(ps); i++) {
        struct nq_transfer_reply refused = { .error = NQ_XFER_NOT_SENT,
                                             .error_text = "refused",
                                             .body = "" };
        struct nq_transfer_reply reset = { .error = NQ_XFER_UNKNOWN,
                                           .error_text = "reset",
                                           .body = "" };
        struct nq_transfer_reply stall = {
            .error = NQ_XFER_UNKNOWN, .timed_out = true, .error_text = "timeout", .body = ""
        };
        struct nq_http_verdict v;

        ps[i]->classify(NULL, &refused, NOW, &v);
        assert_int_equal(v.cls, NQ_REPLY_RETRY);
        ps[i]->classify(NULL, &reset, NOW, &v);
        assert_int_equal(v.cls, NQ_REPLY_UNKNOWN);
        ps[i]->classify(NULL, &stall, NOW, &v);
        assert_int_equal(v.cls, NQ_REPLY_UNKNOWN);
        assert_non_null(strstr(v.reason, "timeout"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers_become_e164),
        cmocka_unit_test(segments_are_counted),
        cmocka_unit_test(splits_keep_pairs_whole),
        cmocka_unit_test(twilio_request_is_exact),
        cmocka_unit_test(vonage_request_is_exact),
        cmocka_unit_test(http_request_renders_the_template),
        cmocka_unit_test(twilio_replies_are_classified),
        cmocka_unit_test(vonage_replies_are_classified),
        cmocka_unit_test(http_replies_are_classified),
        cmocka_unit_test(transport_errors_are_classified),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
