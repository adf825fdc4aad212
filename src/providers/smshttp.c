/* SPDX-License-Identifier: MIT */
/*
 * The generic http SMS provider's build and classify (see sms.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "providers/sms.h"
#include "template/template.h"

/* s as the inside of a JSON string (no quotes), so a template writes
 * "{{body}}" and gets valid JSON whatever the text holds. */
static json_t *json_inner(const char *s)
{
    json_t *str = json_string(s ? s : "");
    char *dump = str ? json_dumps(str, JSON_ENCODE_ANY) : NULL;
    json_t *ret = NULL;
    size_t n;

    json_decref(str);
    if (!dump)
        return NULL;
    n = strlen(dump);
    dump[n - 1] = '\0';
    ret = json_string(dump + 1);
    free(dump);
    return ret;
}

static json_t *variables(const struct nq_sms *m, const char *from, const struct nq_delivery *d)
{
    struct nq_sms_count count;
    json_t *o = json_object();

    nq_sms_count(m->body, &count);
    if (!o || json_object_set_new(o, "to", json_inner(m->to)) < 0 ||
        json_object_set_new(o, "from", json_inner(from)) < 0 ||
        json_object_set_new(o, "body", json_inner(m->body)) < 0 ||
        json_object_set_new(o, "jobId", json_inner(d->job_id)) < 0 ||
        json_object_set_new(o, "queue", json_inner(d->queue)) < 0 ||
        json_object_set_new(o, "segments", json_integer((json_int_t) count.segments)) < 0 ||
        json_object_set_new(o, "encoding", json_string(nq_sms_encoding_name(count.encoding))) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static bool has_content_type(char *const *headers, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strncasecmp(headers[i], "content-type=", 13) == 0)
            return true;
    return false;
}

static int headers_add(struct nq_http_request *req, const struct nq_provider_cfg *c)
{
    int r = 0;

    for (size_t i = 0; r >= 0 && i < c->n_headers; i++) {
        const char *eq = strchr(c->headers[i], '=');
        nq_autofree char *name = strndup(c->headers[i], (size_t) (eq - c->headers[i]));

        r = name ? nq_http_request_add_header(req, name, eq + 1) : -ENOMEM;
    }
    if (r >= 0 && !has_content_type(c->headers, c->n_headers))
        r = nq_http_request_add_header(req, "Content-Type", "application/json");
    return r;
}

static int build(const void *cfg, const void *msg, const struct nq_delivery *d, int64_t now_s,
                 struct nq_http_request *ret, struct nq_err *err)
{
    const struct nq_sms_out *out = cfg;
    const struct nq_provider_cfg *c = out->cfg;
    const struct nq_sms *m = msg;
    struct nq_template_render_opts opts = { .strict = true };
    struct nq_http_request req = { .method = "POST" };
    json_t *vars = variables(m, m->from ? m->from : c->from, d), *check;
    json_error_t jerr;
    int r;

    (void) now_s;
    if (!vars)
        return nq_err_set(err, -ENOMEM, "out of memory");
    r = nq_template_render(out->body_template, vars, &opts, &req.body, err);
    json_decref(vars);
    if (r < 0)
        return r;
    req.body_len = strlen(req.body);
    check = json_loadb(req.body, req.body_len, 0, &jerr);
    if (!check) {
        nq_http_request_done(&req);
        return nq_err_set(err, -EINVAL, "provider http: body_template does not render JSON: %s",
                          jerr.text);
    }
    json_decref(check);
    req.url = strdup(c->url);
    r = req.url ? headers_add(&req, c) : -ENOMEM;
    if (r < 0) {
        nq_http_request_done(&req);
        return r == -E2BIG ? nq_err_set(err, r, "provider http: too many headers")
                           : nq_err_set(err, r, "out of memory");
    }
    *ret = req;
    return 0;
}

static void classify(const void *cfg, const struct nq_transfer_reply *reply, int64_t now_s,
                     struct nq_http_verdict *v)
{
    static const char *const id_keys[] = { "id", "message_id", "messageId", "sid" };
    json_t *o;

    (void) cfg;
    nq_http_classify_common("http", reply, now_s, v);
    if (reply->status == 401 || reply->status == 403) {
        (void) snprintf(v->reason, sizeof(v->reason),
                        "http: HTTP %ld " NQ_SMS_CONFIG_MARK ": check the headers' credentials)",
                        reply->status);
        return;
    }
    if (v->cls != NQ_REPLY_SENT)
        return;
    o = json_loadb(reply->body, reply->body_len, 0, NULL);
    for (size_t i = 0; i < NQ_ELEMENTSOF(id_keys) && !v->message_id[0]; i++) {
        json_t *id = json_object_get(o, id_keys[i]);

        if (json_is_string(id))
            nq_sms_copy_id(v, json_string_value(id));
        else if (json_is_integer(id))
            (void) snprintf(v->message_id, sizeof(v->message_id), "%" JSON_INTEGER_FORMAT,
                            json_integer_value(id));
    }
    json_decref(o);
}

const struct nq_http_provider nq_sms_http = {
    .name = "http",
    .build = build,
    .classify = classify,
};
