/* SPDX-License-Identifier: MIT */
/*
 * The handler registry and the thin layer the worker calls through: one
 * handler instance per worker process (see handler.h for the contract).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handler.h"

extern const struct nq_handler_ops nq_handler_noop;
extern const struct nq_handler_ops nq_handler_exec; /* exec.c, sources in exec.mk */
extern const struct nq_handler_ops nq_handler_webhook;
extern const struct nq_handler_ops nq_handler_broadcast; /* broadcast.c, in broadcast.mk */
extern const struct nq_handler_ops nq_handler_inapp;     /* inapp.c, sources in inapp.mk */

/* ---- channel handlers: one extern line and one table entry each -------- */
/* (email, sms, push: src/handlers/<name>.c, sources in channels.mk) */
extern const struct nq_handler_ops nq_handler_email;
extern const struct nq_handler_ops nq_handler_sms;
extern const struct nq_handler_ops nq_handler_push;

static const struct nq_handler_ops *const registry[] = {
    &nq_handler_noop,
    &nq_handler_exec,
    &nq_handler_webhook,
    &nq_handler_broadcast,
    &nq_handler_inapp,
    /* ---- channel handlers go here ---- */
    &nq_handler_email,
    &nq_handler_sms,
    &nq_handler_push,
};

struct nq_handler {
    const struct nq_handler_ops *ops;
    void *state;
};

const struct nq_handler_ops *nq_handler_ops_find(enum nq_handler_kind kind)
{
    for (size_t i = 0; i < NQ_ELEMENTSOF(registry); i++)
        if (registry[i]->kind == kind)
            return registry[i];
    return NULL;
}

const struct nq_field_table *nq_handler_fields(enum nq_handler_kind kind)
{
    const struct nq_handler_ops *ops = nq_handler_ops_find(kind);

    return ops ? ops->fields : NULL;
}

const struct nq_field *nq_field_find(const struct nq_field_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->rows[i].name, name) == 0)
            return &t->rows[i];
    return NULL;
}

int nq_field_table_check(const json_t *data, const struct nq_field_table *t, struct nq_err *err)
{
    const char *key;
    json_t *v;

    json_object_foreach ((json_t *) data, key, v) {
        const struct nq_field *f = nq_field_find(t, key);

        if (!f && !t->open)
            return nq_err_set(err, -EINVAL,
                              "data.%.64s: not a field of %s jobs (see notifyq-jobs(7))", key,
                              t->handler);
        /* null is "not given", as for every other field */
        if (f && f->use == NQ_FIELD_REFUSED && !json_is_null(v))
            return nq_err_set(err, -EINVAL, "data.%s: %s", key, f->why);
    }
    return 0;
}

int nq_handler_new(const struct nq_handler_env *env, struct nq_handler **ret, struct nq_err *err)
{
    const struct nq_handler_ops *ops = nq_handler_ops_find(env->queue->handler);
    struct nq_handler *h;
    int r;

    if (!ops)
        return nq_err_set(err, -EOPNOTSUPP, "handler %s not implemented yet",
                          nq_handler_name(env->queue->handler));
    h = calloc(1, sizeof(*h));
    if (!h)
        return nq_err_set(err, -ENOMEM, "out of memory");
    h->ops = ops;
    if (ops->init) {
        r = ops->init(env, &h->state, err);
        if (r < 0) {
            free(h);
            return r;
        }
    }
    *ret = h;
    return 0;
}

struct nq_handler *nq_handler_free(struct nq_handler *h)
{
    if (!h)
        return NULL;
    if (h->ops->free)
        h->ops->free(h->state);
    free(h);
    return NULL;
}

int nq_handler_validate(struct nq_handler *h, struct nq_job *job, struct nq_err *err)
{
    return h->ops->validate ? h->ops->validate(h->state, job, err) : 0;
}

int nq_handler_start(struct nq_handler *h, struct nq_handler_call *call)
{
    return h->ops->start(h->state, call);
}

void nq_handler_cancel(struct nq_handler *h, struct nq_handler_call *call)
{
    if (h->ops->cancel)
        h->ops->cancel(h->state, call);
}

void nq_handler_call_done(struct nq_handler_call *call, const struct nq_outcome *o)
{
    call->done(call, o);
}
