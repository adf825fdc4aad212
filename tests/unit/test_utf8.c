/* SPDX-License-Identifier: MIT */
/*
 * common/utf8.c: where valid UTF-8 stops, checked against jansson, which
 * builds a JSON string from exactly the text that passes.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "common/macros.h"
#include "common/utf8.h"

static const struct {
    const char *text;
    size_t valid; /* length of the valid prefix */
} cases[] = {
    { "", 0 },
    { "plain ascii", 11 },
    { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14 },
    { "\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf", 10 }, /* U+D7FF, U+E000, U+10FFFF */
    { "ab\xc3", 2 },                                    /* a character cut at the end */
    { "ab\xe2\x82", 2 },
    { "a\xff", 1 },
    { "a\x80z", 1 },            /* a stray continuation byte */
    { "a\xc0\xafz", 1 },        /* overlong '/' */
    { "a\xe0\x80\xafz", 1 },    /* overlong, three bytes */
    { "a\xed\xa0\x80z", 1 },    /* a surrogate */
    { "a\xf4\x90\x80\x80", 1 }, /* above U+10FFFF */
    { "a\xf8\x88\x80\x80\x80", 1 },
    { "\xc3\xa9\xc3(", 2 },
};

static void prefix_table(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        const char *s = cases[i].text;
        size_t n = nq_utf8_valid_prefix(s, strlen(s));
        json_t *whole = json_stringn(s, strlen(s)), *prefix = json_stringn(s, n);

        assert_int_equal(n, cases[i].valid);
        /* jansson agrees: the prefix is a JSON string, the whole only if valid */
        assert_non_null(prefix);
        assert_true((whole != NULL) == (n == strlen(s)));
        json_decref(whole);
        json_decref(prefix);
    }
}

/* A length inside a character stops before it. */
static void never_cuts_a_character(void **state)
{
    const char *s = "\xe2\x82\xac\xe2\x82\xac";
    (void) state;

    assert_int_equal(nq_utf8_valid_prefix(s, 4), 3);
    assert_int_equal(nq_utf8_valid_prefix(s, 5), 3);
    assert_int_equal(nq_utf8_valid_prefix(s, 6), 6);
    assert_int_equal(nq_utf8_valid_prefix(s, 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prefix_table),
        cmocka_unit_test(never_cuts_a_character),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
