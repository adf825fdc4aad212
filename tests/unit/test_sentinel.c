/* SPDX-License-Identifier: MIT */
/* Sentinel's answers: the master's address from SENTINEL
 * get-master-addr-by-name, ROLE's verdict, and the HOST:PORT of a node. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "queue/internal.h"

static redisReply *parse(const char *text)
{
    redisReader *rd = redisReaderCreate();
    void *rep = NULL;

    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
    assert_non_null(rep);
    redisReaderFree(rd);
    return rep;
}

static void test_master_addr(void **state)
{
    redisReply *r = parse("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
    char *host = NULL;
    uint16_t port = 0;

    (void) state;
    assert_int_equal(nq_reply_master_addr(r, &host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6380);
    free(host);
    freeReplyObject(r);
}

static void test_master_addr_refused(void **state)
{
    static const struct {
        const char *text;
        int r;
    } cases[] = {
        { "*-1\r\n", -ENOENT }, /* unknown master name */
        { "$-1\r\n", -ENOENT },
        { "-ERR unknown\r\n", -EPROTO },
        { "*1\r\n$9\r\n127.0.0.1\r\n", -EPROTO },
        { "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n", -EPROTO },
        { "*2\r\n$9\r\n127.0.0.1\r\n$2\r\n6x\r\n", -EPROTO },
        { "*2\r\n$0\r\n\r\n$4\r\n6379\r\n", -EPROTO },
        { "*2\r\n:1\r\n$4\r\n6379\r\n", -EPROTO },
    };

    (void) state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        redisReply *r = parse(cases[i].text);
        char *host = NULL;
        uint16_t port = 0;
        assert_int_equal(nq_reply_master_addr(r, &host, &port), cases[i].r);
        assert_null(host);
        freeReplyObject(r);
    }
}

static void test_role(void **state)
{
    redisReply *m = parse("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
    redisReply *s =
        parse("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:1\r\n");
    redisReply *e = parse("-NOPERM no\r\n");

    (void) state;
    assert_true(nq_reply_is_master(m));
    assert_false(nq_reply_is_master(s));
    assert_false(nq_reply_is_master(e));
    freeReplyObject(m);
    freeReplyObject(s);
    freeReplyObject(e);
}

static void test_host_port(void **state)
{
    char *host = NULL;
    uint16_t port = 0;

    (void) state;
    assert_int_equal(nq_host_port_split("10.0.0.5:26379", &host, &port), 0);
    assert_string_equal(host, "10.0.0.5");
    assert_int_equal(port, 26379);
    free(host);
    assert_int_equal(nq_host_port_split("[::1]:26380", &host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 26380);
    free(host);
    host = NULL;
    static const char *const bad[] = { "host", ":1", "h:", "h:0", "h:65536", "h:1x", "[]:1" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(nq_host_port_split(bad[i], &host, &port), -EINVAL);
        assert_null(host);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_master_addr),
        cmocka_unit_test(test_master_addr_refused),
        cmocka_unit_test(test_role),
        cmocka_unit_test(test_host_port),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
