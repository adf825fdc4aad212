/* SPDX-License-Identifier: MIT */
/*
 * Key names of a BullMQ queue; see keys.h.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "queue/keys.h"

int nq_keys_init(struct nq_keys *k, const char *prefix, const char *queue)
{
    if (!prefix || !*prefix || !queue || !*queue || strchr(queue, ':'))
        return -EINVAL;

    nq_autofree char *p = strdup(prefix);
    nq_autofree char *q = strdup(queue);
    nq_autofree char *b = NULL;
    if (!p || !q || asprintf(&b, "%s:%s:", prefix, queue) < 0) {
        b = NULL;
        return -ENOMEM;
    }
    k->base_len = strlen(b);
    k->prefix = NQ_TAKE_PTR(p);
    k->queue = NQ_TAKE_PTR(q);
    k->base = NQ_TAKE_PTR(b);
    return 0;
}

void nq_keys_done(struct nq_keys *k)
{
    free(k->prefix);
    free(k->queue);
    free(k->base);
    *k = (struct nq_keys){ 0 };
}

char *nq_keys_queue_key(const struct nq_keys *k, const char *suffix)
{
    char *s = NULL;

    if (asprintf(&s, "%s%s", k->base, suffix) < 0)
        return NULL;
    return s;
}

char *nq_keys_job_key(const struct nq_keys *k, const char *job_id, const char *sub)
{
    char *s = NULL;
    int r =
        sub ? asprintf(&s, "%s%s:%s", k->base, job_id, sub) : asprintf(&s, "%s%s", k->base, job_id);

    return r < 0 ? NULL : s;
}

const char *nq_keys_job_id_borrow(const struct nq_keys *k, const char *key)
{
    if (strncmp(key, k->base, k->base_len) != 0 || key[k->base_len] == '\0')
        return NULL;
    return key + k->base_len;
}

static char *base64_new(const char *in)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = (const unsigned char *) in;
    size_t n = strlen(in);
    char *out = malloc((n + 2) / 3 * 4 + 1);
    char *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned) s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned) s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        *o++ = tab[(v >> 18) & 63];
        *o++ = tab[(v >> 12) & 63];
        *o++ = (char) (i + 1 < n ? tab[(v >> 6) & 63] : '=');
        *o++ = (char) (i + 2 < n ? tab[v & 63] : '=');
    }
    *o = '\0';
    return out;
}

char *nq_keys_worker_client_name(const struct nq_keys *k, const char *worker_name)
{
    nq_autofree char *b64 = base64_new(k->queue);
    char *s = NULL;
    int r;

    if (!b64)
        return NULL;
    if (worker_name && *worker_name)
        r = asprintf(&s, "%s:%s:w:%s", k->prefix, b64, worker_name);
    else
        r = asprintf(&s, "%s:%s", k->prefix, b64);
    return r < 0 ? NULL : s;
}
