/* SPDX-License-Identifier: MIT */
/* Backoff: fixed, exponential, jitter bounds, cap, saturation. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "common/macros.h"
#include "queue/backoff.h"

static void fixed_is_constant(void **state)
{
    struct nq_backoff b = { .kind = NQ_BACKOFF_KIND_FIXED, .delay_ms = 1000 };
    (void) state;

    for (uint32_t made = 0; made < 10; made++)
        assert_int_equal(nq_backoff_delay_ms(&b, made, 0, 0.5), 1000);
}

static void exponential_doubles(void **state)
{
    /* BULLMQ-LAYOUT.md §14's table: attempts 1..5 of exponential 1000 */
    static const uint64_t want[] = { 1000, 2000, 4000, 8000, 16000 };
    struct nq_backoff b = { .kind = NQ_BACKOFF_KIND_EXPONENTIAL, .delay_ms = 1000 };
    (void) state;

    for (uint32_t made = 0; made < NQ_ELEMENTSOF(want); made++)
        assert_int_equal(nq_backoff_delay_ms(&b, made, 0, 0), want[made]);
    b.delay_ms = 200; /* observed in BullMQ: 200 then 400 */
    assert_int_equal(nq_backoff_delay_ms(&b, 0, 0, 0), 200);
    assert_int_equal(nq_backoff_delay_ms(&b, 1, 0, 0), 400);
}

static void cap_applies(void **state)
{
    struct nq_backoff b = { .kind = NQ_BACKOFF_KIND_EXPONENTIAL, .delay_ms = 1000 };
    (void) state;

    assert_int_equal(nq_backoff_delay_ms(&b, 3, 5000, 0), 5000);
    assert_int_equal(nq_backoff_delay_ms(&b, 2, 5000, 0), 4000);
    /* 2^200 would overflow: saturate, then cap */
    assert_int_equal(nq_backoff_delay_ms(&b, 200, 3600000, 0), 3600000);
    assert_int_equal(nq_backoff_delay_ms(&b, 200, 0, 0), UINT64_MAX);
    assert_int_equal(nq_backoff_delay_ms(&b, 63, 0, 0), UINT64_MAX);
}

static void jitter_stays_in_bounds(void **state)
{
    struct nq_backoff b = { .kind = NQ_BACKOFF_KIND_FIXED, .delay_ms = 1000, .jitter = 0.5 };
    (void) state;

    /* uniform in [D(1-j), D): rnd 0 gives the floor, rnd -> 1 approaches D */
    assert_int_equal(nq_backoff_delay_ms(&b, 0, 0, 0.0), 500);
    assert_int_equal(nq_backoff_delay_ms(&b, 0, 0, 0.5), 750);
    assert_int_equal(nq_backoff_delay_ms(&b, 0, 0, 0.9999), 999);
    srand(7);
    for (int i = 0; i < 10000; i++) {
        double rnd = (double) rand() / ((double) RAND_MAX + 1.0);
        uint64_t d = nq_backoff_delay_ms(&b, 0, 0, rnd);
        assert_true(d >= 500 && d < 1000);
    }
    b.jitter = 1.0;
    assert_int_equal(nq_backoff_delay_ms(&b, 0, 0, 0.0), 0);
    b.jitter = 7.0; /* clamped to 1 */
    assert_int_equal(nq_backoff_delay_ms(&b, 0, 0, 0.25), 250);
    b.jitter = 0.5;
    assert_int_equal(nq_backoff_delay_ms(&b, 0, 0, 1.5), 500); /* bad rnd reads as 0 */
}

static void jitter_applies_after_cap(void **state)
{
    struct nq_backoff b = { .kind = NQ_BACKOFF_KIND_EXPONENTIAL, .delay_ms = 1000, .jitter = 0.5 };
    (void) state;

    /* D = min(8000, 3000) = 3000 -> [1500, 3000) */
    assert_int_equal(nq_backoff_delay_ms(&b, 3, 3000, 0.0), 1500);
    assert_int_equal(nq_backoff_delay_ms(&b, 3, 3000, 0.5), 2250);
}

static void zero_delay_is_immediate(void **state)
{
    struct nq_backoff b = { .kind = NQ_BACKOFF_KIND_EXPONENTIAL, .delay_ms = 0 };
    (void) state;

    assert_int_equal(nq_backoff_delay_ms(&b, 5, 0, 0.3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixed_is_constant),
        cmocka_unit_test(exponential_doubles),
        cmocka_unit_test(cap_applies),
        cmocka_unit_test(jitter_stays_in_bounds),
        cmocka_unit_test(jitter_applies_after_cap),
        cmocka_unit_test(zero_delay_is_immediate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
