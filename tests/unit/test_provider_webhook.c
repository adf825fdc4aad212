/* SPDX-License-Identifier: MIT */
/* The webhook provider and the shared HTTP provider shape, without a
 * network: the Standard Webhooks test vector (PROVIDERS.md §12), the exact
 * request bytes build makes (signature recomputed here with OpenSSL), the
 * webhook-id's stability, Retry-After in both forms, and classify's table. */
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

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "providers/http.h"
#include "providers/webhook.h"

#define VECTOR_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static void the_spec_test_vector_signs_exactly(void **state)
{
    struct nq_webhook w;
    struct nq_err err = { { 0 } };
    char sig[NQ_WEBHOOK_SIGNATURE_SIZE];
    const char *body = "{\"test\": 2432232314}";

    (void) state;
    assert_int_equal(nq_webhook_init(&w, "http://127.0.0.1:1/", VECTOR_SECRET, &err), 0);
    assert_int_equal(w.key_len, 24);
    assert_int_equal(nq_webhook_sign(w.key, w.key_len, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                     body, strlen(body), sig),
                     0);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    nq_webhook_done(&w);
}

static void bad_secrets_are_refused_without_quoting_them(void **state)
{
    static const char *const bad[] = {
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",       /* no prefix */
        "whsec_",                                 /* empty */
        "whsec_c2hvcnQ=",                         /* 5 bytes */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!aSw", /* not base64 */
        "whs",                                    /* shorter than the prefix */
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad); i++) {
        struct nq_webhook w;
        struct nq_err err = { { 0 } };

        assert_int_equal(nq_webhook_init(&w, "http://x/", bad[i], &err), -EINVAL);
        assert_non_null(strstr(nq_err_str(&err), "webhook: secret"));
        if (strlen(bad[i]) > 6)
            assert_null(strstr(nq_err_str(&err), bad[i] + 6));
    }
}

static const char *header(const struct nq_http_request *r, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->n_headers; i++)
        if (strncmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return r->headers[i] + n + 2;
    return NULL;
}

static void build_makes_the_exact_envelope_and_a_verifiable_signature(void **state)
{
    struct nq_webhook w;
    struct nq_err err = { { 0 } };
    const char *data = "{\"fileId\":\"f1\",\"n\":[1,2]}";
    const struct nq_webhook_event ev = { .type = "file.process",
                                         .data_json = data,
                                         .data_len = strlen(data),
                                         .timestamp_ms = 1704110400123ull };
    const struct nq_delivery d = {
        .queue = "hooks", .job_id = "42", .attempt = 1, .job_timestamp_ms = 1704110400123ull
    };
    struct nq_http_request req;
    char id[NQ_WEBHOOK_ID_SIZE], signed_bytes[512], want[NQ_WEBHOOK_SIGNATURE_SIZE];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    int n;

    (void) state;
    assert_int_equal(nq_webhook_init(&w, "http://127.0.0.1:9/hook?x=1", VECTOR_SECRET, &err), 0);
    assert_int_equal(nq_webhook_provider.build(&w, &ev, &d, 1700000000, &req, &err), 0);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, "http://127.0.0.1:9/hook?x=1");
    assert_string_equal(req.body, "{\"type\":\"file.process\",\"timestamp\":\"2024-01-01T12:00:00."
                                  "123Z\",\"data\":{\"fileId\":\"f1\",\"n\":[1,2]}}");
    assert_int_equal(req.body_len, strlen(req.body));
    assert_int_equal(req.n_headers, 4);
    assert_string_equal(header(&req, "content-type"), "application/json");
    assert_string_equal(header(&req, "webhook-timestamp"), "1700000000");
    assert_int_equal(nq_webhook_id(&d, id), 0);
    assert_string_equal(header(&req, "webhook-id"), id);

    /* The receiver's check: HMAC over id.timestamp.body with the decoded key. */
    n = snprintf(signed_bytes, sizeof(signed_bytes), "%s.1700000000.%s", id, req.body);
    assert_non_null(HMAC(EVP_sha256(), w.key, (int) w.key_len, (unsigned char *) signed_bytes,
                         (size_t) n, mac, &mac_len));
    strcpy(want, "v1,");
    EVP_EncodeBlock((unsigned char *) want + 3, mac, (int) mac_len);
    assert_string_equal(header(&req, "webhook-signature"), want);
    nq_http_request_done(&req);

    /* No data: null, and the name is JSON-escaped. */
    const struct nq_webhook_event ev2 = { .type = "a\"b", .timestamp_ms = 0 };
    assert_int_equal(nq_webhook_provider.build(&w, &ev2, &d, 5, &req, &err), 0);
    assert_string_equal(
        req.body, "{\"type\":\"a\\\"b\",\"timestamp\":\"1970-01-01T00:00:00.000Z\",\"data\":null}");
    nq_http_request_done(&req);
    nq_webhook_done(&w);
}

static void the_webhook_id_is_stable_per_job_and_new_for_a_reused_id(void **state)
{
    struct nq_delivery d = {
        .queue = "hooks", .job_id = "7", .attempt = 1, .job_timestamp_ms = 1000
    };
    char a[NQ_WEBHOOK_ID_SIZE], b[NQ_WEBHOOK_ID_SIZE];

    (void) state;
    assert_int_equal(nq_webhook_id(&d, a), 0);
    assert_int_equal(strlen(a), 36);
    assert_memory_equal(a, "msg_", 4);
    assert_int_equal(strspn(a + 4, "0123456789abcdef"), 32);
    d.attempt = 5; /* a retry */
    assert_int_equal(nq_webhook_id(&d, b), 0);
    assert_string_equal(a, b);
    d.job_timestamp_ms = 2000; /* the id reused by a later job */
    assert_int_equal(nq_webhook_id(&d, b), 0);
    assert_string_not_equal(a, b);
    d.job_timestamp_ms = 1000;
    d.queue = "other";
    assert_int_equal(nq_webhook_id(&d, b), 0);
    assert_string_not_equal(a, b);
    /* "7" in queue "hooks" vs "" + ... : the NUL separators keep them apart. */
    d.queue = "hooks7";
    d.job_id = "";
    assert_int_equal(nq_webhook_id(&d, b), 0);
    assert_string_not_equal(a, b);
}

static void retry_after_reads_seconds_and_http_dates(void **state)
{
    /* 1445412480 = Wed, 21 Oct 2015 07:28:00 GMT */
    static const struct {
        const char *value;
        int64_t now;
        int ret;
        uint64_t ms;
    } cases[] = {
        { "120", 0, 0, 120000 },
        { " 5 ", 0, 0, 5000 },
        { "0", 0, 0, 1000 },                 /* clamped up to 1 s */
        { "99999999999999", 0, 0, 3600000 }, /* clamped down to 1 h */
        { "Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 90, 0, 90000 },
        { "Wednesday, 21-Oct-15 07:28:00 GMT", 1445412480 - 30, 0, 30000 },
        { "Wed Oct 21 07:28:00 2015", 1445412480 - 10, 0, 10000 },
        { "Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 500, 0, 1000 }, /* past */
        { "soon", 0, -EINVAL, 0 },
        { "12s", 0, -EINVAL, 0 },
        { "-5", 0, -EINVAL, 0 },
        { "", 0, -EINVAL, 0 },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        uint64_t ms = 7;
        int r = nq_http_retry_after_ms(cases[i].value, cases[i].now, &ms);

        if (r != cases[i].ret || (r == 0 && ms != cases[i].ms))
            fail_msg("Retry-After \"%s\": got %d, %llu ms", cases[i].value, r,
                     (unsigned long long) ms);
    }
}

static void classify_follows_the_table(void **state)
{
    static struct nq_transfer_header ra120[] = { { "retry-after", "120" } };
    static struct nq_transfer_header ra_date[] = { { "Retry-After",
                                                     "Wed, 21 Oct 2015 07:28:00 GMT" } };
    static const struct {
        long status;
        enum nq_transfer_error error;
        bool timed_out;
        struct nq_transfer_header *h;
        enum nq_reply_class cls;
        uint64_t wait_ms;
        const char *reason;
    } cases[] = {
        { 200, NQ_XFER_NONE, false, NULL, NQ_REPLY_SENT, 0, "" },
        { 204, NQ_XFER_NONE, false, NULL, NQ_REPLY_SENT, 0, "" },
        { 500, NQ_XFER_NONE, false, NULL, NQ_REPLY_RETRY, 0, "webhook: HTTP 500" },
        { 503, NQ_XFER_NONE, false, NULL, NQ_REPLY_RETRY, 0, "webhook: HTTP 503" },
        { 503, NQ_XFER_NONE, false, ra120, NQ_REPLY_RATE, 120000, NULL },
        { 502, NQ_XFER_NONE, false, ra_date, NQ_REPLY_RATE, 60000, NULL },
        { 429, NQ_XFER_NONE, false, ra120, NQ_REPLY_RATE, 120000, NULL },
        { 429, NQ_XFER_NONE, false, NULL, NQ_REPLY_RATE, 0, NULL },
        { 408, NQ_XFER_NONE, false, NULL, NQ_REPLY_RETRY, 0, "webhook: HTTP 408" },
        { 301, NQ_XFER_NONE, false, NULL, NQ_REPLY_RETRY, 0, NULL },
        { 410, NQ_XFER_NONE, false, NULL, NQ_REPLY_PERMANENT, 0,
          "webhook: HTTP 410 Gone (the endpoint is gone: fix or remove it)" },
        { 400, NQ_XFER_NONE, false, NULL, NQ_REPLY_PERMANENT, 0, "webhook: HTTP 400" },
        { 404, NQ_XFER_NONE, false, NULL, NQ_REPLY_PERMANENT, 0, "webhook: HTTP 404" },
        { 401, NQ_XFER_NONE, false, NULL, NQ_REPLY_PERMANENT, 0, NULL },
        { 0, NQ_XFER_NOT_SENT, false, NULL, NQ_REPLY_RETRY, 0,
          "webhook: Failed to connect (nothing sent)" },
        { 0, NQ_XFER_NOT_SENT, true, NULL, NQ_REPLY_RETRY, 0, NULL },
        { 0, NQ_XFER_UNKNOWN, true, NULL, NQ_REPLY_UNKNOWN, 0,
          "webhook: timeout after the request was sent (possible duplicate)" },
        { 0, NQ_XFER_UNKNOWN, false, NULL, NQ_REPLY_UNKNOWN, 0,
          "webhook: connection lost after the request was sent (possible duplicate)" },
        /* A status came, then the body was cut: the status decides. */
        { 200, NQ_XFER_UNKNOWN, true, NULL, NQ_REPLY_SENT, 0, "" },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        struct nq_transfer_reply rep = {
            .status = cases[i].status,
            .headers = cases[i].h,
            .n_headers = cases[i].h ? 1 : 0,
            .body = "",
            .error = cases[i].error,
            .timed_out = cases[i].timed_out,
            .error_text = cases[i].error ? "Failed to connect" : "",
        };
        struct nq_http_verdict v;

        nq_webhook_provider.classify(NULL, &rep, 1445412480 - 60, &v);
        if (v.cls != cases[i].cls || v.retry_after_ms != cases[i].wait_ms ||
            (cases[i].reason && strcmp(v.reason, cases[i].reason) != 0))
            fail_msg("case %zu (status %ld): got %s, %llu ms, \"%s\"", i, cases[i].status,
                     nq_reply_class_name(v.cls), (unsigned long long) v.retry_after_ms, v.reason);
        assert_int_equal(v.status, cases[i].status);
    }
}

static void reply_headers_are_found_case_insensitively(void **state)
{
    struct nq_transfer_header h[] = { { "Content-Type", "text/plain" }, { "retry-after", "3" } };
    struct nq_transfer_reply rep = { .headers = h, .n_headers = 2 };

    (void) state;
    assert_string_equal(nq_transfer_reply_header(&rep, "Retry-After"), "3");
    assert_string_equal(nq_transfer_reply_header(&rep, "content-type"), "text/plain");
    assert_null(nq_transfer_reply_header(&rep, "x-nope"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_spec_test_vector_signs_exactly),
        cmocka_unit_test(bad_secrets_are_refused_without_quoting_them),
        cmocka_unit_test(build_makes_the_exact_envelope_and_a_verifiable_signature),
        cmocka_unit_test(the_webhook_id_is_stable_per_job_and_new_for_a_reused_id),
        cmocka_unit_test(retry_after_reads_seconds_and_http_dates),
        cmocka_unit_test(classify_follows_the_table),
        cmocka_unit_test(reply_headers_are_found_case_insensitively),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
