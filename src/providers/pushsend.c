/* SPDX-License-Identifier: MIT */
/*
 * The per-token send of the push providers (see pushsend.h): tokens, the
 * window of requests in flight, sends held for credentials, and the
 * result and progress of an attempt.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include "common/log.h"
#include "providers/pushsend.h"

enum tok_status { TOK_PENDING, TOK_SENT, TOK_FAILED, TOK_DEAD };

struct tok {
    const char *token; /* borrowed from the message */
    enum tok_status status;
    bool started;                /* this attempt has sent it, or settled it */
    bool resent;                 /* resent once after stale credentials */
    enum nq_reply_class pending; /* PENDING: RETRY, RATE or UNKNOWN */
    uint64_t wait_ms;
    char *id;     /* SENT: the provider's; NULL: none */
    char *reason; /* not SENT: why; NULL: none */
};

struct req {
    struct nq_send *s;
    size_t i; /* the token */
    struct nq_http_request hr;
    struct nq_xfer *x;
};

struct nq_send {
    struct nq_pushsend *ps;
    const struct nq_msg *m;
    const struct nq_delivery *d;
    nq_send_done_fn done;
    void *userdata;
    struct tok *t;
    size_t n, next;
    struct req *flight[NQ_PUSH_WINDOW];
    unsigned n_flight;
    unsigned unknown; /* attempts, this one included, that ended unknown */
    bool unknown_now, alerted, holding;
    struct nq_send *next_held;
    struct event *later;
};

static int64_t now_s(void)
{
    return (int64_t) time(NULL);
}

static void req_free(struct req *q)
{
    if (!q)
        return;
    nq_http_request_done(&q->hr);
    free(q);
}

static void unhold(struct nq_send *s)
{
    for (struct nq_send **p = &s->ps->held; *p; p = &(*p)->next_held) {
        if (*p == s) {
            *p = s->next_held;
            break;
        }
    }
    s->holding = false;
}

/* Replaces *field with a copy of value ("" and NULL: none); false on OOM. */
static bool set_text(char **field, const char *value)
{
    free(*field);
    *field = value && *value ? strdup(value) : NULL;
    return !value || !*value || *field;
}

static void send_free(struct nq_send *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->t[i].id);
        free(s->t[i].reason);
    }
    for (unsigned i = 0; i < s->n_flight; i++) {
        nq_transfer_cancel(s->ps->t, s->flight[i]->x);
        req_free(s->flight[i]);
    }
    if (s->holding)
        unhold(s);
    if (s->later)
        event_free(s->later);
    free(s->t);
    free(s);
}

/* ---- results ------------------------------------------------------------------ */

static const char *status_name(enum tok_status st)
{
    static const char *const names[] = {
        [TOK_PENDING] = "pending", [TOK_SENT] = "sent", [TOK_FAILED] = "failed", [TOK_DEAD] = "dead"
    };

    return names[st];
}

static json_t *state_json(const struct nq_send *s, bool with_pending)
{
    json_t *a = json_array(), *o;

    for (size_t i = 0; a && i < s->n; i++) {
        const struct tok *k = &s->t[i];

        if (k->status == TOK_PENDING && !with_pending)
            continue;
        o = json_pack("{s:s,s:s,s:o,s:o}", "to", k->token, "status", status_name(k->status), "id",
                      k->id ? json_string(k->id) : json_null(), "reason",
                      k->reason && k->status != TOK_SENT ? json_string(k->reason) : json_null());
        if (!o || json_array_append_new(a, o) < 0) {
            json_decref(o);
            json_decref(a);
            return NULL;
        }
    }
    o = a ? json_pack("{s:o}", "recipients", a) : NULL;
    if (o && s->unknown &&
        json_object_set_new(o, "unknownAttempts", json_integer(s->unknown)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Reports the attempt and frees s. */
static void finish(struct nq_send *s)
{
    struct nq_send_result res = { 0 };
    bool pending = false, all_rate = true;
    const struct tok *sent = NULL, *why = NULL;
    json_t *state;

    if (s->unknown_now)
        s->unknown++;
    for (size_t i = 0; i < s->n; i++) {
        const struct tok *k = &s->t[i];

        if (k->status == TOK_SENT && !sent)
            sent = k;
        if (k->status != TOK_PENDING) {
            if (!why && k->status != TOK_SENT)
                why = k;
            continue;
        }
        if (!pending)
            why = k; /* a pending token's reason first */
        pending = true;
        all_rate &= k->pending == NQ_REPLY_RATE;
        if (k->wait_ms > res.retry_after_ms)
            res.retry_after_ms = k->wait_ms;
    }
    res.reason = why ? why->reason : NULL;
    if (pending)
        res.status = all_rate ? NQ_SEND_RATE_LIMITED : NQ_SEND_RETRY;
    else if (sent)
        res = (struct nq_send_result){ .status = NQ_SEND_SENT, .message_id = sent->id };
    else
        res.status = NQ_SEND_PERMANENT;
    state = state_json(s, !pending);
    if (!state) {
        res = (struct nq_send_result){ .status = NQ_SEND_RETRY, .reason = "out of memory" };
    } else if (pending) {
        res.progress = state;
    } else {
        res.details = state;
        res.progress = res.status == NQ_SEND_PERMANENT ? state : NULL;
    }
    s->done(&res, s->userdata);
    json_decref(state);
    send_free(s);
}

static void on_later(evutil_socket_t fd, short events, void *arg)
{
    (void) fd, (void) events;
    finish(arg);
}

/* Finishes s from the loop (never from inside nq_pushsend_send). */
static void finish_later(struct nq_send *s)
{
    static const struct timeval now = { 0, 0 };

    if (!s->later)
        s->later = evtimer_new(s->ps->ev, on_later, s);
    if (s->later)
        (void) evtimer_add(s->later, &now);
    /* else: out of memory with nothing in flight; the job's lock expires
     * and it is retried as a stalled job, nothing lost */
}

static void settle(struct nq_send *s, struct tok *k, const struct nq_push_verdict *pv)
{
    const struct nq_http_verdict *v = &pv->v;

    k->started = true;
    k->pending = v->cls;
    k->wait_ms = v->retry_after_ms;
    /* out of memory, only the texts are lost, not the verdict */
    (void) set_text(&k->reason, v->cls == NQ_REPLY_SENT ? NULL : v->reason);
    switch (v->cls) {
    case NQ_REPLY_SENT:
        k->status = TOK_SENT;
        (void) set_text(&k->id, v->message_id);
        break;
    case NQ_REPLY_DEAD:
        k->status = TOK_DEAD;
        break;
    case NQ_REPLY_PERMANENT:
        k->status = TOK_FAILED;
        break;
    case NQ_REPLY_UNKNOWN:
        s->unknown_now = true;
        /* fall through */
    default:
        k->status = TOK_PENDING;
        break;
    }
    if (pv->config && !s->alerted) {
        s->alerted = true;
        nq_log(LOG_ALERT, "queue %s: %s (every push of this queue will fail until fixed)",
               s->ps->queue, v->reason);
    }
}

/* ---- requests ------------------------------------------------------------------- */

static void pump(struct nq_send *s);
static void go(struct nq_send *s);

static void on_reply(const struct nq_transfer_reply *reply, void *userdata)
{
    struct req *q = userdata;
    struct nq_send *s = q->s;
    struct tok *k = &s->t[q->i];
    struct nq_push_verdict pv;

    for (unsigned i = 0; i < s->n_flight; i++) {
        if (s->flight[i] == q) {
            s->flight[i] = s->flight[--s->n_flight];
            break;
        }
    }
    memset(&pv, 0, sizeof(pv));
    s->ps->cls->classify(reply, now_s(), &pv);
    if (pv.stale && !k->resent) {
        k->resent = true;
        k->started = false;
        if (s->next > q->i)
            s->next = q->i;
        s->ps->cls->stale(s->ps);
        req_free(q);
        if (!s->holding)
            go(s);
        return;
    }
    settle(s, k, &pv);
    req_free(q);
    if (!s->holding)
        pump(s);
}

static int start(struct nq_send *s, size_t i, struct nq_push_verdict *pv)
{
    struct req *q = calloc(1, sizeof(*q));
    struct nq_err err = { { 0 } };
    struct nq_transfer_req tr;
    int r;

    memset(pv, 0, sizeof(*pv));
    pv->v.cls = NQ_REPLY_RETRY;
    if (!q) {
        (void) snprintf(pv->v.reason, sizeof(pv->v.reason), "out of memory");
        return -ENOMEM;
    }
    q->s = s;
    q->i = i;
    r = s->ps->cls->build(s->ps, &s->m->push, s->t[i].token, s->d, now_s(), &q->hr, &err);
    if (r == -EINVAL) {
        pv->v.cls = NQ_REPLY_PERMANENT;
        (void) snprintf(pv->v.reason, sizeof(pv->v.reason), "%s: %.200s", s->ps->base.ops->name,
                        err.msg);
    } else if (r < 0) {
        (void) snprintf(pv->v.reason, sizeof(pv->v.reason), "out of memory");
    } else {
        nq_pushsend_request(s->ps, &q->hr, &tr);
        r = nq_transfer_start(s->ps->t, &tr, on_reply, q, &q->x);
        if (r < 0)
            (void) snprintf(pv->v.reason, sizeof(pv->v.reason), "%s: cannot start a request: %s",
                            s->ps->base.ops->name, strerror(-r));
    }
    if (r < 0) {
        req_free(q);
        return r;
    }
    s->t[i].started = true;
    s->flight[s->n_flight++] = q;
    return 0;
}

/* Starts what the window allows; finishes s when nothing is left. */
static void pump(struct nq_send *s)
{
    struct nq_push_verdict pv;

    while (s->n_flight < NQ_PUSH_WINDOW && s->next < s->n) {
        struct tok *k = &s->t[s->next++];

        if (k->status != TOK_PENDING || k->started)
            continue;
        if (start(s, (size_t) (k - s->t), &pv) < 0)
            settle(s, k, &pv);
    }
    if (s->n_flight == 0 && s->next >= s->n)
        finish_later(s);
}

/* Every token not yet started ends as pv says. */
static void settle_rest(struct nq_send *s, const struct nq_push_verdict *pv)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].status == TOK_PENDING && !s->t[i].started)
            settle(s, &s->t[i], pv);
}

static bool any_to_start(const struct nq_send *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->t[i].status == TOK_PENDING && !s->t[i].started)
            return true;
    return false;
}

static void go(struct nq_send *s)
{
    struct nq_push_verdict pv;
    int r;

    if (!any_to_start(s)) {
        pump(s);
        return;
    }
    memset(&pv, 0, sizeof(pv));
    r = s->ps->cls->auth(s->ps, now_s(), &pv);
    if (r > 0) {
        s->holding = true;
        s->next_held = s->ps->held;
        s->ps->held = s;
        return;
    }
    if (r < 0)
        settle_rest(s, &pv);
    pump(s);
}

void nq_pushsend_auth_done(struct nq_pushsend *ps, const struct nq_push_verdict *v)
{
    struct nq_send *held = ps->held, *next;

    ps->held = NULL;
    for (struct nq_send *s = held; s; s = next) {
        next = s->next_held;
        s->holding = false;
        s->next_held = NULL;
        if (v)
            settle_rest(s, v);
        pump(s);
    }
}

/* ---- the provider ops --------------------------------------------------------------- */

static enum tok_status status_of(const char *name)
{
    if (strcmp(name, "sent") == 0)
        return TOK_SENT;
    if (strcmp(name, "dead") == 0)
        return TOK_DEAD;
    return strcmp(name, "failed") == 0 ? TOK_FAILED : TOK_PENDING;
}

/* What earlier attempts settled is kept (an app's own progress, in
 * another shape, is ignored). */
static void adopt_progress(struct nq_send *s, const char *progress_json)
{
    json_t *o = progress_json ? json_loads(progress_json, 0, NULL) : NULL;
    json_t *list = json_object_get(o, "recipients"), *item;
    json_t *unknown = json_object_get(o, "unknownAttempts");
    size_t j;

    if (json_is_integer(unknown) && json_integer_value(unknown) > 0)
        s->unknown = (unsigned) json_integer_value(unknown);
    json_array_foreach (list, j, item) {
        const char *to = json_string_value(json_object_get(item, "to"));
        const char *st = json_string_value(json_object_get(item, "status"));
        const char *id = json_string_value(json_object_get(item, "id"));
        const char *why = json_string_value(json_object_get(item, "reason"));

        for (size_t i = 0; to && st && i < s->n; i++) {
            if (strcmp(s->t[i].token, to) != 0)
                continue;
            s->t[i].status = status_of(st);
            if (!set_text(&s->t[i].id, id) || !set_text(&s->t[i].reason, why))
                s->t[i].status = TOK_PENDING; /* out of memory: tried again */
        }
    }
    json_decref(o);
}

int nq_pushsend_send(struct nq_provider *p, const struct nq_msg *m, const struct nq_delivery *d,
                     nq_send_done_fn done, void *userdata, struct nq_send **ret)
{
    struct nq_send *s = calloc(1, sizeof(*s));
    const struct nq_push *push = &m->push;

    if (!s || !(s->t = calloc(push->n_tokens ? push->n_tokens : 1, sizeof(*s->t)))) {
        free(s);
        return -ENOMEM;
    }
    s->ps = (struct nq_pushsend *) p;
    s->m = m;
    s->d = d;
    s->done = done;
    s->userdata = userdata;
    for (size_t i = 0; i < push->n_tokens; i++) {
        bool seen = false;

        for (size_t j = 0; j < s->n && !seen; j++)
            seen = strcmp(s->t[j].token, push->tokens[i]) == 0;
        if (!seen)
            s->t[s->n++].token = push->tokens[i];
    }
    adopt_progress(s, d->progress_json);
    go(s);
    *ret = s;
    return 0;
}

void nq_pushsend_cancel(struct nq_provider *p, struct nq_send *s)
{
    (void) p;
    send_free(s);
}

void nq_pushsend_free(struct nq_provider *p)
{
    struct nq_pushsend *ps = (struct nq_pushsend *) p;

    ps->cls->done(ps);
    nq_transfer_free(ps->t);
    nq_transfer_global_done();
    free(ps);
}

int nq_pushsend_init(struct nq_pushsend *ps, const struct nq_provider_env *env,
                     const struct nq_pushsend_class *cls, struct nq_err *err)
{
    unsigned conc = env->concurrency ? env->concurrency : 1;
    int r;

    ps->base.ops = cls->ops;
    ps->cls = cls;
    ps->cfg = env->cfg;
    ps->queue = env->queue;
    ps->ev = env->base;
    if (nq_transfer_global_init() < 0)
        return nq_err_set(err, -EIO, "provider %s: cannot initialise libcurl", cls->ops->name);
    /* each send's window, and one for credentials */
    r = nq_transfer_new(env->base, conc * NQ_PUSH_WINDOW + 1, &ps->t);
    if (r < 0) {
        nq_transfer_global_done();
        return nq_err_set(err, r, "provider %s: cannot make the transport: %s", cls->ops->name,
                          strerror(-r));
    }
    return 0;
}

void nq_pushsend_request(const struct nq_pushsend *ps, const struct nq_http_request *hr,
                         struct nq_transfer_req *ret)
{
    const struct nq_provider_cfg *c = ps->cfg;

    *ret = (struct nq_transfer_req){
        .url = hr->url,
        .method = hr->method,
        .headers = (const char *const *) hr->headers,
        .n_headers = hr->n_headers,
        .body = hr->body,
        .body_len = hr->body_len,
        .connect_timeout_ms = c->timeout_ms < 10000 ? c->timeout_ms : 10000,
        .timeout_ms = c->timeout_ms,
        .ca_file = c->ca_file,
        .insecure = c->verify == 2,
        .http2_prior_knowledge = ps->prior_knowledge && strncasecmp(hr->url, "http://", 7) == 0,
    };
}
