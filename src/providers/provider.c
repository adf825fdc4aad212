/* SPDX-License-Identifier: MIT */
/*
 * The provider registry, the dispatch through each provider's ops, and the
 * message structs' lifetime (see provider.h for the contract).
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "providers/apns.h"
#include "providers/emailapi.h"
#include "providers/fcm.h"
#include "providers/file.h"
#include "providers/provider.h"
#include "providers/sms.h"
#include "providers/smtp.h"

static const struct nq_provider_ops *const registry[] = {
    &nq_provider_file,
    &nq_provider_smtp,
    /* sms */
    &nq_provider_twilio,
    &nq_provider_vonage,
    &nq_provider_sms_http,
    /* email APIs */
    &nq_provider_sendgrid,
    &nq_provider_resend,
    &nq_provider_mailgun,
    &nq_provider_postmark,
    &nq_provider_ses,
    &nq_provider_fcm,
    &nq_provider_apns,
};

static void mailbox_done(struct nq_mailbox *mb)
{
    free(mb->name);
    free(mb->addr);
}

static void mailboxes_free(struct nq_mailbox *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mailbox_done(&v[i]);
    free(v);
}

static void kvs_free(struct nq_kv *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static void email_done(struct nq_email *e)
{
    mailbox_done(&e->from);
    mailboxes_free(e->to, e->n_to);
    mailboxes_free(e->cc, e->n_cc);
    mailboxes_free(e->bcc, e->n_bcc);
    mailbox_done(&e->reply_to);
    free(e->subject);
    free(e->text);
    free(e->html);
    kvs_free(e->headers, e->n_headers);
}

static void sms_done(struct nq_sms *s)
{
    free(s->from);
    free(s->to);
    free(s->body);
}

static void push_done(struct nq_push *p)
{
    for (size_t i = 0; i < p->n_tokens; i++)
        free(p->tokens[i]);
    free(p->tokens);
    free(p->platform);
    free(p->title);
    free(p->body);
    kvs_free(p->data, p->n_data);
    free(p->android);
    free(p->apns);
    free(p->webpush);
}

void nq_msg_init(struct nq_msg *m, enum nq_msg_type type)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
}

void nq_msg_done(struct nq_msg *m)
{
    switch (m->type) {
    case NQ_MSG_EMAIL:
        email_done(&m->email);
        break;
    case NQ_MSG_SMS:
        sms_done(&m->sms);
        break;
    case NQ_MSG_PUSH:
        push_done(&m->push);
        break;
    }
    free(m->tenant_id);
    free(m->notification_id);
    nq_msg_init(m, m->type);
}

const char *nq_msg_type_name(enum nq_msg_type type)
{
    switch (type) {
    case NQ_MSG_EMAIL:
        return "email";
    case NQ_MSG_SMS:
        return "sms";
    case NQ_MSG_PUSH:
        return "push";
    }
    return "?";
}

static const struct nq_provider_ops *ops_find(enum nq_provider_kind kind)
{
    for (size_t i = 0; i < NQ_ELEMENTSOF(registry); i++)
        if (registry[i]->kind == kind)
            return registry[i];
    return NULL;
}

int nq_provider_new(const struct nq_provider_env *env, struct nq_provider **ret, struct nq_err *err)
{
    const struct nq_provider_ops *ops = ops_find(env->cfg->kind);
    struct nq_provider *p = NULL;
    int r;

    if (!ops)
        return nq_err_set(err, -EOPNOTSUPP, "queue %s: no provider configured", env->queue);
    if (!(ops->types & (1u << env->type)))
        return nq_err_set(err, -EINVAL, "provider %s: cannot send %s messages", ops->name,
                          nq_msg_type_name(env->type));
    r = ops->make(env, &p, err);
    if (r < 0)
        return r;
    *ret = p;
    return 0;
}

struct nq_provider *nq_provider_free(struct nq_provider *p)
{
    if (p)
        p->ops->free(p);
    return NULL;
}

const char *nq_provider_name(const struct nq_provider *p)
{
    return p->ops->name;
}

int nq_provider_send(struct nq_provider *p, const struct nq_msg *msg, const struct nq_delivery *d,
                     nq_send_done_fn done, void *userdata, struct nq_send **ret_send)
{
    return p->ops->send(p, msg, d, done, userdata, ret_send);
}

void nq_provider_cancel(struct nq_provider *p, struct nq_send *s)
{
    if (s)
        p->ops->cancel(p, s);
}

static bool stem_safe(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           c == '-';
}

static size_t stem_len(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += stem_safe((unsigned char) *s) ? 1 : 3;
    return n;
}

/* Appends s encoded at buf + n, stopping before the first byte that would
 * pass limit; returns the new length. */
static size_t stem_put(const char *s, char *buf, size_t n, size_t limit)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;

        if (stem_safe(c) && n + 1 <= limit) {
            buf[n++] = (char) c;
        } else if (!stem_safe(c) && n + 3 <= limit) {
            snprintf(buf + n, 4, "%%%02X", c);
            n += 3;
        } else {
            break;
        }
    }
    return n;
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char) s[i]) * 0x100000001b3ULL;
    return h;
}

int nq_delivery_stem(const struct nq_delivery *d, char *buf, size_t size)
{
    const char *id = *d->job_id ? d->job_id : NULL;
    char ts[24];
    size_t ts_len = (size_t) snprintf(ts, sizeof(ts), ".%llu", (unsigned long long) d->timestamp);
    size_t room = NQ_DELIVERY_STEM_MAX - ts_len;
    size_t total = stem_len(d->queue) + 1 + (id ? stem_len(id) : 3);
    /* A cut head keeps 17 bytes for "~" and the hash. */
    size_t limit = total <= room ? total : room - 17;
    size_t n;
    uint64_t h;

    if (size < NQ_DELIVERY_STEM_MAX + 1)
        return -ENOBUFS;
    n = stem_put(d->queue, buf, 0, limit);
    if (n < limit)
        buf[n++] = '.';
    n = stem_put(id ? id : "", buf, n, limit);
    if (!id && n + 3 <= limit) {
        strcpy(buf + n, "%00"); /* n + 3 <= limit < size */
        n += 3;
    }
    if (total > room) {
        h = fnv1a(0xcbf29ce484222325ULL, d->queue, strlen(d->queue) + 1);
        h = fnv1a(h, d->job_id, strlen(d->job_id));
        n += (size_t) snprintf(buf + n, size - n, "~%016llx", (unsigned long long) h);
    }
    memcpy(buf + n, ts, ts_len + 1);
    return (int) (n + ts_len);
}

/* RFC 5322 dot-atom made of letters, digits, '-' and '.': what a host name
 * usually is, and all we put after the '@'. */
static bool is_host_atom(const char *s)
{
    if (!*s || *s == '.' || s[strlen(s) - 1] == '.' || strstr(s, ".."))
        return false;
    for (; *s; s++)
        if (!stem_safe((unsigned char) *s) && *s != '.')
            return false;
    return true;
}

int nq_delivery_message_id(const struct nq_delivery *d, char *buf, size_t size)
{
    char stem[NQ_DELIVERY_STEM_MAX + 1];
    char host[256] = "";
    int r, n;

    r = nq_delivery_stem(d, stem, sizeof(stem));
    if (r < 0)
        return r;
    if (gethostname(host, sizeof(host) - 1) < 0 || !is_host_atom(host))
        strcpy(host, "notifyq");
    n = snprintf(buf, size, "<%s@%s>", stem, host);
    return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
}
