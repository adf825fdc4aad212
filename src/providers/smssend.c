/* SPDX-License-Identifier: MIT */
/*
 * The send driver of the HTTP SMS providers (see sms.h): one struct per
 * queue holding the transport (and, for http, the compiled body template),
 * each send a build + transfer + classify (http.h) turned into a send
 * result whose details list the recipient:
 *   {"recipients":[{"to":E164,"status":"sent"|"failed"|"dead","id":ID|null,
 *    "reason":null|TEXT}], "segments":N, "encoding":"GSM-7"|"UCS-2"}
 * A dead or failed recipient is also the failed job's progress, so it
 * stays readable on the failed job. Configuration errors (401/403, a
 * refused sender or account) are logged as alerts.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/log.h"
#include "common/utf8.h"
#include "providers/sms.h"
#include "template/template.h"

#define CONNECT_TIMEOUT_MAX_MS 10000

struct sms_provider {
    struct nq_provider base;
    const struct nq_http_provider *http;
    struct nq_sms_out out;
    struct nq_template *body_template;
    struct event_base *ev;
    struct nq_transfer *t;
    const char *queue;
};

struct nq_send {
    struct sms_provider *p;
    struct nq_http_send *hs;
    struct event *later; /* a build error, reported from the loop */
    nq_send_done_fn done;
    void *userdata;
    char *to;
    struct nq_sms_count count;
    char reason[NQ_HTTP_REASON_MAX]; /* valid UTF-8 */
};

static void send_free(struct nq_send *s)
{
    if (s->later)
        event_free(s->later);
    free(s->to);
    free(s);
}

static json_t *details_json(const struct nq_send *s, const char *status, const char *id,
                            const char *reason)
{
    return json_pack("{s:[{s:s,s:s,s:o,s:o}],s:I,s:s}", "recipients", "to", s->to, "status", status,
                     "id", id && *id ? json_string(id) : json_null(), "reason",
                     reason ? json_string(reason) : json_null(), "segments",
                     (json_int_t) s->count.segments, "encoding",
                     nq_sms_encoding_name(s->count.encoding));
}

static void on_done(const struct nq_http_verdict *v, void *userdata)
{
    struct nq_send *s = userdata;
    struct nq_send_result res = { .reason = s->reason, .retry_after_ms = v->retry_after_ms };
    json_t *details = NULL;

    s->hs = NULL;
    /* The reason quotes the provider's text, cut to fit: keep it valid
     * UTF-8, or it could not go into the job's JSON. */
    (void) snprintf(s->reason, sizeof(s->reason), "%.*s",
                    (int) nq_utf8_valid_prefix(v->reason, strlen(v->reason)), v->reason);
    switch (v->cls) {
    case NQ_REPLY_SENT:
        res.status = NQ_SEND_SENT;
        res.reason = NULL;
        res.message_id = v->message_id[0] ? v->message_id : NULL;
        details = details_json(s, "sent", v->message_id, NULL);
        break;
    case NQ_REPLY_RATE:
        res.status = NQ_SEND_RATE_LIMITED;
        break;
    case NQ_REPLY_RETRY:
    case NQ_REPLY_UNKNOWN:
        res.status = NQ_SEND_RETRY;
        break;
    case NQ_REPLY_PERMANENT:
    case NQ_REPLY_DEAD:
        res.status = NQ_SEND_PERMANENT;
        details = details_json(s, v->cls == NQ_REPLY_DEAD ? "dead" : "failed", NULL, s->reason);
        res.progress = details;
        break;
    }
    if (nq_sms_verdict_is_config(v))
        nq_log(LOG_ALERT, "queue %s: provider %s refuses our configuration: %s", s->p->queue,
               s->p->http->name, s->reason);
    if (v->cls == NQ_REPLY_SENT && !v->message_id[0])
        nq_log(LOG_WARNING, "queue %s: provider %s accepted a message without giving its id",
               s->p->queue, s->p->http->name);
    res.details = details;
    s->done(&res, s->userdata);
    json_decref(details);
    send_free(s);
}

static void on_later(evutil_socket_t fd, short events, void *arg)
{
    struct nq_send *s = arg;
    json_t *details = details_json(s, "failed", NULL, s->reason);
    struct nq_send_result res = {
        .status = NQ_SEND_PERMANENT, .reason = s->reason, .details = details, .progress = details
    };

    (void) fd, (void) events;
    s->done(&res, s->userdata);
    json_decref(details);
    send_free(s);
}

static int sms_send(struct nq_provider *prov, const struct nq_msg *m, const struct nq_delivery *d,
                    nq_send_done_fn done, void *userdata, struct nq_send **ret)
{
    static const struct timeval now = { 0, 0 };
    struct sms_provider *p = (struct sms_provider *) prov;
    const struct nq_provider_cfg *c = p->out.cfg;
    struct nq_http_send_opts opts = {
        .connect_timeout_ms =
            c->timeout_ms < CONNECT_TIMEOUT_MAX_MS ? c->timeout_ms : CONNECT_TIMEOUT_MAX_MS,
        .timeout_ms = c->timeout_ms,
        .ca_file = c->ca_file,
        .insecure = c->verify == 2,
    };
    struct nq_send *s = calloc(1, sizeof(*s));
    struct nq_err err = { { 0 } };
    int r;

    if (!s || !(s->to = strdup(m->sms.to))) {
        free(s);
        return -ENOMEM;
    }
    s->p = p;
    s->done = done;
    s->userdata = userdata;
    nq_sms_count(m->sms.body, &s->count);
    r = nq_http_send_start(p->t, p->http, &p->out, &m->sms, d, &opts, on_done, s, &s->hs, &err);
    if (r == -EINVAL) { /* build refused the message: the job fails, from the loop */
        (void) snprintf(
            s->reason, sizeof(s->reason), "%.*s",
            (int) nq_utf8_valid_prefix(err.msg, strnlen(err.msg, sizeof(s->reason) - 1)), err.msg);
        s->later = evtimer_new(p->ev, on_later, s);
        r = s->later && evtimer_add(s->later, &now) == 0 ? 0 : -ENOMEM;
    }
    if (r < 0) {
        send_free(s);
        return r;
    }
    *ret = s;
    return 0;
}

static void sms_cancel(struct nq_provider *prov, struct nq_send *s)
{
    (void) prov;
    nq_http_send_cancel(s->hs);
    send_free(s);
}

static void sms_free(struct nq_provider *prov)
{
    struct sms_provider *p = (struct sms_provider *) prov;

    nq_transfer_free(p->t);
    nq_transfer_global_done();
    nq_template_free(p->body_template);
    free(p);
}

static int sms_make(const struct nq_provider_env *env, const struct nq_provider_ops *ops,
                    const struct nq_http_provider *http, struct nq_provider **ret,
                    struct nq_err *err)
{
    struct sms_provider *p = calloc(1, sizeof(*p));
    int r;

    if (!p)
        return nq_err_set(err, -ENOMEM, "out of memory");
    if (nq_transfer_global_init() < 0) {
        free(p);
        return nq_err_set(err, -EIO, "provider %s: cannot initialise libcurl", http->name);
    }
    *p = (struct sms_provider){
        .base.ops = ops, .http = http, .out.cfg = env->cfg, .ev = env->base, .queue = env->queue
    };
    if (env->cfg->body_template) {
        r = nq_template_compile("body_template", env->cfg->body_template,
                                strlen(env->cfg->body_template), &p->body_template, err);
        if (r < 0) {
            sms_free(&p->base);
            return r;
        }
        p->out.body_template = p->body_template;
    }
    r = nq_transfer_new(env->base, env->concurrency ? env->concurrency : 1, &p->t);
    if (r < 0) {
        sms_free(&p->base);
        return nq_err_set(err, r, "provider %s: cannot make the transport: %s", http->name,
                          strerror(-r));
    }
    *ret = &p->base;
    return 0;
}

static int twilio_make(const struct nq_provider_env *env, struct nq_provider **ret,
                       struct nq_err *err)
{
    return sms_make(env, &nq_provider_twilio, &nq_sms_twilio, ret, err);
}

static int vonage_make(const struct nq_provider_env *env, struct nq_provider **ret,
                       struct nq_err *err)
{
    return sms_make(env, &nq_provider_vonage, &nq_sms_vonage, ret, err);
}

static int http_make(const struct nq_provider_env *env, struct nq_provider **ret,
                     struct nq_err *err)
{
    return sms_make(env, &nq_provider_sms_http, &nq_sms_http, ret, err);
}

const struct nq_provider_ops nq_provider_twilio = {
    .kind = NQ_PROVIDER_TWILIO,
    .name = "twilio",
    .types = 1u << NQ_MSG_SMS,
    .make = twilio_make,
    .free = sms_free,
    .send = sms_send,
    .cancel = sms_cancel,
};

const struct nq_provider_ops nq_provider_vonage = {
    .kind = NQ_PROVIDER_VONAGE,
    .name = "vonage",
    .types = 1u << NQ_MSG_SMS,
    .make = vonage_make,
    .free = sms_free,
    .send = sms_send,
    .cancel = sms_cancel,
};

const struct nq_provider_ops nq_provider_sms_http = {
    .kind = NQ_PROVIDER_HTTP,
    .name = "http",
    .types = 1u << NQ_MSG_SMS,
    .make = http_make,
    .free = sms_free,
    .send = sms_send,
    .cancel = sms_cancel,
};
