/* SPDX-License-Identifier: MIT */
/*
 * The smtp provider (see smtp.h): reply classes, the per-recipient verdict
 * on a recorded dialogue, and the send that joins them to the transport.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "common/cleanup.h"
#include "providers/mime.h"
#include "providers/smtp.h"

#define CONNECT_TIMEOUT_MAX_MS 10000
#define MESSAGE_ID_MAX (NQ_DELIVERY_STEM_MAX + 260)
#define FIELD_MAX 128

/* ---- reply classes ---------------------------------------------------------- */

/* The enhanced status code at the start of text ("5.1.1 ..."), as its
 * class, subject and detail; false when there is none. */
static bool enhanced(const char *text, int *cls, int *subject, int *detail)
{
    int used = 0;

    /* The widths bound each number to 3 digits: no conversion can overflow. */
    /* NOLINTNEXTLINE(cert-err34-c) */
    return sscanf(text, "%1d.%3d.%3d%n", cls, subject, detail, &used) == 3 && used > 0 &&
           (text[used] == '\0' || text[used] == ' ');
}

static bool says_rate(const char *text)
{
    static const char *const words[] = { "rate", "limit", "throttl", "too many", "slow down" };

    for (size_t i = 0; i < NQ_ELEMENTSOF(words); i++)
        if (strcasestr(text, words[i]))
            return true;
    return false;
}

enum nq_reply_class nq_smtp_reply_class(int code, const char *text, bool rcpt)
{
    int ec = 0, es = 0, ed = 0;
    bool has_enh = enhanced(text, &ec, &es, &ed);

    if (code >= 200 && code < 400)
        return NQ_REPLY_SENT;
    if (code >= 400 && code < 500) {
        if (code == 421 && (says_rate(text) || (has_enh && ec == 4 && es == 7)))
            return NQ_REPLY_RATE;
        if (code == 454 && strcasestr(text, "throttl"))
            return NQ_REPLY_RATE;
        if (has_enh && ec == 4 && es == 7 && ed != 0 && says_rate(text))
            return NQ_REPLY_RATE;
        return NQ_REPLY_RETRY;
    }
    /* 5xx */
    if (has_enh && es == 2 && ed == 2)
        return NQ_REPLY_RETRY; /* mailbox full: often transient (attempts cap it) */
    if (rcpt && code == 552)
        return NQ_REPLY_RETRY; /* too many recipients: RFC 5321 says treat as 452 */
    /* A mailbox refusal, unless its enhanced code says the refusal is about
     * policy (5.7.x), the system (5.3.x) or the protocol (5.5.x), not the
     * address: a relay that refuses us must not make apps forget users. */
    if (rcpt && (code == 550 || code == 551 || code == 553) &&
        !(has_enh && (es == 3 || es == 5 || es == 7)))
        return NQ_REPLY_DEAD;
    if (rcpt && has_enh && ec == 5 &&
        ((es == 1 && (ed == 1 || ed == 2 || ed == 10)) || (es == 2 && ed == 1)))
        return NQ_REPLY_DEAD;
    return NQ_REPLY_PERMANENT;
}

/* ---- the verdict on one attempt -------------------------------------------- */

static void say(char *reason, const char *fmt, ...) NQ_PRINTF(2, 3);

static void say(char *reason, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(reason, NQ_HTTP_REASON_MAX, fmt, ap);
    va_end(ap);
}

/* The step with this command, or NULL. */
static const struct nq_transfer_smtp_step *step_find(const struct nq_transfer_reply *reply,
                                                     const char *cmd)
{
    for (size_t i = 0; i < reply->n_smtp; i++)
        if (strcmp(reply->smtp[i].cmd, cmd) == 0)
            return &reply->smtp[i];
    return NULL;
}

/* A failure before any RCPT that ends the transaction: the greeting,
 * STARTTLS, AUTH, MAIL FROM; NULL when there was none. */
static const struct nq_transfer_smtp_step *session_failure(const struct nq_transfer_reply *reply)
{
    for (size_t i = 0; i < reply->n_smtp; i++) {
        const struct nq_transfer_smtp_step *st = &reply->smtp[i];

        if (strcmp(st->cmd, "RCPT") == 0 || strcmp(st->cmd, "DATA") == 0 ||
            strcmp(st->cmd, ".") == 0)
            return NULL;
        if (st->code >= 400 && strcmp(st->cmd, "QUIT") != 0)
            return st;
    }
    return NULL;
}

static const char *step_name(const struct nq_transfer_smtp_step *st)
{
    return *st->cmd ? st->cmd : "greeting";
}

static void all_tried(struct nq_smtp_rcpt *r, size_t n, enum nq_rcpt_status status,
                      const char *reason)
{
    for (size_t i = 0; i < n; i++) {
        if (!r[i].tried)
            continue;
        r[i].status = status;
        (void) snprintf(r[i].reason, sizeof(r[i].reason), "%s", reason);
    }
}

/* Before any recipient: the whole message fails or waits. */
static enum nq_reply_class session_verdict(const struct nq_transfer_reply *reply,
                                           struct nq_smtp_rcpt *r, size_t n, char *reason)
{
    const struct nq_transfer_smtp_step *st = session_failure(reply);
    enum nq_reply_class cls;

    if (reply->tls_refused) {
        say(reason, "smtp: the server does not offer STARTTLS and tls is starttls: refused, "
                    "nothing was sent in clear (check the server, or the url and tls keys)");
        cls = NQ_REPLY_PERMANENT;
    } else if (reply->login_denied) {
        if (st)
            say(reason, "smtp: AUTH refused: %d %.120s (check username and password)", st->code,
                st->text);
        else
            say(reason, "smtp: AUTH refused (check username and password)");
        cls = NQ_REPLY_PERMANENT;
    } else if (st) {
        cls = nq_smtp_reply_class(st->code, st->text, false);
        say(reason, "smtp: %s: %d %.160s", step_name(st), st->code, st->text);
        if (cls == NQ_REPLY_DEAD || cls == NQ_REPLY_SENT)
            cls = NQ_REPLY_PERMANENT;
    } else if (reply->error == NQ_XFER_UNKNOWN) {
        /* Nothing was accepted for delivery before the loss (no RCPT
         * reply): the message cannot have gone out. */
        say(reason, "smtp: %s", *reply->error_text ? reply->error_text : "connection lost");
        cls = NQ_REPLY_RETRY;
    } else {
        say(reason, "smtp: %s (nothing sent)", *reply->error_text ? reply->error_text : "no reply");
        cls = NQ_REPLY_RETRY;
    }
    all_tried(r, n, cls == NQ_REPLY_PERMANENT ? NQ_RCPT_FAILED : NQ_RCPT_PENDING, reason);
    return cls;
}

/* The tried recipient whose RCPT step st is (they go out in order). */
static struct nq_smtp_rcpt *rcpt_of(const struct nq_transfer_smtp_step *st, struct nq_smtp_rcpt *r,
                                    size_t n, size_t *next)
{
    for (size_t i = *next; i < n; i++) {
        if (r[i].tried && st->arg && strcasecmp(r[i].addr, st->arg) == 0) {
            *next = i + 1;
            return &r[i];
        }
    }
    return NULL;
}

static enum nq_reply_class worse(enum nq_reply_class a, enum nq_reply_class b)
{
    /* rate waits without spending an attempt; unknown must be counted */
    static const int rank[] = {
        [NQ_REPLY_SENT] = 0, [NQ_REPLY_RETRY] = 1,     [NQ_REPLY_UNKNOWN] = 2,
        [NQ_REPLY_RATE] = 3, [NQ_REPLY_PERMANENT] = 0, [NQ_REPLY_DEAD] = 0
    };

    return rank[b] > rank[a] ? b : a;
}

/* Recipients whose RCPT was accepted: the reply to the message decides. */
static enum nq_reply_class message_verdict(const struct nq_transfer_reply *reply,
                                           struct nq_smtp_rcpt *r, size_t n, const bool *accepted,
                                           char *why)
{
    const struct nq_transfer_smtp_step *dot = step_find(reply, ".");
    enum nq_reply_class cls;
    enum nq_rcpt_status status;

    if (dot && dot->code) {
        cls = nq_smtp_reply_class(dot->code, dot->text, false);
        say(why, "smtp: message: %d %.160s", dot->code, dot->text);
    } else if (reply->error == NQ_XFER_UNKNOWN) {
        cls = NQ_REPLY_UNKNOWN;
        say(why, "smtp: %s after the whole message was sent (possible duplicate)",
            reply->timed_out ? "timeout" : "connection lost");
    } else {
        cls = NQ_REPLY_RETRY;
        say(why, "smtp: %s before the message was sent",
            *reply->error_text ? reply->error_text : "connection lost");
    }
    status = cls == NQ_REPLY_SENT                                ? NQ_RCPT_SENT
             : cls == NQ_REPLY_PERMANENT || cls == NQ_REPLY_DEAD ? NQ_RCPT_FAILED
                                                                 : NQ_RCPT_PENDING;
    for (size_t i = 0; i < n; i++) {
        if (!accepted[i])
            continue;
        r[i].status = status;
        (void) snprintf(r[i].reason, sizeof(r[i].reason), "%s", status == NQ_RCPT_SENT ? "" : why);
    }
    return cls == NQ_REPLY_SENT || cls == NQ_REPLY_PERMANENT || cls == NQ_REPLY_DEAD ? NQ_REPLY_SENT
                                                                                     : cls;
}

enum nq_reply_class nq_smtp_classify(const struct nq_transfer_reply *reply, struct nq_smtp_rcpt *r,
                                     size_t n, char *reason)
{
    nq_autofree bool *accepted = calloc(n ? n : 1, sizeof(bool));
    enum nq_reply_class pending = NQ_REPLY_SENT;
    char why[NQ_HTTP_REASON_MAX] = "";
    size_t next = 0, n_accepted = 0;

    reason[0] = '\0';
    if (!accepted) {
        say(reason, "smtp: out of memory");
        return NQ_REPLY_RETRY;
    }
    if (!step_find(reply, "RCPT") || reply->tls_refused || reply->login_denied)
        return session_verdict(reply, r, n, reason);
    for (size_t i = 0; i < reply->n_smtp; i++) {
        const struct nq_transfer_smtp_step *st = &reply->smtp[i];
        struct nq_smtp_rcpt *x;
        enum nq_reply_class cls;

        if (strcmp(st->cmd, "RCPT") != 0 || !(x = rcpt_of(st, r, n, &next)) || !st->code)
            continue;
        cls = nq_smtp_reply_class(st->code, st->text, true);
        if (cls == NQ_REPLY_SENT) {
            accepted[x - r] = true;
            n_accepted++;
            continue;
        }
        x->status = cls == NQ_REPLY_DEAD        ? NQ_RCPT_DEAD
                    : cls == NQ_REPLY_PERMANENT ? NQ_RCPT_FAILED
                                                : NQ_RCPT_PENDING;
        say(x->reason, "smtp: RCPT %.100s: %d %.120s", x->addr, st->code, st->text);
        if (x->status == NQ_RCPT_PENDING)
            pending = worse(pending, cls);
    }
    if (n_accepted)
        pending = worse(pending, message_verdict(reply, r, n, accepted, why));
    for (size_t i = 0; i < n; i++) {
        if (!r[i].tried || r[i].status != NQ_RCPT_PENDING)
            continue;
        if (!r[i].reason[0]) /* no reply to its RCPT: the connection went */
            say(r[i].reason, "smtp: %s (nothing sent to %.100s)",
                *reply->error_text ? reply->error_text : "no reply", r[i].addr);
        pending = worse(pending, NQ_REPLY_RETRY);
        if (!reason[0])
            (void) snprintf(reason, NQ_HTTP_REASON_MAX, "%s", r[i].reason);
    }
    if (pending == NQ_REPLY_UNKNOWN && why[0])
        (void) snprintf(reason, NQ_HTTP_REASON_MAX, "%s", why);
    return pending;
}

/* ---- the provider ------------------------------------------------------------ */

struct smtp {
    struct nq_provider base;
    const struct nq_provider_cfg *cfg;
    struct event_base *ev;
    struct nq_transfer *t;
};

struct nq_send {
    struct smtp *p;
    struct nq_xfer *x;
    struct event *later; /* a verdict reached without the network, reported from the loop */
    nq_send_done_fn done;
    void *userdata;
    char message_id[MESSAGE_ID_MAX]; /* "<...>" */
    char *body;
    size_t body_len;
    struct nq_smtp_rcpt *r; /* every recipient, once each */
    size_t n;
    const char **tried; /* this attempt's envelope */
    size_t n_tried;
    unsigned unknown; /* earlier attempts that ended unknown */
    /* the verdict when reported later */
    enum nq_send_status status;
    char reason[NQ_HTTP_REASON_MAX];
};

static void send_free(struct nq_send *s)
{
    if (!s)
        return;
    if (s->later)
        event_free(s->later);
    free(s->body);
    free(s->r);
    free(s->tried);
    free(s);
}

static const char *rcpt_status_name(enum nq_rcpt_status st)
{
    switch (st) {
    case NQ_RCPT_SENT:
        return "sent";
    case NQ_RCPT_DEAD:
        return "dead";
    case NQ_RCPT_FAILED:
        return "failed";
    case NQ_RCPT_PENDING:
        break;
    }
    return "pending";
}

/* The id without its angle brackets, as the returnvalue gives it. */
static const char *bare_id(const struct nq_send *s, char *buf, size_t size)
{
    size_t n = strlen(s->message_id);

    (void) snprintf(buf, size, "%.*s", (int) (n >= 2 ? n - 2 : 0), s->message_id + 1);
    return buf;
}

/* [{"to","status","id","reason"}] of the settled recipients (all when
 * with_pending), NULL on OOM. */
static json_t *recipients_json(const struct nq_send *s, bool with_pending)
{
    json_t *a = json_array();
    char id[MESSAGE_ID_MAX];

    for (size_t i = 0; a && i < s->n; i++) {
        const struct nq_smtp_rcpt *x = &s->r[i];
        json_t *o;

        if (x->status == NQ_RCPT_PENDING && !with_pending)
            continue;
        o = json_pack(
            "{s:s,s:s,s:o,s:o}", "to", x->addr, "status", rcpt_status_name(x->status), "id",
            x->status == NQ_RCPT_SENT ? json_string(bare_id(s, id, sizeof(id))) : json_null(),
            "reason", x->reason[0] ? json_string(x->reason) : json_null());
        if (!o || json_array_append_new(a, o) < 0) {
            json_decref(o);
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *state_json(const struct nq_send *s, bool with_pending)
{
    json_t *o = json_pack("{s:o}", "recipients", recipients_json(s, with_pending));

    if (o && s->unknown &&
        json_object_set_new(o, "unknownAttempts", json_integer(s->unknown)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Reports the state of s's recipients as the send's result, and frees s. */
static void report(struct nq_send *s, enum nq_reply_class pending, const char *reason)
{
    struct nq_send_result res = { .reason = reason };
    bool any_pending = false, any_sent = false;
    char id[MESSAGE_ID_MAX];
    json_t *state;

    for (size_t i = 0; i < s->n; i++) {
        any_pending |= s->r[i].status == NQ_RCPT_PENDING;
        any_sent |= s->r[i].status == NQ_RCPT_SENT;
    }
    if (any_pending) {
        res.status = pending == NQ_REPLY_RATE ? NQ_SEND_RATE_LIMITED : NQ_SEND_RETRY;
        if (pending == NQ_REPLY_RATE)
            res.retry_after_ms = NQ_SMTP_RATE_WAIT_MS;
    } else if (any_sent) {
        res.status = NQ_SEND_SENT;
        res.message_id = bare_id(s, id, sizeof(id));
    } else {
        res.status = NQ_SEND_PERMANENT;
        for (size_t i = 0; !reason && i < s->n; i++)
            reason = s->r[i].reason;
        res.reason = reason;
    }
    state = state_json(s, !any_pending);
    if (!state) {
        res = (struct nq_send_result){ .status = NQ_SEND_RETRY, .reason = "out of memory" };
    } else if (any_pending) {
        res.progress = state;
    } else {
        res.details = state;
        res.progress = res.status == NQ_SEND_PERMANENT ? state : NULL;
    }
    s->done(&res, s->userdata);
    json_decref(state);
    send_free(s);
}

static void on_reply(const struct nq_transfer_reply *reply, void *userdata)
{
    struct nq_send *s = userdata;
    char reason[NQ_HTTP_REASON_MAX];
    enum nq_reply_class cls;

    s->x = NULL;
    cls = nq_smtp_classify(reply, s->r, s->n, reason);
    if (cls == NQ_REPLY_UNKNOWN)
        s->unknown++;
    report(s, cls, reason[0] ? reason : NULL);
}

static void on_later(evutil_socket_t fd, short events, void *arg)
{
    struct nq_send *s = arg;
    struct nq_send_result res = { .status = s->status, .reason = s->reason };

    (void) fd, (void) events;
    if (s->status == NQ_SEND_SENT) { /* every recipient was settled earlier */
        report(s, NQ_REPLY_SENT, NULL);
        return;
    }
    s->done(&res, s->userdata);
    send_free(s);
}

/* Reports status and reason from the loop, not from inside send(). */
static int report_later(struct nq_send *s, enum nq_send_status status, const char *reason)
{
    static const struct timeval now = { 0, 0 };

    s->status = status;
    (void) snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
    s->later = evtimer_new(s->p->ev, on_later, s);
    if (!s->later || evtimer_add(s->later, &now) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- the envelope and the message -------------------------------------------- */

static int rcpt_add(struct nq_send *s, const char *addr)
{
    for (size_t i = 0; i < s->n; i++)
        /* The analyzer lets n_to + n_cc + n_bcc wrap to 0 in recipients(). */
        /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
        if (strcasecmp(s->r[i].addr, addr) == 0)
            return 0; /* once per transaction, even if in To and Cc */
    s->r[s->n++] = (struct nq_smtp_rcpt){ .addr = addr };
    return 0;
}

static int recipients(struct nq_send *s, const struct nq_email *e)
{
    size_t max = e->n_to + e->n_cc + e->n_bcc;

    s->r = calloc(max ? max : 1, sizeof(*s->r));
    s->tried = calloc(max ? max : 1, sizeof(*s->tried));
    if (!s->r || !s->tried)
        return -ENOMEM;
    for (size_t i = 0; i < e->n_to; i++)
        (void) rcpt_add(s, e->to[i].addr);
    for (size_t i = 0; i < e->n_cc; i++)
        (void) rcpt_add(s, e->cc[i].addr);
    for (size_t i = 0; i < e->n_bcc; i++)
        (void) rcpt_add(s, e->bcc[i].addr);
    return 0;
}

static enum nq_rcpt_status status_of(const char *name)
{
    if (strcmp(name, "sent") == 0)
        return NQ_RCPT_SENT;
    if (strcmp(name, "dead") == 0)
        return NQ_RCPT_DEAD;
    if (strcmp(name, "failed") == 0)
        return NQ_RCPT_FAILED;
    return NQ_RCPT_PENDING;
}

/* What earlier attempts settled (their progress): those recipients are
 * not tried again. Progress in another shape (an app's own) is ignored. */
static void adopt_progress(struct nq_send *s, const char *progress_json)
{
    json_t *o = progress_json ? json_loads(progress_json, 0, NULL) : NULL;
    json_t *list = json_object_get(o, "recipients"), *item;
    json_t *unknown = json_object_get(o, "unknownAttempts");
    size_t k;

    if (json_is_integer(unknown) && json_integer_value(unknown) > 0)
        s->unknown = (unsigned) json_integer_value(unknown);
    json_array_foreach (list, k, item) {
        const char *to = json_string_value(json_object_get(item, "to"));
        const char *st = json_string_value(json_object_get(item, "status"));
        const char *why = json_string_value(json_object_get(item, "reason"));

        for (size_t i = 0; to && st && i < s->n; i++) {
            /* As in rcpt_add: every r[i < n].addr is set. */
            /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
            if (strcasecmp(s->r[i].addr, to) != 0)
                continue;
            s->r[i].status = status_of(st);
            (void) snprintf(s->r[i].reason, sizeof(s->r[i].reason), "%s", why ? why : "");
        }
    }
    json_decref(o);
}

static int message(struct nq_send *s, const struct nq_msg *m, const struct nq_delivery *d)
{
    struct nq_mime_env env = { .message_id = s->message_id,
                               .date = time(NULL),
                               .queue = d->queue,
                               .job_id = d->job_id,
                               .omit_bcc = true };
    FILE *f = open_memstream(&s->body, &s->body_len);

    if (!f)
        return -ENOMEM;
    nq_mime_write(f, m, &env);
    if (ferror(f)) {
        fclose(f);
        return -ENOMEM;
    }
    return fclose(f) == 0 ? 0 : -ENOMEM;
}

static int start(struct nq_send *s, const struct nq_msg *m)
{
    const struct nq_provider_cfg *c = s->p->cfg;
    struct nq_transfer_req req = {
        .url = c->url,
        .body = s->body,
        .body_len = s->body_len,
        .connect_timeout_ms =
            c->timeout_ms < CONNECT_TIMEOUT_MAX_MS ? c->timeout_ms : CONNECT_TIMEOUT_MAX_MS,
        .timeout_ms = c->timeout_ms,
        .ca_file = c->ca_file,
        .insecure = c->verify == 2,
        .mail_from = m->email.from.addr,
        .rcpt = s->tried,
        .n_rcpt = s->n_tried,
        .require_tls = c->tls == NQ_SMTP_TLS_STARTTLS,
        .rcpt_allow_fails = true,
        .username = c->username,
        .password = c->password,
    };

    return nq_transfer_start(s->p->t, &req, on_reply, s, &s->x);
}

static int smtp_send(struct nq_provider *prov, const struct nq_msg *m, const struct nq_delivery *d,
                     nq_send_done_fn done, void *userdata, struct nq_send **ret)
{
    struct nq_send *s = calloc(1, sizeof(*s));
    char field[FIELD_MAX], reason[NQ_HTTP_REASON_MAX];
    const char *why = NULL;
    int r;

    if (!s)
        return -ENOMEM;
    *s = (struct nq_send){ .p = (struct smtp *) prov, .done = done, .userdata = userdata };
    r = nq_delivery_message_id(d, s->message_id, sizeof(s->message_id));
    if (r >= 0)
        r = recipients(s, &m->email);
    if (r < 0) {
        send_free(s);
        return r;
    }
    adopt_progress(s, d->progress_json);
    for (size_t i = 0; i < s->n; i++) {
        if (s->r[i].status != NQ_RCPT_PENDING)
            continue;
        s->r[i].tried = true;
        s->tried[s->n_tried++] = s->r[i].addr;
    }
    if (nq_mime_check(m, field, sizeof(field), &why) < 0) {
        (void) snprintf(reason, sizeof(reason), "%s: %s", field, why);
        r = report_later(s, NQ_SEND_PERMANENT, reason);
    } else if (s->n_tried == 0) {
        r = report_later(s, NQ_SEND_SENT, NULL);
    } else {
        r = message(s, m, d);
        if (r >= 0)
            r = start(s, m);
    }
    if (r < 0) {
        send_free(s);
        return r;
    }
    *ret = s;
    return 0;
}

static void smtp_cancel(struct nq_provider *prov, struct nq_send *s)
{
    struct smtp *p = (struct smtp *) prov;

    nq_transfer_cancel(p->t, s->x);
    send_free(s);
}

static void smtp_free(struct nq_provider *prov)
{
    struct smtp *p = (struct smtp *) prov;

    nq_transfer_free(p->t);
    nq_transfer_global_done();
    free(p);
}

static int smtp_make(const struct nq_provider_env *env, struct nq_provider **ret,
                     struct nq_err *err)
{
    struct smtp *p;
    int r;

    if (!env->cfg->url)
        return nq_err_set(err, -EINVAL, "provider smtp: url is required");
    p = calloc(1, sizeof(*p));
    if (!p)
        return nq_err_set(err, -ENOMEM, "out of memory");
    if (nq_transfer_global_init() < 0) {
        free(p);
        return nq_err_set(err, -EIO, "provider smtp: cannot initialise libcurl");
    }
    p->base.ops = &nq_provider_smtp;
    p->cfg = env->cfg;
    p->ev = env->base;
    r = nq_transfer_new(env->base, env->concurrency ? env->concurrency : 1, &p->t);
    if (r < 0) {
        smtp_free(&p->base);
        return nq_err_set(err, r, "provider smtp: cannot make the transport: %s", strerror(-r));
    }
    *ret = &p->base;
    return 0;
}

const struct nq_provider_ops nq_provider_smtp = {
    .kind = NQ_PROVIDER_SMTP,
    .name = "smtp",
    .types = 1u << NQ_MSG_EMAIL,
    .make = smtp_make,
    .free = smtp_free,
    .send = smtp_send,
    .cancel = smtp_cancel,
};
