/* SPDX-License-Identifier: MIT */
/*
 * The fcm provider (see fcm.h): the OAuth2 assertion and token, the send
 * request, the reply classes, and the provider that caches the token.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "providers/fcm.h"
#include "providers/jwt.h"

#define TOKEN_LIFE_S 3600
#define REFRESH_MARGIN_S 300

/* ---- the service account and the access token ---------------------------------- */

void nq_fcm_account_done(struct nq_fcm_account *a)
{
    free(a->client_email);
    free(a->key_id);
    EVP_PKEY_free(a->key);
    memset(a, 0, sizeof(*a));
}

int nq_fcm_account_load(const char *json, struct nq_fcm_account *ret, struct nq_err *err)
{
    json_t *o = json_loads(json, 0, NULL);
    const char *email = json_string_value(json_object_get(o, "client_email"));
    const char *pem = json_string_value(json_object_get(o, "private_key"));
    const char *kid = json_string_value(json_object_get(o, "private_key_id"));
    struct nq_fcm_account a = { 0 };
    int r = 0;

    if (!email || !pem)
        r = nq_err_set(err, -EINVAL, "fcm: the service account lacks client_email or private_key");
    else if (!(a.key = nq_jwt_key_from_pem(pem, NQ_JWT_RS256)))
        r = nq_err_set(err, -EINVAL, "fcm: the service account's private_key is not an RSA key");
    else if (!(a.client_email = strdup(email)) || (kid && !(a.key_id = strdup(kid))))
        r = nq_err_set(err, -ENOMEM, "out of memory");
    json_decref(o);
    if (r < 0) {
        nq_fcm_account_done(&a);
        return r;
    }
    *ret = a;
    return 0;
}

int nq_fcm_assertion(const struct nq_fcm_account *a, const char *token_url, int64_t now_s,
                     char **ret)
{
    json_t *h = a->key_id
                    ? json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "kid", a->key_id)
                    : json_pack("{s:s,s:s}", "alg", "RS256", "typ", "JWT");
    json_t *c =
        json_pack("{s:s,s:s,s:s,s:I,s:I}", "iss", a->client_email, "scope", NQ_FCM_SCOPE, "aud",
                  token_url, "iat", (json_int_t) now_s, "exp", (json_int_t) now_s + TOKEN_LIFE_S);
    nq_autofree char *hs = h ? json_dumps(h, JSON_COMPACT) : NULL;
    nq_autofree char *cs = c ? json_dumps(c, JSON_COMPACT) : NULL;

    json_decref(h);
    json_decref(c);
    if (!hs || !cs)
        return -ENOMEM;
    return nq_jwt_sign(a->key, NQ_JWT_RS256, hs, cs, ret);
}

int nq_fcm_token_request(const char *token_url, const char *assertion, struct nq_http_request *ret)
{
    struct nq_http_request req = { .method = "POST" };
    int n;

    n = asprintf(&req.body,
                 "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
                 "&assertion=%s",
                 assertion);
    if (n < 0) {
        req.body = NULL;
        return -ENOMEM;
    }
    req.body_len = (size_t) n;
    if (!(req.url = strdup(token_url)) ||
        nq_http_request_add_header(&req, "content-type", "application/x-www-form-urlencoded") < 0) {
        nq_http_request_done(&req);
        return -ENOMEM;
    }
    *ret = req;
    return 0;
}

static void say(struct nq_http_verdict *v, enum nq_reply_class cls, const char *fmt, ...)
    NQ_PRINTF(3, 4);

static void say(struct nq_http_verdict *v, enum nq_reply_class cls, const char *fmt, ...)
{
    va_list ap;

    v->cls = cls;
    va_start(ap, fmt);
    (void) vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
}

int nq_fcm_token_reply(const struct nq_transfer_reply *reply, int64_t now_s, char **ret_token,
                       int64_t *ret_expires_in, struct nq_push_verdict *pv)
{
    json_t *o = reply->status ? json_loads(reply->body, 0, NULL) : NULL;
    const char *tok = json_string_value(json_object_get(o, "access_token"));
    json_t *exp = json_object_get(o, "expires_in");
    const char *e = json_string_value(json_object_get(o, "error"));
    const char *desc = json_string_value(json_object_get(o, "error_description"));
    long s = reply->status;

    memset(pv, 0, sizeof(*pv));
    nq_http_classify_common("fcm: token endpoint", reply, now_s, &pv->v);
    if (s == 200 && tok && *tok && json_is_integer(exp) && json_integer_value(exp) > 0) {
        *ret_token = strdup(tok);
        *ret_expires_in = json_integer_value(exp);
        json_decref(o);
        if (*ret_token)
            return 0;
        say(&pv->v, NQ_REPLY_RETRY, "out of memory");
        return -1;
    }
    if (s >= 200 && s < 300)
        say(&pv->v, NQ_REPLY_RETRY, "fcm: token endpoint: HTTP %ld without an access_token", s);
    else if (s == 400 || s == 401 || s == 403) {
        say(&pv->v, NQ_REPLY_PERMANENT,
            "fcm: token endpoint: HTTP %ld %.40s%s%.160s (check the service account)", s,
            e ? e : "", desc ? ": " : "", desc ? desc : "");
        pv->config = true;
    } else if (pv->v.cls == NQ_REPLY_UNKNOWN) {
        pv->v.cls = NQ_REPLY_RETRY; /* asking for a token twice is harmless */
    }
    if (pv->v.cls == NQ_REPLY_RETRY && !pv->v.reason[0])
        say(&pv->v, NQ_REPLY_RETRY, "fcm: token endpoint: HTTP %ld", s);
    json_decref(o);
    return -1;
}

/* ---- the send ------------------------------------------------------------------------ */

static const char *reserved_key(const struct nq_push *m)
{
    for (size_t i = 0; i < m->n_data; i++) {
        const char *k = m->data[i].name;

        if (strcmp(k, "from") == 0 || strcmp(k, "gcm") == 0 || strncmp(k, "google", 6) == 0)
            return k;
    }
    return NULL;
}

/* The message without its token; NULL on OOM or a block that is not JSON. */
static json_t *payload(const struct nq_push *m)
{
    json_t *o = json_object(), *n, *d;
    const char *blocks[][2] = { { "android", m->android },
                                { "apns", m->apns },
                                { "webpush", m->webpush } };

    if (o && (m->title || m->body)) {
        n = json_object();
        if (m->title)
            json_object_set_new(n, "title", json_string(m->title));
        if (m->body)
            json_object_set_new(n, "body", json_string(m->body));
        json_object_set_new(o, "notification", n);
    }
    if (o && m->n_data) {
        d = json_object();
        for (size_t i = 0; i < m->n_data; i++)
            json_object_set_new(d, m->data[i].name, json_string(m->data[i].value));
        json_object_set_new(o, "data", d);
    }
    for (size_t i = 0; o && i < NQ_ELEMENTSOF(blocks); i++)
        if (blocks[i][1] &&
            json_object_set_new(o, blocks[i][0], json_loads(blocks[i][1], 0, NULL)) < 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

int nq_fcm_build(const char *base_url, const char *project_id, const char *access_token,
                 const struct nq_push *m, const char *token, struct nq_http_request *ret,
                 struct nq_err *err)
{
    struct nq_http_request req = { .method = "POST" };
    json_t *p = payload(m), *msg = NULL;
    nq_autofree char *ps = p ? json_dumps(p, JSON_COMPACT) : NULL;
    nq_autofree char *auth = NULL;
    const char *rk = reserved_key(m);
    size_t plen = ps ? strlen(ps) : 0;
    int r = 0;

    if (!ps)
        r = nq_err_set(err, -ENOMEM, "out of memory");
    else if (rk)
        r = nq_err_set(err, -EINVAL, "data.data.%.64s: a key FCM reserves", rk);
    else if (plen > NQ_FCM_PAYLOAD_MAX)
        r = nq_err_set(err, -EINVAL, "payload: %zu bytes of JSON, over FCM's limit of %d", plen,
                       NQ_FCM_PAYLOAD_MAX);
    if (r == 0) {
        msg = json_pack("{s:{s:s}}", "message", "token", token);
        if (!msg || json_object_update(json_object_get(msg, "message"), p) < 0 ||
            !(req.body = json_dumps(msg, JSON_COMPACT)) ||
            asprintf(&req.url, "%s/v1/projects/%s/messages:send", base_url, project_id) < 0 ||
            asprintf(&auth, "Bearer %s", access_token) < 0 ||
            nq_http_request_add_header(&req, "authorization", auth) < 0 ||
            nq_http_request_add_header(&req, "content-type", "application/json") < 0)
            r = nq_err_set(err, -ENOMEM, "out of memory");
    }
    json_decref(p);
    json_decref(msg);
    if (r < 0) {
        nq_http_request_done(&req);
        return r;
    }
    req.body_len = strlen(req.body);
    *ret = req;
    return 0;
}

/* The FcmError errorCode of a google.rpc.Status body, or NULL. */
static const char *fcm_error_code(json_t *error)
{
    json_t *details = json_object_get(error, "details"), *d;
    size_t i;

    json_array_foreach (details, i, d) {
        const char *type = json_string_value(json_object_get(d, "@type"));

        if (type && strstr(type, "google.firebase.fcm.v1.FcmError"))
            return json_string_value(json_object_get(d, "errorCode"));
    }
    return NULL;
}

static bool says_bad_token(const char *msg)
{
    return msg && strcasestr(msg, "registration token") &&
           (strcasestr(msg, "not a valid") || strcasestr(msg, "not valid"));
}

void nq_fcm_classify(const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_push_verdict *pv)
{
    long s = reply->status;
    json_t *o = s ? json_loads(reply->body, 0, NULL) : NULL;
    json_t *error = json_object_get(o, "error");
    const char *fcm_code = fcm_error_code(error);
    const char *status = json_string_value(json_object_get(error, "status"));
    const char *msg = json_string_value(json_object_get(error, "message"));
    const char *code = fcm_code ? fcm_code : status ? status : "";
    struct nq_http_verdict *v = &pv->v;
    enum nq_reply_class cls;

    memset(pv, 0, sizeof(*pv));
    nq_http_classify_common("fcm", reply, now_s, v);
    if (s >= 200 && s < 300) {
        const char *name = json_string_value(json_object_get(o, "name"));

        (void) snprintf(v->message_id, sizeof(v->message_id), "%s", name ? name : "");
        json_decref(o);
        return;
    }
    if (s == 0) {
        json_decref(o);
        return;
    }
    cls = v->cls;
    if (!strcmp(code, "UNREGISTERED") || !strcmp(code, "SENDER_ID_MISMATCH") || s == 404)
        cls = NQ_REPLY_DEAD;
    else if (!strcmp(code, "INVALID_ARGUMENT"))
        cls = says_bad_token(msg) ? NQ_REPLY_DEAD : NQ_REPLY_PERMANENT;
    else if (!strcmp(code, "QUOTA_EXCEEDED") || s == 429) {
        cls = NQ_REPLY_RATE;
        if (!v->retry_after_ms)
            v->retry_after_ms = NQ_FCM_QUOTA_WAIT_MS;
    } else if (!strcmp(code, "THIRD_PARTY_AUTH_ERROR") || s == 401 || s == 403) {
        cls = NQ_REPLY_PERMANENT;
        pv->config = true;
        pv->stale = s == 401 && !fcm_code; /* the access token expired or was revoked */
    } else if (!strcmp(code, "UNAVAILABLE") || !strcmp(code, "INTERNAL")) {
        cls = NQ_REPLY_RETRY;
    }
    v->cls = cls;
    (void) snprintf(v->reason, sizeof(v->reason), "fcm: HTTP %ld%s%.40s%s%.160s%s", s,
                    *code ? " " : "", code, msg ? ": " : "", msg ? msg : "",
                    pv->config ? " (check the service account and the Firebase project)" : "");
    json_decref(o);
}

/* ---- the provider ------------------------------------------------------------------- */

struct fcm {
    struct nq_pushsend ps;
    struct nq_fcm_account acct;
    char *access; /* the cached access token; NULL: none */
    int64_t refresh_at;
    struct nq_xfer *x; /* the token request in flight */
    struct nq_http_request tokreq;
};

static int fcm_build(struct nq_pushsend *ps, const struct nq_push *m, const char *token,
                     const struct nq_delivery *d, int64_t now_s, struct nq_http_request *ret,
                     struct nq_err *err)
{
    struct fcm *f = (struct fcm *) ps;

    (void) d, (void) now_s;
    return nq_fcm_build(ps->cfg->base_url, ps->cfg->project_id, f->access ? f->access : "", m,
                        token, ret, err);
}

static void on_token(const struct nq_transfer_reply *reply, void *userdata)
{
    struct fcm *f = userdata;
    struct nq_push_verdict pv;
    int64_t life = 0, now = (int64_t) time(NULL);
    char *tok = NULL;

    f->x = NULL;
    nq_http_request_done(&f->tokreq);
    if (nq_fcm_token_reply(reply, now, &tok, &life, &pv) < 0) {
        nq_pushsend_auth_done(&f->ps, &pv);
        return;
    }
    free(f->access);
    f->access = tok;
    f->refresh_at = now + life - (life > 2L * REFRESH_MARGIN_S ? REFRESH_MARGIN_S : life / 2);
    nq_pushsend_auth_done(&f->ps, NULL);
}

static int fcm_auth(struct nq_pushsend *ps, int64_t now_s, struct nq_push_verdict *pv)
{
    struct fcm *f = (struct fcm *) ps;
    struct nq_transfer_req tr;
    nq_autofree char *jwt = NULL;
    int r;

    if (f->x)
        return 1;
    if (f->access && now_s < f->refresh_at)
        return 0;
    r = nq_fcm_assertion(&f->acct, ps->cfg->token_url, now_s, &jwt);
    if (r >= 0)
        r = nq_fcm_token_request(ps->cfg->token_url, jwt, &f->tokreq);
    if (r >= 0) {
        nq_pushsend_request(ps, &f->tokreq, &tr);
        r = nq_transfer_start(ps->t, &tr, on_token, f, &f->x);
    }
    if (r >= 0)
        return 1;
    nq_http_request_done(&f->tokreq);
    memset(pv, 0, sizeof(*pv));
    say(&pv->v, NQ_REPLY_RETRY, "fcm: cannot ask for an access token: %s", strerror(-r));
    return -1;
}

static void fcm_stale(struct nq_pushsend *ps)
{
    struct fcm *f = (struct fcm *) ps;

    free(f->access);
    f->access = NULL;
}

static void fcm_done(struct nq_pushsend *ps)
{
    struct fcm *f = (struct fcm *) ps;

    if (f->x)
        nq_transfer_cancel(ps->t, f->x);
    nq_http_request_done(&f->tokreq);
    free(f->access);
    nq_fcm_account_done(&f->acct);
}

static const struct nq_pushsend_class fcm_class = {
    .ops = &nq_provider_fcm,
    .build = fcm_build,
    .classify = nq_fcm_classify,
    .auth = fcm_auth,
    .stale = fcm_stale,
    .done = fcm_done,
};

static int fcm_make(const struct nq_provider_env *env, struct nq_provider **ret, struct nq_err *err)
{
    const struct nq_provider_cfg *c = env->cfg;
    struct fcm *f;
    int r;

    if (!c->service_account || !c->project_id || !c->token_url || !c->base_url)
        return nq_err_set(err, -EINVAL, "provider fcm: service_account_file is required");
    f = calloc(1, sizeof(*f));
    if (!f)
        return nq_err_set(err, -ENOMEM, "out of memory");
    r = nq_fcm_account_load(c->service_account, &f->acct, err);
    if (r >= 0)
        r = nq_pushsend_init(&f->ps, env, &fcm_class, err);
    if (r < 0) {
        nq_fcm_account_done(&f->acct);
        free(f);
        return r;
    }
    *ret = &f->ps.base;
    return 0;
}

const struct nq_provider_ops nq_provider_fcm = {
    .kind = NQ_PROVIDER_FCM,
    .name = "fcm",
    .types = 1u << NQ_MSG_PUSH,
    .make = fcm_make,
    .free = nq_pushsend_free,
    .send = nq_pushsend_send,
    .cancel = nq_pushsend_cancel,
};
