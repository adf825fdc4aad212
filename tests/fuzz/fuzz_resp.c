/* SPDX-License-Identifier: MIT */
/* The RESP reply reader with our arena (queue/replyarena.h) against hiredis's
 * own objects, fed in chunks whose size the first input byte picks: both
 * readers must agree on every reply (type, bytes, integers, shape) and on
 * where the stream turns bad. Each reply is then handed to the store's reply
 * parsers (work, counts, errors), which must refuse what they do not expect
 * without crashing, and the arena frees it. */
#include "config.h"

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/internal.h"
#include "queue/replyarena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const redisReply *a, const redisReply *b)
{
    if (a->type != b->type)
        abort();
    switch (a->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if (a->len != b->len || memcmp(a->str, b->str, a->len) != 0 || a->str[a->len] != '\0')
            abort();
        break;
    case REDIS_REPLY_INTEGER:
        if (a->integer != b->integer)
            abort();
        break;
    case REDIS_REPLY_ARRAY:
        if (a->elements != b->elements)
            abort();
        for (size_t i = 0; i < a->elements; i++)
            same(a->element[i], b->element[i]);
        break;
    default:
        break;
    }
}

static void parse(const redisReply *r)
{
    struct nq_work_result res;
    struct nq_counts counts;
    struct nq_job *job = NULL;

    if (nq_reply_work(r, &res) == 0)
        nq_work_result_done(&res);
    (void) nq_reply_counts(r, &counts);
    (void) nq_reply_is_noscript(r);
    (void) nq_reply_is_transient(r);
    if (nq_reply_job("1", 1, "tok", r, NULL, &job) == 0)
        nq_job_free(job);
}

/* theirs's next reply, which must be there and match a. */
static void compare_next(redisReader *theirs, const redisReply *a)
{
    void *b = NULL;

    if (redisReaderGetReply(theirs, &b) != REDIS_OK || !b)
        abort();
    same(a, b);
    freeReplyObject(b);
}

/* True when some "*N" announces more elements than the input has bytes.
 * Both readers allocate an array's element pointers when its header arrives
 * (hiredis 0.14 has no maxelements), so such an input only measures malloc:
 * Redis is trusted to send what it announces. */
static bool announces_too_much(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        unsigned long long n = 0;
        size_t k = i + 1;

        if (data[i] != '*')
            continue;
        while (k < size && data[k] >= '0' && data[k] <= '9' && n <= size)
            n = n * 10 + (data[k++] - '0');
        if (n > size)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || announces_too_much(data, size))
        return 0;
    /* Ours in chunks, theirs at once: chunking must not change a reply. */
    size_t chunk = data[0] ? data[0] : size;
    const char *in = (const char *) data + 1;
    size_t len = size - 1, fed = 0;
    redisReader *ours = redisReaderCreateWithFunctions(&nq_reply_arena_fns);
    redisReader *theirs = redisReaderCreate();
    void *a = NULL, *b = NULL;
    int ok = REDIS_OK;

    if (!ours || !theirs || redisReaderFeed(theirs, in, len) != REDIS_OK)
        abort();
    while (ok == REDIS_OK) {
        size_t n = len - fed < chunk ? len - fed : chunk;
        if (redisReaderFeed(ours, in + fed, n) != REDIS_OK)
            abort();
        fed += n;
        while ((ok = redisReaderGetReply(ours, &a)) == REDIS_OK && a) {
            compare_next(theirs, a);
            parse(a);
            nq_reply_arena_fns.freeObject(a);
            a = NULL;
        }
        if (fed == len)
            break;
    }
    /* Both stop at the same place: a protocol error, or an incomplete tail. */
    int ok_theirs = redisReaderGetReply(theirs, &b);
    if (ok_theirs != ok || b)
        abort();
    redisReaderFree(ours);
    redisReaderFree(theirs);
    return 0;
}
