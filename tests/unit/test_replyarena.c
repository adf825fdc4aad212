/* SPDX-License-Identifier: MIT */
/* Reply objects in one arena per reply: the trees equal hiredis's own, fed
 * whole or a byte at a time, and nothing leaks (valgrind), also when the
 * reader is freed on a half-read reply or on a protocol error. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "queue/replyarena.h"

static void assert_same(const redisReply *a, const redisReply *b)
{
    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case REDIS_REPLY_INTEGER:
        assert_int_equal(a->integer, b->integer);
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        assert_int_equal(a->len, b->len);
        assert_memory_equal(a->str, b->str, a->len + 1);
        break;
    case REDIS_REPLY_ARRAY:
        assert_int_equal(a->elements, b->elements);
        for (size_t i = 0; i < a->elements; i++)
            assert_same(a->element[i], b->element[i]);
        break;
    }
}

/* Parses text with both object sets, in pieces of step bytes. */
static void parse_both(const char *text, size_t len, size_t step)
{
    redisReader *ours = redisReaderCreateWithFunctions(&nq_reply_arena_fns);
    redisReader *theirs = redisReaderCreate();
    void *a = NULL, *b = NULL;

    assert_non_null(ours);
    assert_non_null(theirs);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;

        assert_int_equal(redisReaderFeed(ours, text + off, n), REDIS_OK);
        if (!a)
            assert_int_equal(redisReaderGetReply(ours, &a), REDIS_OK);
    }
    assert_int_equal(redisReaderFeed(theirs, text, len), REDIS_OK);
    assert_int_equal(redisReaderGetReply(theirs, &b), REDIS_OK);
    assert_non_null(a);
    assert_non_null(b);
    assert_same(a, b);
    nq_reply_arena_fns.freeObject(a);
    freeReplyObject(b);
    redisReaderFree(ours);
    redisReaderFree(theirs);
}

static char *work_reply_new(size_t jobs, size_t *ret_len)
{
    size_t cap = 256 + jobs * 1024, len = 0;
    char *buf = malloc(cap);
    char big[5000];

    assert_non_null(buf);
    memset(big, 'x', sizeof(big));
    len += (size_t) sprintf(buf + len, "*4\r\n*3\r\n:0\r\n:-2\r\n$-1\r\n*%zu\r\n", jobs * 3);
    for (size_t i = 0; i < jobs; i++) {
        len +=
            (size_t) sprintf(buf + len,
                             "$%zu\r\n%zu\r\n$6\r\nw1:%03zu\r\n*6\r\n$4\r\nname\r\n$5\r\nemail\r\n"
                             "$4\r\ndata\r\n$%zu\r\n",
                             i < 10    ? (size_t) 1
                             : i < 100 ? 2
                                       : 3,
                             i, i % 1000, i % 7 ? (size_t) 30 : sizeof(big));
        if (i % 7) {
            memcpy(buf + len, "{\"to\":\"a@b.c\",\"x\":\"\\r\\n\\u0000\"}", 30);
            len += 30;
        } else {
            if (len + sizeof(big) + 64 > cap) {
                cap = (len + sizeof(big) + 64) * 2;
                buf = realloc(buf, cap);
                assert_non_null(buf);
            }
            memcpy(buf + len, big, sizeof(big));
            len += sizeof(big);
        }
        len += (size_t) sprintf(buf + len, "\r\n$3\r\nats\r\n$1\r\n1\r\n");
        if (len + 2048 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    len += (size_t) sprintf(buf + len, ":1\r\n*0\r\n");
    *ret_len = len;
    return buf;
}

static void work_reply_equals_hiredis(void **state)
{
    (void) state;
    size_t len;
    char *text = work_reply_new(120, &len);

    parse_both(text, len, len);
    parse_both(text, len, 1);
    parse_both(text, len, 777);
    free(text);
}

static void root_scalars(void **state)
{
    (void) state;
    const char *cases[] = { "+OK\r\n",    "-NOSCRIPT No matching script\r\n",
                            ":42\r\n",    "$-1\r\n",
                            "*-1\r\n",    "*0\r\n",
                            "$0\r\n\r\n", "$3\r\na\0b\r\n" };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        parse_both(cases[i], i == 7 ? 9 : strlen(cases[i]), 1);
}

static void freed_half_read_or_broken(void **state)
{
    (void) state;
    redisReader *r = redisReaderCreateWithFunctions(&nq_reply_arena_fns);
    void *reply = NULL;

    assert_int_equal(redisReaderFeed(r, "*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n", 21), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_OK);
    assert_null(reply); /* incomplete: the reader holds the partial tree */
    redisReaderFree(r);

    r = redisReaderCreateWithFunctions(&nq_reply_arena_fns);
    assert_int_equal(redisReaderFeed(r, "*2\r\n$3\r\nabc\r\n!bad\r\n", 19), REDIS_OK);
    assert_int_equal(redisReaderGetReply(r, &reply), REDIS_ERR);
    redisReaderFree(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(work_reply_equals_hiredis),
        cmocka_unit_test(root_scalars),
        cmocka_unit_test(freed_half_read_or_broken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
