/* SPDX-License-Identifier: MIT */
/*
 * Cron next times (src/queue/cron.c). Every expected time below was computed
 * by cron-parser 5.10.3 as bullmq 6.7.0 calls it (parse with currentDate and
 * tz, then next()); tests/interop/cron.test.js compares thousands more live.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/err.h"
#include "queue/cron.h"

/* "2026-03-08T05:00:00.000Z" -> ms */
static uint64_t iso_ms(const char *s)
{
    struct tm tm = { 0 };
    int ms = 0;

    assert_int_equal(sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (uint64_t) timegm(&tm) * 1000 + (uint64_t) ms;
}

static const struct {
    const char *pattern, *tz, *after, *want; /* want NULL: no next time */
} nexts[] = {
    /* America/New_York springs forward 2026-03-08 07:00Z, falls back 2026-11-01 06:00Z */
    { "0 30 2 * * *", "America/New_York", "2026-03-08T05:00:00.000Z",
      "2026-03-08T07:30:00.000Z" }, /* 02:30 in the gap runs at 03:30 */
    { "0 0 2 * * *", "America/New_York", "2026-03-08T06:59:59.999Z", "2026-03-08T07:00:00.000Z" },
    { "0 */15 1-2 * * *", "America/New_York", "2026-03-08T06:50:00.000Z",
      "2026-03-08T07:00:00.000Z" },
    { "0 30 1 * * *", "America/New_York", "2026-11-01T05:00:00.000Z",
      "2026-11-01T05:30:00.000Z" }, /* first 01:30 */
    { "0 30 1 * * *", "America/New_York", "2026-11-01T05:30:00.000Z",
      "2026-11-02T06:30:00.000Z" }, /* no second 01:30 */
    { "0 */15 * * * *", "America/New_York", "2026-11-01T05:50:00.000Z",
      "2026-11-01T06:00:00.000Z" }, /* all hours: the repeat runs */
    { "0 */15 0-3 * * *", "America/New_York", "2026-11-01T05:50:00.000Z",
      "2026-11-01T07:00:00.000Z" }, /* restricted: skipped */
    { "0 30 2 * * *", "America/New_York", "2040-03-11T05:00:00.000Z",
      "2040-03-11T07:30:00.000Z" }, /* past the TZif table */
    /* Europe/Berlin: 2026-03-29 01:00Z and 2026-10-25 01:00Z */
    { "0 30 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00.000Z", "2026-03-29T01:30:00.000Z" },
    { "0 30 2 * * *", "Europe/Berlin", "2026-10-25T00:00:00.000Z", "2026-10-25T00:30:00.000Z" },
    { "0 30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z" },
    { "0 0 * * * *", "Europe/Berlin", "2026-10-25T00:30:00.000Z", "2026-10-25T01:00:00.000Z" },
    { "0 0 * * * *", "Europe/Berlin", "2026-10-25T01:00:00.000Z", "2026-10-25T02:00:00.000Z" },
    { "0 30 1 * * *", "Europe/Berlin", "2050-10-30T00:00:00.000Z", "2050-10-31T00:30:00.000Z" },
    /* Australia/Lord_Howe: 30 minute DST, 2026-10-04 02:00 -> 02:30, 2026-04-05 02:00 -> 01:30 */
    { "0 15 2 * * *", "Australia/Lord_Howe", "2026-10-03T15:00:00.000Z",
      "2026-10-03T16:15:00.000Z" },
    { "0 45 1 * * *", "Australia/Lord_Howe", "2026-04-04T14:00:00.000Z",
      "2026-04-04T14:45:00.000Z" },
    { "0 45 1 * * *", "Australia/Lord_Howe", "2026-04-04T14:45:00.000Z",
      "2026-04-05T15:15:00.000Z" },
    { "0 */10 * * * *", "Australia/Lord_Howe", "2026-10-03T15:25:00.000Z",
      "2026-10-03T16:00:00.000Z" },
    { "0 15 2 * * *", "Australia/Lord_Howe", "2045-09-30T15:00:00.000Z",
      "2045-09-30T16:15:00.000Z" },
    /* Pacific/Chatham: 02:45 -> 03:45 (a guess offset lands in the gap) */
    { "15,45 1-3 * * *", "Pacific/Chatham", "2026-09-26T13:30:00.000Z",
      "2026-09-26T14:00:00.000Z" },
    /* America/Santiago: midnight itself is skipped on 2026-09-06, and cron-parser skips the day */
    { "0 0 0 * * *", "America/Santiago", "2026-09-05T12:00:00.000Z", "2026-09-07T03:00:00.000Z" },
    { "0 30 0 * * *", "America/Santiago", "2026-09-05T12:00:00.000Z", "2026-09-07T03:30:00.000Z" },
    /* leap years, L, # */
    { "0 0 12 29 2 *", "UTC", "2026-03-01T00:00:00.000Z", "2028-02-29T12:00:00.000Z" },
    { "0 0 0 L 2 *", "UTC", "2027-02-01T00:00:00.000Z", "2027-02-28T00:00:00.000Z" },
    { "0 0 0 L 2 *", "UTC", "2028-02-01T00:00:00.000Z", "2028-02-29T00:00:00.000Z" },
    { "0 0 L * *", "Asia/Tokyo", "2026-04-30T15:00:00.000Z", "2026-05-30T15:00:00.000Z" },
    { "0 12 * * 5L", "UTC", "2026-01-01T00:00:00.000Z",
      "2026-01-30T12:00:00.000Z" }, /* last Friday */
    { "0 0 * * 1#1", "UTC", "2026-02-03T00:00:00.000Z", "2026-03-02T00:00:00.000Z" },
    { "0 0 0 * 2 1#5", "UTC", "2029-01-01T00:00:00.000Z", "2044-02-29T00:00:00.000Z" },
    { "0 0 1,15 * MON", "UTC", "2026-06-02T00:00:00.000Z", "2026-06-08T00:00:00.000Z" }, /* OR */
    { "0 0 12 1-5L * *", "UTC", "2026-06-06T00:00:00.000Z",
      "2026-06-30T12:00:00.000Z" }, /* 1-5 and L */
    /* steps, names, seconds, milliseconds, zone spellings */
    { "*/7 * * * *", "UTC", "2026-01-01T00:56:00.000Z", "2026-01-01T01:00:00.000Z" },
    { "0 5-59/20 * * * *", "UTC", "2026-01-01T00:46:00.000Z", "2026-01-01T01:05:00.000Z" },
    { "0 0 0 * * 1-7/2", "UTC", "2026-01-03T12:00:00.000Z",
      "2026-01-04T00:00:00.000Z" }, /* takes Sunday */
    { "0 9 * JAN-MAR MON-FRI", "UTC", "2026-03-31T10:00:00.000Z", "2027-01-01T09:00:00.000Z" },
    { "*/10 * * * * *", "UTC", "2026-01-01T00:00:05.500Z", "2026-01-01T00:00:10.000Z" },
    { "* * * * * *", "UTC", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.000Z" },
    { "* * * * * *", "UTC", "2026-01-01T00:00:00.500Z", "2026-01-01T00:00:01.000Z" },
    { "59 59 23 31 12 *", "UTC", "2026-12-31T23:59:59.000Z", "2027-12-31T23:59:59.000Z" },
    { "0 0 0 * * *", "UTC+05:30", "2026-01-01T00:00:00.000Z", "2026-01-01T18:30:00.000Z" },
    { "0 0 0 * * *", "america/new_york", "2026-01-01T00:00:00.000Z", "2026-01-01T05:00:00.000Z" },
    { "0 0 0 * * *", "PST", "2026-07-01T00:00:00.000Z", "2026-07-01T07:00:00.000Z" },
    { "@weekly", "UTC", "2026-01-01T00:00:00.000Z", "2026-01-04T00:00:00.000Z" },
    { "5", "UTC", "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z" }, /* = 0 * * * * 5 */
    { "0 0 0 * * 1#1.5", "UTC", "2026-01-01T00:00:00.000Z",
      NULL }, /* never: cron-parser gives up */
};

static void next_times_match_cron_parser(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(nexts); i++) {
        NQ_CLEANUP(nq_cron_freep) struct nq_cron *c = NULL;
        struct nq_err err = { { 0 } };
        uint64_t got = 0;

        assert_int_equal(nq_cron_parse(nexts[i].pattern, &c, &err), 0);
        int r = nq_cron_next(c, nexts[i].tz, iso_ms(nexts[i].after), &got, &err);
        if (!nexts[i].want) {
            assert_int_equal(r, -ENOENT);
            continue;
        }
        if (r != 0 || got != iso_ms(nexts[i].want))
            print_error("case %zu '%s' %s after %s: r=%d got %" PRIu64 " want %s (%s)\n", i,
                        nexts[i].pattern, nexts[i].tz, nexts[i].after, r, got, nexts[i].want,
                        nq_err_str(&err));
        assert_int_equal(r, 0);
        assert_int_equal(got, iso_ms(nexts[i].want));
    }
}

static const struct {
    const char *pattern, *want;
} bad_patterns[] = {
    { "60 * * * *", "cron pattern '60 * * * *': minute field: value out of bounds" },
    { "* * * * * * *", "cron pattern '* * * * * * *': more than 6 fields" },
    { "0 0 31 4 *", "cron pattern '0 0 31 4 *': month 4 never has day 31" },
    { "* * * FOO *", "cron pattern '* * * FOO *': month field: unknown name" },
    { "0 0 * * 0,7", "cron pattern '0 0 * * 0,7': day of week field: duplicate value" },
    { "5-1 * * * *", "cron pattern '5-1 * * * *': minute field: range goes backwards" },
    { "*/0 * * * *", "cron pattern '*/0 * * * *': minute field: step must be a positive number" },
    { "* * * * 1#6", "cron pattern '* * * * 1#6': day of week field: # must be followed by 1..5" },
    { "* * * * 1-2#1", "cron pattern '* * * * 1-2#1': day of week field: # cannot be used with a "
                       "list, range or step" },
    { "* * * * L", "cron pattern '* * * * L': day of week field: L needs a weekday before it" },
    { "1,,2 * * * *", "cron pattern '1,,2 * * * *': minute field: empty list item" },
    { "* * * * 5W", "cron pattern '* * * * 5W': day of week field: invalid character" },
    { "H * * * *", "cron pattern 'H * * * *': minute field: H (hashed values) is not supported" },
    { "   ", "cron pattern '   ': day of week field: invalid character" },
};

static void bad_patterns_are_named(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad_patterns); i++) {
        struct nq_cron *c = NULL;
        struct nq_err err = { { 0 } };

        assert_int_equal(nq_cron_parse(bad_patterns[i].pattern, &c, &err), -EINVAL);
        assert_null(c);
        assert_string_equal(nq_err_str(&err), bad_patterns[i].want);
    }
}

static void unknown_zones_are_named(void **state)
{
    static const char *const zones[] = { "Mars/Olympus",  "",          "../../etc/passwd",
                                         "Europe/../UTC", "posix/UTC", "Factory",
                                         "GMT+5",         "UTC+5:3" };
    NQ_CLEANUP(nq_cron_freep) struct nq_cron *c = NULL;
    char want[128];

    (void) state;
    assert_int_equal(nq_cron_parse("0 0 * * *", &c, NULL), 0);
    for (size_t i = 0; i < NQ_ELEMENTSOF(zones); i++) {
        struct nq_err err = { { 0 } };
        uint64_t got = 7;

        assert_int_equal(nq_cron_next(c, zones[i], 0, &got, &err), -EINVAL);
        assert_int_equal(got, 7); /* untouched */
        (void) snprintf(want, sizeof(want), "unknown time zone '%s'", zones[i]);
        assert_string_equal(nq_err_str(&err), want);
    }
}

/* ms of the next "0 30 2 * * *" after New York's 2026 spring-forward night */
static uint64_t next_in(const struct nq_cron *c, const char *tz)
{
    uint64_t got = 0;

    assert_int_equal(nq_cron_next(c, tz, iso_ms("2026-03-08T05:00:00.000Z"), &got, NULL), 0);
    return got;
}

static void no_zone_is_the_process_zone(void **state)
{
    NQ_CLEANUP(nq_cron_freep) struct nq_cron *c = NULL;
    const char *saved = getenv("TZ");
    char *old = saved ? strdup(saved) : NULL;

    (void) state;
    assert_int_equal(nq_cron_parse("0 30 2 * * *", &c, NULL), 0);
    assert_int_equal(setenv("TZ", "America/New_York", 1), 0);
    assert_int_equal(next_in(c, NULL), iso_ms("2026-03-08T07:30:00.000Z"));
    assert_int_equal(next_in(c, "local"), iso_ms("2026-03-08T07:30:00.000Z"));
    assert_int_equal(setenv("TZ", ":Europe/Berlin", 1), 0);
    assert_int_equal(next_in(c, NULL), next_in(c, "Europe/Berlin"));
    assert_int_equal(setenv("TZ", "No/Such_Zone", 1), 0); /* ICU: UTC */
    assert_int_equal(next_in(c, NULL), iso_ms("2026-03-09T02:30:00.000Z"));
    if (old)
        assert_int_equal(setenv("TZ", old, 1), 0);
    else
        assert_int_equal(unsetenv("TZ"), 0);
    free(old);
}

static void scheduler_follows_bullmq(void **state)
{
    const uint64_t now = iso_ms("2026-01-01T00:01:00.123Z");
    struct nq_cron_sched s = { .pattern = "0 */5 * * * *", .tz = "UTC" };
    struct nq_err err = { { 0 } };
    uint64_t got = 0;

    (void) state;
    assert_int_equal(nq_cron_scheduler_next(&s, now, &got, &err), 0);
    assert_int_equal(got, iso_ms("2026-01-01T00:05:00.000Z"));

    s.prev_millis = iso_ms("2026-01-01T00:05:00.000Z"); /* later than now: wins */
    assert_int_equal(nq_cron_scheduler_next(&s, now, &got, &err), 0);
    assert_int_equal(got, iso_ms("2026-01-01T00:10:00.000Z"));

    s.prev_millis = 0;
    s.start_date_ms = (int64_t) iso_ms("2026-02-01T00:00:00.000Z"); /* strictly after it */
    assert_int_equal(nq_cron_scheduler_next(&s, now, &got, &err), 0);
    assert_int_equal(got, iso_ms("2026-02-01T00:05:00.000Z"));

    s.start_date_ms = 0;
    s.end_date_ms = (int64_t) iso_ms("2026-01-01T00:05:00.000Z"); /* inclusive */
    assert_int_equal(nq_cron_scheduler_next(&s, now, &got, &err), 0);
    assert_int_equal(got, iso_ms("2026-01-01T00:05:00.000Z"));

    got = 1;
    s.end_date_ms = (int64_t) iso_ms("2026-01-01T00:04:59.999Z");
    assert_int_equal(nq_cron_scheduler_next(&s, now, &got, &err), -ENOENT);
    assert_int_equal(got, 1);

    s.end_date_ms = 0;
    s.tz = "Nowhere/Land";
    assert_int_equal(nq_cron_scheduler_next(&s, now, &got, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "unknown time zone 'Nowhere/Land'");
    s.tz = NULL;
    s.pattern = "0 0 31 2 *";
    assert_int_equal(nq_cron_scheduler_next(&s, now, &got, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "cron pattern '0 0 31 2 *': month 2 never has day 31");
}

static void free_accepts_null(void **state)
{
    (void) state;
    assert_null(nq_cron_free(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(next_times_match_cron_parser),
        cmocka_unit_test(bad_patterns_are_named),
        cmocka_unit_test(unknown_zones_are_named),
        cmocka_unit_test(no_zone_is_the_process_zone),
        cmocka_unit_test(scheduler_follows_bullmq),
        cmocka_unit_test(free_accepts_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
