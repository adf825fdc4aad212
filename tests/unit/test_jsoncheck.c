/* SPDX-License-Identifier: MIT */
/* The JSON checker: a table of verdicts with their reasons and offsets, the
 * nesting limit, and a differential run against jansson 2.14's json_loadb
 * (hand-picked tricky texts, random documents, and mutations of them), which
 * must give the same accept/reject verdict on every one. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "queue/jsoncheck.h"

/* 2^1024 - 2^970: the least decimal that strtod rounds to infinity. */
#define OVERFLOW_BOUND                                                                             \
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017"   \
    "977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273"   \
    "854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704"   \
    "342711559699508093042880177904174497792"
#define BOUND_MINUS_1                                                                              \
    "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017"   \
    "977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273"   \
    "854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704"   \
    "342711559699508093042880177904174497791"

/* Runs the checker on an exact-size heap copy, so an overread is an ASan or
 * valgrind error rather than a lucky NUL. */
static int check(const char *text, size_t len, struct nq_jsoncheck_err *err)
{
    char *copy = malloc(len ? len : 1);
    int r;

    assert_non_null(copy);
    memcpy(copy, text, len);
    r = nq_jsoncheck_validate(copy, len, err);
    free(copy);
    return r;
}

static const struct {
    const char *text;
    size_t len;         /* 0: strlen(text) */
    const char *reason; /* NULL: valid */
    size_t offset;
} cases[] = {
    /* values of every kind, whitespace */
    { "{}", 0, NULL, 0 },
    { "[]", 0, NULL, 0 },
    { "\"\"", 0, NULL, 0 },
    { "0", 0, NULL, 0 },
    { "true", 0, NULL, 0 },
    { "false", 0, NULL, 0 },
    { "null", 0, NULL, 0 },
    { " \t\r\n[ 1 , { \"a\" : [ ] , \"a\" : null } ] \n", 0, NULL, 0 }, /* duplicate keys too */
    { "{\"to\":\"user1@tenant1.example.com\",\"subject\":\"Weekly summary\",\"n\":[1,-2.5e-3]}", 0,
      NULL, 0 },
    /* strings */
    { "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", 0, NULL, 0 },
    { "\"\\u00e9\\u00E9\\u20ac\\uFFFF\"", 0, NULL, 0 },
    { "\"\\uD83D\\uDE00\"", 0, NULL, 0 }, /* a surrogate pair */
    { "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", 0, NULL, 0 },
    { "\"\xed\x9f\xbf \xee\x80\x80 \xf4\x8f\xbf\xbf \xef\xbf\xbe\"", 0, NULL, 0 }, /* edges */
    { "\"\x7f\"", 0, NULL, 0 }, /* DEL is not a control */
    { "\"abc", 0, "unterminated string", 4 },
    { "\"abc\\", 0, "unterminated string", 5 },
    { "\"a\tb\"", 0, "control character in string", 2 },
    { "\"a\nb\"", 0, "control character in string", 2 },
    { "\"a\0b\"", 5, "control character in string", 2 },
    { "\"\\x\"", 0, "invalid escape", 1 },
    { "\"\\'\"", 0, "invalid escape", 1 },
    { "\"\\u12G4\"", 0, "invalid \\u escape", 1 },
    { "\"\\u12\"", 0, "invalid \\u escape", 1 },
    { "\"x\\u0000\"", 0, "\\u0000 is not allowed", 2 },
    { "{\"\\u0000\":1}", 0, "\\u0000 is not allowed", 2 },
    { "\"\\uD83D\"", 0, "lone UTF-16 surrogate", 1 },
    { "\"\\uD83Dx\\uDE00\"", 0, "lone UTF-16 surrogate", 1 },
    { "\"\\uD83D\\u0041\"", 0, "lone UTF-16 surrogate", 1 },
    { "\"\\uD83D\\uD83D\"", 0, "lone UTF-16 surrogate", 1 },
    { "\"\\uD83D\\uDEzz\"", 0, "invalid \\u escape", 7 },
    { "\"\\uDE00\"", 0, "lone UTF-16 surrogate", 1 },
    { "\"\xc3\"", 0, "invalid UTF-8", 1 },             /* truncated */
    { "\"\xc3", 0, "invalid UTF-8", 1 },               /* truncated at the end */
    { "\"\x80\"", 0, "invalid UTF-8", 1 },             /* a continuation first */
    { "\"\xc0\xaf\"", 0, "invalid UTF-8", 1 },         /* overlong '/' */
    { "\"\xe0\x80\xaf\"", 0, "invalid UTF-8", 1 },     /* overlong */
    { "\"\xf0\x80\x80\xaf\"", 0, "invalid UTF-8", 1 }, /* overlong */
    { "\"\xed\xa0\x80\"", 0, "invalid UTF-8", 1 },     /* U+D800 encoded */
    { "\"\xf4\x90\x80\x80\"", 0, "invalid UTF-8", 1 }, /* above U+10FFFF */
    { "\"\xf5\x80\x80\x80\"", 0, "invalid UTF-8", 1 },
    { "\"\xe2\x82\"", 0, "invalid UTF-8", 1 },
    { "\"ok\xff\"", 0, "invalid UTF-8", 3 },
    /* numbers: grammar */
    { "[-0,0.5,1e5,1E+5,1e-5,-1.25E05,123456789]", 0, NULL, 0 },
    { "-", 0, "invalid number", 1 },
    { "-a", 0, "invalid number", 1 },
    { "01", 0, "invalid number (leading zero)", 1 },
    { "[-01]", 0, "invalid number (leading zero)", 3 },
    { "1.", 0, "invalid number", 2 },
    { "1.e5", 0, "invalid number", 2 },
    { "1e", 0, "invalid number", 2 },
    { "1e+", 0, "invalid number", 3 },
    { "1e.5", 0, "invalid number", 2 },
    { ".5", 0, "unexpected character", 0 },
    { "+1", 0, "unexpected character", 0 },
    { "0x1F", 0, "unexpected data after the value", 1 },
    { "NaN", 0, "unexpected character", 0 },
    { "-Infinity", 0, "invalid number", 1 },
    /* numbers: jansson's range (JSON.parse would take all of these) */
    { "9223372036854775807", 0, NULL, 0 },
    { "-9223372036854775808", 0, NULL, 0 },
    { "9223372036854775808", 0, "number out of range", 0 },
    { "[-9223372036854775809]", 0, "number out of range", 1 },
    { "18446744073709551615", 0, "number out of range", 0 },
    { "9223372036854775808.0", 0, NULL, 0 }, /* a real: a double holds it */
    { "1e308", 0, NULL, 0 },
    { "1.7976931348623157e308", 0, NULL, 0 }, /* DBL_MAX */
    { "1.7976931348623158e308", 0, NULL, 0 }, /* below the midpoint: rounds to DBL_MAX */
    { "1.7976931348623159e308", 0, "number out of range", 0 },
    { "{\"n\":1e999}", 0, "number out of range", 5 },
    { "-2e308", 0, "number out of range", 0 },
    { "1e99999999999999999999999", 0, "number out of range", 0 },
    { "1e-999", 0, NULL, 0 }, /* underflows to 0: fine for jansson */
    { "0e99999999999999999999999", 0, NULL, 0 },
    { "0.000e400", 0, NULL, 0 },
    { "0.001e311", 0, NULL, 0 }, /* 1e308 */
    { "0.002e311", 0, "number out of range", 0 },
    { BOUND_MINUS_1 ".0", 0, NULL, 0 },
    { OVERFLOW_BOUND ".0", 0, "number out of range", 0 },
    { "0." OVERFLOW_BOUND "e309", 0, "number out of range", 0 },
    { "0." BOUND_MINUS_1 "999e309", 0, NULL, 0 },
    /* literals */
    { "tru", 0, "invalid literal", 0 },
    { "True", 0, "unexpected character", 0 },
    { "nulls", 0, "unexpected data after the value", 4 },
    { "[nul]", 0, "invalid literal", 1 },
    /* structure */
    { "", 0, "unexpected end of input", 0 },
    { " \n ", 0, "unexpected end of input", 3 },
    { "[", 0, "unexpected end of input", 1 },
    { "[1", 0, "unexpected end of input", 2 },
    { "{\"a\":1", 0, "unexpected end of input", 6 },
    { "{", 0, "unexpected end of input", 1 },
    { "]", 0, "unexpected character", 0 },
    { "[1,]", 0, "unexpected character", 3 },
    { "[,1]", 0, "unexpected character", 1 },
    { "[1 2]", 0, "expected ',' or ']'", 3 },
    { "[1}", 0, "expected ',' or ']'", 2 },
    { "{\"a\" 1}", 0, "expected ':'", 5 },
    { "{\"a\"}", 0, "expected ':'", 4 },
    { "{\"a\":}", 0, "unexpected character", 5 },
    { "{\"a\":1,}", 0, "expected a string key", 7 },
    { "{1:2}", 0, "expected a string key", 1 },
    { "{'a':1}", 0, "expected a string key", 1 },
    { "{\"a\":1 \"b\":2}", 0, "expected ',' or '}'", 7 },
    { "{\"a\":1]", 0, "expected ',' or '}'", 6 },
    { "1 2", 0, "unexpected data after the value", 2 },
    { "[1]]", 0, "unexpected data after the value", 3 },
    { "{}x", 0, "unexpected data after the value", 2 },
    { "{}\0", 3, "unexpected data after the value", 2 },
    /* jansson takes these (see nul_after_a_scalar); RFC 8259 does not */
    { "0\0", 2, "unexpected data after the value", 1 },
    { "[1\0]", 4, "expected ',' or ']'", 2 },
    { "[true\0,1.5e3\0]", 14, "expected ',' or ']'", 5 },
    { "\f1", 0, "unexpected character", 0 }, /* not JSON whitespace */
    { "\v1", 0, "unexpected character", 0 },
    { "\xc2\xa0"
      "1",
      0, "unexpected character", 0 },                   /* nor is U+00A0 */
    { "\xef\xbb\xbf{}", 0, "unexpected character", 0 }, /* a BOM is not skipped */
};

static void verdicts_reasons_and_offsets(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        struct nq_jsoncheck_err err = { NULL, 0, NULL, 0 };
        int r = check(cases[i].text, len, &err);

        if (!cases[i].reason) {
            if (r != 0)
                fail_msg("case %zu refused: %s at %zu", i, err.reason, err.offset);
            continue;
        }
        if (r != -EINVAL)
            fail_msg("case %zu accepted, want %s", i, cases[i].reason);
        if (strcmp(err.reason, cases[i].reason) != 0 || err.offset != cases[i].offset)
            fail_msg("case %zu: got %s at %zu, want %s at %zu", i, err.reason, err.offset,
                     cases[i].reason, cases[i].offset);
    }
}

/* n openers ({"k": and [ in turn when mixed), inner, then the closers. */
static char *nest(size_t n, bool mixed, const char *inner, size_t *ret_len)
{
    size_t cap = n * 5 + strlen(inner) + 1, len = 0;
    char *s = malloc(cap);

    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        len += (size_t) sprintf(s + len, "%s", mixed && i % 2 == 0 ? "{\"k\":" : "[");
    len += (size_t) sprintf(s + len, "%s", inner);
    for (size_t i = n; i-- > 0;)
        s[len++] = mixed && i % 2 == 0 ? '}' : ']';
    *ret_len = len;
    return s;
}

static bool jansson_accepts(const char *text, size_t len)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, NULL);

    json_decref(v);
    return v != NULL;
}

/* jansson counts every value, scalars too: a value inside 2048 containers is
 * too deep. Both must agree on each side of that line. */
static void nesting_stops_where_janssons_does(void **state)
{
    static const struct {
        size_t n;
        bool mixed;
        const char *inner;
        bool valid;
    } depths[] = {
        { 2047, false, "[]", true },    { 2047, false, "1", true },   { 2048, false, "", true },
        { 2048, false, "1", false },    { 2048, false, "[]", false }, { 2047, true, "{}", true },
        { 2048, true, "\"x\"", false }, { 2048, true, "", true },     { 100000, false, "", false },
    };
    (void) state;

    for (size_t i = 0; i < NQ_ELEMENTSOF(depths); i++) {
        size_t len;
        char *s = nest(depths[i].n, depths[i].mixed, depths[i].inner, &len);
        struct nq_jsoncheck_err err = { NULL, 0, NULL, 0 };
        int r = check(s, len, &err);

        if ((r == 0) != depths[i].valid)
            fail_msg("depth case %zu: checker says %s", i, r == 0 ? "valid" : err.reason);
        if (jansson_accepts(s, len) != depths[i].valid)
            fail_msg("depth case %zu: jansson disagrees with the table", i);
        if (!depths[i].valid) {
            assert_string_equal(err.reason, "nesting deeper than 2048");
            assert_int_equal(err.offset, depths[i].mixed ? 2048 / 2 * 6 : 2048);
        }
        free(s);
    }
}

/* The one documented difference (jsoncheck.h), pinned from jansson's side
 * too: should jansson stop dropping these NULs, this says so. */
static void nul_after_a_scalar(void **state)
{
    static const struct {
        const char *text;
        size_t len;
    } quirks[] = { { "0\0", 2 },       { "[1\0]", 4 }, { "true\0", 5 }, { "{\"a\":null\0}", 11 },
                   { "[1.5\0,2]", 8 }, { "1e5\0 ", 5 } };
    struct nq_jsoncheck_err err;
    (void) state;

    for (size_t i = 0; i < NQ_ELEMENTSOF(quirks); i++) {
        assert_true(jansson_accepts(quirks[i].text, quirks[i].len));
        assert_int_equal(check(quirks[i].text, quirks[i].len, &err), -EINVAL);
        assert_int_equal(quirks[i].text[err.offset], '\0');
    }
    /* Two NULs, or one after a string or bracket: refused by both. */
    assert_false(jansson_accepts("1\0\0", 3));
    assert_false(jansson_accepts("\"a\"\0", 4));
    assert_false(jansson_accepts("[]\0", 3));
}

/* ---- differential ------------------------------------------------------------ */

#define FUZZ_SEED 0x6e6f746966797121ULL /* "notifyq!" */
#define FUZZ_CASES 20000
#define DOC_MAX 1024

static uint64_t rng_state;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t below(size_t n)
{
    return (size_t) (rnd() % n);
}

static const char *pick(const char *const *v, size_t n)
{
    return v[below(n)];
}

struct doc {
    char buf[DOC_MAX];
    size_t len;
};

static void put(struct doc *d, const char *s)
{
    size_t n = strlen(s);

    if (d->len + n <= DOC_MAX) {
        memcpy(d->buf + d->len, s, n);
        d->len += n;
    }
}

static void put_ws(struct doc *d)
{
    static const char *const ws[] = { "", "", "", " ", "\n", " \t", "\r\n  " };

    put(d, pick(ws, NQ_ELEMENTSOF(ws)));
}

static void put_digits(struct doc *d, size_t n, bool leading_nonzero)
{
    char c[2] = { 0, 0 };

    for (size_t i = 0; i < n; i++) {
        c[0] = (char) ('0' + (i == 0 && leading_nonzero ? 1 + below(9) : below(10)));
        put(d, c);
    }
}

/* Numbers from all over the grammar, many near jansson's range limits. */
static void put_number(struct doc *d)
{
    static const char *const near[] = { "922337203685477580",  "-922337203685477580",
                                        "1844674407370955161", "17976931348623157",
                                        "17976931348623158",   "17976931348623159" };
    if (below(2))
        put(d, "-");
    switch (below(6)) {
    case 0:
        put(d, "0");
        break;
    case 1:
        put_digits(d, 1 + below(20), true);
        break;
    case 2: /* integers around 2^63 and the overflow bound */
        put(d, near[below(NQ_ELEMENTSOF(near))] + (below(2) ? 0 : 1));
        put_digits(d, below(3), false);
        break;
    case 3:
        put_digits(d, 1 + below(3), true);
        put(d, ".");
        put_digits(d, 1 + below(6), false);
        break;
    case 4: /* exponents around 308 */
        put(d, pick((const char *const[]){ "1", "1.7976931348623157", "1.7976931348623158",
                                           "1.797693134862315807937289714053", "17.9", "0.18",
                                           "0.0000017976931348623159", "0", "0.000",
                                           "0." OVERFLOW_BOUND, "0." BOUND_MINUS_1 },
                    11));
        put(d, pick((const char *const[]){ "e", "E", "e+", "e-", "e0" }, 5));
        put(d,
            pick((const char *const[]){ "307", "308", "309", "310", "314", "999", "0", "3" }, 8));
        break;
    default:
        put_digits(d, 1 + below(2), true);
        put(d, below(2) ? "e" : "E");
        put(d, below(2) ? "-" : "");
        put_digits(d, 1 + below(4), false);
        break;
    }
}

static void put_string(struct doc *d)
{
    static const char *const pieces[] = {
        "a",
        "Hello user 17",
        " ",
        "tenant-3",
        "\\n",
        "\\\"",
        "\\\\",
        "\\/",
        "\\t",
        "\\b",
        "\\f",
        "\\r",
        "\\u00e9",
        "\\u20AC",
        "\\uD83D\\uDE00",
        "\\udbff\\udfff",
        "\\u0001",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "\xf4\x8f\xbf\xbf",
        "\xed\x9f\xbf",
        "\xef\xbb\xbf",
        "\x7f",
        "fail",
        "sleep_ms",
        "~",
    };
    size_t n = below(6);

    put(d, "\"");
    for (size_t i = 0; i < n; i++)
        put(d, pick(pieces, NQ_ELEMENTSOF(pieces)));
    put(d, "\"");
}

static void put_value(struct doc *d, unsigned depth)
{
    size_t kind = below(depth < 4 ? 8 : 5);

    put_ws(d);
    switch (kind) {
    case 0:
    case 1:
        put_string(d);
        break;
    case 2:
        put_number(d);
        break;
    case 3:
        put(d, pick((const char *const[]){ "true", "false", "null" }, 3));
        break;
    case 4:
        put_number(d);
        break;
    case 5:
    case 6: {
        size_t n = below(5);

        put(d, "{");
        for (size_t i = 0; i < n; i++) {
            if (i)
                put(d, ",");
            put_ws(d);
            put_string(d);
            put_ws(d);
            put(d, ":");
            put_value(d, depth + 1);
        }
        put_ws(d);
        put(d, "}");
        break;
    }
    default: {
        size_t n = below(5);

        put(d, "[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                put(d, ",");
            put_value(d, depth + 1);
        }
        put_ws(d);
        put(d, "]");
        break;
    }
    }
    put_ws(d);
}

/* UTF-8 at the edges of validity: lead bytes C0 C1 E0 ED F0 F4 F5, too few
 * or too many continuation bytes. */
static const char *const utf8_edges[] = {
    "\xc0\x80",
    "\xc1\xbf",
    "\xc2\x80",
    "\xdf\xbf",
    "\xe0\x80\x80",
    "\xe0\x9f\xbf",
    "\xe0\xa0\x80",
    "\xed\x9f\xbf",
    "\xed\xa0\x80",
    "\xed\xbf\xbf",
    "\xee\x80\x80",
    "\xef\xbf\xbf",
    "\xf0\x8f\xbf\xbf",
    "\xf0\x90\x80\x80",
    "\xf4\x8f\xbf\xbf",
    "\xf4\x90\x80\x80",
    "\xf5\x80\x80\x80",
    "\xf8\x88\x80\x80\x80",
    "\xc3",
    "\xe2\x82",
    "\xf0\x9f\x98",
    "\x80",
    "\xbf",
    "\xc3\xa9\xa9",
};

/* One random edit: bytes that matter to a JSON lexer, or any byte. */
static void mutate(struct doc *d)
{
    static const unsigned char hot[] = {
        '{',  '}',  '[',  ']',  ':',  ',',  '"',  '\\', '/',  'u',  'b',  'f',  'n',
        'r',  't',  'e',  'E',  '0',  '1',  '9',  '-',  '+',  '.',  ' ',  '\t', '\r',
        '\n', '\f', '\v', 'a',  'D',  'F',  'x',  'l',  's',  0x00, 0x01, 0x1f, 0x7f,
        0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
    };
    unsigned char b = below(4) ? hot[below(sizeof(hot))] : (unsigned char) below(256);
    size_t at = d->len ? below(d->len) : 0;

    switch (below(8)) {
    case 0:
    case 1:
        if (d->len)
            d->buf[at] = (char) b;
        break;
    case 5: { /* one token character for another: "{]", "1e.5", "[,]" */
        static const char tokens[] = "{}[]:,\"\\+-.eE019tfnu";

        for (size_t i = 0; i < d->len; i++) {
            size_t j = (at + i) % d->len;

            if (d->buf[j] && strchr(tokens, d->buf[j])) {
                d->buf[j] = tokens[below(sizeof(tokens) - 1)];
                break;
            }
        }
        break;
    }
    case 6: { /* an edge of UTF-8, most likely inside a string */
        const char *u = pick(utf8_edges, NQ_ELEMENTSOF(utf8_edges));
        size_t n = strlen(u);

        if (d->len + n <= DOC_MAX) {
            memmove(d->buf + at + n, d->buf + at, d->len - at);
            memcpy(d->buf + at, u, n);
            d->len += n;
        }
        break;
    }
    case 2:
        if (d->len < DOC_MAX) {
            memmove(d->buf + at + 1, d->buf + at, d->len - at);
            d->buf[at] = (char) b;
            d->len++;
        }
        break;
    case 3:
        if (d->len) {
            memmove(d->buf + at, d->buf + at + 1, d->len - at - 1);
            d->len--;
        }
        break;
    case 4:
        d->len = at;
        break;
    default: { /* repeat a slice: doubles a token, nests deeper */
        size_t n = below(8);

        if (at + n <= d->len && d->len + n <= DOC_MAX) {
            memmove(d->buf + at + n, d->buf + at, d->len - at);
            d->len += n;
        }
        break;
    }
    }
}

static const char *const tricky[] = {
    /* NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one JSON text over three lines */
    "{\"to\":\"user42@tenant42.example.com\",\"subject\":\"Payment received\",\"message\":"
    "\"Hello user 42, this is notification number 42. Please do not reply to this automated "
    "message.\",\"tenantId\":\"tenant-42\",\"notificationId\":\"ntf-00000042\"}",
    "{\"fail\":\"permanent\",\"sleep_ms\":5,\"crash\":\"segv\"}",
    "{\"\\u0066ail\":\"retryable\"}",
    "[0,-0,0.0,-0.0,0e0,0E-0,1e1,1E+1,-1e-1]",
    "[9223372036854775807,-9223372036854775808]",
    "[1.7976931348623157e308,-1.7976931348623157e308,4.9e-324,2.5e-324,1e-400]",
    "\"\\uD800\\uDC00\\uDBFF\\uDFFF\"",
    "\"\xf0\x90\x80\x80\xf3\xbf\xbf\xbf\"",
    "{\"a\":{\"b\":{\"c\":[[[[{}]]]]}}}",
    "  \"only a string\"  ",
    "-12.5e+3",
    "[\"\\u00\"]",
    "[1e309]",
    "[\"a\",]",
    "{\"\":\"\"}",
};

static size_t nul_differences;

/* Whether we refuse text only for jansson's one quirk: a NUL byte right
 * after a number or literal, which jansson drops. Drops such NULs where we
 * stop, as jansson does, until the two agree. */
static bool only_nul_after_scalar(const char *text, size_t len)
{
    char copy[DOC_MAX];
    struct nq_jsoncheck_err err = { NULL, 0, NULL, 0 };

    if (len > sizeof(copy))
        return false;
    memcpy(copy, text, len);
    while (check(copy, len, &err) < 0) {
        size_t at = err.offset;

        if (at == 0 || at >= len || copy[at] != '\0' || !strchr("0123456789el", copy[at - 1]))
            return false;
        memmove(copy + at, copy + at + 1, len - at - 1);
        len--;
    }
    return jansson_accepts(copy, len);
}

/* Both verdicts for one text; a disagreement fails with the text escaped. */
static bool same_verdict(const char *text, size_t len)
{
    struct nq_jsoncheck_err err = { NULL, 0, NULL, 0 };
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    bool ours = check(text, len, &err) == 0, theirs = v != NULL;

    json_decref(v);
    if (!ours && theirs && only_nul_after_scalar(text, len)) {
        nul_differences++;
        return false;
    }
    if (ours != theirs) {
        char shown[4 * DOC_MAX + 1];
        size_t n = 0;

        for (size_t i = 0; i < len && n + 5 < sizeof(shown); i++) {
            unsigned char c = (unsigned char) text[i];
            n += (size_t) (c >= 0x20 && c < 0x7f && c != '\\' ? sprintf(shown + n, "%c", c)
                                                              : sprintf(shown + n, "\\x%02x", c));
        }
        fail_msg("verdicts differ on \"%s\" (%zu bytes): checker %s, jansson %s", shown, len,
                 ours ? "accepts" : err.reason, theirs ? "accepts" : jerr.text);
    }
    return ours;
}

static void agrees_with_jansson(void **state)
{
    size_t accepted = 0, total = 0;
    (void) state;

    for (size_t i = 0; i < NQ_ELEMENTSOF(tricky); i++)
        (void) same_verdict(tricky[i], strlen(tricky[i]));
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++)
        (void) same_verdict(cases[i].text, cases[i].len ? cases[i].len : strlen(cases[i].text));
    rng_state = FUZZ_SEED;
    while (total < FUZZ_CASES) {
        struct doc d = { .len = 0 };

        if (below(4) == 0) {
            const char *t = tricky[below(NQ_ELEMENTSOF(tricky))];
            put(&d, t);
        } else {
            put_value(&d, 0);
        }
        accepted += same_verdict(d.buf, d.len);
        total++;
        /* Then a few mutants of it, each one more edit away. */
        for (size_t m = below(4); m > 0 && total < FUZZ_CASES; m--, total++) {
            mutate(&d);
            accepted += same_verdict(d.buf, d.len);
        }
    }
    /* Both verdicts must be common, or the comparison proves little. */
    print_message("differential: %zu of %zu random texts valid; %zu refused for a NUL "
                  "after a scalar, which jansson takes\n",
                  accepted, total, nul_differences);
    assert_true(accepted > FUZZ_CASES / 5);
    assert_true(accepted < FUZZ_CASES * 4 / 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verdicts_reasons_and_offsets),
        cmocka_unit_test(nesting_stops_where_janssons_does),
        cmocka_unit_test(nul_after_a_scalar),
        cmocka_unit_test(agrees_with_jansson),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
