/* SPDX-License-Identifier: MIT */
/*
 * Script arguments and replies; see internal.h.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/internal.h"

void nq_args_init(struct nq_args *a)
{
    *a = (struct nq_args){ 0 };
}

void nq_args_reset(struct nq_args *a)
{
    a->len = 0;
    a->n = 0;
    a->oom = 0;
}

void nq_args_done(struct nq_args *a)
{
    free(a->resp);
    free(a->buf);
    free(a->off);
    free(a->lens);
    free(a->argv);
    *a = (struct nq_args){ 0 };
}

/* Ensures room for need elements; returns the (maybe moved) array or NULL,
 * leaving p and *cap untouched on failure. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(p, n * elem);
    if (q)
        *cap = n;
    return q;
}

/* Appends the concatenation of two pieces as one argument. */
static void add2(struct nq_args *a, const char *s1, size_t l1, const char *s2, size_t l2)
{
    size_t len = l1 + l2;

    if (a->oom)
        return;
    char *buf = grow(a->buf, &a->cap, a->len + len + 1, 1);
    if (!buf)
        goto oom;
    a->buf = buf;
    if (a->n + 1 > a->cap_n) {
        size_t cap_off = a->cap_n, cap_lens = a->cap_n;
        size_t *off = grow(a->off, &cap_off, a->n + 1, sizeof(size_t));
        if (!off)
            goto oom;
        a->off = off;
        size_t *lens = grow(a->lens, &cap_lens, a->n + 1, sizeof(size_t));
        if (!lens)
            goto oom;
        a->lens = lens;
        a->cap_n = cap_lens;
    }
    memcpy(a->buf + a->len, s1, l1);
    if (l2)
        memcpy(a->buf + a->len + l1, s2, l2);
    a->buf[a->len + len] = '\0';
    a->off[a->n] = a->len;
    a->lens[a->n] = len;
    a->len += len + 1;
    a->n++;
    return;
oom:
    a->oom = 1;
}

void nq_args_reserve(struct nq_args *a, size_t n_args, size_t n_bytes)
{
    char *buf;
    size_t *off, *lens, cap_off = a->cap_n, cap_lens = a->cap_n;

    if (a->oom)
        return;
    if (!(buf = grow(a->buf, &a->cap, n_bytes, 1)))
        goto oom;
    a->buf = buf;
    if (!(off = grow(a->off, &cap_off, n_args, sizeof(size_t))))
        goto oom;
    a->off = off;
    if (!(lens = grow(a->lens, &cap_lens, n_args, sizeof(size_t))))
        goto oom;
    a->lens = lens;
    a->cap_n = cap_lens < cap_off ? cap_lens : cap_off;
    return;
oom:
    a->oom = 1;
}

void nq_args_add(struct nq_args *a, const char *s, size_t len)
{
    add2(a, s, len, NULL, 0);
}

void nq_args_adds(struct nq_args *a, const char *s)
{
    nq_args_add(a, s, strlen(s));
}

void nq_args_addu(struct nq_args *a, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);

    nq_args_add(a, buf, (size_t) n);
}

void nq_args_script(struct nq_args *a, enum nq_script s, const struct nq_keys *k)
{
    nq_args_adds(a, "EVALSHA");
    nq_args_adds(a, nq_script_sha(s));
    nq_args_adds(a, "1");
    add2(a, k->base, k->base_len, "meta", 4);
    nq_args_add(a, k->base, k->base_len);
}

/* Appends "<c><n>\r\n" at p; returns the end. */
static char *put_header(char *p, char c, size_t n)
{
    char digits[24];
    int k = 0;

    *p++ = c;
    do
        digits[k++] = (char) ('0' + n % 10);
    while ((n /= 10) > 0);
    while (k)
        *p++ = digits[--k];
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

int nq_args_resp(struct nq_args *a, const char **ret, size_t *ret_len)
{
    /* Per argument: "$", up to 20 digits, CRLF, the bytes, CRLF. */
    size_t need = 24 + a->len + a->n * 25;
    char *p;

    if (a->oom)
        return -ENOMEM;
    if (!(p = grow(a->resp, &a->cap_resp, need, 1)))
        return -ENOMEM;
    a->resp = p;
    p = put_header(p, '*', a->n);
    for (size_t i = 0; i < a->n; i++) {
        p = put_header(p, '$', a->lens[i]);
        memcpy(p, a->buf + a->off[i], a->lens[i]);
        p += a->lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    *ret = a->resp;
    *ret_len = (size_t) (p - a->resp);
    return 0;
}

int nq_args_argv(struct nq_args *a, const char ***ret_argv, const size_t **ret_lens)
{
    if (a->oom)
        return -ENOMEM;
    const char **v = realloc(a->argv, (a->n ? a->n : 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < a->n; i++)
        v[i] = a->buf + a->off[i];
    a->argv = v;
    *ret_argv = v;
    *ret_lens = a->lens;
    return 0;
}

static void add_finish(struct nq_args *a, const struct nq_finish *f)
{
    const struct nq_job *job = f->job;
    char kind = (char) f->kind;
    bool spends = f->kind != NQ_FINISH_RATE_LIMITED && f->kind != NQ_FINISH_RETURNED;

    nq_args_adds(a, job->id);
    nq_args_adds(a, job->token ? job->token : "");
    nq_args_add(a, &kind, 1);
    if (spends)
        nq_args_addu(a, (uint64_t) job->atm + 1);
    else
        nq_args_adds(a, "");
    nq_args_adds(a, job->deid ? job->deid : "");
    switch (f->kind) {
    case NQ_FINISH_COMPLETED:
        nq_args_adds(a, f->text ? f->text : "null");
        nq_args_adds(a, f->keep);
        nq_args_adds(a, "");
        nq_args_adds(a, "");
        break;
    case NQ_FINISH_FAILED:
    case NQ_FINISH_FAILED_EARLY:
        nq_args_adds(a, f->text ? f->text : "");
        nq_args_adds(a, f->stacktrace ? f->stacktrace : "[]");
        nq_args_adds(a, f->keep);
        nq_args_adds(a, job->defa ? "d" : "");
        break;
    case NQ_FINISH_RETRY_LATER:
    case NQ_FINISH_RETRY_NOW:
        nq_args_adds(a, f->text ? f->text : "");
        nq_args_adds(a, f->stacktrace ? f->stacktrace : "[]");
        if (f->kind == NQ_FINISH_RETRY_LATER)
            nq_args_addu(a, f->delay_ms);
        else
            nq_args_addu(a, job->priority);
        nq_args_adds(a, job->opts.lifo ? "l" : "");
        break;
    case NQ_FINISH_RATE_LIMITED:
    case NQ_FINISH_RETURNED:
        nq_args_adds(a, "");
        nq_args_adds(a, "");
        if (f->kind == NQ_FINISH_RATE_LIMITED)
            nq_args_addu(a, f->delay_ms);
        else
            nq_args_addu(a, job->priority);
        nq_args_adds(a, f->engage_limiter ? "1" : "");
        break;
    }
    if (f->resent)
        nq_args_adds(a, job->parent_key ? "pr" : "r");
    else
        nq_args_adds(a, job->parent_key ? "p" : "");
    nq_args_adds(a, f->progress ? f->progress : "");
}

void nq_args_work(struct nq_args *a, const struct nq_keys *k, const struct nq_work_args *w,
                  const struct nq_finish *fin, size_t n_fin)
{
    /* Grown by doubling from nothing, a call's arguments cost a dozen
     * reallocs of ever larger blocks (a tenth of a busy worker's CPU). */
    nq_args_reserve(a, NQ_WORK_ARGS + NQ_WORK_FINISH_ARGS * n_fin,
                    NQ_WORK_ARGS_BYTES + NQ_WORK_FINISH_BYTES * n_fin);
    nq_args_script(a, NQ_SCRIPT_WORK, k);
    nq_args_addu(a, w->now_ms);
    nq_args_addu(a, w->lock_duration_ms);
    nq_args_adds(a, w->token_prefix ? w->token_prefix : "");
    nq_args_addu(a, w->token_seq);
    nq_args_addu(a, w->fetch_max);
    nq_args_adds(a, w->worker_name ? w->worker_name : "");
    nq_args_addu(a, w->limiter_max);
    nq_args_addu(a, w->limiter_duration_ms);
    nq_args_addu(a, n_fin);
    for (size_t i = 0; i < n_fin; i++)
        add_finish(a, &fin[i]);
}

static int reply_int(const redisReply *r, long long *ret)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *ret = r->integer;
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING) {
        char *end = NULL;
        *ret = strtoll(r->str, &end, 10);
        return end && *end == '\0' ? 0 : -EPROTO;
    }
    return -EPROTO;
}

int nq_reply_job(const char *id, size_t id_len, const char *token, const redisReply *hash,
                 const struct nq_job *prev, struct nq_job **ret)
{
    if (hash->type != REDIS_REPLY_ARRAY || hash->elements % 2)
        return -EPROTO;
    struct nq_job *job = nq_job_new(id, id_len);
    if (!job)
        return -ENOMEM;
    int r = 0;
    if (token && !(job->token = strdup(token)))
        r = -ENOMEM;
    for (size_t i = 0; r == 0 && i < hash->elements; i += 2) {
        const redisReply *f = hash->element[i], *v = hash->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            r = -EPROTO;
            break;
        }
        r = nq_job_set_field(job, f->str, f->len, v->str, v->len);
    }
    if (r == 0)
        r = nq_job_decode_like(job, prev);
    if (r < 0) {
        nq_job_free(job);
        return r;
    }
    *ret = job;
    return 0;
}

static int parse_codes(const redisReply *r, struct nq_work_result *ret)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return -EPROTO;
    if (r->elements == 0)
        return 0;
    ret->codes = calloc(r->elements, sizeof(int));
    if (!ret->codes)
        return -ENOMEM;
    for (size_t i = 0; i < r->elements; i++) {
        long long v;
        if (reply_int(r->element[i], &v) < 0)
            return -EPROTO;
        ret->codes[i] = (int) v;
    }
    ret->n_codes = r->elements;
    return 0;
}

static int parse_jobs(const redisReply *r, struct nq_work_result *ret)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3)
        return -EPROTO;
    if (r->elements == 0)
        return 0;
    ret->jobs = calloc(r->elements / 3, sizeof(struct nq_job *));
    if (!ret->jobs)
        return -ENOMEM;
    for (size_t i = 0; i < r->elements; i += 3) {
        const redisReply *id = r->element[i], *tok = r->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || tok->type != REDIS_REPLY_STRING)
            return -EPROTO;
        int k =
            nq_reply_job(id->str, id->len, tok->str, r->element[i + 2],
                         ret->n_jobs ? ret->jobs[ret->n_jobs - 1] : NULL, &ret->jobs[ret->n_jobs]);
        if (k < 0)
            return k;
        ret->n_jobs++;
    }
    return 0;
}

static int parse_foreign(const redisReply *r, struct nq_work_result *ret)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return -EPROTO;
    if (r->elements == 0)
        return 0;
    ret->foreign = calloc(r->elements, sizeof(*ret->foreign));
    if (!ret->foreign)
        return -ENOMEM;
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            return -EPROTO;
        ret->foreign[i] = r->element[i]->str;
    }
    ret->n_foreign = r->elements / 2;
    return 0;
}

int nq_reply_work(const redisReply *r, struct nq_work_result *ret)
{
    struct nq_work_result res = { 0 };
    long long status, value;
    int k;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5)
        return -EPROTO;
    if ((k = parse_codes(r->element[0], &res)) < 0 || (k = parse_jobs(r->element[1], &res)) < 0 ||
        (k = reply_int(r->element[2], &status)) < 0 || (k = reply_int(r->element[3], &value)) < 0 ||
        (k = (status < 0 || status > NQ_FETCH_MAXED) ? -EPROTO : 0) < 0 ||
        (k = parse_foreign(r->element[4], &res)) < 0) {
        nq_work_result_done(&res);
        return k;
    }
    res.status = (enum nq_fetch_status) status;
    res.value_ms = value > 0 ? (uint64_t) value : 0;
    *ret = res;
    return 0;
}

int nq_reply_counts(const redisReply *r, struct nq_counts *ret)
{
    uint64_t v[9];

    if (r->type != REDIS_REPLY_ARRAY || r->elements != NQ_ELEMENTSOF(v))
        return -EPROTO;
    for (size_t i = 0; i < NQ_ELEMENTSOF(v); i++) {
        if (r->element[i]->type != REDIS_REPLY_INTEGER || r->element[i]->integer < 0)
            return -EPROTO;
        v[i] = (uint64_t) r->element[i]->integer;
    }
    *ret = (struct nq_counts){
        .waiting = v[0],
        .active = v[1],
        .prioritized = v[2],
        .delayed = v[3],
        .completed = v[4],
        .failed = v[5],
        .waiting_children = v[6],
        .paused_legacy = v[7],
        .paused = v[8] != 0,
    };
    return 0;
}

int nq_reply_is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

int nq_reply_is_transient(const redisReply *r)
{
    /* The error code is the reply's first word; BUSYKEY and BUSYGROUP are
     * real errors, so match whole words. */
    static const char *const codes[] = { "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN" };

    if (!r || r->type != REDIS_REPLY_ERROR)
        return 0;
    for (size_t i = 0; i < NQ_ELEMENTSOF(codes); i++) {
        size_t n = strlen(codes[i]);
        if (strncmp(r->str, codes[i], n) == 0 && (r->str[n] == ' ' || r->str[n] == '\0'))
            return 1;
    }
    return 0;
}

struct nq_job *nq_work_result_take_job(struct nq_work_result *r, size_t i)
{
    struct nq_job *job = r->jobs[i];

    r->jobs[i] = NULL;
    return job;
}

void nq_work_result_done(struct nq_work_result *r)
{
    for (size_t i = 0; i < r->n_jobs; i++)
        nq_job_free(r->jobs[i]);
    free(r->jobs);
    free(r->codes);
    free(r->foreign);
    *r = (struct nq_work_result){ 0 };
}
