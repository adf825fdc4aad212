/* SPDX-License-Identifier: MIT */
/*
 * common/duration.c: the duration syntax of the config and the command line.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/duration.h"
#include "common/macros.h"

static const struct {
    const char *text;
    int r;
    uint64_t ms;
} parse_cases[] = {
    { "0", 0, 0 },
    { "500", 0, 500 },
    { "500ms", 0, 500 },
    { "0ms", 0, 0 },
    { "2s", 0, 2000 },
    { "5m", 0, 300000 },
    { "1h", 0, 3600000 },
    { "7d", 0, 604800000 },
    { "007s", 0, 7000 },
    { "18446744073709551615", 0, UINT64_MAX },
    { "18446744073709551615ms", 0, UINT64_MAX },
    { "213503982334d", 0, 213503982334ull * 86400000ull },
    /* overflow: of the number, then of the unit's multiplication */
    { "18446744073709551616", -ERANGE, 0 },
    { "99999999999999999999999999s", -ERANGE, 0 },
    { "213503982335d", -ERANGE, 0 },
    { "18446744073709552s", -ERANGE, 0 },
    /* garbage */
    { "", -EINVAL, 0 },
    { "s", -EINVAL, 0 },
    { "ms", -EINVAL, 0 },
    { "5x", -EINVAL, 0 },
    { "5S", -EINVAL, 0 },
    { "5sec", -EINVAL, 0 },
    { "5 s", -EINVAL, 0 },
    { " 5s", -EINVAL, 0 },
    { "5s ", -EINVAL, 0 },
    { "-5s", -EINVAL, 0 },
    { "+5s", -EINVAL, 0 },
    { "1.5s", -EINVAL, 0 },
    { "0x10", -EINVAL, 0 },
    { "5ms5", -EINVAL, 0 },
    { "1h30m", -EINVAL, 0 },
};

static void parse_table(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(parse_cases); i++) {
        uint64_t ms = 12345;
        int r = nq_duration_parse(parse_cases[i].text, &ms);

        if (r != parse_cases[i].r)
            fail_msg("\"%s\": got %d, want %d", parse_cases[i].text, r, parse_cases[i].r);
        /* ret_ms is only written on success */
        assert_int_equal(ms, r == 0 ? parse_cases[i].ms : 12345);
    }
}

static void null_is_invalid(void **state)
{
    uint64_t ms = 1;

    (void) state;
    assert_int_equal(nq_duration_parse(NULL, &ms), -EINVAL);
    assert_int_equal(ms, 1);
}

static const struct {
    uint64_t ms;
    const char *text;
} format_cases[] = {
    { 0, "0ms" },        { 1, "1ms" },
    { 1500, "1500ms" },  { 1000, "1s" },
    { 30000, "30s" },    { 61000, "61s" },
    { 90000, "90s" },    { 300000, "5m" },
    { 3600000, "1h" },   { 5400000, "90m" },
    { 86400000, "1d" },  { 604800000, "7d" },
    { 90000000, "25h" }, { UINT64_MAX, "18446744073709551615ms" },
};

static void format_uses_the_largest_exact_unit(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(format_cases); i++) {
        char buf[32];
        uint64_t back = 0;

        nq_duration_format(format_cases[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, format_cases[i].text);
        assert_int_equal(nq_duration_parse(buf, &back), 0);
        assert_int_equal(back, format_cases[i].ms);
    }
}

static void format_truncates_to_the_buffer(void **state)
{
    char buf[3] = "xx";

    (void) state;
    nq_duration_format(30000, buf, sizeof(buf));
    assert_string_equal(buf, "30");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_table),
        cmocka_unit_test(null_is_invalid),
        cmocka_unit_test(format_uses_the_largest_exact_unit),
        cmocka_unit_test(format_truncates_to_the_buffer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
