/* SPDX-License-Identifier: MIT */
/*
 * The inapp handler: an in-app notification is a row in
 * notifyq.inapp_notifications (the delivery log's database, postgres:) and
 * a live message PUBLISHed on the Redis channel
 * <inapp.channel_prefix>:<tenantId or _>:<userId>, so a web app can push it
 * to the user's open pages. The job's returnvalue is {"id": <row id>}.
 *
 * Data keys: userId (required; a string or an integer), tenantId, title
 * (required), body (required), type (info, warning, error or success;
 * default info), metadata (an object, stored as jsonb and sent along).
 *
 * Once, across crashes and retries:
 *   1. INSERT ... ON CONFLICT (queue, job_id): a run of the same job again
 *      finds its first row, and whether it was published (published_at);
 *   2. if not, PUBLISH through a Redis script that also sets the marker
 *      <bull base>nqpub:inapp:<row id> (7 days), both or neither: a run
 *      again after a crash between PUBLISH and step 3 finds the marker and
 *      sends nothing;
 *   3. UPDATE published_at, then the job completes.
 * A crash before 2 publishes on the next run; the one way left to publish
 * twice is a retry more than 7 days later with step 3 never done. Messages
 * carry the row id, so a subscriber can drop a duplicate too.
 * The database or Redis away: the job is retried (backoff), never lost.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "deliverylog/deliverylog.h"
#include "handlers/handler.h"

#define INAPP_NO_TEMPLATE "not supported by inapp jobs; send title and body"

static const struct nq_field inapp_rows[] = {
    { "userId", NQ_FIELD_READ, NULL },
    { "tenantId", NQ_FIELD_READ, NULL },
    { "title", NQ_FIELD_READ, NULL },
    { "body", NQ_FIELD_READ, NULL },
    { "type", NQ_FIELD_READ, NULL },
    { "metadata", NQ_FIELD_READ, NULL },
    { "notificationId", NQ_FIELD_KEPT, NULL },
    { "category", NQ_FIELD_KEPT, NULL },
    { "priority", NQ_FIELD_KEPT, NULL },
    { "templateId", NQ_FIELD_REFUSED, INAPP_NO_TEMPLATE },
    { "templateVariables", NQ_FIELD_REFUSED, INAPP_NO_TEMPLATE },
    { "template", NQ_FIELD_REFUSED, INAPP_NO_TEMPLATE },
    { "variables", NQ_FIELD_REFUSED, INAPP_NO_TEMPLATE },
};

static const struct nq_field_table inapp_fields = { "inapp", inapp_rows, NQ_ELEMENTSOF(inapp_rows),
                                                    false };

struct inapp {
    struct nq_dl_inapp *db;
    const char *queue, *prefix;
    nq_handler_publish_fn publish;
    void *publish_ctx;
};

/* One job in flight. Outlives a cancel while Redis holds its publish. */
struct inapp_call {
    struct inapp *h;
    struct nq_handler_call *call; /* NULL once cancelled */
    bool publishing;
    char id[32];
};

static int inapp_init(const struct nq_handler_env *env, void **ret_state, struct nq_err *err)
{
    struct inapp *h;

    /* Without a database the queue idles, as one whose handler is not
     * built does: its jobs wait, its backlog shows, nothing crash-loops
     * (the shipped file has an inapp queue and no postgres:). */
    if (!env->cfg->postgres.dsn)
        return nq_err_set(err, -EOPNOTSUPP,
                          "handler inapp needs postgres: (its rows go to "
                          "notifyq.inapp_notifications)");
    if (!env->publish)
        return nq_err_set(err, -EINVAL, "needs the worker's Redis to publish");
    h = calloc(1, sizeof(*h));
    if (!h)
        return nq_err_set(err, -ENOMEM, "out of memory");
    h->db = nq_dl_inapp_new(env->base, &env->cfg->postgres);
    if (!h->db) {
        free(h);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    h->queue = env->queue->name;
    h->prefix = env->cfg->inapp.channel_prefix;
    h->publish = env->publish;
    h->publish_ctx = env->publish_ctx;
    *ret_state = h;
    return 0;
}

static void inapp_free(void *state)
{
    struct inapp *h = state;

    if (!h)
        return;
    nq_dl_inapp_free(h->db);
    free(h);
}

/* userId or tenantId as text: a non-empty string, or an integer. */
static char *id_text(const json_t *v)
{
    char buf[32];

    if (json_is_string(v) && json_string_length(v) > 0)
        return strdup(json_string_value(v));
    if (!json_is_integer(v))
        return NULL;
    (void) snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return strdup(buf);
}

static bool is_text(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

static int inapp_validate(void *state, struct nq_job *job, struct nq_err *err)
{
    json_t *d = nq_job_data_borrow(job), *v;
    const char *type;

    (void) state;
    if (!d && job->data_valid)
        return nq_err_set(err, -ENOMEM, "out of memory");
    if (!json_is_object(d))
        return nq_err_set(err, -EINVAL, "data: must be an object");
    if (nq_field_table_check(d, &inapp_fields, err) < 0)
        return -EINVAL;
    v = json_object_get(d, "userId");
    if (!is_text(v) && !json_is_integer(v))
        return nq_err_set(err, -EINVAL, "data.userId: required, a string or an integer");
    v = json_object_get(d, "tenantId");
    if (v && !json_is_null(v) && !is_text(v) && !json_is_integer(v))
        return nq_err_set(err, -EINVAL, "data.tenantId: must be a string or an integer");
    if (!is_text(json_object_get(d, "title")))
        return nq_err_set(err, -EINVAL, "data.title: required, a non-empty string");
    if (!json_is_string(json_object_get(d, "body")))
        return nq_err_set(err, -EINVAL, "data.body: required, a string");
    v = json_object_get(d, "type");
    type = json_string_value(v);
    if (v && !(type && (strcmp(type, "info") == 0 || strcmp(type, "warning") == 0 ||
                        strcmp(type, "error") == 0 || strcmp(type, "success") == 0)))
        return nq_err_set(err, -EINVAL, "data.type: must be info, warning, error or success");
    v = json_object_get(d, "metadata");
    if (v && !json_is_null(v) && !json_is_object(v))
        return nq_err_set(err, -EINVAL, "data.metadata: must be an object");
    return 0;
}

static void done(struct inapp_call *ic, const struct nq_outcome *o)
{
    struct nq_handler_call *call = ic->call;

    call->handler_data = NULL;
    free(ic);
    nq_handler_call_done(call, o);
}

static void retry(struct inapp_call *ic, const char *what, const char *why)
{
    char reason[400];
    struct nq_outcome o = { .kind = NQ_OUTCOME_RETRY, .reason = reason };

    (void) snprintf(reason, sizeof(reason), "inapp: %s: %s", what, why);
    done(ic, &o);
}

static void complete(struct inapp_call *ic)
{
    char result[64];
    struct nq_outcome o = { .kind = NQ_OUTCOME_OK, .result_json = result };

    (void) snprintf(result, sizeof(result), "{\"id\":%s}", ic->id);
    done(ic, &o);
}

static void on_marked(void *userdata, int r, const char *id, const char *created_at, bool published,
                      const char *why)
{
    struct inapp_call *ic = userdata;

    (void) id;
    (void) created_at;
    (void) published;
    if (r < 0)
        retry(ic, "recording the publish", why);
    else
        complete(ic);
}

static void on_published(void *userdata, int r)
{
    struct inapp_call *ic = userdata;
    char why[64];

    ic->publishing = false;
    if (!ic->call) { /* cancelled meanwhile */
        free(ic);
        return;
    }
    if (r == -ECANCELED)
        return; /* the worker is going: it cancels the call next */
    if (r < 0 && r != -EALREADY) {
        (void) snprintf(why, sizeof(why), "%s", strerror(-r));
        retry(ic, "publishing to redis", why);
        return;
    }
    r = nq_dl_inapp_mark_published(ic->h->db, ic->id, on_marked, ic);
    if (r < 0)
        retry(ic, "recording the publish", strerror(-r));
}

/* The live message: the row as a web app shows it. NULL on OOM. */
static char *message_new(struct inapp_call *ic, const char *created_at, const char *user,
                         const char *tenant)
{
    json_t *d = nq_job_data_borrow(ic->call->job);
    json_t *type = json_object_get(d, "type"), *meta = json_object_get(d, "metadata");
    json_t *m =
        json_pack("{s:I, s:s, s:o, s:O, s:O, s:O, s:O, s:s}", "id",
                  (json_int_t) strtoll(ic->id, NULL, 10), "userId", user, "tenantId",
                  tenant ? json_string(tenant) : json_null(), "title", json_object_get(d, "title"),
                  "body", json_object_get(d, "body"), "type", type ? type : json_string("info"),
                  "metadata", meta ? meta : json_null(), "createdAt", created_at);
    char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;

    json_decref(m);
    return text;
}

static void on_inserted(void *userdata, int r, const char *id, const char *created_at,
                        bool published, const char *why)
{
    struct inapp_call *ic = userdata;
    json_t *d = nq_job_data_borrow(ic->call->job);
    char *user = id_text(json_object_get(d, "userId"));
    char *tenant = id_text(json_object_get(d, "tenantId"));
    char *channel = NULL, *msg = NULL, marker[48];

    if (r < 0) {
        retry(ic, "storing the notification", why);
        goto out;
    }
    (void) snprintf(ic->id, sizeof(ic->id), "%s", id);
    if (published) {
        complete(ic);
        goto out;
    }
    (void) snprintf(marker, sizeof(marker), "inapp:%s", ic->id);
    msg = message_new(ic, created_at, user ? user : "", tenant);
    if (!user || !msg ||
        asprintf(&channel, "%s:%s:%s", ic->h->prefix, tenant ? tenant : "_", user) < 0) {
        channel = NULL;
        retry(ic, "publishing", "out of memory");
        goto out;
    }
    r = ic->h->publish(ic->h->publish_ctx, marker, channel, msg, on_published, ic);
    if (r < 0)
        retry(ic, "publishing to redis", strerror(-r));
    else
        ic->publishing = true;
out:
    free(user);
    free(tenant);
    free(channel);
    free(msg);
}

static int inapp_start(void *state, struct nq_handler_call *call)
{
    struct inapp *h = state;
    json_t *d = nq_job_data_borrow(call->job);
    json_t *type = json_object_get(d, "type"), *meta = json_object_get(d, "metadata");
    struct inapp_call *ic = calloc(1, sizeof(*ic));
    char *user = id_text(json_object_get(d, "userId"));
    char *tenant = id_text(json_object_get(d, "tenantId"));
    char *metadata = json_is_object(meta) ? json_dumps(meta, JSON_COMPACT) : NULL;
    struct nq_dl_inapp_row row = {
        .queue = h->queue,
        .job_id = call->job->id,
        .tenant_id = tenant,
        .user_id = user,
        .title = json_string_value(json_object_get(d, "title")),
        .body = json_string_value(json_object_get(d, "body")),
        .type = type ? json_string_value(type) : "info",
        .metadata = metadata,
    };
    int r = -ENOMEM;

    if (ic && user && (!json_is_object(meta) || metadata)) {
        ic->h = h;
        ic->call = call;
        call->handler_data = ic;
        r = nq_dl_inapp_insert(h->db, &row, on_inserted, ic);
        if (r < 0)
            call->handler_data = NULL;
    }
    if (r < 0)
        free(ic);
    free(user);
    free(tenant);
    free(metadata);
    return r;
}

static void inapp_cancel(void *state, struct nq_handler_call *call)
{
    struct inapp *h = state;
    struct inapp_call *ic = call->handler_data;

    if (!ic)
        return;
    call->handler_data = NULL;
    nq_dl_inapp_cancel(h->db, ic);
    if (ic->publishing)
        ic->call = NULL; /* on_published frees it */
    else
        free(ic);
}

const struct nq_handler_ops nq_handler_inapp = {
    .kind = NQ_HANDLER_INAPP,
    .fields = &inapp_fields,
    .init = inapp_init,
    .free = inapp_free,
    .validate = inapp_validate,
    .start = inapp_start,
    .cancel = inapp_cancel,
};
