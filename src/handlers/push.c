/* SPDX-License-Identifier: MIT */
/*
 * The push handler: job data to a push notification, sent through the
 * queue's provider (see channel.h for what all channel handlers share).
 *
 * Data keys:
 *   token     the device token (FCM registration token, APNs device token),
 *             or `tokens`, a list of 1..500 of them; one of the two is required
 *             (notifyq keeps no user -> device registry: a job with only a
 *             userId cannot be delivered)
 *   platform  optional: "android", "ios" or "web"
 *   title     optional
 *   body      optional; `message` is its alias (the seeds' push jobs)
 *   data      optional object of custom key/values; numbers and booleans are
 *             sent as their JSON text, since FCM takes strings only
 *   android, apns, webpush
 *             optional objects, FCM's per-platform blocks, passed through
 *             as they are (the apns provider reads apns.headers and
 *             apns.payload)
 * At least one of title, body and data must be given.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "handlers/channel.h"

static const struct nq_field push_rows[] = {
    { "token", NQ_FIELD_READ, NULL },    { "tokens", NQ_FIELD_READ, NULL },
    { "platform", NQ_FIELD_READ, NULL }, { "title", NQ_FIELD_READ, NULL },
    { "body", NQ_FIELD_READ, NULL },     { "message", NQ_FIELD_READ, NULL },
    { "data", NQ_FIELD_READ, NULL },     { "android", NQ_FIELD_READ, NULL },
    { "apns", NQ_FIELD_READ, NULL },     { "webpush", NQ_FIELD_READ, NULL },
    NQ_CHANNEL_FIELDS("title and body"),
};

const struct nq_field_table nq_push_fields = { "push", push_rows, NQ_ELEMENTSOF(push_rows), false };

static const char *token_check(const char *t)
{
    if (!*t)
        return "must not be empty";
    if (strlen(t) > NQ_PUSH_TOKEN_MAX)
        return "longer than 4096 bytes";
    for (; *t; t++)
        if ((unsigned char) *t <= 0x20 || (unsigned char) *t == 0x7f)
            return "must not contain spaces or control characters";
    return NULL;
}

static int token_of(const json_t *v, const char *field, char **ret, struct nq_err *err)
{
    const char *why;

    if (!json_is_string(v))
        return nq_err_set(err, -EINVAL, "data.%s: must be a string", field);
    if ((why = token_check(json_string_value(v))))
        return nq_err_set(err, -EINVAL, "data.%s: %s", field, why);
    *ret = strdup(json_string_value(v));
    return *ret ? 0 : nq_err_set(err, -ENOMEM, "out of memory");
}

static int tokens_field(const json_t *data, struct nq_push *p, struct nq_err *err)
{
    json_t *one = json_object_get(data, "token"), *many = json_object_get(data, "tokens"), *v;
    char field[32];
    size_t i;
    int r;

    one = json_is_null(one) ? NULL : one;
    many = json_is_null(many) ? NULL : many;
    if (one && many)
        return nq_err_set(err, -EINVAL, "data.tokens: give only one of data.token and data.tokens");
    if (!one && !many)
        return nq_err_set(err, -EINVAL, "data.token: required (or data.tokens)");
    if (many && !json_is_array(many))
        return nq_err_set(err, -EINVAL, "data.tokens: must be a list of device tokens");
    if (many && (json_array_size(many) == 0 || json_array_size(many) > NQ_PUSH_TOKENS_MAX))
        return nq_err_set(err, -EINVAL, "data.tokens: must hold 1 to %d device tokens",
                          NQ_PUSH_TOKENS_MAX);
    p->tokens = calloc(many ? json_array_size(many) : 1, sizeof(*p->tokens));
    if (!p->tokens)
        return nq_err_set(err, -ENOMEM, "out of memory");
    if (one) {
        r = token_of(one, "token", &p->tokens[0], err);
        p->n_tokens = r < 0 ? 0 : 1;
        return r;
    }
    json_array_foreach (many, i, v) {
        snprintf(field, sizeof(field), "tokens[%zu]", i);
        r = token_of(v, field, &p->tokens[i], err);
        if (r < 0)
            return r;
        p->n_tokens++;
    }
    return 0;
}

static int platform_field(const json_t *data, struct nq_push *p, struct nq_err *err)
{
    static const char *const keys[] = { "platform", NULL };
    int r;

    r = nq_field_string(data, keys, false, &p->platform, err);
    if (r < 0 || !p->platform)
        return r;
    if (strcmp(p->platform, "android") != 0 && strcmp(p->platform, "ios") != 0 &&
        strcmp(p->platform, "web") != 0)
        return nq_err_set(err, -EINVAL, "data.platform: must be android, ios or web");
    return 0;
}

/* A value of the data map as the string FCM wants. */
static char *data_value(const json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_number(v) || json_is_boolean(v))
        return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    return NULL;
}

static int data_field(const json_t *data, struct nq_push *p, struct nq_err *err)
{
    json_t *d = json_object_get(data, "data"), *v;
    const char *key;

    if (!d || json_is_null(d))
        return 0;
    if (!json_is_object(d))
        return nq_err_set(err, -EINVAL, "data.data: must be an object");
    p->data = calloc(json_object_size(d) + 1, sizeof(*p->data));
    if (!p->data)
        return nq_err_set(err, -ENOMEM, "out of memory");
    json_object_foreach (d, key, v) {
        struct nq_kv *kv = &p->data[p->n_data];

        if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v))
            return nq_err_set(err, -EINVAL,
                              "data.data.%.64s: must be a string, number or "
                              "boolean",
                              key);
        p->n_data++;
        kv->name = strdup(key);
        kv->value = data_value(v);
        if (!kv->name || !kv->value)
            return nq_err_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

/* A per-platform block: an object, kept as compact JSON text. */
static int block_field(const json_t *data, const char *key, char **ret, struct nq_err *err)
{
    json_t *b = json_object_get(data, key);

    if (!b || json_is_null(b))
        return 0;
    if (!json_is_object(b))
        return nq_err_set(err, -EINVAL, "data.%s: must be an object", key);
    *ret = json_dumps(b, JSON_COMPACT);
    return *ret ? 0 : nq_err_set(err, -ENOMEM, "out of memory");
}

static int push_fields(const json_t *data, struct nq_push *p, struct nq_err *err)
{
    static const char *const title_keys[] = { "title", NULL };
    static const char *const body_keys[] = { "body", "message", NULL };
    int r;

    r = tokens_field(data, p, err);
    if (r >= 0)
        r = platform_field(data, p, err);
    if (r >= 0)
        r = nq_field_string(data, title_keys, false, &p->title, err);
    if (r >= 0)
        r = nq_field_string(data, body_keys, false, &p->body, err);
    if (r >= 0)
        r = data_field(data, p, err);
    if (r >= 0)
        r = block_field(data, "android", &p->android, err);
    if (r >= 0)
        r = block_field(data, "apns", &p->apns, err);
    if (r >= 0)
        r = block_field(data, "webpush", &p->webpush, err);
    if (r < 0)
        return r;
    if (!p->title && !p->body && p->n_data == 0)
        return nq_err_set(err, -EINVAL, "data.body: required (or data.title, or data.data)");
    return 0;
}

int nq_compose_push(const json_t *data, struct nq_msg *ret, struct nq_err *err)
{
    struct nq_msg m NQ_CLEANUP(nq_msg_done);
    int r;

    nq_msg_init(&m, NQ_MSG_PUSH);
    r = nq_compose_common(data, &nq_push_fields, &m, err);
    if (r >= 0)
        r = push_fields(data, &m.push, err);
    if (r < 0)
        return r;
    *ret = m;
    nq_msg_init(&m, NQ_MSG_PUSH);
    return 0;
}

static int push_init(const struct nq_handler_env *env, void **ret_state, struct nq_err *err)
{
    return nq_channel_handler_init(env, NQ_MSG_PUSH, nq_compose_push, ret_state, err);
}

const struct nq_handler_ops nq_handler_push = {
    .kind = NQ_HANDLER_PUSH,
    .fields = &nq_push_fields,
    .init = push_init,
    .free = nq_channel_handler_free,
    .validate = nq_channel_handler_validate,
    .start = nq_channel_handler_start,
    .cancel = nq_channel_handler_cancel,
};
