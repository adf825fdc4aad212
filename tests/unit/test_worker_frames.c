/* SPDX-License-Identifier: MIT */
/* The frames of fast recovery and recycling, the metrics frame's histogram
 * and job counts, and the lock token prefix master and worker agree on. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proc/proc.h"

static struct nq_frame round_trip(const struct nq_frame *f)
{
    char buf[NQ_FRAME_MAX];
    struct nq_err err = { "" };
    struct nq_frame g;
    int n = nq_frame_encode(f, buf, sizeof(buf));

    if (n <= 0)
        fail_msg("encode: %d", n);
    if (nq_frame_decode(buf, (size_t) n, &g, &err) != 0)
        fail_msg("decode: %s (%.*s)", nq_err_str(&err), n, buf);
    return g;
}

static void recover_command_carries_prefix_and_signal(void **state)
{
    struct nq_frame f = { .type = NQ_FRAME_COMMAND, .command = NQ_CMD_RECOVER }, g;

    (void) state;
    (void) snprintf(f.recover.prefix, sizeof(f.recover.prefix), "host:42:1f:");
    (void) snprintf(f.recover.signal, sizeof(f.recover.signal), "SIGSEGV");
    g = round_trip(&f);
    assert_int_equal(g.type, NQ_FRAME_COMMAND);
    assert_int_equal(g.command, NQ_CMD_RECOVER);
    assert_string_equal(g.recover.prefix, "host:42:1f:");
    assert_string_equal(g.recover.signal, "SIGSEGV");

    f.recover.signal[0] = 0; /* exited, not killed */
    g = round_trip(&f);
    assert_string_equal(g.recover.prefix, "host:42:1f:");
    assert_string_equal(g.recover.signal, "");
}

static void recover_without_prefix_is_refused(void **state)
{
    struct nq_frame f = { .type = NQ_FRAME_COMMAND, .command = NQ_CMD_RECOVER }, g;
    struct nq_frame up = { .type = NQ_FRAME_RECOVERED };
    char buf[256];
    static const struct {
        const char *frame, *want;
    } bad[] = {
        { "{\"v\":1,\"t\":\"cmd\",\"cmd\":\"recover\"}", "frame: missing \"prefix\"" },
        { "{\"v\":1,\"t\":\"cmd\",\"cmd\":\"recover\",\"prefix\":\"\"}",
          "frame: empty \"prefix\"" },
        { "{\"v\":1,\"t\":\"cmd\",\"cmd\":\"recover\",\"prefix\":7}",
          "frame: \"prefix\" is not a string" },
        { "{\"v\":1,\"t\":\"cmd\",\"cmd\":\"recover\",\"prefix\":\"a:\",\"signal\":[]}",
          "frame: \"signal\" is not a string" },
        { "{\"v\":1,\"t\":\"recovered\"}", "frame: missing \"prefix\"" },
        { "{\"v\":1,\"t\":\"recycle\",\"reason\":3}", "frame: \"reason\" is not a string" },
    };

    (void) state;
    /* An empty prefix would match every lock in the queue. */
    assert_int_equal(nq_frame_encode(&f, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(nq_frame_encode(&up, buf, sizeof(buf)), -EINVAL);
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad); i++) {
        struct nq_err err = { "" };

        g.type = NQ_FRAME_METRICS;
        if (nq_frame_decode(bad[i].frame, strlen(bad[i].frame), &g, &err) != -EINVAL)
            fail_msg("frame %zu accepted", i);
        assert_string_equal(nq_err_str(&err), bad[i].want);
        assert_int_equal(g.type, NQ_FRAME_METRICS); /* untouched */
    }
}

static void overlong_prefix_is_refused_not_cut(void **state)
{
    char frame[NQ_FRAME_PREFIX_MAX + 100], prefix[NQ_FRAME_PREFIX_MAX + 1];
    struct nq_err err = { "" };
    struct nq_frame g;

    (void) state;
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[sizeof(prefix) - 1] = 0;
    (void) snprintf(frame, sizeof(frame), "{\"v\":1,\"t\":\"recovered\",\"prefix\":\"%s\"}",
                    prefix);
    assert_int_equal(nq_frame_decode(frame, strlen(frame), &g, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "frame: \"prefix\" too long or not text");
}

static void recovered_and_recycle_round_trip(void **state)
{
    struct nq_frame f = { .type = NQ_FRAME_RECOVERED }, g;

    (void) state;
    (void) snprintf(f.recover.prefix, sizeof(f.recover.prefix), "h:1:2:");
    g = round_trip(&f);
    assert_int_equal(g.type, NQ_FRAME_RECOVERED);
    assert_string_equal(g.recover.prefix, "h:1:2:");

    f = (struct nq_frame){ .type = NQ_FRAME_RECYCLE };
    (void) snprintf(f.reason, sizeof(f.reason), "finished 10 jobs, max_jobs 10");
    g = round_trip(&f);
    assert_int_equal(g.type, NQ_FRAME_RECYCLE);
    assert_string_equal(g.reason, "finished 10 jobs, max_jobs 10");
}

static void metrics_carry_timing_and_job_counts(void **state)
{
    struct nq_frame f = { .type = NQ_FRAME_METRICS }, g;

    (void) state;
    f.metrics.pid = 7;
    f.metrics.state = NQ_WORKER_RUNNING;
    nq_timing_add(&f.metrics.timing, 0);
    nq_timing_add(&f.metrics.timing, 3);
    nq_timing_add(&f.metrics.timing, 90000);
    f.metrics.jobs = (struct nq_job_counts){
        .known = true, .waiting = 5, .active = 4, .delayed = 3, .failed = 2, .completed = 1
    };
    g = round_trip(&f);
    assert_memory_equal(&g.metrics.timing, &f.metrics.timing, sizeof(f.metrics.timing));
    assert_true(g.metrics.jobs.known);
    assert_int_equal(g.metrics.jobs.waiting, 5);
    assert_int_equal(g.metrics.jobs.active, 4);
    assert_int_equal(g.metrics.jobs.delayed, 3);
    assert_int_equal(g.metrics.jobs.failed, 2);
    assert_int_equal(g.metrics.jobs.completed, 1);

    /* Absent: zero histogram, unknown counts. */
    f.metrics.timing = (struct nq_timing){ 0 };
    f.metrics.jobs = (struct nq_job_counts){ 0 };
    g = round_trip(&f);
    assert_int_equal(g.metrics.timing.sum_ms, 0);
    assert_false(g.metrics.jobs.known);
}

#define M0                                                                                         \
    "{\"v\":1,\"t\":\"metrics\",\"pid\":7,\"uptime_ms\":1,\"state\":\"idle\",\"fetched\":0,"       \
    "\"completed\":0,\"failed\":0,\"retried\":0,\"in_flight\":0,\"rss_kib\":9"
#define LE "[1,5,10,25,50,100,250,500,1000,5000,30000]"

static void bad_timing_and_counts_are_refused(void **state)
{
    static const struct {
        const char *frame, *want;
    } bad[] = {
        { M0 ",\"timing\":{\"le_ms\":" LE ",\"count\":[1,2],\"sum_ms\":3}}",
          "frame: \"timing\" is not a histogram of 12 buckets" },
        { M0 ",\"timing\":{\"le_ms\":[1,5,10,25,50,100,250,500,1000,5000,60000],"
             "\"count\":[0,0,0,0,0,0,0,0,0,0,0,0],\"sum_ms\":0}}",
          "frame: \"timing\" has other bucket bounds" },
        { M0 ",\"timing\":{\"le_ms\":" LE ",\"count\":[0,0,0,0,0,0,0,0,0,0,0,-1],\"sum_ms\":0}}",
          "frame: \"timing\" count out of range" },
        { M0 ",\"timing\":{\"le_ms\":" LE ",\"count\":[0,0,0,0,0,0,0,0,0,0,0,0]}}",
          "frame: \"timing\" has no valid \"sum_ms\"" },
        { M0 ",\"jobs\":[]}", "frame: \"jobs\" is not an object" },
        { M0 ",\"jobs\":{\"waiting\":1,\"active\":1,\"delayed\":1,\"failed\":1}}",
          "frame: missing \"completed\"" },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad); i++) {
        struct nq_err err = { "" };
        struct nq_frame g;

        if (nq_frame_decode(bad[i].frame, strlen(bad[i].frame), &g, &err) != -EINVAL)
            fail_msg("frame %zu accepted", i);
        assert_string_equal(nq_err_str(&err), bad[i].want);
    }
}

static void timing_buckets_are_upper_bounds(void **state)
{
    static const struct {
        uint64_t ms;
        size_t bucket;
    } cases[] = {
        { 0, 0 }, { 1, 0 },      { 2, 1 },      { 5, 1 },
        { 6, 2 }, { 30000, 10 }, { 30001, 11 }, { UINT64_MAX / 2, 11 },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        struct nq_timing t = { 0 }, sum = { 0 };

        nq_timing_add(&t, cases[i].ms);
        if (t.count[cases[i].bucket] != 1)
            fail_msg("%llu ms not in bucket %zu", (unsigned long long) cases[i].ms,
                     cases[i].bucket);
        nq_timing_merge(&sum, &t);
        nq_timing_merge(&sum, &t);
        assert_int_equal(sum.count[cases[i].bucket], 2);
        assert_int_equal(sum.sum_ms, 2 * cases[i].ms);
    }
}

static void token_prefix_names_host_pid_and_incarnation(void **state)
{
    char buf[64], small[8];

    (void) state;
    assert_int_equal(nq_token_prefix(buf, sizeof(buf), "web-1", 4242, 0xabc00001), 20);
    assert_string_equal(buf, "web-1:4242:abc00001:");
    assert_int_equal(nq_token_prefix(small, sizeof(small), "web-1", 4242, 1), -ENOBUFS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(recover_command_carries_prefix_and_signal),
        cmocka_unit_test(recover_without_prefix_is_refused),
        cmocka_unit_test(overlong_prefix_is_refused_not_cut),
        cmocka_unit_test(recovered_and_recycle_round_trip),
        cmocka_unit_test(metrics_carry_timing_and_job_counts),
        cmocka_unit_test(bad_timing_and_counts_are_refused),
        cmocka_unit_test(timing_buckets_are_upper_bounds),
        cmocka_unit_test(token_prefix_names_host_pid_and_incarnation),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
