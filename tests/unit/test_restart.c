/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/macros.h"
#include "supervisor/restart.h"

#define MIN_UPTIME 5000

/* One slot's history: each exit after `uptime` ms with `code` (-1: signal)
 * must give `delay` and leave the slot crash-looping or not. */
struct step {
    uint64_t uptime;
    int code;
    uint64_t delay;
    enum nq_restart_reason reason;
    bool looping;
};

static const struct {
    const char *name;
    struct step steps[12];
    size_t n;
} histories[] = {
    { "stable exits restart at once",
      { { 60000, -1, 0, NQ_RESTART_STABLE, false }, { 5000, 1, 0, NQ_RESTART_STABLE, false } },
      2 },
    { "quick crashes double from 100 ms and cap at 30 s",
      { { 10, 1, 100, NQ_RESTART_QUICK, false },
        { 10, 1, 200, NQ_RESTART_QUICK, false },
        { 10, -1, 400, NQ_RESTART_QUICK, true },
        { 10, 1, 800, NQ_RESTART_QUICK, true },
        { 10, 1, 1600, NQ_RESTART_QUICK, true },
        { 10, 1, 3200, NQ_RESTART_QUICK, true },
        { 10, 1, 6400, NQ_RESTART_QUICK, true },
        { 10, 1, 12800, NQ_RESTART_QUICK, true },
        { 10, 1, 25600, NQ_RESTART_QUICK, true },
        { 10, 1, 30000, NQ_RESTART_QUICK, true },
        { 4999, 1, 30000, NQ_RESTART_QUICK, true } },
      11 },
    { "a stable run resets the delay and the crash count",
      { { 10, 1, 100, NQ_RESTART_QUICK, false },
        { 10, 1, 200, NQ_RESTART_QUICK, false },
        { 10, 1, 400, NQ_RESTART_QUICK, true },
        { 5000, 1, 0, NQ_RESTART_STABLE, false },
        { 10, 1, 100, NQ_RESTART_QUICK, false } },
      5 },
    { "exit 78 goes straight to the longest delay",
      { { 10, 78, 30000, NQ_RESTART_CONFIG, false },
        { 10, 78, 30000, NQ_RESTART_CONFIG, false },
        { 10, 78, 30000, NQ_RESTART_CONFIG, true } },
      3 },
    { "exit 78 after a stable run still waits the longest delay",
      { { 10, 1, 100, NQ_RESTART_QUICK, false }, { 9000, 78, 30000, NQ_RESTART_CONFIG, false } },
      2 },
    { "a signal after a config failure keeps backing off from the cap",
      { { 10, 78, 30000, NQ_RESTART_CONFIG, false }, { 10, -1, 30000, NQ_RESTART_QUICK, false } },
      2 },
};

static void histories_give_the_expected_delays(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(histories); i++) {
        struct nq_restart r = { 0 };

        for (size_t j = 0; j < histories[i].n; j++) {
            const struct step *s = &histories[i].steps[j];
            enum nq_restart_reason reason = NQ_RESTART_STABLE;
            uint64_t d = nq_restart_next(&r, s->uptime, MIN_UPTIME, s->code, &reason);

            if (d != s->delay || reason != s->reason || nq_restart_crash_looping(&r) != s->looping)
                fail_msg("%s, step %zu: delay %llu reason %d looping %d, want %llu %d %d",
                         histories[i].name, j, (unsigned long long) d, reason,
                         nq_restart_crash_looping(&r), (unsigned long long) s->delay, s->reason,
                         s->looping);
        }
    }
}

static void staying_up_clears_crash_looping(void **state)
{
    struct nq_restart r = { 0 };

    (void) state;
    for (int i = 0; i < 3; i++)
        (void) nq_restart_next(&r, 1, MIN_UPTIME, 1, NULL);
    assert_true(nq_restart_crash_looping(&r));
    nq_restart_stable(&r);
    assert_false(nq_restart_crash_looping(&r));
    assert_int_equal(nq_restart_next(&r, 1, MIN_UPTIME, 1, NULL), NQ_RESTART_FIRST_DELAY_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(histories_give_the_expected_delays),
        cmocka_unit_test(staying_up_clears_crash_looping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
