/* SPDX-License-Identifier: MIT */
/* The push providers without a network: RS256 and ES256 JWTs verified with
 * OpenSSL against keys made here, the exact requests fcm and apns build,
 * and their classifiers against every row of PROVIDERS.md §10 and §11
 * (Retry-After as seconds and as an HTTP-date included). */
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
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "providers/apns.h"
#include "providers/fcm.h"
#include "providers/jwt.h"

#define NOW 1700000000

/* ---- helpers -------------------------------------------------------------------- */

static unsigned char *b64url_decode(const char *s, size_t n, size_t *ret_len)
{
    char *t = malloc(n + 4);
    unsigned char *out = malloc(n + 4);
    size_t m = 0, pad = 0;
    int len;

    assert_non_null(t);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        t[m++] = (char) (s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i]);
    while (m % 4) {
        t[m++] = '=';
        pad++;
    }
    len = EVP_DecodeBlock(out, (unsigned char *) t, (int) m);
    free(t);
    assert_true(len >= 0);
    *ret_len = (size_t) len - pad;
    out[*ret_len] = '\0';
    return out;
}

struct jwt_parts {
    json_t *header, *claims;
    unsigned char *sig;
    size_t sig_len;
    size_t signed_len; /* bytes of "header.claims" */
};

static void jwt_split(const char *jwt, struct jwt_parts *p)
{
    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    unsigned char *h, *c;
    size_t n;

    assert_non_null(d2);
    assert_null(strchr(jwt, '='));
    h = b64url_decode(jwt, (size_t) (d1 - jwt), &n);
    c = b64url_decode(d1 + 1, (size_t) (d2 - d1 - 1), &n);
    p->header = json_loads((char *) h, 0, NULL);
    p->claims = json_loads((char *) c, 0, NULL);
    assert_non_null(p->header);
    assert_non_null(p->claims);
    free(h);
    free(c);
    p->sig = b64url_decode(d2 + 1, strlen(d2 + 1), &p->sig_len);
    p->signed_len = (size_t) (d2 - jwt);
}

static void jwt_parts_done(struct jwt_parts *p)
{
    json_decref(p->header);
    json_decref(p->claims);
    free(p->sig);
}

static int verify(EVP_PKEY *k, const char *jwt, const struct jwt_parts *p, const unsigned char *sig,
                  size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *) jwt, p->signed_len) == 1;

    EVP_MD_CTX_free(ctx);
    return ok;
}

/* raw r||s to DER, as EVP_DigestVerify wants an ECDSA signature. */
static int verify_es256(EVP_PKEY *k, const char *jwt, const struct jwt_parts *p)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    unsigned char *der = NULL;
    int n, ok;

    assert_int_equal(p->sig_len, 64);
    ECDSA_SIG_set0(s, BN_bin2bn(p->sig, 32, NULL), BN_bin2bn(p->sig + 32, 32, NULL));
    n = i2d_ECDSA_SIG(s, &der);
    ok = n > 0 && verify(k, jwt, p, der, (size_t) n);
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
    return ok;
}

static char *pem_of(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(b, &data);
    out = strndup(data, (size_t) n);
    BIO_free(b);
    return out;
}

static const char *header(const struct nq_http_request *r, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->n_headers; i++)
        if (strncmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return r->headers[i] + n + 2;
    return NULL;
}

static EVP_PKEY *rsa_key;
static EVP_PKEY *ec_key;

static int keys_setup(void **state)
{
    (void) state;
    rsa_key = EVP_RSA_gen(2048);
    ec_key = EVP_EC_gen("P-256");
    return rsa_key && ec_key ? 0 : -1;
}

static int keys_teardown(void **state)
{
    (void) state;
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    return 0;
}

/* ---- JWT ------------------------------------------------------------------------- */

static void base64url_has_no_padding_and_url_safe_letters(void **state)
{
    const unsigned char in[] = { 0xfb, 0xff, 0xfe };
    char *s;

    (void) state;
    s = nq_base64url(in, 3);
    assert_string_equal(s, "-__-");
    free(s);
    s = nq_base64url("a", 1);
    assert_string_equal(s, "YQ");
    free(s);
    s = nq_base64url("", 0);
    assert_string_equal(s, "");
    free(s);
}

static void rs256_verifies_with_the_public_key(void **state)
{
    struct jwt_parts p;
    char *jwt = NULL;

    (void) state;
    assert_int_equal(nq_jwt_sign(rsa_key, NQ_JWT_RS256, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
                                 "{\"iss\":\"x\"}", &jwt),
                     0);
    jwt_split(jwt, &p);
    assert_string_equal(json_string_value(json_object_get(p.header, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(p.claims, "iss")), "x");
    assert_true(verify(rsa_key, jwt, &p, p.sig, p.sig_len));
    p.sig[0] ^= 1;
    assert_false(verify(rsa_key, jwt, &p, p.sig, p.sig_len));
    jwt_parts_done(&p);
    free(jwt);
}

static void es256_is_raw_r_s_and_verifies(void **state)
{
    (void) state;
    /* r or s with leading zero bytes come up 1 in 128 signatures: enough
     * rounds that the left padding is exercised. */
    for (int i = 0; i < 300; i++) {
        struct jwt_parts p;
        char claims[64], *jwt = NULL;

        (void) snprintf(claims, sizeof(claims), "{\"iss\":\"T\",\"iat\":%d}", i);
        assert_int_equal(nq_jwt_sign(ec_key, NQ_JWT_ES256, "{\"alg\":\"ES256\"}", claims, &jwt), 0);
        jwt_split(jwt, &p);
        assert_true(verify_es256(ec_key, jwt, &p));
        jwt_parts_done(&p);
        free(jwt);
    }
}

static void keys_must_fit_the_algorithm(void **state)
{
    char *rsa_pem = pem_of(rsa_key), *ec_pem = pem_of(ec_key), *jwt = NULL;
    EVP_PKEY *k;

    (void) state;
    assert_null(nq_jwt_key_from_pem(rsa_pem, NQ_JWT_ES256));
    assert_null(nq_jwt_key_from_pem(ec_pem, NQ_JWT_RS256));
    assert_null(nq_jwt_key_from_pem(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", NQ_JWT_RS256));
    k = nq_jwt_key_from_pem(ec_pem, NQ_JWT_ES256);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_eq(k, ec_key), 1);
    EVP_PKEY_free(k);
    assert_int_equal(nq_jwt_sign(rsa_key, NQ_JWT_ES256, "{}", "{}", &jwt), -EINVAL);
    free(rsa_pem);
    free(ec_pem);
}

/* ---- fcm ------------------------------------------------------------------------- */

static char *service_account(void)
{
    char *pem = pem_of(rsa_key);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "service_account", "project_id",
                          "demo-proj", "private_key_id", "kid123", "private_key", pem,
                          "client_email", "notifyq@demo-proj.iam.gserviceaccount.com", "token_uri",
                          "https://oauth2.googleapis.com/token");
    char *s = json_dumps(o, 0);

    json_decref(o);
    free(pem);
    return s;
}

static void fcm_assertion_has_the_claims_and_verifies(void **state)
{
    char *sa = service_account(), *jwt = NULL;
    struct nq_fcm_account a;
    struct nq_err err = { { 0 } };
    struct jwt_parts p;

    (void) state;
    assert_int_equal(nq_fcm_account_load(sa, &a, &err), 0);
    assert_int_equal(nq_fcm_assertion(&a, "http://127.0.0.1:9/token", NOW, &jwt), 0);
    jwt_split(jwt, &p);
    assert_string_equal(json_string_value(json_object_get(p.header, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(p.header, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(p.header, "kid")), "kid123");
    assert_string_equal(json_string_value(json_object_get(p.claims, "iss")),
                        "notifyq@demo-proj.iam.gserviceaccount.com");
    assert_string_equal(json_string_value(json_object_get(p.claims, "scope")), NQ_FCM_SCOPE);
    assert_string_equal(json_string_value(json_object_get(p.claims, "aud")),
                        "http://127.0.0.1:9/token");
    assert_int_equal(json_integer_value(json_object_get(p.claims, "iat")), NOW);
    assert_int_equal(json_integer_value(json_object_get(p.claims, "exp")), NOW + 3600);
    assert_true(verify(rsa_key, jwt, &p, p.sig, p.sig_len));
    jwt_parts_done(&p);
    free(jwt);
    nq_fcm_account_done(&a);
    free(sa);
    assert_int_equal(nq_fcm_account_load("{\"client_email\":\"x\"}", &a, &err), -EINVAL);
    assert_null(strstr(err.msg, "BEGIN"));
}

static void fcm_token_request_is_the_jwt_bearer_grant(void **state)
{
    struct nq_http_request r;

    (void) state;
    assert_int_equal(nq_fcm_token_request("http://127.0.0.1:9/token", "a.b.c", &r), 0);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.url, "http://127.0.0.1:9/token");
    assert_string_equal(r.body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
                                "&assertion=a.b.c");
    assert_int_equal(r.body_len, strlen(r.body));
    assert_int_equal(r.n_headers, 1);
    assert_string_equal(header(&r, "content-type"), "application/x-www-form-urlencoded");
    nq_http_request_done(&r);
}

static void fcm_token_replies(void **state)
{
    struct nq_transfer_reply ok = { .status = 200,
                                    .body = "{\"access_token\":\"ya29.x\",\"expires_in\":3599,"
                                            "\"token_type\":\"Bearer\"}" };
    struct nq_transfer_reply grant = { .status = 400,
                                       .body =
                                           "{\"error\":\"invalid_grant\","
                                           "\"error_description\":\"Invalid JWT Signature.\"}" };
    struct nq_transfer_reply busy = { .status = 503, .body = "" };
    struct nq_transfer_reply lost = { .error = NQ_XFER_UNKNOWN, .body = "", .error_text = "" };
    struct nq_transfer_reply empty = { .status = 200, .body = "{}" };
    struct nq_push_verdict v;
    int64_t life = 0;
    char *tok = NULL;

    (void) state;
    assert_int_equal(nq_fcm_token_reply(&ok, NOW, &tok, &life, &v), 0);
    assert_string_equal(tok, "ya29.x");
    assert_int_equal(life, 3599);
    free(tok);
    assert_int_equal(nq_fcm_token_reply(&grant, NOW, &tok, &life, &v), -1);
    assert_int_equal(v.v.cls, NQ_REPLY_PERMANENT);
    assert_true(v.config);
    assert_non_null(strstr(v.v.reason, "invalid_grant"));
    assert_int_equal(nq_fcm_token_reply(&busy, NOW, &tok, &life, &v), -1);
    assert_int_equal(v.v.cls, NQ_REPLY_RETRY);
    assert_false(v.config);
    assert_int_equal(nq_fcm_token_reply(&lost, NOW, &tok, &life, &v), -1);
    assert_int_equal(v.v.cls, NQ_REPLY_RETRY);
    assert_int_equal(nq_fcm_token_reply(&empty, NOW, &tok, &life, &v), -1);
    assert_int_equal(v.v.cls, NQ_REPLY_RETRY);
}

static struct nq_kv kvs[] = { { "chat_id", "17" }, { "unread", "3" } };

static void fcm_build_makes_the_exact_request(void **state)
{
    struct nq_push m = { .title = "New message",
                         .body = "Bob: hi",
                         .data = kvs,
                         .n_data = 2,
                         .android = "{\"priority\":\"HIGH\",\"ttl\":\"3600s\"}",
                         .apns = "{\"headers\":{\"apns-priority\":\"10\"}}" };
    struct nq_http_request r;
    struct nq_err err = { { 0 } };

    (void) state;
    assert_int_equal(
        nq_fcm_build("http://127.0.0.1:9", "demo-proj", "ya29.x", &m, "fGc:APA91b", &r, &err), 0);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.url, "http://127.0.0.1:9/v1/projects/demo-proj/messages:send");
    assert_int_equal(r.n_headers, 2);
    assert_string_equal(header(&r, "authorization"), "Bearer ya29.x");
    assert_string_equal(header(&r, "content-type"), "application/json");
    assert_string_equal(r.body, "{\"message\":{\"token\":\"fGc:APA91b\","
                                "\"notification\":{\"title\":\"New message\",\"body\":\"Bob: hi\"},"
                                "\"data\":{\"chat_id\":\"17\",\"unread\":\"3\"},"
                                "\"android\":{\"priority\":\"HIGH\",\"ttl\":\"3600s\"},"
                                "\"apns\":{\"headers\":{\"apns-priority\":\"10\"}}}}");
    assert_int_equal(r.body_len, strlen(r.body));
    nq_http_request_done(&r);
}

static void fcm_build_refuses_large_payloads_and_reserved_keys(void **state)
{
    char big[5000];
    struct nq_kv one = { "text", big }, reserved = { "google.x", "1" };
    struct nq_push m = { .data = &one, .n_data = 1 };
    struct nq_http_request r;
    struct nq_err err = { { 0 } };

    (void) state;
    /* {"data":{"text":"..."}} is 20 bytes around the value */
    memset(big, 'x', 4076);
    big[4076] = '\0';
    assert_int_equal(nq_fcm_build("http://h", "p", "t", &m, "tok", &r, &err), 0);
    nq_http_request_done(&r);
    /* cppcheck-suppress redundantAssignment ; nq_fcm_build read it through m */
    big[4076] = 'x';
    big[4077] = '\0';
    assert_int_equal(nq_fcm_build("http://h", "p", "t", &m, "tok", &r, &err), -EINVAL);
    assert_string_equal(err.msg, "payload: 4097 bytes of JSON, over FCM's limit of 4096");
    m.data = &reserved;
    assert_int_equal(nq_fcm_build("http://h", "p", "t", &m, "tok", &r, &err), -EINVAL);
    assert_string_equal(err.msg, "data.data.google.x: a key FCM reserves");
}

#define FCM_ERR(code, status, msg, fcm)                                                            \
    "{\"error\":{\"code\":" #code ",\"message\":\"" msg "\",\"status\":\"" status "\""             \
    ",\"details\":[{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\","            \
    "\"errorCode\":\"" fcm "\"}]}}"
#define RPC_ERR(code, status, msg)                                                                 \
    "{\"error\":{\"code\":" #code ",\"message\":\"" msg "\",\"status\":\"" status "\"}}"

struct row {
    long status;
    const char *retry_after;
    const char *body;
    enum nq_transfer_error error;
    enum nq_reply_class cls;
    uint64_t wait_ms;
    bool config, stale;
    const char *id;
};

static void check_rows(const struct row *rows, size_t n,
                       void (*classify)(const struct nq_transfer_reply *, int64_t,
                                        struct nq_push_verdict *),
                       const char *id_header)
{
    for (size_t i = 0; i < n; i++) {
        const struct row *c = &rows[i];
        struct nq_transfer_header h[2];
        struct nq_transfer_reply rep = { .status = c->status,
                                         .headers = h,
                                         .body = c->body ? c->body : "",
                                         .error = c->error,
                                         .error_text = "" };
        struct nq_push_verdict v;

        if (c->retry_after)
            h[rep.n_headers++] =
                (struct nq_transfer_header){ "Retry-After", (char *) c->retry_after };
        if (id_header)
            /* cppcheck-suppress unreadVariable ; classify reads it through rep.headers */
            h[rep.n_headers++] = (struct nq_transfer_header){ (char *) id_header, "the-id" };
        rep.body_len = strlen(rep.body);
        classify(&rep, NOW, &v);
        print_message("row %zu: %ld -> %s %llu %s\n", i, c->status, nq_reply_class_name(v.v.cls),
                      (unsigned long long) v.v.retry_after_ms, v.v.reason);
        assert_int_equal(v.v.cls, c->cls);
        assert_int_equal(v.v.retry_after_ms, c->wait_ms);
        assert_int_equal(v.config, c->config);
        assert_int_equal(v.stale, c->stale);
        if (c->id)
            assert_string_equal(v.v.message_id, c->id);
        if (c->cls != NQ_REPLY_SENT)
            assert_true(v.v.reason[0] != '\0');
    }
}

static void fcm_classify_follows_the_table(void **state)
{
    static const struct row rows[] = {
        { 200, NULL, "{\"name\":\"projects/p/messages/0:15%31bd\"}", 0, NQ_REPLY_SENT, 0, 0, 0,
          "projects/p/messages/0:15%31bd" },
        { 200, NULL, "not json", 0, NQ_REPLY_SENT, 0, 0, 0, "" },
        { 400, NULL,
          FCM_ERR(400, "INVALID_ARGUMENT", "Invalid value at 'message.data[0].value'",
                  "INVALID_ARGUMENT"),
          0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL,
          FCM_ERR(400, "INVALID_ARGUMENT",
                  "The registration token is not a valid FCM registration token",
                  "INVALID_ARGUMENT"),
          0, NQ_REPLY_DEAD, 0, 0, 0, NULL },
        { 401, NULL,
          FCM_ERR(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service",
                  "THIRD_PARTY_AUTH_ERROR"),
          0, NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 403, NULL, FCM_ERR(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"),
          0, NQ_REPLY_DEAD, 0, 0, 0, NULL },
        { 404, NULL, FCM_ERR(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
          0, NQ_REPLY_DEAD, 0, 0, 0, NULL },
        { 429, NULL, FCM_ERR(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"), 0,
          NQ_REPLY_RATE, 60000, 0, 0, NULL },
        { 429, "120", FCM_ERR(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"), 0,
          NQ_REPLY_RATE, 120000, 0, 0, NULL },
        { 429, "Tue, 14 Nov 2023 22:13:27 GMT",
          FCM_ERR(429, "RESOURCE_EXHAUSTED", "Quota exceeded", "QUOTA_EXCEEDED"), 0, NQ_REPLY_RATE,
          7000, 0, 0, NULL },
        { 503, NULL,
          FCM_ERR(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"), 0,
          NQ_REPLY_RETRY, 0, 0, 0, NULL },
        { 503, "30",
          FCM_ERR(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"), 0,
          NQ_REPLY_RETRY, 30000, 0, 0, NULL },
        { 500, "Tue, 14 Nov 2023 22:13:00 GMT",
          FCM_ERR(500, "INTERNAL", "Internal error encountered.", "INTERNAL"), 0, NQ_REPLY_RETRY,
          1000, 0, 0, NULL },
        { 401, NULL,
          RPC_ERR(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."), 0,
          NQ_REPLY_PERMANENT, 0, 1, 1, NULL },
        { 403, NULL,
          RPC_ERR(403, "PERMISSION_DENIED", "Firebase Cloud Messaging API has not been used"), 0,
          NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 413, NULL, "", 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 0, NULL, NULL, NQ_XFER_NOT_SENT, NQ_REPLY_RETRY, 0, 0, 0, NULL },
        { 0, NULL, NULL, NQ_XFER_UNKNOWN, NQ_REPLY_UNKNOWN, 0, 0, 0, NULL },
    };

    (void) state;
    check_rows(rows, NQ_ELEMENTSOF(rows), nq_fcm_classify, NULL);
}

/* ---- apns ------------------------------------------------------------------------ */

static void apns_provider_token_verifies(void **state)
{
    struct jwt_parts p;
    char *jwt = NULL;

    (void) state;
    assert_int_equal(nq_apns_provider_token(ec_key, "ABC123DEFG", "DEF123GHIJ", NOW, &jwt), 0);
    jwt_split(jwt, &p);
    assert_int_equal(json_object_size(p.header), 2);
    assert_string_equal(json_string_value(json_object_get(p.header, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(p.header, "kid")), "ABC123DEFG");
    assert_int_equal(json_object_size(p.claims), 2);
    assert_string_equal(json_string_value(json_object_get(p.claims, "iss")), "DEF123GHIJ");
    assert_int_equal(json_integer_value(json_object_get(p.claims, "iat")), NOW);
    assert_true(verify_es256(ec_key, jwt, &p));
    jwt_parts_done(&p);
    free(jwt);
}

static const struct nq_delivery delivery = {
    .queue = "push",
    .job_id = "42",
    .timestamp = 1700000000000ull,
    .attempt = 1,
    .job_timestamp_ms = 1700000000000ull,
};

static void apns_build_makes_the_exact_request(void **state)
{
    struct nq_kv one = { "chat_id", "17" };
    struct nq_push m = { .title = "New message",
                         .body = "hi",
                         .data = &one,
                         .n_data = 1,
                         .apns = "{\"headers\":{\"apns-collapse-id\":\"chat-17\","
                                 "\"apns-expiration\":0},\"payload\":{\"aps\":{\"badge\":3}}}" };
    struct nq_http_request r;
    struct nq_err err = { { 0 } };
    char id[NQ_APNS_ID_SIZE], id2[NQ_APNS_ID_SIZE];

    (void) state;
    assert_int_equal(nq_apns_id(&delivery, "abcd", id), 0);
    assert_int_equal(nq_apns_id(&delivery, "abcd", id2), 0);
    assert_string_equal(id, id2);
    assert_int_equal(strlen(id), 36);
    assert_true(id[8] == '-' && id[13] == '-' && id[14] == '4' && id[18] == '-' && id[23] == '-');
    assert_int_equal(nq_apns_build("http://127.0.0.1:9", "com.example.app", "J.W.T", &m, "abcd",
                                   &delivery, &r, &err),
                     0);
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.url, "http://127.0.0.1:9/3/device/abcd");
    assert_int_equal(r.n_headers, 8);
    assert_string_equal(header(&r, "authorization"), "bearer J.W.T");
    assert_string_equal(header(&r, "apns-topic"), "com.example.app");
    assert_string_equal(header(&r, "apns-push-type"), "alert");
    assert_string_equal(header(&r, "apns-priority"), "10");
    assert_string_equal(header(&r, "apns-expiration"), "0");
    assert_string_equal(header(&r, "apns-collapse-id"), "chat-17");
    assert_string_equal(header(&r, "apns-id"), id);
    assert_string_equal(header(&r, "content-type"), "application/json");
    assert_string_equal(r.body, "{\"aps\":{\"badge\":3,\"alert\":{\"title\":\"New message\","
                                "\"body\":\"hi\"}},\"chat_id\":\"17\"}");
    nq_http_request_done(&r);
}

static void apns_build_background_and_refusals(void **state)
{
    struct nq_kv one = { "sync", "1" };
    struct nq_push m = { .data = &one, .n_data = 1 };
    struct nq_http_request r;
    struct nq_err err = { { 0 } };
    char big[5200];

    (void) state;
    assert_int_equal(nq_apns_build("http://h", "t", "j", &m, "ab", &delivery, &r, &err), 0);
    assert_string_equal(header(&r, "apns-push-type"), "background");
    assert_string_equal(header(&r, "apns-priority"), "5");
    assert_null(header(&r, "apns-expiration"));
    assert_null(header(&r, "apns-collapse-id"));
    assert_string_equal(r.body, "{\"aps\":{\"content-available\":1},\"sync\":\"1\"}");
    nq_http_request_done(&r);

    assert_int_equal(nq_apns_build("http://h", "t", "j", &m, "fGc:APA91b", &delivery, &r, &err),
                     -EINVAL);
    assert_string_equal(err.msg, "token: not an APNs device token (hex digits)");
    m.apns = "{\"headers\":{\"apns-priority\":\"7\"}}";
    assert_int_equal(nq_apns_build("http://h", "t", "j", &m, "ab", &delivery, &r, &err), -EINVAL);
    assert_string_equal(err.msg, "data.apns.headers.apns-priority: must be 10, 5 or 1");
    m.apns = "{\"headers\":{\"apns-collapse-id\":"
             "\"01234567890123456789012345678901234567890123456789012345678901234\"}}";
    assert_int_equal(nq_apns_build("http://h", "t", "j", &m, "ab", &delivery, &r, &err), -EINVAL);
    m.apns = NULL;
    memset(big, 'x', 4100);
    big[4100] = '\0';
    /* cppcheck-suppress unreadVariable ; nq_apns_build reads it through m */
    one.value = big;
    assert_int_equal(nq_apns_build("http://h", "t", "j", &m, "ab", &delivery, &r, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "over APNs's limit of 4096"));
    m.apns = "{\"headers\":{\"apns-push-type\":\"voip\"}}";
    assert_int_equal(nq_apns_build("http://h", "t", "j", &m, "ab", &delivery, &r, &err), 0);
    assert_string_equal(header(&r, "apns-push-type"), "voip");
    nq_http_request_done(&r);
}

#define R(x) "{\"reason\":\"" x "\"}"

static void apns_classify_follows_the_table(void **state)
{
    static const struct row rows[] = {
        { 200, NULL, "", 0, NQ_REPLY_SENT, 0, 0, 0, "the-id" },
        { 400, NULL, R("BadDeviceToken"), 0, NQ_REPLY_DEAD, 0, 0, 0, NULL },
        { 400, NULL, R("DeviceTokenNotForTopic"), 0, NQ_REPLY_DEAD, 0, 0, 0, NULL },
        { 400, NULL, R("BadCollapseId"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("BadExpirationDate"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("BadMessageId"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("BadPriority"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("BadTopic"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("DuplicateHeaders"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("InvalidPushType"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("MissingDeviceToken"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("MissingTopic"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("PayloadEmpty"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 400, NULL, R("TopicDisallowed"), 0, NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 400, NULL, R("IdleTimeout"), 0, NQ_REPLY_RETRY, 0, 0, 0, NULL },
        { 403, NULL, R("ExpiredProviderToken"), 0, NQ_REPLY_RETRY, 0, 0, 1, NULL },
        { 403, NULL, R("InvalidProviderToken"), 0, NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 403, NULL, R("MissingProviderToken"), 0, NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 403, NULL, R("BadCertificate"), 0, NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 403, NULL, R("BadCertificateEnvironment"), 0, NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 403, NULL, R("Forbidden"), 0, NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 403, NULL, R("UnrelatedKeyIdInToken"), 0, NQ_REPLY_RETRY, 0, 0, 0, NULL },
        { 403, NULL, R("BadEnvironmentKeyIdInToken"), 0, NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 403, NULL, R("BadEnvironmentKeyInToken"), 0, NQ_REPLY_PERMANENT, 0, 1, 0, NULL },
        { 404, NULL, R("BadPath"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 405, NULL, R("MethodNotAllowed"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 410, NULL, "{\"reason\":\"Unregistered\",\"timestamp\":1700000000000}", 0, NQ_REPLY_DEAD,
          0, 0, 0, NULL },
        { 410, NULL, R("ExpiredToken"), 0, NQ_REPLY_DEAD, 0, 0, 0, NULL },
        { 413, NULL, R("PayloadTooLarge"), 0, NQ_REPLY_PERMANENT, 0, 0, 0, NULL },
        { 429, NULL, R("TooManyRequests"), 0, NQ_REPLY_RATE, 1000, 0, 0, NULL },
        { 429, "5", R("TooManyRequests"), 0, NQ_REPLY_RATE, 5000, 0, 0, NULL },
        { 429, "Tue, 14 Nov 2023 22:13:30 GMT", R("TooManyRequests"), 0, NQ_REPLY_RATE, 10000, 0, 0,
          NULL },
        { 429, NULL, R("TooManyProviderTokenUpdates"), 0, NQ_REPLY_RETRY, 0, 1, 0, NULL },
        { 500, NULL, R("InternalServerError"), 0, NQ_REPLY_RETRY, 0, 0, 0, NULL },
        { 503, NULL, R("ServiceUnavailable"), 0, NQ_REPLY_RETRY, 0, 0, 0, NULL },
        { 503, NULL, R("Shutdown"), 0, NQ_REPLY_RETRY, 0, 0, 0, NULL },
        { 0, NULL, NULL, NQ_XFER_NOT_SENT, NQ_REPLY_RETRY, 0, 0, 0, NULL },
        { 0, NULL, NULL, NQ_XFER_UNKNOWN, NQ_REPLY_UNKNOWN, 0, 0, 0, NULL },
    };

    (void) state;
    check_rows(rows, NQ_ELEMENTSOF(rows), nq_apns_classify, "apns-id");
}

static void apns_410_reason_keeps_the_timestamp(void **state)
{
    struct nq_transfer_reply rep = {
        .status = 410, .body = "{\"reason\":\"Unregistered\",\"timestamp\":1700000000123}"
    };
    struct nq_push_verdict v;

    (void) state;
    rep.body_len = strlen(rep.body);
    nq_apns_classify(&rep, NOW, &v);
    assert_string_equal(v.v.reason, "apns: HTTP 410 Unregistered (invalid since 1700000000123 ms)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base64url_has_no_padding_and_url_safe_letters),
        cmocka_unit_test(rs256_verifies_with_the_public_key),
        cmocka_unit_test(es256_is_raw_r_s_and_verifies),
        cmocka_unit_test(keys_must_fit_the_algorithm),
        cmocka_unit_test(fcm_assertion_has_the_claims_and_verifies),
        cmocka_unit_test(fcm_token_request_is_the_jwt_bearer_grant),
        cmocka_unit_test(fcm_token_replies),
        cmocka_unit_test(fcm_build_makes_the_exact_request),
        cmocka_unit_test(fcm_build_refuses_large_payloads_and_reserved_keys),
        cmocka_unit_test(fcm_classify_follows_the_table),
        cmocka_unit_test(apns_provider_token_verifies),
        cmocka_unit_test(apns_build_makes_the_exact_request),
        cmocka_unit_test(apns_build_background_and_refusals),
        cmocka_unit_test(apns_classify_follows_the_table),
        cmocka_unit_test(apns_410_reason_keeps_the_timestamp),
    };

    return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
