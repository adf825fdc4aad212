/* SPDX-License-Identifier: MIT */
/*
 * The JSON syntax checker; see jsoncheck.h. One pass over the bytes with an
 * explicit stack of one bit per open container (object or array), so deep
 * nesting costs 256 bytes of C stack, not recursion.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "queue/jsoncheck.h"

struct scan {
    const unsigned char *p, *end;
    const char *reason;       /* set, with p at the culprit, when a scan_ returns false */
    const unsigned char *key; /* the last key of the outermost object, without quotes */
    size_t key_len;
};

static bool fail(struct scan *s, const unsigned char *at, const char *reason)
{
    s->p = at;
    s->reason = reason;
    return false;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* ---- strings ---------------------------------------------------------------- */

/* Bytes a string may hold as they are: printable ASCII but the quote and the
 * backslash. A table, because this loop is most of the checker's time (a
 * quarter faster than four comparisons per byte on the bench payload). */
#define PLAIN(c) ((c) >= 0x20 && (c) < 0x80 && (c) != '"' && (c) != '\\')
#define PLAIN4(c) PLAIN(c), PLAIN((c) + 1), PLAIN((c) + 2), PLAIN((c) + 3)
#define PLAIN16(c) PLAIN4(c), PLAIN4((c) + 4), PLAIN4((c) + 8), PLAIN4((c) + 12)
#define PLAIN64(c) PLAIN16(c), PLAIN16((c) + 16), PLAIN16((c) + 32), PLAIN16((c) + 48)
static const bool plain[256] = { PLAIN64(0), PLAIN64(64), PLAIN64(128), PLAIN64(192) };

/* The length of the well-formed UTF-8 sequence at p (Unicode's table 3-7,
 * which is what jansson's utf8_check_full accepts), or 0. p[0] >= 0x80. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    size_t avail = (size_t) (end - p);
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;

    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (avail < n)
        return 0;
    if (c == 0xE0)
        lo = 0xA0; /* overlong */
    else if (c == 0xED)
        hi = 0x9F; /* U+D800..DFFF, surrogates */
    else if (c == 0xF0)
        lo = 0x90; /* overlong */
    else if (c == 0xF4)
        hi = 0x8F; /* above U+10FFFF */
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

/* The 4 hex digits at p as a number, or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
    long v = 0;

    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i], lower = c | 0x20;

        if (is_digit(c))
            v = v << 4 | (c - '0');
        else if (lower >= 'a' && lower <= 'f')
            v = v << 4 | (lower - 'a' + 10);
        else
            return -1;
    }
    return v;
}

/* The escape at *pp (a backslash); moves *pp past it. */
static bool scan_escape(struct scan *s, const unsigned char **pp)
{
    const unsigned char *p = *pp, *end = s->end;
    long u, lo;

    if (end - p < 2)
        return fail(s, end, "unterminated string");
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        *pp = p + 2;
        return true;
    case 'u':
        break;
    default:
        return fail(s, p, "invalid escape");
    }
    if ((u = hex4(p + 2, end)) < 0)
        return fail(s, p, "invalid \\u escape");
    if (u == 0)
        return fail(s, p, "\\u0000 is not allowed");
    if (u >= 0xDC00 && u <= 0xDFFF)
        return fail(s, p, "lone UTF-16 surrogate");
    if (u < 0xD800 || u > 0xDBFF) {
        *pp = p + 6;
        return true;
    }
    /* A high surrogate: only with a low one right after it. */
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u')
        return fail(s, p, "lone UTF-16 surrogate");
    if ((lo = hex4(p + 8, end)) < 0)
        return fail(s, p + 6, "invalid \\u escape");
    if (lo < 0xDC00 || lo > 0xDFFF)
        return fail(s, p, "lone UTF-16 surrogate");
    *pp = p + 12;
    return true;
}

/* The string at s->p (its opening quote); moves s->p past the closing one. */
static bool scan_string(struct scan *s)
{
    const unsigned char *p = s->p + 1, *end = s->end;

    for (;;) {
        while (p < end && plain[*p])
            p++;
        if (p == end)
            return fail(s, end, "unterminated string");
        if (*p == '"') {
            s->p = p + 1;
            return true;
        }
        if (*p == '\\') {
            if (!scan_escape(s, &p))
                return false;
        } else if (*p < 0x20) {
            return fail(s, p, "control character in string");
        } else {
            size_t n = utf8_seq(p, end);
            if (!n)
                return fail(s, p, "invalid UTF-8");
            p += n;
        }
    }
}

/* ---- numbers ---------------------------------------------------------------- */

/* 2^1024 - 2^970 = 1.797...e308, the midpoint between DBL_MAX and 2^1024:
 * a decimal at or above it rounds to infinity (the tie goes to the even
 * 2^1024), which jansson rejects as "real number overflow". */
#define OVERFLOW_EXP10 308
static const char overflow_digits[] =
    "1797693134862315807937289714053034150799341327100378269361737789804449682927647509466490"
    "1797758720709633028641669288791094655554785194040263065748867150582068190890200070838367"
    "6273854845817711531764475730270069855571366959622842914819860834936475292719074168444365"
    "510704342711559699508093042880177904174497792";

_Static_assert(sizeof(overflow_digits) - 1 == OVERFLOW_EXP10 + 1, "1.797...e308 has 309 digits");

/* Whether a number whose first significant digit is in the 10^308 place
 * reaches the bound: its digits from that one are a..a_end then b..b_end. */
static bool digits_overflow(const unsigned char *a, const unsigned char *a_end,
                            const unsigned char *b, const unsigned char *b_end)
{
    for (size_t i = 0; i < sizeof(overflow_digits) - 1; i++) {
        if (a == a_end) {
            a = b;
            a_end = b_end;
            b = b_end;
        }
        /* Fewer digits: below, since the rest of the bound is not all zeros. */
        if (a == a_end)
            return false;
        if (*a != (unsigned char) overflow_digits[i])
            return *a > (unsigned char) overflow_digits[i];
        a++;
    }
    return true;
}

/* Whether a number with a fraction or exponent stays finite as a double:
 * digits in..in_end before the point, fr..fr_end after it (fr NULL: none),
 * times 10^exp (saturated, so the sums below cannot overflow). */
static bool real_fits(const unsigned char *in, const unsigned char *in_end, const unsigned char *fr,
                      const unsigned char *fr_end, int64_t exp)
{
    const unsigned char *first;
    int64_t sci; /* the power of ten of the first significant digit */

    if (*in != '0') {
        first = in;
        sci = (int64_t) (in_end - in) - 1 + exp;
    } else {
        if (!fr)
            return true; /* zero */
        for (first = fr; first < fr_end && *first == '0'; first++)
            ;
        if (first == fr_end)
            return true; /* zero */
        sci = exp - (int64_t) (first - fr) - 1;
    }
    if (sci != OVERFLOW_EXP10)
        return sci < OVERFLOW_EXP10;
    if (first < in_end)
        return !digits_overflow(first, in_end, fr, fr_end);
    return !digits_overflow(first, fr_end, fr_end, fr_end);
}

/* Whether an integer (no fraction, no exponent) fits json_int_t (int64_t),
 * else jansson's strtoll fails with ERANGE. No leading zeros here. */
static bool int_fits(const unsigned char *in, const unsigned char *in_end, bool negative)
{
    size_t n = (size_t) (in_end - in);

    if (n != 19)
        return n < 19;
    return memcmp(in, negative ? "9223372036854775808" : "9223372036854775807", 19) <= 0;
}

/* The number at s->p; moves s->p past it. */
static bool scan_number(struct scan *s)
{
    const unsigned char *start = s->p, *p = s->p, *end = s->end;
    const unsigned char *in, *in_end, *fr = NULL, *fr_end = NULL;
    bool negative = false, real = false;
    int64_t exp = 0;

    if (*p == '-') {
        negative = true;
        p++;
    }
    in = p;
    if (p == end || !is_digit(*p))
        return fail(s, p, "invalid number");
    if (*p == '0') {
        if (++p < end && is_digit(*p))
            return fail(s, p, "invalid number (leading zero)");
    } else {
        while (p < end && is_digit(*p))
            p++;
    }
    in_end = p;
    if (p < end && *p == '.') {
        fr = ++p;
        if (p == end || !is_digit(*p))
            return fail(s, p, "invalid number");
        while (p < end && is_digit(*p))
            p++;
        fr_end = p;
        real = true;
    }
    if (p < end && (*p | 0x20) == 'e') {
        bool exp_negative = false;

        if (++p < end && (*p == '+' || *p == '-'))
            exp_negative = *p++ == '-';
        if (p == end || !is_digit(*p))
            return fail(s, p, "invalid number");
        for (; p < end && is_digit(*p); p++)
            if (exp < 1000000000000000) /* far past any double's range */
                exp = exp * 10 + (*p - '0');
        exp = exp_negative ? -exp : exp;
        real = true;
    }
    if (real ? !real_fits(in, in_end, fr, fr_end, exp) : !int_fits(in, in_end, negative))
        return fail(s, start, "number out of range");
    s->p = p;
    return true;
}

/* ---- values ----------------------------------------------------------------- */

static bool scan_word(struct scan *s, const char *word, size_t n)
{
    if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return fail(s, s->p, "invalid literal");
    s->p += n;
    return true;
}

/* A value other than an array or object at s->p. */
static bool scan_scalar(struct scan *s)
{
    if (s->p == s->end)
        return fail(s, s->p, "unexpected end of input");
    switch (*s->p) {
    case '"':
        return scan_string(s);
    case 't':
        return scan_word(s, "true", 4);
    case 'f':
        return scan_word(s, "false", 5);
    case 'n':
        return scan_word(s, "null", 4);
    default:
        if (*s->p == '-' || is_digit(*s->p))
            return scan_number(s);
        return fail(s, s->p, "unexpected character");
    }
}

/* A key and its colon, then whitespace: s->p is at the value. A key of
 * the outermost object (top) is remembered, to name the field an error is
 * in. */
static bool scan_key(struct scan *s, bool top)
{
    const unsigned char *start = s->p;

    if (s->p == s->end)
        return fail(s, s->p, "unexpected end of input");
    if (*s->p != '"')
        return fail(s, s->p, "expected a string key");
    if (!scan_string(s))
        return false;
    if (top) {
        s->key = start + 1;
        s->key_len = (size_t) (s->p - start) - 2;
    }
    skip_ws(s);
    if (s->p == s->end || *s->p != ':')
        return fail(s, s->p, "expected ':'");
    s->p++;
    skip_ws(s);
    return true;
}

static bool scan_document(struct scan *s)
{
    uint8_t is_object[NQ_JSONCHECK_MAX_DEPTH / 8] = { 0 }; /* bit d: container d is {} */
    size_t depth = 0;                                      /* containers open */

    skip_ws(s);
    for (;;) {
        /* A value starts at s->p. */
        if (depth == NQ_JSONCHECK_MAX_DEPTH)
            return fail(s, s->p, "nesting deeper than 2048");
        if (s->p < s->end && (*s->p == '[' || *s->p == '{')) {
            bool object = *s->p == '{';

            if (object)
                is_object[depth / 8] |= (uint8_t) (1u << depth % 8);
            else
                is_object[depth / 8] &= (uint8_t) ~(1u << depth % 8);
            depth++;
            s->p++;
            skip_ws(s);
            if (s->p < s->end && *s->p == (object ? '}' : ']')) {
                s->p++;
                depth--;
            } else {
                if (object && !scan_key(s, depth == 1))
                    return false;
                continue; /* to the first member */
            }
        } else if (!scan_scalar(s)) {
            return false;
        }
        /* After a value: close containers until a comma or the end. */
        for (;;) {
            if (depth == 1)
                s->key = NULL; /* the top-level member's value is whole */
            skip_ws(s);
            if (depth == 0) {
                if (s->p == s->end)
                    return true;
                return fail(s, s->p, "unexpected data after the value");
            }
            bool object = is_object[(depth - 1) / 8] >> (depth - 1) % 8 & 1;
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                skip_ws(s);
                if (object && !scan_key(s, depth == 1))
                    return false;
                break;
            }
            if (s->p < s->end && *s->p == (object ? '}' : ']')) {
                s->p++;
                depth--;
                continue;
            }
            if (s->p == s->end)
                return fail(s, s->p, "unexpected end of input");
            return fail(s, s->p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
}

int nq_jsoncheck_validate(const char *buf, size_t len, struct nq_jsoncheck_err *err)
{
    const unsigned char *start = (const unsigned char *) buf;
    struct scan s = { .p = start, .end = start + len };

    if (scan_document(&s))
        return 0;
    *err = (struct nq_jsoncheck_err){ .reason = s.reason, .offset = (size_t) (s.p - start) };
    if (s.key && s.p > s.key + s.key_len) {
        err->key = (const char *) s.key;
        err->key_len = s.key_len;
    }
    return -EINVAL;
}
