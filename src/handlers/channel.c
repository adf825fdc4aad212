/* SPDX-License-Identifier: MIT */
/*
 * The handler the email, sms and push queues share (see channel.h): compose
 * the message from the job's data, send it through the queue's provider,
 * turn the provider's verdict into the job's outcome. The returnvalue of a
 * sent job is {"ok":true,"provider":NAME,"messageId":ID, ...the provider's
 * details}, e.g. the file provider's "path", smtp's "recipients". What a
 * provider reports as progress (the recipients an unfinished send already
 * reached) is stored with the retry as the job's progress and handed back
 * to the next attempt, so it skips them.
 *
 * A job naming a template (templateId) is rendered here, before the
 * composer sees it: the rendered parts replace the data keys they stand for
 * (see overlay_keys) in a shallow copy of the data, so the composers check
 * rendered and literal content alike. Rendering happens once per job:
 * validate composes the message and keeps it for the start of that same job
 * (the worker starts a job right after validating it; a job started later,
 * as a crash suspect is, is composed again).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "handlers/channel.h"
#include "template/template.h"

struct channel {
    enum nq_msg_type type;
    nq_compose_fn compose;
    struct nq_provider *provider;
    struct nq_template_store *templates;
    const char *queue; /* borrowed from the config */
    /* The message validate composed, for start: job is only compared,
     * never dereferenced (the job may be gone), id makes the match sure. */
    const struct nq_job *prepared_job;
    char *prepared_id;
    struct nq_msg prepared;
    struct nq_mailbox sender; /* email: provider.from, for jobs naming none; addr NULL: none */
    const struct nq_provider_cfg *provider_cfg; /* borrowed: sms's region and max_segments */
};

struct channel_call {
    struct channel *ch;
    struct nq_handler_call *call;
    struct nq_msg msg;
    struct nq_delivery d;
    struct nq_send *send;
};

/* ---- field helpers ------------------------------------------------------------ */

int nq_field_string(const json_t *data, const char *const *keys, bool required, char **ret,
                    struct nq_err *err)
{
    const char *found = NULL;
    json_t *v = NULL;

    for (const char *const *k = keys; *k; k++) {
        json_t *x = json_object_get(data, *k);

        if (!x || json_is_null(x))
            continue;
        if (found)
            return nq_err_set(err, -EINVAL, "data.%s: give only one of data.%s and data.%s", *k,
                              found, *k);
        found = *k;
        v = x;
    }
    if (!v) {
        *ret = NULL;
        if (!required)
            return 0;
        if (!keys[1])
            return nq_err_set(err, -EINVAL, "data.%s: required", keys[0]);
        return nq_err_set(err, -EINVAL, "data.%s: required (or data.%s)", keys[0], keys[1]);
    }
    if (!json_is_string(v))
        return nq_err_set(err, -EINVAL, "data.%s: must be a string", found);
    *ret = strdup(json_string_value(v));
    return *ret ? 0 : nq_err_set(err, -ENOMEM, "out of memory");
}

/* A string or an integer (producers use both for ids), as a string. */
static int id_field(const json_t *data, const char *key, char **ret, struct nq_err *err)
{
    json_t *v = json_object_get(data, key);

    *ret = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v))
        *ret = strdup(json_string_value(v));
    else if (json_is_integer(v))
        (void) !asprintf(ret, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        return nq_err_set(err, -EINVAL, "data.%s: must be a string or an integer", key);
    return *ret ? 0 : nq_err_set(err, -ENOMEM, "out of memory");
}

int nq_compose_common(const json_t *data, const struct nq_field_table *t, struct nq_msg *m,
                      struct nq_err *err)
{
    int r;

    if (!json_is_object(data))
        return nq_err_set(err, -EINVAL, "data: must be a JSON object");
    r = nq_field_table_check(data, t, err);
    if (r < 0)
        return r;
    r = id_field(data, "tenantId", &m->tenant_id, err);
    if (r < 0)
        return r;
    return id_field(data, "notificationId", &m->notification_id, err);
}

/* ---- templates ------------------------------------------------------------------ */

/* Where each rendered part goes, per message type (NULL: not used), and the
 * aliases of that key it replaces too. */
static const struct {
    const char *subject, *text, *html;
    const char *text_aliases[3];
} overlay_keys[] = {
    [NQ_MSG_EMAIL] = { "subject", "text", "html", { "message", NULL } },
    [NQ_MSG_SMS] = { NULL, "body", NULL, { "message", "text", NULL } },
    [NQ_MSG_PUSH] = { "title", "body", NULL, { "message", NULL } },
};

static void trim_end(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && strchr(" \t\r\n", s[n - 1]))
        s[--n] = '\0';
}

/* The template's name and tenant from data, checked: no path tricks. */
static int template_names(const json_t *data, const char **ret_id, char **ret_tenant,
                          struct nq_err *err)
{
    json_t *id = json_object_get(data, "templateId"), *tenant = json_object_get(data, "tenantId");
    const char *why;

    if (!json_is_string(id))
        return nq_err_set(err, -EINVAL, "data.templateId: must be a string");
    if (nq_template_name_check(json_string_value(id), json_string_length(id), &why) < 0)
        return nq_err_set(err, -EINVAL, "data.templateId: %s", why);
    *ret_id = json_string_value(id);
    *ret_tenant = NULL;
    if (!tenant || json_is_null(tenant))
        return 0;
    if (json_is_integer(tenant)) {
        char num[32];

        (void) snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(tenant));
        *ret_tenant = strdup(num);
    } else if (json_is_string(tenant) &&
               nq_template_name_check(json_string_value(tenant), json_string_length(tenant), &why) <
                   0)
        return nq_err_set(err, -EINVAL, "data.tenantId: %s", why);
    else if (json_is_string(tenant))
        *ret_tenant = strdup(json_string_value(tenant));
    else
        return nq_err_set(err, -EINVAL, "data.tenantId: must be a string or an integer");
    return *ret_tenant ? 0 : nq_err_set(err, -ENOMEM, "out of memory");
}

static int render_template(struct channel *ch, const json_t *data, struct nq_template_rendered *ret,
                           struct nq_err *err)
{
    json_t *vars = json_object_get(data, "templateVariables");
    nq_autofree char *tenant = NULL;
    struct nq_err why = { "" };
    const char *id = NULL;
    int r;

    if (vars && !json_is_null(vars) && !json_is_object(vars))
        return nq_err_set(err, -EINVAL, "data.templateVariables: must be an object");
    r = template_names(data, &id, &tenant, err);
    if (r < 0)
        return r;
    r = nq_template_store_render(ch->templates, tenant, id, json_is_object(vars) ? vars : NULL, ret,
                                 &why);
    if (r == -ENOMEM)
        return nq_err_set(err, r, "out of memory");
    /* Not found, malformed or strict: the job's fault, failed now. An
     * unreadable file is the operator's, and retried. */
    if (r == -ENOENT || r == -EINVAL || r == -EFBIG)
        return nq_err_set(err, -EINVAL, "data.templateId: %s", nq_err_str(&why));
    if (r < 0)
        return nq_err_set(err, r, "data.templateId: %s", nq_err_str(&why));
    if (ret->subject) {
        trim_end(ret->subject);
        if (strpbrk(ret->subject, "\r\n")) {
            nq_template_rendered_done(ret);
            return nq_err_set(err, -EINVAL,
                              "data.templateId: template '%s': the subject must "
                              "render to one line",
                              id);
        }
    }
    if (ret->text && ch->type != NQ_MSG_EMAIL)
        trim_end(ret->text);
    return 0;
}

/* Sets key to the rendered s (taking it) in o; NULL s or key: nothing. */
static int overlay_set(json_t *o, const char *key, char *s)
{
    json_t *v;

    if (!s || !key) {
        free(s);
        return 0;
    }
    v = json_string(s);
    free(s);
    return v && json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

/* data with the template's parts in place of the keys they stand for. */
static int overlay_new(enum nq_msg_type type, const json_t *data, struct nq_template_rendered *rd,
                       json_t **ret)
{
    json_t *o = json_copy((json_t *) data);
    int r = o ? 0 : -ENOMEM;

    if (o && rd->text && overlay_keys[type].text)
        for (const char *const *a = overlay_keys[type].text_aliases; *a; a++)
            json_object_del(o, *a);
    if (o) {
        json_object_del(o, "templateId");
        json_object_del(o, "templateVariables");
    }
    /* overlay_set takes each part, even after a failure. */
    r = overlay_set(o, overlay_keys[type].subject, NQ_TAKE_PTR(rd->subject)) < 0 ? -ENOMEM : r;
    r = overlay_set(o, overlay_keys[type].text, NQ_TAKE_PTR(rd->text)) < 0 ? -ENOMEM : r;
    r = overlay_set(o, overlay_keys[type].html, NQ_TAKE_PTR(rd->html)) < 0 ? -ENOMEM : r;
    if (r < 0) {
        json_decref(o);
        return r;
    }
    *ret = o;
    return 0;
}

/* The composer, after rendering the job's template if it names one. */
static int compose_job(struct channel *ch, const json_t *data, struct nq_msg *ret,
                       struct nq_err *err)
{
    json_t *tid = json_is_object(data) ? json_object_get(data, "templateId") : NULL;
    struct nq_template_rendered rd = { NULL, NULL, NULL };
    json_t *o = NULL;
    int r;

    if (!tid || json_is_null(tid)) {
        r = ch->compose(data, ret, err);
    } else {
        r = render_template(ch, data, &rd, err);
        if (r < 0)
            return r;
        if (overlay_new(ch->type, data, &rd, &o) < 0)
            return nq_err_set(err, -ENOMEM, "out of memory");
        r = ch->compose(o, ret, err);
        json_decref(o);
    }
    if (r >= 0 && ch->type == NQ_MSG_SMS &&
        (r = nq_sms_settle(&ret->sms, ch->provider_cfg->default_region,
                           ch->provider_cfg->max_segments, err)) < 0)
        nq_msg_done(ret);
    return r;
}

static void prepared_clear(struct channel *ch)
{
    nq_msg_done(&ch->prepared);
    free(ch->prepared_id);
    ch->prepared_id = NULL;
    ch->prepared_job = NULL;
}

/* Takes the message validate composed for job, if it is the one kept. */
static bool prepared_take(struct channel *ch, const struct nq_job *job, struct nq_msg *ret)
{
    if (!ch->prepared_job || ch->prepared_job != job || strcmp(ch->prepared_id, job->id) != 0)
        return false;
    *ret = ch->prepared;
    nq_msg_init(&ch->prepared, ch->type);
    prepared_clear(ch);
    return true;
}

/* ---- the handler ------------------------------------------------------------------ */

int nq_channel_handler_init(const struct nq_handler_env *env, enum nq_msg_type type,
                            nq_compose_fn compose, void **ret_state, struct nq_err *err)
{
    struct channel *ch = calloc(1, sizeof(*ch));
    struct nq_provider_env penv = { .base = env->base,
                                    .queue = env->queue->name,
                                    .cfg = &env->queue->provider,
                                    .type = type,
                                    .concurrency = env->queue->concurrency };
    const char *from = env->queue->provider.from, *why;
    int r;

    if (!ch)
        return nq_err_set(err, -ENOMEM, "out of memory");
    *ch = (struct channel){ .type = type,
                            .compose = compose,
                            .queue = env->queue->name,
                            .provider_cfg = &env->queue->provider };
    nq_msg_init(&ch->prepared, type);
    ch->templates = nq_template_store_new(env->cfg->templates.dir, env->cfg->templates.strict);
    if (!ch->templates) {
        nq_channel_handler_free(ch);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    if (type == NQ_MSG_EMAIL && from && (r = nq_mailbox_parse(from, &ch->sender, &why)) < 0) {
        nq_channel_handler_free(ch);
        return r == -EINVAL
                   ? nq_err_set(err, r, "queues.%s.provider.from: %s", env->queue->name, why)
                   : nq_err_set(err, r, "out of memory");
    }
    r = nq_provider_new(&penv, &ch->provider, err);
    if (r < 0) {
        nq_channel_handler_free(ch);
        return r;
    }
    *ret_state = ch;
    return 0;
}

void nq_channel_handler_free(void *state)
{
    struct channel *ch = state;

    if (!ch)
        return;
    nq_provider_free(ch->provider);
    nq_template_store_free(ch->templates);
    prepared_clear(ch);
    free(ch->sender.name);
    free(ch->sender.addr);
    free(ch);
}

int nq_channel_handler_validate(void *state, struct nq_job *job, struct nq_err *err)
{
    struct channel *ch = state;
    json_t *data = nq_job_data_borrow(job);
    struct nq_msg m;
    int r;

    prepared_clear(ch);
    if (!data && job->data_valid)
        return nq_err_set(err, -ENOMEM, "out of memory");
    r = compose_job(ch, data, &m, err); /* without data: "data: must be a JSON object" */
    if (r < 0)
        return r;
    ch->prepared_id = strdup(job->id);
    if (!ch->prepared_id) {
        nq_msg_done(&m);
        return 0; /* start composes it again */
    }
    ch->prepared = m;
    ch->prepared_job = job;
    return 0;
}

static struct channel_call *channel_call_free(struct channel_call *cc)
{
    if (cc) {
        nq_msg_done(&cc->msg);
        free(cc);
    }
    return NULL;
}

/* The returnvalue of a sent message; NULL on OOM. */
static char *result_json(const char *provider, const struct nq_send_result *res)
{
    json_t *o = json_pack("{s:b,s:s}", "ok", 1, "provider", provider);
    char *s = NULL;

    if (!o)
        return NULL;
    if (res->message_id)
        json_object_set_new(o, "messageId", json_string(res->message_id));
    if (json_is_object(res->details))
        json_object_update(o, (json_t *) res->details);
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void on_sent(const struct nq_send_result *res, void *userdata)
{
    struct channel_call *cc = userdata;
    struct nq_handler_call *call = cc->call;
    nq_autofree char *result = NULL;
    nq_autofree char *progress = res->progress ? json_dumps(res->progress, JSON_COMPACT) : NULL;
    struct nq_outcome o = { .reason = res->reason,
                            .retry_after_ms = res->retry_after_ms,
                            .progress_json = progress };

    switch (res->status) {
    case NQ_SEND_SENT:
        result = result_json(nq_provider_name(cc->ch->provider), res);
        o = result ? (struct nq_outcome){ .kind = NQ_OUTCOME_OK, .result_json = result }
                   : (struct nq_outcome){ .kind = NQ_OUTCOME_RETRY, .reason = "out of memory" };
        break;
    case NQ_SEND_RETRY:
        o.kind = NQ_OUTCOME_RETRY;
        break;
    case NQ_SEND_RATE_LIMITED:
        o.kind = NQ_OUTCOME_RATE_LIMITED;
        break;
    case NQ_SEND_PERMANENT:
        o.kind = NQ_OUTCOME_PERMANENT;
        break;
    }
    call->handler_data = channel_call_free(cc);
    nq_handler_call_done(call, &o);
}

static bool json_is_null_or_absent(const json_t *v)
{
    return !v || json_is_null(v);
}

/* The queue's sender in place of the built-in default. */
static int sender_adopt(struct nq_mailbox *from, const struct nq_mailbox *sender)
{
    char *name = sender->name ? strdup(sender->name) : NULL;
    char *addr = strdup(sender->addr);

    if (!addr || (sender->name && !name)) {
        free(name);
        free(addr);
        return -ENOMEM;
    }
    free(from->name);
    free(from->addr);
    from->name = name;
    from->addr = addr;
    return 0;
}

int nq_channel_handler_start(void *state, struct nq_handler_call *call)
{
    struct channel *ch = state;
    struct channel_call *cc = calloc(1, sizeof(*cc));
    json_t *data = nq_job_data_borrow(call->job);
    struct nq_err err = { { 0 } };
    int r;

    if (!cc)
        return -ENOMEM;
    if (prepared_take(ch, call->job, &cc->msg))
        r = 0;
    else if (!data && call->job->data_valid)
        r = -ENOMEM;
    else
        r = compose_job(ch, data, &cc->msg, &err);
    if (r < 0 && r != -ENOMEM) {
        /* Only for a job validated earlier (a crash suspect) or not at all:
         * the same verdict validate gives. */
        struct nq_outcome o = { .kind = r == -EINVAL ? NQ_OUTCOME_PERMANENT : NQ_OUTCOME_RETRY,
                                .reason = nq_err_str(&err) };

        free(cc);
        nq_handler_call_done(call, &o);
        return 0;
    }
    if (r < 0) {
        free(cc);
        return r;
    }
    cc->ch = ch;
    cc->call = call;
    if (ch->sender.addr && json_is_null_or_absent(json_object_get(data, "from"))) {
        r = sender_adopt(&cc->msg.email.from, &ch->sender);
        if (r < 0) {
            channel_call_free(cc);
            return r;
        }
    }
    cc->d = (struct nq_delivery){ .queue = ch->queue,
                                  .job_id = call->job->id,
                                  .timestamp = call->job->timestamp,
                                  .attempt = call->job->atm + 1,
                                  .progress_json = call->job->progress };
    r = nq_provider_send(ch->provider, &cc->msg, &cc->d, on_sent, cc, &cc->send);
    if (r < 0) {
        channel_call_free(cc);
        return r;
    }
    call->handler_data = cc;
    return 0;
}

void nq_channel_handler_cancel(void *state, struct nq_handler_call *call)
{
    struct channel *ch = state;
    struct channel_call *cc = call->handler_data;

    if (!cc)
        return;
    nq_provider_cancel(ch->provider, cc->send);
    call->handler_data = channel_call_free(cc);
}
