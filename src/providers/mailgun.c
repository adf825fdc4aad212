/* SPDX-License-Identifier: MIT */
/*
 * mailgun: POST /v3/{domain}/messages, form-encoded (PROVIDERS.md §5).
 *
 *   POST <base_url>/v3/<domain>/messages
 *   Authorization: Basic base64("api:" api_key)
 *   Content-Type: application/x-www-form-urlencoded
 *
 *   from=..&to=..&to=..&cc=..&bcc=..&subject=..&text=..&html=..
 *   &h:Reply-To=..&h:<extra header>=..&v:queue=..&v:job_id=..
 *
 * The base URL defaults by region (us: api.mailgun.net, eu:
 * api.eu.mailgun.net). Replies: 200 sent (body id, angle brackets kept);
 * 400, 413 permanent (body message); 401, 403, 404 permanent + alert (a
 * 401's body may be plain text); 429 rate (Retry-After, else at least
 * NQ_MAILGUN_RATE_WAIT_MS); 5xx retry.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "providers/emailapi.h"
#include "providers/httputil.h"

#define NAME "mailgun"

/* false on OOM */
static bool form_mailboxes(FILE *f, const char *name, const struct nq_mailbox *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *t = nq_emailapi_mailbox_text(&v[i]);

        if (!t)
            return false;
        nq_form_add(f, name, t);
        free(t);
    }
    return true;
}

static int form(const struct nq_email *e, const struct nq_delivery *d, char **ret, size_t *len)
{
    FILE *f = open_memstream(ret, len);
    char *from;
    bool ok;

    if (!f)
        return -ENOMEM;
    from = nq_emailapi_mailbox_text(&e->from);
    ok = from != NULL;
    if (from)
        nq_form_add(f, "from", from);
    free(from);
    ok = ok && form_mailboxes(f, "to", e->to, e->n_to) && form_mailboxes(f, "cc", e->cc, e->n_cc) &&
         form_mailboxes(f, "bcc", e->bcc, e->n_bcc);
    if (e->subject)
        nq_form_add(f, "subject", e->subject);
    if (e->text)
        nq_form_add(f, "text", e->text);
    if (e->html)
        nq_form_add(f, "html", e->html);
    if (e->reply_to.addr) {
        char *t = nq_emailapi_mailbox_text(&e->reply_to);

        ok = ok && t;
        if (t)
            nq_form_add(f, "h:Reply-To", t);
        free(t);
    }
    for (size_t i = 0; i < e->n_headers; i++) {
        char *name;

        if (asprintf(&name, "h:%s", e->headers[i].name) < 0) {
            ok = false;
            break;
        }
        nq_form_add(f, name, e->headers[i].value);
        free(name);
    }
    nq_form_add(f, "v:queue", d->queue);
    nq_form_add(f, "v:job_id", d->job_id);
    if (ferror(f) || !ok) {
        fclose(f);
        free(*ret);
        *ret = NULL;
        return -ENOMEM;
    }
    return fclose(f) == 0 ? 0 : -ENOMEM;
}

/* The domain as one path segment. */
static char *messages_path(const char *domain)
{
    char *seg = NULL, *path = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&seg, &len);

    if (!f)
        return NULL;
    for (const unsigned char *p = (const unsigned char *) domain; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
    }
    if (fclose(f) != 0 || asprintf(&path, "/v3/%s/messages", seg) < 0)
        path = NULL;
    free(seg);
    return path;
}

static int build(const void *cfg_, const void *msg, const struct nq_delivery *d, int64_t now_s,
                 struct nq_http_request *ret, struct nq_err *err)
{
    const struct nq_provider_cfg *cfg = cfg_;
    const struct nq_email *e = &((const struct nq_msg *) msg)->email;
    struct nq_http_request req = { .method = "POST" };
    nq_autofree char *auth = NULL;
    nq_autofree char *path = NULL;
    size_t n = e->n_to + e->n_cc + e->n_bcc;
    int r = 0;

    (void) now_s;
    if (n > NQ_MAILGUN_RCPT_MAX)
        return nq_err_set(err, -EINVAL, "%zu recipients: at most %d per message", n,
                          NQ_MAILGUN_RCPT_MAX);
    r = form(e, d, &req.body, &req.body_len);
    path = messages_path(cfg->domain);
    if (r >= 0 && (!path || !(req.url = nq_emailapi_url(cfg, path)) ||
                   !(auth = nq_http_basic_auth("api", cfg->api_key))))
        r = -ENOMEM;
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Authorization", auth);
    if (r >= 0)
        r = nq_http_request_add_header(&req, "Content-Type", "application/x-www-form-urlencoded");
    if (auth)
        memset(auth, 0, strlen(auth));
    if (r < 0) {
        nq_http_request_done(&req);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    *ret = req;
    return 0;
}

static void classify(const void *cfg, const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_http_verdict *v)
{
    long s = reply->status;
    json_t *o = json_loadb(reply->body, reply->body_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(o, "message"));
    char detail[NQ_HTTP_REASON_MAX] = "";

    (void) cfg;
    nq_http_classify_common(NAME, reply, now_s, v);
    if (s >= 200 && s < 300) {
        const char *id = json_string_value(json_object_get(o, "id"));

        (void) snprintf(v->message_id, sizeof(v->message_id), "%s", id ? id : "");
    } else if (s >= 400) {
        if (msg)
            (void) snprintf(detail, sizeof(detail), "%.200s", msg);
        else if (!o && reply->body_len && reply->body_len < 200 && !strpbrk(reply->body, "<\r\n"))
            (void) snprintf(detail, sizeof(detail), "%s", reply->body); /* plain-text 401 */
        if (s == 401 || s == 403 || s == 404) {
            nq_emailapi_verdict(v, NAME, NQ_REPLY_PERMANENT, true, detail);
        } else if (s == 429) {
            uint64_t given = v->retry_after_ms;

            nq_emailapi_verdict(v, NAME, NQ_REPLY_RATE, false, detail[0] ? detail : "rate limited");
            v->retry_after_ms = given ? given : NQ_MAILGUN_RATE_WAIT_MS;
        } else if (s < 500 && s != 408) {
            nq_emailapi_verdict(v, NAME, NQ_REPLY_PERMANENT, false, detail);
        } else if (detail[0]) {
            nq_emailapi_verdict(v, NAME, v->cls, false, detail);
        }
    }
    json_decref(o);
}

const struct nq_http_provider nq_mailgun_http = {
    .name = NAME,
    .build = build,
    .classify = classify,
};
