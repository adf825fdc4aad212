/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "proc/proc.h"

static const struct nq_frame_metrics sample = {
    .pid = 4242,
    .uptime_ms = 123456789012ULL,
    .state = NQ_WORKER_PAUSED,
    .counters = { .fetched = 10, .completed = 7, .failed = 2, .retried = 1 },
    .in_flight = 3,
    .rss_kib = 2048,
    .note = "handler email not implemented yet",
    .redis = NQ_REDIS_DISCONNECTED,
};

static void metrics_round_trip(void **state)
{
    struct nq_frame f = { .type = NQ_FRAME_METRICS, .metrics = sample }, g;
    struct nq_err err = { "" };
    char buf[NQ_FRAME_MAX];
    int n;

    (void) state;
    n = nq_frame_encode(&f, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(nq_frame_decode(buf, (size_t) n, &g, &err), 0);
    assert_int_equal(g.type, NQ_FRAME_METRICS);
    assert_int_equal(g.metrics.pid, sample.pid);
    assert_int_equal(g.metrics.uptime_ms, sample.uptime_ms);
    assert_int_equal(g.metrics.state, sample.state);
    assert_int_equal(g.metrics.counters.fetched, sample.counters.fetched);
    assert_int_equal(g.metrics.counters.completed, sample.counters.completed);
    assert_int_equal(g.metrics.counters.failed, sample.counters.failed);
    assert_int_equal(g.metrics.counters.retried, sample.counters.retried);
    assert_int_equal(g.metrics.in_flight, sample.in_flight);
    assert_int_equal(g.metrics.rss_kib, sample.rss_kib);
    assert_string_equal(g.metrics.note, sample.note);
    assert_int_equal(g.metrics.redis, NQ_REDIS_DISCONNECTED);
}

/* A child without a Redis connection says nothing about one; each state a
 * worker has goes through by name. */
static void redis_state_is_optional_and_named(void **state)
{
    struct nq_frame f = { .type = NQ_FRAME_METRICS, .metrics = sample }, g;
    struct nq_err err = { "" };
    char buf[NQ_FRAME_MAX];
    int n;

    (void) state;
    f.metrics.redis = NQ_REDIS_NONE;
    n = nq_frame_encode(&f, buf, sizeof(buf));
    assert_true(n > 0);
    assert_null(memmem(buf, (size_t) n, "\"redis\"", 7));
    assert_int_equal(nq_frame_decode(buf, (size_t) n, &g, &err), 0);
    assert_int_equal(g.metrics.redis, NQ_REDIS_NONE);
    for (int s = NQ_REDIS_CONNECTING; s <= NQ_REDIS_DISCONNECTED; s++) {
        f.metrics.redis = (enum nq_redis_state) s;
        n = nq_frame_encode(&f, buf, sizeof(buf));
        assert_true(n > 0);
        assert_non_null(memmem(buf, (size_t) n, nq_redis_state_name(f.metrics.redis),
                               strlen(nq_redis_state_name(f.metrics.redis))));
        assert_int_equal(nq_frame_decode(buf, (size_t) n, &g, &err), 0);
        assert_int_equal(g.metrics.redis, s);
    }
    f.metrics.redis = (enum nq_redis_state) 9;
    assert_int_equal(nq_frame_encode(&f, buf, sizeof(buf)), -EINVAL);
}

/* The master's snapshot for the http child: any object goes down whole and
 * comes back as a reference the receiver owns; anything else is refused. */
static void snapshots_round_trip_and_must_be_objects(void **state)
{
    static const char *const bad[] = {
        "{\"v\":1,\"t\":\"snapshot\"}",
        "{\"v\":1,\"t\":\"snapshot\",\"data\":[1]}",
        "{\"v\":1,\"t\":\"snapshot\",\"data\":\"x\"}",
    };
    json_t *data = json_pack("{s:{s:[{s:s, s:i}]}, s:{}}", "status", "queues", "name", "email",
                             "restarts", 3, "metrics");
    struct nq_frame f = { .type = NQ_FRAME_SNAPSHOT, .snapshot = data }, g = { 0 };
    struct nq_err err = { "" };
    char buf[512];
    int n;

    (void) state;
    assert_non_null(data);
    n = nq_frame_encode(&f, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(nq_frame_decode(buf, (size_t) n, &g, &err), 0);
    assert_int_equal(g.type, NQ_FRAME_SNAPSHOT);
    assert_true(json_equal(g.snapshot, data));
    assert_true(g.snapshot != data);
    json_decref(g.snapshot);
    f.snapshot = NULL;
    assert_int_equal(nq_frame_encode(&f, buf, sizeof(buf)), -EINVAL);
    f.snapshot = json_array();
    assert_int_equal(nq_frame_encode(&f, buf, sizeof(buf)), -EINVAL);
    json_decref(f.snapshot);
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad); i++) {
        assert_int_equal(nq_frame_decode(bad[i], strlen(bad[i]), &g, &err), -EINVAL);
        assert_string_equal(nq_err_str(&err), "frame: \"data\" must be an object");
    }
    json_decref(data);
}

static void every_command_round_trips(void **state)
{
    static const enum nq_command cmds[] = { NQ_CMD_DRAIN, NQ_CMD_PAUSE, NQ_CMD_RESUME,
                                            NQ_CMD_STOP };
    char buf[256];

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cmds); i++) {
        struct nq_frame f = { .type = NQ_FRAME_COMMAND, .command = cmds[i] }, g;
        int n = nq_frame_encode(&f, buf, sizeof(buf));

        assert_true(n > 0);
        assert_int_equal(nq_frame_decode(buf, (size_t) n, &g, NULL), 0);
        assert_int_equal(g.type, NQ_FRAME_COMMAND);
        assert_int_equal(g.command, cmds[i]);
    }
}

static void encode_refuses_small_buffers_and_bad_enums(void **state)
{
    struct nq_frame f = { .type = NQ_FRAME_METRICS, .metrics = sample };
    struct nq_frame bad = { .type = NQ_FRAME_COMMAND, .command = (enum nq_command) 99 };
    char buf[32];

    (void) state;
    assert_int_equal(nq_frame_encode(&f, buf, sizeof(buf)), -EMSGSIZE);
    assert_int_equal(nq_frame_encode(&bad, buf, sizeof(buf)), -EINVAL);
}

#define M(extra)                                                                                   \
    "{\"v\":1,\"t\":\"metrics\",\"pid\":7,\"uptime_ms\":1,\"state\":\"idle\",\"fetched\":0,"       \
    "\"completed\":0,\"failed\":0,\"retried\":0,\"in_flight\":0,\"rss_kib\":9" extra "}"

static const struct {
    const char *frame, *want;
} bad_frames[] = {
    { "", "frame: not JSON: " },
    { "\x01\xff\xfe garbage", "frame: not JSON: " },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":7,\"upt", "frame: not JSON: " },
    { "[1,2,3]", "frame: not a JSON object" },
    { "{\"t\":\"cmd\",\"cmd\":\"drain\"}", "frame: missing version" },
    { "{\"v\":\"1\",\"t\":\"cmd\",\"cmd\":\"drain\"}", "frame: missing version" },
    { "{\"v\":2,\"t\":\"cmd\",\"cmd\":\"drain\"}", "frame: version 2, want 1" },
    { "{\"v\":1,\"t\":\"hello\"}", "frame: unknown t \"hello\"" },
    { "{\"v\":1,\"t\":5}", "frame: \"t\" is not a string" },
    { "{\"v\":1,\"t\":\"cmd\"}", "frame: missing \"cmd\"" },
    { "{\"v\":1,\"t\":\"cmd\",\"cmd\":\"explode\"}", "frame: unknown cmd \"explode\"" },
    { "{\"v\":1,\"t\":\"cmd\",\"cmd\":\"drain\",\"cmd\":\"stop\"}", "frame: not JSON: " },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":7}", "frame: missing \"uptime_ms\"" },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":0}", "frame: \"pid\" out of range" },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":-3}", "frame: \"pid\" out of range" },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":99999999999}", "frame: \"pid\" out of range" },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":\"7\"}", "frame: \"pid\" is not an integer" },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":7,\"uptime_ms\":1.5}",
      "frame: \"uptime_ms\" is not an integer" },
    { M(",\"completed\":-1"), "frame: not JSON: " },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":7,\"uptime_ms\":1,\"state\":\"idle\",\"fetched\":0,"
      "\"completed\":-1}",
      "frame: \"completed\" out of range" },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":7,\"uptime_ms\":1,\"fetched\":0,\"completed\":0,"
      "\"failed\":0,\"retried\":0,\"in_flight\":0,\"rss_kib\":9}",
      "frame: missing \"state\"" },
    { "{\"v\":1,\"t\":\"metrics\",\"pid\":7,\"uptime_ms\":1,\"state\":\"asleep\",\"fetched\":0,"
      "\"completed\":0,\"failed\":0,\"retried\":0,\"in_flight\":0,\"rss_kib\":9}",
      "frame: unknown state \"asleep\"" },
    { M(",\"note\":17"), "frame: \"note\" is not a string" },
    { M(",\"redis\":\"up\""), "frame: unknown redis \"up\"" },
    { M(",\"redis\":1"), "frame: \"redis\" is not a string" },
    { M(",\"note\":\"a\\u0000b\""), "frame: not JSON: " },
};

static void bad_frames_are_refused_with_a_reason(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad_frames); i++) {
        struct nq_frame f = { .type = NQ_FRAME_COMMAND, .command = NQ_CMD_STOP };
        struct nq_err err = { "" };
        const char *s = bad_frames[i].frame;

        if (nq_frame_decode(s, strlen(s), &f, &err) != -EINVAL)
            fail_msg("frame %zu accepted: %s", i, s);
        if (strncmp(nq_err_str(&err), bad_frames[i].want, strlen(bad_frames[i].want)) != 0)
            fail_msg("frame %zu: error '%s', want '%s...'", i, nq_err_str(&err),
                     bad_frames[i].want);
        /* ret_ untouched on failure */
        assert_int_equal(f.type, NQ_FRAME_COMMAND);
        assert_int_equal(f.command, NQ_CMD_STOP);
    }
}

static void every_truncation_of_a_good_frame_is_refused(void **state)
{
    struct nq_frame f = { .type = NQ_FRAME_METRICS, .metrics = sample }, g;
    char buf[1024];
    int n;

    (void) state;
    n = nq_frame_encode(&f, buf, sizeof(buf));
    assert_true(n > 0);
    for (int len = 0; len < n; len++)
        if (nq_frame_decode(buf, (size_t) len, &g, NULL) >= 0)
            fail_msg("truncated to %d bytes and accepted", len);
}

static void unknown_keys_are_ignored_and_long_notes_cut(void **state)
{
    char note[1000], frame[1400];
    struct nq_frame f;
    struct nq_err err = { "" };

    (void) state;
    memset(note, 'x', sizeof(note) - 1);
    note[sizeof(note) - 1] = 0;
    (void) snprintf(frame, sizeof(frame), M(",\"queue\":{\"wait\":3},\"note\":\"%s\""), note);
    assert_int_equal(nq_frame_decode(frame, strlen(frame), &f, &err), 0);
    assert_int_equal(f.metrics.pid, 7);
    assert_int_equal(f.metrics.rss_kib, 9);
    assert_int_equal(strlen(f.metrics.note), NQ_FRAME_NOTE_MAX - 1);
}

static void oversize_frames_are_refused(void **state)
{
    size_t len = NQ_FRAME_MAX + 100;
    char *big = malloc(len);
    char *buf = malloc(NQ_FRAME_MAX);
    struct nq_frame f;
    struct nq_err err = { "" };
    int sv[2];

    (void) state;
    assert_non_null(big);
    assert_non_null(buf);
    memset(big, ' ', len);
    assert_int_equal(nq_frame_decode(big, len, &f, &err), -EMSGSIZE);
    assert_non_null(strstr(nq_err_str(&err), "more than 65536"));

    /* Over a real SEQPACKET pair the datagram is refused whole, and the next
     * one still reads correctly. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    int sz = (int) (4 * len);
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
    assert_int_equal(send(sv[0], big, len, 0), (ssize_t) len);
    struct nq_frame cmd = { .type = NQ_FRAME_COMMAND, .command = NQ_CMD_PAUSE };
    assert_int_equal(nq_frame_send(sv[0], &cmd), 0);
    assert_int_equal(nq_frame_recv(sv[1], buf, &f, &err), -EMSGSIZE);
    assert_int_equal(nq_frame_recv(sv[1], buf, &f, &err), 1);
    assert_int_equal(f.command, NQ_CMD_PAUSE);
    assert_int_equal(nq_frame_recv(sv[1], buf, &f, &err), -EAGAIN);
    (void) close(sv[0]);
    assert_int_equal(nq_frame_recv(sv[1], buf, &f, &err), 0); /* EOF */
    (void) close(sv[1]);
    free(big);
    free(buf);
}

static void an_empty_datagram_is_a_bad_frame_not_eof(void **state)
{
    struct nq_frame cmd = { .type = NQ_FRAME_COMMAND, .command = NQ_CMD_RESUME }, f;
    struct nq_err err = { "" };
    char *buf = malloc(NQ_FRAME_MAX);
    int sv[2];

    (void) state;
    assert_non_null(buf);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(send(sv[0], "", 0, 0), 0);
    assert_int_equal(nq_frame_recv(sv[1], buf, &f, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "frame: empty");
    assert_int_equal(send(sv[0], "", 0, 0), 0);
    assert_int_equal(nq_frame_send(sv[0], &cmd), 0);
    assert_int_equal(nq_frame_recv(sv[1], buf, &f, &err), -EINVAL);
    assert_int_equal(nq_frame_recv(sv[1], buf, &f, &err), 1);
    assert_int_equal(f.command, NQ_CMD_RESUME);
    (void) close(sv[0]);
    assert_int_equal(nq_frame_recv(sv[1], buf, &f, &err), 0);
    (void) close(sv[1]);
    free(buf);
}

static void send_to_a_closed_peer_is_epipe_not_sigpipe(void **state)
{
    struct nq_frame cmd = { .type = NQ_FRAME_COMMAND, .command = NQ_CMD_DRAIN };
    int sv[2];

    (void) state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    (void) close(sv[1]);
    assert_int_equal(nq_frame_send(sv[0], &cmd), -EPIPE);
    (void) close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_round_trip),
        cmocka_unit_test(every_command_round_trips),
        cmocka_unit_test(encode_refuses_small_buffers_and_bad_enums),
        cmocka_unit_test(bad_frames_are_refused_with_a_reason),
        cmocka_unit_test(every_truncation_of_a_good_frame_is_refused),
        cmocka_unit_test(unknown_keys_are_ignored_and_long_notes_cut),
        cmocka_unit_test(redis_state_is_optional_and_named),
        cmocka_unit_test(oversize_frames_are_refused),
        cmocka_unit_test(an_empty_datagram_is_a_bad_frame_not_eof),
        cmocka_unit_test(send_to_a_closed_peer_is_epipe_not_sigpipe),
        cmocka_unit_test(snapshots_round_trip_and_must_be_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
