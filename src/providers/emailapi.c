/* SPDX-License-Identifier: MIT */
/*
 * What the email API providers share (see emailapi.h): recipients and
 * mailbox text for their builders, and the provider that drives one of
 * them through the transport and turns its verdict into per-recipient
 * results.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/log.h"
#include "providers/emailapi.h"
#include "providers/mime.h"

#define FIELD_MAX 128

/* ---- for the builders ---------------------------------------------------- */

static bool seen_before(const char **v, size_t n, const char *addr)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v[i], addr) == 0)
            return true;
    return false;
}

int nq_emailapi_recipients(const struct nq_email *e, const char ***ret, size_t *n)
{
    size_t max = e->n_to + e->n_cc + e->n_bcc, k = 0;
    const char **v = calloc(max ? max : 1, sizeof(*v));
    const struct nq_mailbox *lists[] = { e->to, e->cc, e->bcc };
    const size_t counts[] = { e->n_to, e->n_cc, e->n_bcc };

    if (!v)
        return -ENOMEM;
    for (size_t l = 0; l < 3; l++)
        for (size_t i = 0; i < counts[l]; i++)
            if (!seen_before(v, k, lists[l][i].addr))
                v[k++] = lists[l][i].addr;
    *ret = v;
    *n = k;
    return 0;
}

/* A display name that is a run of atext and spaces goes as it is; any
 * other is a quoted-string. */
static bool name_needs_quotes(const char *s)
{
    for (; *s; s++)
        if (strchr("()<>[]:;@\\,.\"", *s))
            return true;
    return false;
}

char *nq_emailapi_mailbox_text(const struct nq_mailbox *mb)
{
    char *out = NULL, *q;

    if (!mb->name || !*mb->name)
        return strdup(mb->addr);
    if (!name_needs_quotes(mb->name))
        return asprintf(&out, "%s <%s>", mb->name, mb->addr) < 0 ? NULL : out;
    out = malloc(2 * strlen(mb->name) + strlen(mb->addr) + 6);
    if (!out)
        return NULL;
    q = out;
    *q++ = '"';
    for (const char *p = mb->name; *p; p++) {
        if (*p == '"' || *p == '\\')
            *q++ = '\\';
        *q++ = *p;
    }
    (void) sprintf(q, "\" <%s>", mb->addr);
    return out;
}

char *nq_emailapi_url(const struct nq_provider_cfg *cfg, const char *path)
{
    char *url;

    return asprintf(&url, "%s%s", cfg->base_url, path) < 0 ? NULL : url;
}

void nq_emailapi_verdict(struct nq_http_verdict *v, const char *name, enum nq_reply_class cls,
                         bool config, const char *detail)
{
    v->cls = cls;
    v->config = config;
    if (detail && *detail)
        (void) snprintf(v->reason, sizeof(v->reason), "%s: HTTP %ld: %s", name, v->status, detail);
    else
        (void) snprintf(v->reason, sizeof(v->reason), "%s: HTTP %ld", name, v->status);
}

/* ---- the provider -------------------------------------------------------- */

struct emailapi {
    struct nq_provider base;
    const struct nq_http_provider *http;
    const struct nq_provider_cfg *cfg;
    struct event_base *ev;
    struct nq_transfer *t;
};

struct nq_send {
    struct emailapi *p;
    struct nq_http_send *hs;
    struct event *later; /* a verdict reached without the network */
    nq_send_done_fn done;
    void *userdata;
    const char **rcpt; /* borrowed from the message */
    size_t n_rcpt;
    unsigned unknown; /* attempts that ended unknown, this one included */
    uint32_t attempt;
    char reason[NQ_HTTP_REASON_MAX];
};

static void send_free(struct nq_send *s)
{
    if (!s)
        return;
    if (s->later)
        event_free(s->later);
    free(s->rcpt);
    free(s);
}

/* {"recipients":[...], "unknownAttempts":N}, every recipient with status;
 * NULL on OOM. */
static json_t *state_json(const struct nq_send *s, const char *status, const char *id,
                          const char *reason)
{
    json_t *a = json_array(), *o;

    for (size_t i = 0; a && i < s->n_rcpt; i++) {
        json_t *r =
            json_pack("{s:s,s:s,s:o,s:o,s:s}", "to", s->rcpt[i], "status", status, "id",
                      id && *id ? json_string(id) : json_null(), "reason",
                      reason ? json_string(reason) : json_null(), "provider", s->p->http->name);

        if (!r || json_array_append_new(a, r) < 0) {
            json_decref(r);
            json_decref(a);
            return NULL;
        }
    }
    o = json_pack("{s:o}", "recipients", a);
    if (o && s->unknown &&
        json_object_set_new(o, "unknownAttempts", json_integer(s->unknown)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Only the count of unknown attempts: recipients are not settled one by
 * one (one request carries them all). */
static json_t *progress_json(const struct nq_send *s)
{
    return json_pack("{s:i}", "unknownAttempts", (json_int_t) s->unknown);
}

static void on_verdict(const struct nq_http_verdict *v, void *userdata)
{
    struct nq_send *s = userdata;
    struct nq_send_result res = { .reason = v->reason, .retry_after_ms = v->retry_after_ms };
    struct nq_http_verdict last;
    json_t *state = NULL;

    s->hs = NULL;
    if (v->cls == NQ_REPLY_UNKNOWN)
        s->unknown++;
    if (v->cls == NQ_REPLY_RETRY && v->status == 403 && s->attempt >= NQ_EMAILAPI_403_RETRIES) {
        /* a 403 worth a retry (not the API's own: a filter in front of it;
         * or expired temporary credentials) that keeps coming is about us */
        last = *v;
        last.cls = NQ_REPLY_PERMANENT;
        last.config = true;
        (void) snprintf(last.reason + strlen(last.reason),
                        sizeof(last.reason) - strlen(last.reason), " (attempt %u)",
                        (unsigned) s->attempt);
        v = &last;
        res.reason = v->reason;
    }
    if (v->config)
        nq_log(LOG_ALERT,
               "provider %s: %s: every later job will fail the same way until the provider's "
               "account, credentials or sender are fixed",
               s->p->http->name, v->reason);
    switch (v->cls) {
    case NQ_REPLY_SENT:
        res = (struct nq_send_result){ .status = NQ_SEND_SENT,
                                       .message_id = v->message_id[0] ? v->message_id : NULL };
        state = state_json(s, "sent", v->message_id, NULL);
        res.details = state;
        break;
    case NQ_REPLY_RATE:
        res.status = NQ_SEND_RATE_LIMITED;
        state = s->unknown ? progress_json(s) : NULL;
        res.progress = state;
        break;
    case NQ_REPLY_RETRY:
    case NQ_REPLY_UNKNOWN:
        res.status = NQ_SEND_RETRY;
        state = s->unknown ? progress_json(s) : NULL;
        res.progress = state;
        break;
    case NQ_REPLY_PERMANENT:
    case NQ_REPLY_DEAD:
        res.status = NQ_SEND_PERMANENT;
        state = state_json(s, v->cls == NQ_REPLY_DEAD ? "dead" : "failed", NULL, v->reason);
        res.details = state;
        res.progress = state;
        break;
    }
    if (!state && (v->cls == NQ_REPLY_SENT || v->cls == NQ_REPLY_PERMANENT ||
                   v->cls == NQ_REPLY_DEAD || s->unknown))
        res = (struct nq_send_result){ .status = NQ_SEND_RETRY, .reason = "out of memory" };
    s->done(&res, s->userdata);
    json_decref(state);
    send_free(s);
}

static void on_later(evutil_socket_t fd, short events, void *arg)
{
    struct nq_send *s = arg;
    struct nq_http_verdict v = { .cls = NQ_REPLY_PERMANENT };

    (void) fd, (void) events;
    (void) snprintf(v.reason, sizeof(v.reason), "%s", s->reason);
    on_verdict(&v, s);
}

/* A message the provider cannot take fails from the loop, not from inside
 * send(). */
static int fail_later(struct nq_send *s, const char *reason)
{
    static const struct timeval now = { 0, 0 };

    (void) snprintf(s->reason, sizeof(s->reason), "%s", reason);
    s->later = evtimer_new(s->p->ev, on_later, s);
    if (!s->later || evtimer_add(s->later, &now) < 0)
        return -ENOMEM;
    return 0;
}

static void adopt_progress(struct nq_send *s, const char *progress)
{
    json_t *o = progress ? json_loads(progress, 0, NULL) : NULL;
    json_t *unknown = json_object_get(o, "unknownAttempts");

    if (json_is_integer(unknown) && json_integer_value(unknown) > 0)
        s->unknown = (unsigned) json_integer_value(unknown);
    json_decref(o);
}

static int emailapi_send(struct nq_provider *prov, const struct nq_msg *m,
                         const struct nq_delivery *d, nq_send_done_fn done, void *userdata,
                         struct nq_send **ret)
{
    struct emailapi *p = (struct emailapi *) prov;
    struct nq_send *s = calloc(1, sizeof(*s));
    const struct nq_http_send_opts opts = {
        .connect_timeout_ms = p->cfg->timeout_ms < 10000 ? p->cfg->timeout_ms : 10000,
        .timeout_ms = p->cfg->timeout_ms,
        .ca_file = p->cfg->ca_file,
        .insecure = p->cfg->verify == 2,
    };
    char field[FIELD_MAX], reason[NQ_HTTP_REASON_MAX];
    const char *why = NULL;
    struct nq_err err = { { 0 } };
    int r;

    if (!s)
        return -ENOMEM;
    *s = (struct nq_send){ .p = p, .done = done, .userdata = userdata, .attempt = d->attempt };
    r = nq_emailapi_recipients(&m->email, &s->rcpt, &s->n_rcpt);
    if (r < 0) {
        send_free(s);
        return r;
    }
    adopt_progress(s, d->progress_json);
    if (nq_mime_check(m, field, sizeof(field), &why) < 0) {
        (void) snprintf(reason, sizeof(reason), "%s: %s: %s", p->http->name, field, why);
        r = fail_later(s, reason);
    } else {
        r = nq_http_send_start(p->t, p->http, p->cfg, m, d, &opts, on_verdict, s, &s->hs, &err);
        if (r == -EINVAL) {
            (void) snprintf(reason, sizeof(reason), "%s: %s", p->http->name, nq_err_str(&err));
            r = fail_later(s, reason);
        }
    }
    if (r < 0) {
        send_free(s);
        return r;
    }
    *ret = s;
    return 0;
}

static void emailapi_cancel(struct nq_provider *prov, struct nq_send *s)
{
    (void) prov;
    nq_http_send_cancel(s->hs);
    send_free(s);
}

static void emailapi_free(struct nq_provider *prov)
{
    struct emailapi *p = (struct emailapi *) prov;

    nq_transfer_free(p->t);
    nq_transfer_global_done();
    free(p);
}

static const struct nq_http_provider *http_of(enum nq_provider_kind kind)
{
    switch (kind) {
    case NQ_PROVIDER_SENDGRID:
        return &nq_sendgrid_http;
    case NQ_PROVIDER_RESEND:
        return &nq_resend_http;
    case NQ_PROVIDER_MAILGUN:
        return &nq_mailgun_http;
    case NQ_PROVIDER_POSTMARK:
        return &nq_postmark_http;
    case NQ_PROVIDER_SES:
        return &nq_ses_http;
    default:
        return NULL;
    }
}

static const struct nq_provider_ops *ops_of(enum nq_provider_kind kind)
{
    switch (kind) {
    case NQ_PROVIDER_SENDGRID:
        return &nq_provider_sendgrid;
    case NQ_PROVIDER_RESEND:
        return &nq_provider_resend;
    case NQ_PROVIDER_MAILGUN:
        return &nq_provider_mailgun;
    case NQ_PROVIDER_POSTMARK:
        return &nq_provider_postmark;
    default:
        return &nq_provider_ses;
    }
}

static int emailapi_make(const struct nq_provider_env *env, struct nq_provider **ret,
                         struct nq_err *err)
{
    const struct nq_http_provider *http = http_of(env->cfg->kind);
    struct emailapi *p;
    int r;

    if (!http || !env->cfg->base_url)
        return nq_err_set(err, -EINVAL, "provider: not an email API with a base_url");
    p = calloc(1, sizeof(*p));
    if (!p)
        return nq_err_set(err, -ENOMEM, "out of memory");
    if (nq_transfer_global_init() < 0) {
        free(p);
        return nq_err_set(err, -EIO, "provider %s: cannot initialise libcurl", http->name);
    }
    p->base.ops = ops_of(env->cfg->kind);
    p->http = http;
    p->cfg = env->cfg;
    p->ev = env->base;
    r = nq_transfer_new(env->base, env->concurrency ? env->concurrency : 1, &p->t);
    if (r < 0) {
        emailapi_free(&p->base);
        return nq_err_set(err, r, "provider %s: cannot make the transport: %s", http->name,
                          strerror(-r));
    }
    *ret = &p->base;
    return 0;
}

#define EMAILAPI_OPS(KIND, NAME)                                                                   \
    {                                                                                              \
        .kind = (KIND), .name = (NAME), .types = 1u << NQ_MSG_EMAIL, .make = emailapi_make,        \
        .free = emailapi_free, .send = emailapi_send, .cancel = emailapi_cancel,                   \
    }

const struct nq_provider_ops nq_provider_sendgrid = EMAILAPI_OPS(NQ_PROVIDER_SENDGRID, "sendgrid");
const struct nq_provider_ops nq_provider_resend = EMAILAPI_OPS(NQ_PROVIDER_RESEND, "resend");
const struct nq_provider_ops nq_provider_mailgun = EMAILAPI_OPS(NQ_PROVIDER_MAILGUN, "mailgun");
const struct nq_provider_ops nq_provider_postmark = EMAILAPI_OPS(NQ_PROVIDER_POSTMARK, "postmark");
const struct nq_provider_ops nq_provider_ses = EMAILAPI_OPS(NQ_PROVIDER_SES, "ses");
