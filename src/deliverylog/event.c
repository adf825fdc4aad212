/* SPDX-License-Identifier: MIT */
/*
 * An event as the one line of JSON that the spool keeps and
 * notifyq.record_events reads. The job's data gives tenantId, userId,
 * templateId and the recipient (`to`: a string, or a list of them joined
 * with ", "); the recipient is stored as given or, with recipients: hash, as
 * hex HMAC-SHA256 under recipient_key, so the log can still tell one
 * address's notifications apart without holding the address. The data
 * itself (message bodies) goes in only with store_bodies.
 */
#include "config.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "deliverylog/internal.h"

static const char *const status_names[] = {
    [NQ_DL_QUEUED] = "queued", [NQ_DL_ACTIVE] = "active", [NQ_DL_RETRYING] = "retrying",
    [NQ_DL_SENT] = "sent",     [NQ_DL_FAILED] = "failed",
};

static const char *const outcome_names[] = {
    [NQ_DL_OUTCOME_NONE] = NULL,
    [NQ_DL_OUTCOME_SENT] = "sent",
    [NQ_DL_OUTCOME_RETRYABLE] = "retryable",
    [NQ_DL_OUTCOME_PERMANENT] = "permanent",
    [NQ_DL_OUTCOME_INVALID] = "invalid",
};

static int set_str(json_t *o, const char *key, const char *value)
{
    return value ? json_object_set_new(o, key, json_string(value)) : 0;
}

static int set_ms(json_t *o, const char *key, uint64_t ms)
{
    return ms ? json_object_set_new(o, key, json_integer((json_int_t) ms)) : 0;
}

/* The data's `to` as text: a string, or strings joined; NULL otherwise. */
static char *recipient_of(json_t *data)
{
    json_t *to = json_object_get(data, "to"), *v;
    size_t i, len = 0, at = 0;
    char *s;

    if (json_is_string(to))
        return strdup(json_string_value(to));
    if (!json_is_array(to) || json_array_size(to) == 0)
        return NULL;
    json_array_foreach (to, i, v)
        len += json_is_string(v) ? json_string_length(v) + 2 : 0;
    s = malloc(len + 1);
    if (!s)
        return NULL;
    json_array_foreach (to, i, v) {
        size_t n = json_is_string(v) ? json_string_length(v) : 0;

        if (!json_is_string(v))
            continue;
        if (at) {
            memcpy(s + at, ", ", 2);
            at += 2;
        }
        memcpy(s + at, json_string_value(v), n);
        at += n;
    }
    s[at] = '\0';
    return s;
}

/* Hex HMAC-SHA256 of text under key, in out (65 bytes). */
static void keyed_hash(const char *key, const char *text, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (!HMAC(EVP_sha256(), key, (int) strlen(key), (const unsigned char *) text, strlen(text), mac,
              &n))
        n = 0;
    for (size_t i = 0; i < n && i < 32; i++)
        (void) snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[2 * (size_t) (n < 32 ? n : 32)] = '\0';
}

static int set_recipient(const struct nq_postgres_cfg *pg, json_t *o, json_t *data)
{
    char *rcpt = recipient_of(data);
    char hex[65];
    int r;

    if (!rcpt)
        return 0;
    if (pg->recipients == NQ_RECIPIENTS_HASH) {
        keyed_hash(pg->recipient_key, rcpt, hex);
        r = set_str(o, "recipient", hex);
    } else {
        r = set_str(o, "recipient", rcpt);
    }
    free(rcpt);
    return r;
}

static int set_data_fields(const struct nq_postgres_cfg *pg, json_t *o, json_t *data)
{
    static const char *const keys[][2] = {
        { "tenantId", "tenant_id" },
        { "userId", "user_id" },
        { "templateId", "template" },
    };
    int r = 0;

    if (!json_is_object(data))
        return 0;
    for (size_t i = 0; i < NQ_ELEMENTSOF(keys); i++) {
        json_t *v = json_object_get(data, keys[i][0]);

        if (json_is_string(v))
            r |= set_str(o, keys[i][1], json_string_value(v));
        else if (json_is_integer(v))
            r |= json_object_set_new(o, keys[i][1],
                                     json_sprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v)));
    }
    r |= set_recipient(pg, o, data);
    if (pg->store_bodies)
        r |= json_object_set(o, "body", data);
    return r;
}

char *dl_event_line(const struct nq_postgres_cfg *pg, const struct nq_dl_event *ev)
{
    json_t *o = json_object();
    char *line = NULL;
    int r;

    if (!o)
        return NULL;
    r = set_str(o, "job_id", ev->job_id);
    r |= json_object_set_new(o, "attempt", json_integer(ev->attempt));
    r |= set_str(o, "status", status_names[ev->status]);
    r |= json_object_set_new(o, "at", json_integer((json_int_t) ev->at_ms));
    r |= set_ms(o, "created", ev->created_ms);
    r |= set_data_fields(pg, o, ev->data);
    r |= set_str(o, "provider", ev->provider);
    r |= set_str(o, "provider_message_id", ev->message_id);
    r |= set_str(o, "error", ev->error);
    r |= set_ms(o, "started", ev->started_ms);
    if (ev->outcome != NQ_DL_OUTCOME_NONE)
        r |= json_object_set_new(o, "duration_ms", json_integer((json_int_t) ev->duration_ms));
    r |= set_str(o, "outcome", outcome_names[ev->outcome]);
    if (r == 0)
        line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return line;
}
