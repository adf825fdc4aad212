/* SPDX-License-Identifier: MIT */
/*
 * The apns provider (see apns.h): the provider token, the request, the
 * reply classes, and the provider that keeps the token.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/cleanup.h"
#include "providers/apns.h"
#include "providers/jwt.h"

#define COLLAPSE_ID_MAX 64

int nq_apns_provider_token(EVP_PKEY *key, const char *key_id, const char *team_id, int64_t now_s,
                           char **ret)
{
    json_t *h = json_pack("{s:s,s:s}", "alg", "ES256", "kid", key_id);
    json_t *c = json_pack("{s:s,s:I}", "iss", team_id, "iat", (json_int_t) now_s);
    nq_autofree char *hs = h ? json_dumps(h, JSON_COMPACT) : NULL;
    nq_autofree char *cs = c ? json_dumps(c, JSON_COMPACT) : NULL;

    json_decref(h);
    json_decref(c);
    if (!hs || !cs)
        return -ENOMEM;
    return nq_jwt_sign(key, NQ_JWT_ES256, hs, cs, ret);
}

int nq_apns_id(const struct nq_delivery *d, const char *token, char buf[NQ_APNS_ID_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    char ts[24];
    int ok;

    if (!ctx)
        return -ENOMEM;
    (void) snprintf(ts, sizeof(ts), "%" PRIu64, d->job_timestamp_ms);
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(ctx, d->queue, strlen(d->queue) + 1) &&
         EVP_DigestUpdate(ctx, d->job_id, strlen(d->job_id) + 1) &&
         EVP_DigestUpdate(ctx, ts, strlen(ts) + 1) && EVP_DigestUpdate(ctx, token, strlen(token)) &&
         EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -ENOMEM;
    md[6] = (unsigned char) ((md[6] & 0x0f) | 0x40); /* version 4: random-looking */
    md[8] = (unsigned char) ((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    (void) snprintf(buf, NQ_APNS_ID_SIZE,
                    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
                    md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11],
                    md[12], md[13], md[14], md[15]);
    return 0;
}

/* ---- the request ------------------------------------------------------------------ */

struct headers {
    const char *topic, *push_type, *priority, *expiration, *collapse_id;
    char num[3][24]; /* numbers given as JSON numbers */
};

/* apns.headers[name]: a string, or an integer as its text; NULL if absent. */
static int header_of(json_t *h, const char *name, char *num, const char **ret, struct nq_err *err)
{
    json_t *v = json_object_get(h, name);
    const char *s;

    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        (void) snprintf(num, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *ret = num;
        return 0;
    }
    if (!json_is_string(v))
        return nq_err_set(err, -EINVAL, "data.apns.headers.%s: must be a string", name);
    for (s = json_string_value(v); *s; s++)
        if ((unsigned char) *s < 0x20 || *s == 0x7f)
            return nq_err_set(err, -EINVAL, "data.apns.headers.%s: control characters", name);
    *ret = json_string_value(v);
    return 0;
}

static bool all_of(const char *s, const char *set)
{
    return *s && strspn(s, set) == strlen(s);
}

static int headers_of(json_t *h, const struct nq_push *m, json_t *aps, struct headers *x,
                      struct nq_err *err)
{
    int r = header_of(h, "apns-topic", x->num[0], &x->topic, err);

    if (r >= 0)
        r = header_of(h, "apns-push-type", x->num[0], &x->push_type, err);
    if (r >= 0)
        r = header_of(h, "apns-priority", x->num[0], &x->priority, err);
    if (r >= 0)
        r = header_of(h, "apns-expiration", x->num[1], &x->expiration, err);
    if (r >= 0)
        r = header_of(h, "apns-collapse-id", x->num[2], &x->collapse_id, err);
    if (r < 0)
        return r;
    if (!x->push_type)
        x->push_type =
            m->title || m->body || json_object_get(aps, "alert") ? "alert" : "background";
    if (!x->priority)
        x->priority = strcmp(x->push_type, "background") == 0 ? "5" : "10";
    if (!all_of(x->push_type, "abcdefghijklmnopqrstuvwxyz"))
        return nq_err_set(err, -EINVAL, "data.apns.headers.apns-push-type: not a push type");
    if (strcmp(x->priority, "10") != 0 && strcmp(x->priority, "5") != 0 &&
        strcmp(x->priority, "1") != 0)
        return nq_err_set(err, -EINVAL, "data.apns.headers.apns-priority: must be 10, 5 or 1");
    if (x->expiration && !all_of(x->expiration, "0123456789"))
        return nq_err_set(err, -EINVAL,
                          "data.apns.headers.apns-expiration: must be Unix seconds (0: once)");
    if (x->collapse_id && strlen(x->collapse_id) > COLLAPSE_ID_MAX)
        return nq_err_set(err, -EINVAL, "data.apns.headers.apns-collapse-id: over 64 bytes");
    if (x->topic &&
        !all_of(x->topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"))
        return nq_err_set(err, -EINVAL, "data.apns.headers.apns-topic: not a bundle id");
    return 0;
}

/* The body: apns.payload with the job's title, body and data merged in. */
static json_t *body_of(const struct nq_push *m, json_t *payload, json_t **ret_aps)
{
    json_t *o = json_is_object(payload) ? json_deep_copy(payload) : json_object();
    json_t *aps = json_object_get(o, "aps"), *alert;

    if (o && !json_is_object(aps)) {
        aps = json_object();
        json_object_set_new(o, "aps", aps);
    }
    if (o && (m->title || m->body) && !json_object_get(aps, "alert")) {
        alert = json_object();
        if (m->title)
            json_object_set_new(alert, "title", json_string(m->title));
        if (m->body)
            json_object_set_new(alert, "body", json_string(m->body));
        json_object_set_new(aps, "alert", alert);
    }
    for (size_t i = 0; o && i < m->n_data; i++)
        if (!json_object_get(o, m->data[i].name))
            json_object_set_new(o, m->data[i].name, json_string(m->data[i].value));
    *ret_aps = aps;
    return o;
}

static int add_headers(struct nq_http_request *req, const struct headers *x, const char *topic,
                       const char *jwt, const char *id)
{
    nq_autofree char *auth = NULL;
    int r = asprintf(&auth, "bearer %s", jwt) < 0 ? -ENOMEM : 0;

    if (r >= 0)
        r = nq_http_request_add_header(req, "authorization", auth);
    if (r >= 0)
        r = nq_http_request_add_header(req, "apns-topic", x->topic ? x->topic : topic);
    if (r >= 0)
        r = nq_http_request_add_header(req, "apns-push-type", x->push_type);
    if (r >= 0)
        r = nq_http_request_add_header(req, "apns-priority", x->priority);
    if (r >= 0 && x->expiration)
        r = nq_http_request_add_header(req, "apns-expiration", x->expiration);
    if (r >= 0 && x->collapse_id)
        r = nq_http_request_add_header(req, "apns-collapse-id", x->collapse_id);
    if (r >= 0)
        r = nq_http_request_add_header(req, "apns-id", id);
    if (r >= 0)
        r = nq_http_request_add_header(req, "content-type", "application/json");
    return r;
}

int nq_apns_build(const char *base_url, const char *topic, const char *jwt, const struct nq_push *m,
                  const char *token, const struct nq_delivery *d, struct nq_http_request *ret,
                  struct nq_err *err)
{
    struct nq_http_request req = { .method = "POST" };
    json_t *block = m->apns ? json_loads(m->apns, 0, NULL) : NULL, *aps = NULL, *body;
    struct headers x = { 0 };
    char id[NQ_APNS_ID_SIZE];
    size_t max;
    int r = 0;

    if (!all_of(token, "0123456789abcdefABCDEF"))
        r = nq_err_set(err, -EINVAL, "token: not an APNs device token (hex digits)");
    body = r < 0 ? NULL : body_of(m, json_object_get(block, "payload"), &aps);
    if (r >= 0 && !body)
        r = nq_err_set(err, -ENOMEM, "out of memory");
    if (r >= 0)
        r = headers_of(json_object_get(block, "headers"), m, aps, &x, err);
    if (r >= 0 && strcmp(x.push_type, "background") == 0 &&
        !json_object_get(aps, "content-available"))
        json_object_set_new(aps, "content-available", json_integer(1));
    if (r >= 0 && !(req.body = json_dumps(body, JSON_COMPACT)))
        r = nq_err_set(err, -ENOMEM, "out of memory");
    max = x.push_type && strcmp(x.push_type, "voip") == 0 ? NQ_APNS_PAYLOAD_VOIP_MAX
                                                          : NQ_APNS_PAYLOAD_MAX;
    if (r >= 0 && (req.body_len = strlen(req.body)) > max)
        r = nq_err_set(err, -EINVAL, "payload: %zu bytes, over APNs's limit of %zu", req.body_len,
                       max);
    if (r >= 0 && (nq_apns_id(d, token, id) < 0 ||
                   asprintf(&req.url, "%s/3/device/%s", base_url, token) < 0 ||
                   add_headers(&req, &x, topic, jwt, id) < 0))
        r = nq_err_set(err, -ENOMEM, "out of memory");
    json_decref(block);
    json_decref(body);
    if (r < 0) {
        nq_http_request_done(&req);
        return r;
    }
    *ret = req;
    return 0;
}

/* ---- replies -------------------------------------------------------------------- */

struct reason_row {
    long status;
    const char *reason; /* NULL: any other reason with this status */
    enum nq_reply_class cls;
    bool config, stale;
};

/* PROVIDERS.md §11's table; the first matching row wins. */
static const struct reason_row rows[] = {
    { 400, "BadDeviceToken", NQ_REPLY_DEAD, false, false },
    { 400, "DeviceTokenNotForTopic", NQ_REPLY_DEAD, false, false },
    { 400, "TopicDisallowed", NQ_REPLY_PERMANENT, true, false },
    { 400, "IdleTimeout", NQ_REPLY_RETRY, false, false },
    { 400, NULL, NQ_REPLY_PERMANENT, false, false },
    { 403, "ExpiredProviderToken", NQ_REPLY_RETRY, false, true },
    { 403, "UnrelatedKeyIdInToken", NQ_REPLY_RETRY, false, false },
    { 403, NULL, NQ_REPLY_PERMANENT, true, false },
    { 404, NULL, NQ_REPLY_PERMANENT, false, false },
    { 405, NULL, NQ_REPLY_PERMANENT, false, false },
    { 410, NULL, NQ_REPLY_DEAD, false, false },
    { 413, NULL, NQ_REPLY_PERMANENT, false, false },
    { 429, "TooManyProviderTokenUpdates", NQ_REPLY_RETRY, true, false },
    { 429, NULL, NQ_REPLY_RATE, false, false },
    { 401, NULL, NQ_REPLY_PERMANENT, true, false },
};

void nq_apns_classify(const struct nq_transfer_reply *reply, int64_t now_s,
                      struct nq_push_verdict *pv)
{
    long s = reply->status;
    json_t *o = s ? json_loads(reply->body, 0, NULL) : NULL;
    const char *why = json_string_value(json_object_get(o, "reason"));
    json_t *ts = json_object_get(o, "timestamp");
    const char *id = nq_transfer_reply_header(reply, "apns-id");
    struct nq_http_verdict *v = &pv->v;
    char since[48] = "";

    memset(pv, 0, sizeof(*pv));
    nq_http_classify_common("apns", reply, now_s, v);
    if (s >= 200 && s < 300)
        (void) snprintf(v->message_id, sizeof(v->message_id), "%s", id ? id : "");
    for (size_t i = 0; s >= 300 && i < NQ_ELEMENTSOF(rows); i++) {
        if (rows[i].status != s || (rows[i].reason && (!why || strcmp(rows[i].reason, why) != 0)))
            continue;
        v->cls = rows[i].cls;
        pv->config = rows[i].config;
        pv->stale = rows[i].stale;
        break;
    }
    if (v->cls == NQ_REPLY_RATE && !v->retry_after_ms)
        v->retry_after_ms = NQ_APNS_RATE_WAIT_MS;
    if (s == 410 && json_is_integer(ts)) /* ms since the epoch (Apple's page) */
        (void) snprintf(since, sizeof(since), " (invalid since %" JSON_INTEGER_FORMAT " ms)",
                        json_integer_value(ts));
    if (s >= 300)
        (void) snprintf(v->reason, sizeof(v->reason), "apns: HTTP %ld%s%.60s%s%s", s,
                        why ? " " : "", why ? why : "", since,
                        pv->config ? " (check key_file, key_id, team_id, topic and environment)"
                                   : "");
    json_decref(o);
}

/* ---- the provider ------------------------------------------------------------------ */

struct apns {
    struct nq_pushsend ps;
    EVP_PKEY *key;
    char *jwt;
    int64_t minted;
};

static int apns_build(struct nq_pushsend *ps, const struct nq_push *m, const char *token,
                      const struct nq_delivery *d, int64_t now_s, struct nq_http_request *ret,
                      struct nq_err *err)
{
    struct apns *a = (struct apns *) ps;

    (void) now_s;
    return nq_apns_build(ps->cfg->base_url, ps->cfg->topic, a->jwt ? a->jwt : "", m, token, d, ret,
                         err);
}

static int apns_auth(struct nq_pushsend *ps, int64_t now_s, struct nq_push_verdict *pv)
{
    struct apns *a = (struct apns *) ps;
    char *jwt = NULL;
    int r;

    if (a->jwt && now_s - a->minted < NQ_APNS_TOKEN_REFRESH_S && now_s >= a->minted)
        return 0;
    r = nq_apns_provider_token(a->key, ps->cfg->key_id, ps->cfg->team_id, now_s, &jwt);
    if (r < 0) {
        memset(pv, 0, sizeof(*pv));
        pv->v.cls = r == -ENOMEM ? NQ_REPLY_RETRY : NQ_REPLY_PERMANENT;
        pv->config = r != -ENOMEM;
        (void) snprintf(pv->v.reason, sizeof(pv->v.reason), "apns: cannot sign a provider token");
        return -1;
    }
    free(a->jwt);
    a->jwt = jwt;
    a->minted = now_s;
    return 0;
}

static void apns_stale(struct nq_pushsend *ps)
{
    struct apns *a = (struct apns *) ps;

    free(a->jwt);
    a->jwt = NULL;
}

static void apns_done(struct nq_pushsend *ps)
{
    struct apns *a = (struct apns *) ps;

    free(a->jwt);
    EVP_PKEY_free(a->key);
}

static const struct nq_pushsend_class apns_class = {
    .ops = &nq_provider_apns,
    .build = apns_build,
    .classify = nq_apns_classify,
    .auth = apns_auth,
    .stale = apns_stale,
    .done = apns_done,
};

static int apns_make(const struct nq_provider_env *env, struct nq_provider **ret,
                     struct nq_err *err)
{
    const struct nq_provider_cfg *c = env->cfg;
    struct apns *a;
    int r;

    if (!c->key || !c->key_id || !c->team_id || !c->topic || !c->base_url)
        return nq_err_set(err, -EINVAL,
                          "provider apns: key_file, key_id, team_id and topic are required");
    a = calloc(1, sizeof(*a));
    if (!a)
        return nq_err_set(err, -ENOMEM, "out of memory");
    a->key = nq_jwt_key_from_pem(c->key, NQ_JWT_ES256);
    r = a->key ? nq_pushsend_init(&a->ps, env, &apns_class, err)
               : nq_err_set(err, -EINVAL, "provider apns: key_file is not an EC P-256 key");
    if (r < 0) {
        EVP_PKEY_free(a->key);
        free(a);
        return r;
    }
    a->ps.prior_knowledge = strncasecmp(c->base_url, "http://", 7) == 0;
    *ret = &a->ps.base;
    return 0;
}

const struct nq_provider_ops nq_provider_apns = {
    .kind = NQ_PROVIDER_APNS,
    .name = "apns",
    .types = 1u << NQ_MSG_PUSH,
    .make = apns_make,
    .free = nq_pushsend_free,
    .send = nq_pushsend_send,
    .cancel = nq_pushsend_cancel,
};
