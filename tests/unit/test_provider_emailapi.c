/* SPDX-License-Identifier: MIT */
/* The email API providers without a network: each builder against the
 * exact request it must make (method, URL, headers, body; the SES
 * signature recomputed here with OpenSSL through the vector-tested signer),
 * each classifier against a table of recorded replies covering every row
 * of its PROVIDERS.md section (Retry-After as seconds and as an HTTP-date),
 * resend's Idempotency-Key, and that no credential reaches a reason. */
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

#include "config/config.h"
#include "providers/emailapi.h"
#include "providers/http.h"
#include "providers/httputil.h"
#include "providers/sigv4.h"

#define NOW 1700000000 /* Tue, 14 Nov 2023 22:13:20 GMT */
#define IN_120S "Tue, 14 Nov 2023 22:15:20 GMT"

static struct nq_mailbox to[] = { { "Bob", "bob@example.org" }, { NULL, "carol@example.org" } };
static struct nq_mailbox bcc[] = { { NULL, "audit@example.org" } };
static struct nq_kv hdrs[] = { { "X-Campaign", "spring" } };

static struct nq_msg message(void)
{
    struct nq_msg m;

    nq_msg_init(&m, NQ_MSG_EMAIL);
    m.email.from = (struct nq_mailbox){ "App", "app@example.com" };
    m.email.to = to;
    m.email.n_to = 2;
    m.email.bcc = bcc;
    m.email.n_bcc = 1;
    m.email.reply_to = (struct nq_mailbox){ NULL, "help@example.com" };
    m.email.subject = "Your code";
    m.email.text = "123456";
    m.email.html = "<b>123456</b>";
    m.email.headers = hdrs;
    m.email.n_headers = 1;
    return m;
}

static const struct nq_delivery delivery = {
    .queue = "email", .job_id = "42", .attempt = 1, .job_timestamp_ms = 1700000000000ull
};

static const char *header(const struct nq_http_request *r, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->n_headers; i++)
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return r->headers[i] + n + 2;
    return NULL;
}

static void build_ok(const struct nq_http_provider *p, const struct nq_provider_cfg *cfg,
                     const struct nq_msg *m, const struct nq_delivery *d,
                     struct nq_http_request *req)
{
    struct nq_err err = { { 0 } };

    if (p->build(cfg, m, d, NOW, req, &err) < 0)
        fail_msg("%s: %s", p->name, nq_err_str(&err));
    assert_string_equal(req->method, "POST");
    assert_int_equal(req->body_len, strlen(req->body));
}

/* ---- builders ------------------------------------------------------------- */

static void sendgrid_builds_the_exact_request(void **state)
{
    struct nq_provider_cfg cfg = { .kind = NQ_PROVIDER_SENDGRID,
                                   .base_url = "http://127.0.0.1:8025",
                                   .api_key = "SG.k" };
    struct nq_msg m = message();
    struct nq_http_request req;

    (void) state;
    build_ok(&nq_sendgrid_http, &cfg, &m, &delivery, &req);
    assert_string_equal(req.url, "http://127.0.0.1:8025/v3/mail/send");
    assert_int_equal(req.n_headers, 2);
    assert_string_equal(header(&req, "Authorization"), "Bearer SG.k");
    assert_string_equal(header(&req, "Content-Type"), "application/json");
    assert_string_equal(
        req.body, "{\"personalizations\":[{\"custom_args\":{\"queue\":\"email\",\"job_id\":\"42\"},"
                  "\"to\":[{\"email\":\"bob@example.org\",\"name\":\"Bob\"},{\"email\":\"carol@"
                  "example.org\"}],"
                  "\"bcc\":[{\"email\":\"audit@example.org\"}]}],"
                  "\"from\":{\"email\":\"app@example.com\",\"name\":\"App\"},"
                  "\"reply_to\":{\"email\":\"help@example.com\"},\"subject\":\"Your code\","
                  "\"content\":[{\"type\":\"text/plain\",\"value\":\"123456\"},"
                  "{\"type\":\"text/html\",\"value\":\"<b>123456</b>\"}],"
                  "\"headers\":{\"X-Campaign\":\"spring\"}}");
    nq_http_request_done(&req);
}

static void resend_builds_the_exact_request(void **state)
{
    struct nq_provider_cfg cfg = { .kind = NQ_PROVIDER_RESEND,
                                   .base_url = "https://api.resend.com",
                                   .api_key = "re_k" };
    struct nq_msg m = message();
    struct nq_http_request req;
    char key[NQ_RESEND_KEY_SIZE];

    (void) state;
    m.email.from.name = "Shop, Inc.";
    build_ok(&nq_resend_http, &cfg, &m, &delivery, &req);
    assert_string_equal(req.url, "https://api.resend.com/emails");
    assert_int_equal(req.n_headers, 3);
    assert_string_equal(header(&req, "Authorization"), "Bearer re_k");
    assert_string_equal(header(&req, "Content-Type"), "application/json");
    assert_int_equal(nq_resend_idempotency_key(&delivery, &m.email, key), 0);
    assert_string_equal(header(&req, "Idempotency-Key"), key);
    assert_string_equal(req.body,
                        "{\"from\":\"\\\"Shop, Inc.\\\" <app@example.com>\","
                        "\"to\":[\"Bob <bob@example.org>\",\"carol@example.org\"],"
                        "\"bcc\":[\"audit@example.org\"],\"reply_to\":\"help@example.com\","
                        "\"subject\":\"Your code\",\"text\":\"123456\",\"html\":\"<b>123456</b>\","
                        "\"headers\":{\"X-Campaign\":\"spring\"},"
                        "\"tags\":[{\"name\":\"job_id\",\"value\":\"42\"}]}");
    nq_http_request_done(&req);
}

static void resends_key_is_stable_per_delivery_and_differs_between_them(void **state)
{
    struct nq_msg m = message();
    struct nq_delivery retry = delivery, reused = delivery, other_q = delivery;
    char a[NQ_RESEND_KEY_SIZE], b[NQ_RESEND_KEY_SIZE], c[NQ_RESEND_KEY_SIZE], d[NQ_RESEND_KEY_SIZE],
        e[NQ_RESEND_KEY_SIZE];

    (void) state;
    retry.attempt = 3;
    reused.job_timestamp_ms += 1; /* a later job reusing id 42 */
    other_q.queue = "email2";
    assert_int_equal(nq_resend_idempotency_key(&delivery, &m.email, a), 0);
    assert_int_equal(nq_resend_idempotency_key(&retry, &m.email, b), 0);
    assert_int_equal(nq_resend_idempotency_key(&reused, &m.email, c), 0);
    assert_int_equal(nq_resend_idempotency_key(&other_q, &m.email, d), 0);
    m.email.n_to = 1; /* another set of recipients */
    assert_int_equal(nq_resend_idempotency_key(&delivery, &m.email, e), 0);
    assert_int_equal(strlen(a), 72);
    assert_memory_equal(a, "notifyq-", 8);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    assert_string_not_equal(a, e);
}

static void mailgun_builds_the_exact_form(void **state)
{
    struct nq_provider_cfg cfg = { .kind = NQ_PROVIDER_MAILGUN,
                                   .base_url = "https://api.eu.mailgun.net",
                                   .api_key = "key-1",
                                   .domain = "mg.example.com",
                                   .region = "eu" };
    struct nq_msg m = message();
    struct nq_http_request req;

    (void) state;
    build_ok(&nq_mailgun_http, &cfg, &m, &delivery, &req);
    assert_string_equal(req.url, "https://api.eu.mailgun.net/v3/mg.example.com/messages");
    assert_int_equal(req.n_headers, 2);
    /* base64("api:key-1") */
    assert_string_equal(header(&req, "Authorization"), "Basic YXBpOmtleS0x");
    assert_string_equal(header(&req, "Content-Type"), "application/x-www-form-urlencoded");
    assert_string_equal(req.body, "from=App+%3Capp%40example.com%3E"
                                  "&to=Bob+%3Cbob%40example.org%3E&to=carol%40example.org"
                                  "&bcc=audit%40example.org&subject=Your+code&text=123456"
                                  "&html=%3Cb%3E123456%3C%2Fb%3E"
                                  "&h%3AReply-To=help%40example.com&h%3AX-Campaign=spring"
                                  "&v%3Aqueue=email&v%3Ajob_id=42");
    nq_http_request_done(&req);
}

static void postmark_builds_the_exact_request(void **state)
{
    struct nq_provider_cfg cfg = { .kind = NQ_PROVIDER_POSTMARK,
                                   .base_url = "https://api.postmarkapp.com",
                                   .server_token = "pm-token",
                                   .message_stream = "outbound" };
    struct nq_msg m = message();
    struct nq_http_request req;

    (void) state;
    build_ok(&nq_postmark_http, &cfg, &m, &delivery, &req);
    assert_string_equal(req.url, "https://api.postmarkapp.com/email");
    assert_int_equal(req.n_headers, 3);
    assert_string_equal(header(&req, "Accept"), "application/json");
    assert_string_equal(header(&req, "Content-Type"), "application/json");
    assert_string_equal(header(&req, "X-Postmark-Server-Token"), "pm-token");
    assert_string_equal(req.body, "{\"From\":\"App <app@example.com>\","
                                  "\"To\":\"Bob <bob@example.org>, carol@example.org\","
                                  "\"Bcc\":\"audit@example.org\",\"ReplyTo\":\"help@example.com\","
                                  "\"Subject\":\"Your code\",\"TextBody\":\"123456\","
                                  "\"HtmlBody\":\"<b>123456</b>\","
                                  "\"Headers\":[{\"Name\":\"X-Campaign\",\"Value\":\"spring\"}],"
                                  "\"MessageStream\":\"outbound\","
                                  "\"Metadata\":{\"queue\":\"email\",\"job_id\":\"42\"}}");
    nq_http_request_done(&req);
}

static void ses_builds_a_signed_request(void **state)
{
    struct nq_provider_cfg cfg = { .kind = NQ_PROVIDER_SES,
                                   .base_url = "http://127.0.0.1:8025",
                                   .region = "eu-west-1",
                                   .access_key_id = "AKIDEXAMPLE",
                                   .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                   .session_token = "session-tok" };
    const struct nq_sigv4_key key = { cfg.access_key_id, cfg.secret_access_key, "eu-west-1",
                                      "ses" };
    const struct nq_sigv4_header signed_h[] = {
        { "content-type", "application/json" },
        { "host", "127.0.0.1:8025" },
        { "x-amz-date", "20231114T221320Z" },
        { "x-amz-security-token", "session-tok" },
    };
    struct nq_msg m = message();
    struct nq_http_request req;
    char *want = NULL;

    (void) state;
    build_ok(&nq_ses_http, &cfg, &m, &delivery, &req);
    assert_string_equal(req.url, "http://127.0.0.1:8025/v2/email/outbound-emails");
    assert_int_equal(req.n_headers, 5);
    assert_string_equal(header(&req, "content-type"), "application/json");
    assert_string_equal(header(&req, "host"), "127.0.0.1:8025");
    assert_string_equal(header(&req, "x-amz-date"), "20231114T221320Z");
    assert_string_equal(header(&req, "x-amz-security-token"), "session-tok");
    assert_string_equal(
        req.body,
        "{\"FromEmailAddress\":\"App <app@example.com>\","
        "\"Destination\":{\"ToAddresses\":[\"Bob <bob@example.org>\",\"carol@example.org\"],"
        "\"BccAddresses\":[\"audit@example.org\"]},\"ReplyToAddresses\":[\"help@example.com\"],"
        "\"Content\":{\"Simple\":{\"Subject\":{\"Data\":\"Your code\",\"Charset\":\"UTF-8\"},"
        "\"Body\":{\"Text\":{\"Data\":\"123456\",\"Charset\":\"UTF-8\"},"
        "\"Html\":{\"Data\":\"<b>123456</b>\",\"Charset\":\"UTF-8\"}},"
        "\"Headers\":[{\"Name\":\"X-Campaign\",\"Value\":\"spring\"}]}},"
        "\"EmailTags\":[{\"Name\":\"job_id\",\"Value\":\"42\"}]}");
    assert_int_equal(nq_sigv4_authorization(&key, "POST", "/v2/email/outbound-emails", "", signed_h,
                                            4, req.body, req.body_len, "20231114T221320Z", &want),
                     0);
    assert_non_null(strstr(want, "Credential=AKIDEXAMPLE/20231114/eu-west-1/ses/aws4_request, "
                                 "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"
                                 " Signature="));
    assert_string_equal(header(&req, "authorization"), want);
    free(want);
    nq_http_request_done(&req);
}

static void too_many_recipients_fail_the_build_naming_the_limit(void **state)
{
    static struct nq_mailbox many[60];
    struct nq_provider_cfg cfg = { .base_url = "http://h",
                                   .api_key = "k",
                                   .server_token = "t",
                                   .region = "us-east-1",
                                   .access_key_id = "a",
                                   .secret_access_key = "s",
                                   .domain = "d" };
    const struct nq_http_provider *limited[] = { &nq_resend_http, &nq_postmark_http, &nq_ses_http };
    struct nq_msg m = message();

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(many); i++)
        many[i] = (struct nq_mailbox){ NULL, "x@example.org" };
    m.email.to = many;
    m.email.n_to = NQ_ELEMENTSOF(many);
    for (size_t i = 0; i < NQ_ELEMENTSOF(limited); i++) {
        struct nq_http_request req = { 0 };
        struct nq_err err = { { 0 } };

        assert_int_equal(limited[i]->build(&cfg, &m, &delivery, NOW, &req, &err), -EINVAL);
        assert_string_equal(nq_err_str(&err), "61 recipients: at most 50 per message");
        assert_null(req.body);
    }
}

/* ---- classifiers ------------------------------------------------------------ */

struct row {
    long status;
    const char *h1, *v1, *h2, *v2; /* up to two reply headers */
    const char *body;
    enum nq_reply_class cls;
    bool config;
    uint64_t wait_ms;
    const char *text; /* SENT: the id; otherwise the reason */
};

#define UNKNOWN_ROW ((long) -1)

static void check_rows(const struct nq_http_provider *p, const struct row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        struct nq_transfer_header h[2] = { { (char *) r->h1, (char *) r->v1 },
                                           { (char *) r->h2, (char *) r->v2 } };
        struct nq_transfer_reply reply = {
            .status = r->status == UNKNOWN_ROW ? 0 : r->status,
            .headers = h,
            .n_headers = r->h2   ? 2
                         : r->h1 ? 1
                                 : 0,
            .body = r->body ? r->body : "",
            .body_len = r->body ? strlen(r->body) : 0,
            .error = r->status == UNKNOWN_ROW ? NQ_XFER_UNKNOWN
                     : r->status == 0         ? NQ_XFER_NOT_SENT
                                              : NQ_XFER_NONE,
            .timed_out = r->status == UNKNOWN_ROW,
            .error_text = r->status == 0 ? "Connection refused" : "",
        };
        struct nq_http_verdict v;

        p->classify(NULL, &reply, NOW, &v);
        if (v.cls != r->cls || v.config != r->config || v.retry_after_ms != r->wait_ms)
            fail_msg("%s row %zu (HTTP %ld): got %s config=%d wait=%llu (%s), want %s config=%d "
                     "wait=%llu",
                     p->name, i, r->status, nq_reply_class_name(v.cls), v.config,
                     (unsigned long long) v.retry_after_ms, v.reason, nq_reply_class_name(r->cls),
                     r->config, (unsigned long long) r->wait_ms);
        if (r->cls == NQ_REPLY_SENT)
            assert_string_equal(v.message_id, r->text);
        else if (strcmp(v.reason, r->text) != 0)
            fail_msg("%s row %zu: reason\n got: %s\nwant: %s", p->name, i, v.reason, r->text);
    }
}

#define SG_ERR(m, f) "{\"errors\":[{\"message\":\"" m "\",\"field\":" f ",\"help\":null}]}"

static void sendgrid_classifies_its_table(void **state)
{
    static const struct row rows[] = {
        { 202, "X-Message-Id", "W7kQ5mNxR2mZ1", NULL, NULL, "", NQ_REPLY_SENT, false, 0,
          "W7kQ5mNxR2mZ1" },
        { 200, NULL, NULL, NULL, NULL, "", NQ_REPLY_SENT, false, 0, "sandbox" },
        { 200, "X-Message-Id", "sbx1", NULL, NULL, "", NQ_REPLY_SENT, false, 0, "sbx1" },
        { 202, NULL, NULL, NULL, NULL, "", NQ_REPLY_SENT, false, 0, "" },
        { 400, NULL, NULL, NULL, NULL, SG_ERR("Does not contain a valid address.", "\"to\""),
          NQ_REPLY_PERMANENT, false, 0,
          "sendgrid: HTTP 400: Does not contain a valid address. (field to)" },
        { 401, NULL, NULL, NULL, NULL,
          SG_ERR("The provided authorization grant is invalid, expired, or revoked", "null"),
          NQ_REPLY_PERMANENT, true, 0,
          "sendgrid: HTTP 401: The provided authorization grant is invalid, expired, or revoked" },
        { 401, NULL, NULL, NULL, NULL, SG_ERR("Maximum credits exceeded", "null"),
          NQ_REPLY_PERMANENT, true, 0, "sendgrid: HTTP 401: Maximum credits exceeded" },
        { 403, NULL, NULL, NULL, NULL,
          SG_ERR("The from address does not match a verified Sender Identity.", "\"from\""),
          NQ_REPLY_PERMANENT, true, 0,
          "sendgrid: HTTP 403: The from address does not match a verified Sender Identity. "
          "(field from)" },
        { 404, NULL, NULL, NULL, NULL, "", NQ_REPLY_PERMANENT, true, 0, "sendgrid: HTTP 404" },
        { 413, NULL, NULL, NULL, NULL, "", NQ_REPLY_PERMANENT, false, 0, "sendgrid: HTTP 413" },
        /* X-RateLimit-Reset is epoch seconds; it wins over Retry-After */
        { 429, "X-RateLimit-Reset", "1700000030", "Retry-After", "120",
          SG_ERR("too many requests", "null"), NQ_REPLY_RATE, false, 30000,
          "sendgrid: HTTP 429: too many requests" },
        { 429, "X-RateLimit-Reset", "1699999000", NULL, NULL, "", NQ_REPLY_RATE, false, 1000,
          "sendgrid: HTTP 429: rate limited" },
        { 429, "Retry-After", "120", NULL, NULL, "", NQ_REPLY_RATE, false, 120000,
          "sendgrid: HTTP 429: rate limited" },
        { 429, "Retry-After", IN_120S, NULL, NULL, "", NQ_REPLY_RATE, false, 120000,
          "sendgrid: HTTP 429: rate limited" },
        { 429, NULL, NULL, NULL, NULL, "", NQ_REPLY_RATE, false, 0,
          "sendgrid: HTTP 429: rate limited" },
        { 451, NULL, NULL, NULL, NULL, "", NQ_REPLY_PERMANENT, true, 0, "sendgrid: HTTP 451" },
        { 500, NULL, NULL, NULL, NULL, "", NQ_REPLY_RETRY, false, 0, "sendgrid: HTTP 500" },
        { 502, NULL, NULL, NULL, NULL, "", NQ_REPLY_RETRY, false, 0, "sendgrid: HTTP 502" },
        { 503, "Retry-After", "7", NULL, NULL, "", NQ_REPLY_RETRY, false, 7000,
          "sendgrid: HTTP 503" },
        { 504, NULL, NULL, NULL, NULL, "", NQ_REPLY_RETRY, false, 0, "sendgrid: HTTP 504" },
        { 0, NULL, NULL, NULL, NULL, NULL, NQ_REPLY_RETRY, false, 0,
          "sendgrid: Connection refused (nothing sent)" },
        { UNKNOWN_ROW, NULL, NULL, NULL, NULL, NULL, NQ_REPLY_UNKNOWN, false, 0,
          "sendgrid: timeout after the request was sent (possible duplicate)" },
    };

    (void) state;
    check_rows(&nq_sendgrid_http, rows, NQ_ELEMENTSOF(rows));
}

#define RS_ERR(s, n, m) "{\"statusCode\":" #s ",\"message\":\"" m "\",\"name\":\"" n "\"}"

static void resend_classifies_its_table(void **state)
{
    static const struct row rows[] = {
        { 200, NULL, NULL, NULL, NULL, "{\"id\":\"49a3999c-0ce1-4ea6-ab68-afcd6dc2e794\"}",
          NQ_REPLY_SENT, false, 0, "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794" },
        { 422, NULL, NULL, NULL, NULL, RS_ERR(422, "validation_error", "Invalid `to` field."),
          NQ_REPLY_PERMANENT, false, 0, "resend: HTTP 422: validation_error: Invalid `to` field." },
        { 400, NULL, NULL, NULL, NULL, RS_ERR(400, "validation_error", "bad"), NQ_REPLY_PERMANENT,
          false, 0, "resend: HTTP 400: validation_error: bad" },
        { 403, NULL, NULL, NULL, NULL,
          RS_ERR(403, "validation_error",
                 "You can only send testing emails to your own email "
                 "address"),
          NQ_REPLY_PERMANENT, true, 0,
          "resend: HTTP 403: validation_error: You can only send testing emails to your own "
          "email address" },
        { 422, NULL, NULL, NULL, NULL, RS_ERR(422, "missing_required_field", "m"),
          NQ_REPLY_PERMANENT, false, 0, "resend: HTTP 422: missing_required_field: m" },
        { 422, NULL, NULL, NULL, NULL, RS_ERR(422, "invalid_parameter", "m"), NQ_REPLY_PERMANENT,
          false, 0, "resend: HTTP 422: invalid_parameter: m" },
        { 422, NULL, NULL, NULL, NULL, RS_ERR(422, "invalid_attachment", "m"), NQ_REPLY_PERMANENT,
          false, 0, "resend: HTTP 422: invalid_attachment: m" },
        { 422, NULL, NULL, NULL, NULL, RS_ERR(422, "invalid_from_address", "m"), NQ_REPLY_PERMANENT,
          true, 0, "resend: HTTP 422: invalid_from_address: m" },
        { 422, NULL, NULL, NULL, NULL, RS_ERR(422, "invalid_region", "m"), NQ_REPLY_PERMANENT,
          false, 0, "resend: HTTP 422: invalid_region: m" },
        { 422, NULL, NULL, NULL, NULL, RS_ERR(422, "invalid_access", "m"), NQ_REPLY_PERMANENT,
          false, 0, "resend: HTTP 422: invalid_access: m" },
        { 400, NULL, NULL, NULL, NULL, RS_ERR(400, "invalid_idempotency_key", "m"),
          NQ_REPLY_PERMANENT, false, 0, "resend: HTTP 400: invalid_idempotency_key: m" },
        { 401, NULL, NULL, NULL, NULL, RS_ERR(401, "missing_api_key", "m"), NQ_REPLY_PERMANENT,
          true, 0, "resend: HTTP 401: missing_api_key: m" },
        { 401, NULL, NULL, NULL, NULL, RS_ERR(401, "restricted_api_key", "m"), NQ_REPLY_PERMANENT,
          true, 0, "resend: HTTP 401: restricted_api_key: m" },
        { 403, NULL, NULL, NULL, NULL, RS_ERR(403, "invalid_api_key", "API key is invalid"),
          NQ_REPLY_PERMANENT, true, 0, "resend: HTTP 403: invalid_api_key: API key is invalid" },
        { 404, NULL, NULL, NULL, NULL, RS_ERR(404, "not_found", "m"), NQ_REPLY_PERMANENT, true, 0,
          "resend: HTTP 404: not_found: m" },
        { 405, NULL, NULL, NULL, NULL, RS_ERR(405, "method_not_allowed", "m"), NQ_REPLY_PERMANENT,
          true, 0, "resend: HTTP 405: method_not_allowed: m" },
        { 409, NULL, NULL, NULL, NULL, RS_ERR(409, "invalid_idempotent_request", "m"),
          NQ_REPLY_PERMANENT, false, 0, "resend: HTTP 409: invalid_idempotent_request: m" },
        { 409, NULL, NULL, NULL, NULL, RS_ERR(409, "concurrent_idempotent_requests", "m"),
          NQ_REPLY_RATE, false, 1000, "resend: HTTP 409: concurrent_idempotent_requests: m" },
        { 409, "retry-after", "3", NULL, NULL, RS_ERR(409, "concurrent_idempotent_requests", "m"),
          NQ_REPLY_RATE, false, 3000, "resend: HTTP 409: concurrent_idempotent_requests: m" },
        { 429, "retry-after", "2", "ratelimit-reset", "5",
          RS_ERR(429, "rate_limit_exceeded", "Too many requests"), NQ_REPLY_RATE, false, 2000,
          "resend: HTTP 429: rate_limit_exceeded: Too many requests" },
        { 429, "Retry-After", IN_120S, NULL, NULL, RS_ERR(429, "rate_limit_exceeded", "m"),
          NQ_REPLY_RATE, false, 120000, "resend: HTTP 429: rate_limit_exceeded: m" },
        { 429, "ratelimit-reset", "5", NULL, NULL, RS_ERR(429, "rate_limit_exceeded", "m"),
          NQ_REPLY_RATE, false, 5000, "resend: HTTP 429: rate_limit_exceeded: m" },
        { 429, NULL, NULL, NULL, NULL, RS_ERR(429, "daily_quota_exceeded", "m"), NQ_REPLY_RATE,
          true, NQ_HTTP_RETRY_AFTER_MAX_MS, "resend: HTTP 429: daily_quota_exceeded: m" },
        { 429, "ratelimit-reset", "600", NULL, NULL, RS_ERR(429, "monthly_quota_exceeded", "m"),
          NQ_REPLY_RATE, true, 600000, "resend: HTTP 429: monthly_quota_exceeded: m" },
        /* ⚠ 451 from SDK tables: by name whatever the status */
        { 451, NULL, NULL, NULL, NULL, RS_ERR(451, "security_error", "m"), NQ_REPLY_PERMANENT,
          false, 0, "resend: HTTP 451: security_error: m" },
        { 422, NULL, NULL, NULL, NULL, RS_ERR(422, "security_error", "m"), NQ_REPLY_PERMANENT,
          false, 0, "resend: HTTP 422: security_error: m" },
        { 500, NULL, NULL, NULL, NULL, RS_ERR(500, "application_error", "m"), NQ_REPLY_RETRY, false,
          0, "resend: HTTP 500: application_error: m" },
        { 500, NULL, NULL, NULL, NULL, RS_ERR(500, "internal_server_error", "m"), NQ_REPLY_RETRY,
          false, 0, "resend: HTTP 500: internal_server_error: m" },
        /* a name we do not know: by status */
        { 503, NULL, NULL, NULL, NULL, "<html>", NQ_REPLY_RETRY, false, 0, "resend: HTTP 503" },
        { 401, NULL, NULL, NULL, NULL, "", NQ_REPLY_PERMANENT, true, 0, "resend: HTTP 401" },
        { UNKNOWN_ROW, NULL, NULL, NULL, NULL, NULL, NQ_REPLY_UNKNOWN, false, 0,
          "resend: timeout after the request was sent (possible duplicate)" },
    };

    (void) state;
    check_rows(&nq_resend_http, rows, NQ_ELEMENTSOF(rows));
}

static void mailgun_classifies_its_table(void **state)
{
    static const struct row rows[] = {
        { 200, NULL, NULL, NULL, NULL,
          "{\"id\":\"<20240101120000.1.ABCD@example.com>\",\"message\":\"Queued. Thank you.\"}",
          NQ_REPLY_SENT, false, 0, "<20240101120000.1.ABCD@example.com>" },
        { 400, NULL, NULL, NULL, NULL, "{\"message\":\"'to' parameter is missing\"}",
          NQ_REPLY_PERMANENT, false, 0, "mailgun: HTTP 400: 'to' parameter is missing" },
        { 401, NULL, NULL, NULL, NULL, "Forbidden", NQ_REPLY_PERMANENT, true, 0,
          "mailgun: HTTP 401: Forbidden" },
        { 403, NULL, NULL, NULL, NULL,
          "{\"message\":\"Domain sandbox123.mailgun.org is not allowed to send: Free accounts are "
          "for test purposes only.\"}",
          NQ_REPLY_PERMANENT, true, 0,
          "mailgun: HTTP 403: Domain sandbox123.mailgun.org is not allowed to send: Free "
          "accounts are for test purposes only." },
        { 404, NULL, NULL, NULL, NULL, "{\"message\":\"Domain not found: mg.example.com\"}",
          NQ_REPLY_PERMANENT, true, 0, "mailgun: HTTP 404: Domain not found: mg.example.com" },
        { 413, NULL, NULL, NULL, NULL, "", NQ_REPLY_PERMANENT, false, 0, "mailgun: HTTP 413" },
        { 429, "Retry-After", "30", NULL, NULL, "{\"message\":\"Too many requests\"}",
          NQ_REPLY_RATE, false, 30000, "mailgun: HTTP 429: Too many requests" },
        { 429, "Retry-After", IN_120S, NULL, NULL, "", NQ_REPLY_RATE, false, 120000,
          "mailgun: HTTP 429: rate limited" },
        { 429, NULL, NULL, NULL, NULL, "", NQ_REPLY_RATE, false, NQ_MAILGUN_RATE_WAIT_MS,
          "mailgun: HTTP 429: rate limited" },
        { 500, NULL, NULL, NULL, NULL, "", NQ_REPLY_RETRY, false, 0, "mailgun: HTTP 500" },
        { 502, NULL, NULL, NULL, NULL, "", NQ_REPLY_RETRY, false, 0, "mailgun: HTTP 502" },
        { 503, NULL, NULL, NULL, NULL, "", NQ_REPLY_RETRY, false, 0, "mailgun: HTTP 503" },
        { 504, NULL, NULL, NULL, NULL, "", NQ_REPLY_RETRY, false, 0, "mailgun: HTTP 504" },
        { 0, NULL, NULL, NULL, NULL, NULL, NQ_REPLY_RETRY, false, 0,
          "mailgun: Connection refused (nothing sent)" },
    };

    (void) state;
    check_rows(&nq_mailgun_http, rows, NQ_ELEMENTSOF(rows));
}

#define PM(code, msg) "{\"ErrorCode\":" #code ",\"Message\":\"" msg "\"}"

static void postmark_classifies_its_table(void **state)
{
    static const struct row rows[] = {
        { 200, NULL, NULL, NULL, NULL,
          "{\"To\":\"bob@example.org\",\"SubmittedAt\":\"2024-01-01T12:00:00.0-05:00\","
          "\"MessageID\":\"b7bc2f4a-e38e-4336-af7d-e6c392c2f817\",\"ErrorCode\":0,"
          "\"Message\":\"OK\"}",
          NQ_REPLY_SENT, false, 0, "b7bc2f4a-e38e-4336-af7d-e6c392c2f817" },
        { 401, NULL, NULL, NULL, NULL, PM(10, "No Account or Server API tokens were supplied"),
          NQ_REPLY_PERMANENT, true, 0,
          "postmark: HTTP 401: ErrorCode 10: No Account or Server API tokens were supplied" },
        { 422, NULL, NULL, NULL, NULL, PM(300, "Invalid 'To' address: 'bob'."), NQ_REPLY_PERMANENT,
          false, 0, "postmark: HTTP 422: ErrorCode 300: Invalid 'To' address: 'bob'." },
        { 422, NULL, NULL, NULL, NULL,
          PM(300, "The 'From' address you supplied is not a Sender Signature on your account."),
          NQ_REPLY_PERMANENT, true, 0,
          "postmark: HTTP 422: ErrorCode 300: The 'From' address you supplied is not a Sender "
          "Signature on your account." },
        { 422, NULL, NULL, NULL, NULL, PM(400, "Sender signature not found"), NQ_REPLY_PERMANENT,
          true, 0, "postmark: HTTP 422: ErrorCode 400: Sender signature not found" },
        { 422, NULL, NULL, NULL, NULL, PM(401, "Sender signature not confirmed"),
          NQ_REPLY_PERMANENT, true, 0,
          "postmark: HTTP 422: ErrorCode 401: Sender signature not confirmed" },
        { 422, NULL, NULL, NULL, NULL, PM(402, "Invalid JSON"), NQ_REPLY_PERMANENT, false, 0,
          "postmark: HTTP 422: ErrorCode 402: Invalid JSON" },
        { 422, NULL, NULL, NULL, NULL, PM(403, "Incompatible JSON"), NQ_REPLY_PERMANENT, false, 0,
          "postmark: HTTP 422: ErrorCode 403: Incompatible JSON" },
        { 422, NULL, NULL, NULL, NULL, PM(409, "JSON required"), NQ_REPLY_PERMANENT, false, 0,
          "postmark: HTTP 422: ErrorCode 409: JSON required" },
        { 422, NULL, NULL, NULL, NULL, PM(410, "Too many batch messages"), NQ_REPLY_PERMANENT,
          false, 0, "postmark: HTTP 422: ErrorCode 410: Too many batch messages" },
        { 422, NULL, NULL, NULL, NULL, PM(411, "Forbidden attachment type"), NQ_REPLY_PERMANENT,
          false, 0, "postmark: HTTP 422: ErrorCode 411: Forbidden attachment type" },
        { 422, NULL, NULL, NULL, NULL, PM(405, "Not allowed to send"), NQ_REPLY_PERMANENT, true, 0,
          "postmark: HTTP 422: ErrorCode 405: Not allowed to send" },
        { 422, NULL, NULL, NULL, NULL, PM(412, "Account pending"), NQ_REPLY_PERMANENT, true, 0,
          "postmark: HTTP 422: ErrorCode 412: Account pending" },
        { 422, NULL, NULL, NULL, NULL, PM(413, "Account may not send"), NQ_REPLY_PERMANENT, true, 0,
          "postmark: HTTP 422: ErrorCode 413: Account may not send" },
        { 422, NULL, NULL, NULL, NULL,
          PM(406, "You tried to send to recipient(s) that have been marked as inactive."),
          NQ_REPLY_DEAD, false, 0,
          "postmark: HTTP 422: ErrorCode 406: You tried to send to recipient(s) that have been "
          "marked as inactive." },
        { 429, "Retry-After", "20", NULL, NULL, PM(429, "Rate limit exceeded"), NQ_REPLY_RATE,
          false, 20000, "postmark: HTTP 429: ErrorCode 429: Rate limit exceeded" },
        { 429, "Retry-After", IN_120S, NULL, NULL, PM(429, "Rate limit exceeded"), NQ_REPLY_RATE,
          false, 120000, "postmark: HTTP 429: ErrorCode 429: Rate limit exceeded" },
        { 429, NULL, NULL, NULL, NULL, "", NQ_REPLY_RATE, false, 0,
          "postmark: HTTP 429 (rate limited)" },
        { 404, NULL, NULL, NULL, NULL, "", NQ_REPLY_PERMANENT, true, 0, "postmark: HTTP 404" },
        { 413, NULL, NULL, NULL, NULL, "", NQ_REPLY_PERMANENT, false, 0, "postmark: HTTP 413" },
        { 500, NULL, NULL, NULL, NULL, "", NQ_REPLY_RETRY, false, 0, "postmark: HTTP 500" },
        { 503, NULL, NULL, NULL, NULL, PM(100, "Maintenance"), NQ_REPLY_RETRY, false, 0,
          "postmark: HTTP 503: ErrorCode 100: Maintenance" },
        { 403, NULL, NULL, NULL, NULL, "<html><body>Request blocked</body></html>", NQ_REPLY_RETRY,
          false, 0,
          "postmark: HTTP 403: not from Postmark's API (no ErrorCode: a network filter in "
          "front of it?)" },
        { UNKNOWN_ROW, NULL, NULL, NULL, NULL, NULL, NQ_REPLY_UNKNOWN, false, 0,
          "postmark: timeout after the request was sent (possible duplicate)" },
    };

    (void) state;
    check_rows(&nq_postmark_http, rows, NQ_ELEMENTSOF(rows));
}

#define SES(m) "{\"message\":\"" m "\"}"
#define ET "x-amzn-ErrorType"

static void ses_classifies_its_table_by_error_name(void **state)
{
    static const struct row rows[] = {
        { 200, "x-amzn-RequestId", "r-1", NULL, NULL,
          "{\"MessageId\":\"0100018c2b1e0000-aaaa-000000\"}", NQ_REPLY_SENT, false, 0,
          "0100018c2b1e0000-aaaa-000000" },
        { 400, ET, "MessageRejected:http://internal.amazon.com/coral/com.amazon.ses/", NULL, NULL,
          SES("Email address is not verified."), NQ_REPLY_PERMANENT, false, 0,
          "ses: HTTP 400: MessageRejected: Email address is not verified." },
        { 400, ET, "MailFromDomainNotVerifiedException", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT,
          true, 0, "ses: HTTP 400: MailFromDomainNotVerifiedException: m" },
        { 400, ET, "AccountSuspendedException", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, true, 0,
          "ses: HTTP 400: AccountSuspendedException: m" },
        { 400, ET, "SendingPausedException", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, true, 0,
          "ses: HTTP 400: SendingPausedException: m" },
        { 400, ET, "BadRequestException", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, false, 0,
          "ses: HTTP 400: BadRequestException: m" },
        { 404, ET, "NotFoundException", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, true, 0,
          "ses: HTTP 404: NotFoundException: m" },
        { 400, ET, "LimitExceededException", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, false, 0,
          "ses: HTTP 400: LimitExceededException: m" },
        { 429, ET, "TooManyRequestsException", "Retry-After", "4", SES("m"), NQ_REPLY_RATE, false,
          4000, "ses: HTTP 429: TooManyRequestsException: m" },
        { 429, ET, "TooManyRequestsException", "Retry-After", IN_120S, SES("m"), NQ_REPLY_RATE,
          false, 120000, "ses: HTTP 429: TooManyRequestsException: m" },
        { 429, ET, "TooManyRequestsException", NULL, NULL, SES("m"), NQ_REPLY_RATE, false, 1000,
          "ses: HTTP 429: TooManyRequestsException: m" },
        /* ⚠ ThrottlingException's status differs between AWS pages: by name */
        { 400, ET, "ThrottlingException", NULL, NULL, SES("Maximum sending rate exceeded."),
          NQ_REPLY_RATE, false, 1000,
          "ses: HTTP 400: ThrottlingException: Maximum sending rate "
          "exceeded." },
        { 429, ET, "ThrottlingException", NULL, NULL, SES("Maximum sending rate exceeded."),
          NQ_REPLY_RATE, false, 1000,
          "ses: HTTP 429: ThrottlingException: Maximum sending rate "
          "exceeded." },
        { 400, ET, "ThrottlingException", NULL, NULL, SES("Daily message quota exceeded."),
          NQ_REPLY_RATE, true, 600000,
          "ses: HTTP 400: ThrottlingException: Daily message quota "
          "exceeded." },
        { 500, ET, "InternalFailure", NULL, NULL, SES("m"), NQ_REPLY_RETRY, false, 0,
          "ses: HTTP 500: InternalFailure: m" },
        { 500, ET, "InternalServiceErrorException", NULL, NULL, SES("m"), NQ_REPLY_RETRY, false, 0,
          "ses: HTTP 500: InternalServiceErrorException: m" },
        { 503, ET, "ServiceUnavailable", NULL, NULL, SES("m"), NQ_REPLY_RETRY, false, 0,
          "ses: HTTP 503: ServiceUnavailable: m" },
        { 400, ET, "RequestExpired", NULL, NULL, SES("m"), NQ_REPLY_RETRY, true, 0,
          "ses: HTTP 400: RequestExpired: m" },
        { 403, ET, "ExpiredTokenException", NULL, NULL, SES("m"), NQ_REPLY_RETRY, true, 0,
          "ses: HTTP 403: ExpiredTokenException: m" },
        { 403, ET, "SignatureDoesNotMatch", NULL, NULL,
          "{\"Message\":\"The request signature we calculated does not match\"}",
          NQ_REPLY_PERMANENT, true, 0,
          "ses: HTTP 403: SignatureDoesNotMatch: The request signature we calculated does not "
          "match" },
        { 403, ET, "IncompleteSignature", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, true, 0,
          "ses: HTTP 403: IncompleteSignature: m" },
        { 403, ET, "InvalidClientTokenId", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, true, 0,
          "ses: HTTP 403: InvalidClientTokenId: m" },
        { 400, ET, "UnrecognizedClientException", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, true, 0,
          "ses: HTTP 400: UnrecognizedClientException: m" },
        { 403, ET, "AccessDeniedException", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, true, 0,
          "ses: HTTP 403: AccessDeniedException: m" },
        { 403, ET, "MissingAuthenticationToken", NULL, NULL, SES("m"), NQ_REPLY_PERMANENT, true, 0,
          "ses: HTTP 403: MissingAuthenticationToken: m" },
        /* the name from the body: code, else __type after its '#' */
        { 400, NULL, NULL, NULL, NULL, "{\"code\":\"MessageRejected\",\"message\":\"m\"}",
          NQ_REPLY_PERMANENT, false, 0, "ses: HTTP 400: MessageRejected: m" },
        { 400, NULL, NULL, NULL, NULL,
          "{\"__type\":\"com.amazonaws.sesv2#SendingPausedException\",\"message\":\"m\"}",
          NQ_REPLY_PERMANENT, true, 0, "ses: HTTP 400: SendingPausedException: m" },
        { 502, NULL, NULL, NULL, NULL, "", NQ_REPLY_RETRY, false, 0, "ses: HTTP 502" },
        { UNKNOWN_ROW, NULL, NULL, NULL, NULL, NULL, NQ_REPLY_UNKNOWN, false, 0,
          "ses: timeout after the request was sent (possible duplicate)" },
    };

    (void) state;
    check_rows(&nq_ses_http, rows, NQ_ELEMENTSOF(rows));
}

/* ---- shared pieces ------------------------------------------------------------ */

static void form_fields_are_encoded_as_html_forms_do(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void) state;
    assert_non_null(f);
    nq_form_add(f, "h:X-Tag", "a b&c=d+e/é*-._~");
    nq_form_add(f, "to", "");
    assert_int_equal(fclose(f), 0);
    assert_string_equal(buf, "h%3AX-Tag=a+b%26c%3Dd%2Be%2F%C3%A9*-._%7E&to=");
    free(buf);
}

static void basic_auth_matches_rfc_7617s_example(void **state)
{
    char *a = nq_http_basic_auth("Aladdin", "open sesame");

    (void) state;
    assert_string_equal(a, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sendgrid_builds_the_exact_request),
        cmocka_unit_test(resend_builds_the_exact_request),
        cmocka_unit_test(resends_key_is_stable_per_delivery_and_differs_between_them),
        cmocka_unit_test(mailgun_builds_the_exact_form),
        cmocka_unit_test(postmark_builds_the_exact_request),
        cmocka_unit_test(ses_builds_a_signed_request),
        cmocka_unit_test(too_many_recipients_fail_the_build_naming_the_limit),
        cmocka_unit_test(sendgrid_classifies_its_table),
        cmocka_unit_test(resend_classifies_its_table),
        cmocka_unit_test(mailgun_classifies_its_table),
        cmocka_unit_test(postmark_classifies_its_table),
        cmocka_unit_test(ses_classifies_its_table_by_error_name),
        cmocka_unit_test(form_fields_are_encoded_as_html_forms_do),
        cmocka_unit_test(basic_auth_matches_rfc_7617s_example),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
