/* SPDX-License-Identifier: MIT */
/*
 * Phone numbers to E.164 with a default region (see phone.h).
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "common/macros.h"
#include "common/phone.h"

#define E164_DIGITS_MAX 15
#define E164_DIGITS_MIN 7

struct region {
    const char *code;          /* ISO 3166-1 alpha-2 */
    const char *cc;            /* country calling code */
    const char *trunk;         /* national trunk prefix, "" when none */
    unsigned nsn_min, nsn_max; /* national significant number length */
};

/* Calling codes and trunk prefixes from ITU-T E.164 assignments and the
 * national numbering plans; lengths are the NSN ranges those plans give. */
static const struct region regions[] = {
    { "AE", "971", "0", 8, 9 },  { "AR", "54", "0", 10, 10 }, { "AT", "43", "0", 4, 13 },
    { "AU", "61", "0", 9, 9 },   { "BE", "32", "0", 8, 9 },   { "BR", "55", "0", 10, 11 },
    { "CA", "1", "1", 10, 10 },  { "CH", "41", "0", 9, 9 },   { "CN", "86", "0", 9, 11 },
    { "CZ", "420", "", 9, 9 },   { "DE", "49", "0", 6, 13 },  { "DK", "45", "", 8, 8 },
    { "EG", "20", "0", 9, 10 },  { "ES", "34", "", 9, 9 },    { "FI", "358", "0", 5, 12 },
    { "FR", "33", "0", 9, 9 },   { "GB", "44", "0", 9, 10 },  { "GR", "30", "", 10, 10 },
    { "HK", "852", "", 8, 8 },   { "HU", "36", "06", 8, 9 },  { "ID", "62", "0", 8, 12 },
    { "IE", "353", "0", 7, 9 },  { "IL", "972", "0", 8, 9 },  { "IN", "91", "0", 10, 10 },
    { "IT", "39", "", 6, 11 },   { "JP", "81", "0", 9, 10 },  { "KR", "82", "0", 8, 10 },
    { "MX", "52", "", 10, 10 },  { "NG", "234", "0", 8, 10 }, { "NL", "31", "0", 9, 9 },
    { "NO", "47", "", 8, 8 },    { "NZ", "64", "0", 8, 10 },  { "PH", "63", "0", 10, 10 },
    { "PL", "48", "", 9, 9 },    { "PT", "351", "", 9, 9 },   { "RO", "40", "0", 9, 9 },
    { "RU", "7", "8", 10, 10 },  { "SE", "46", "0", 7, 9 },   { "SG", "65", "", 8, 8 },
    { "TR", "90", "0", 10, 10 }, { "UA", "380", "0", 9, 9 },  { "US", "1", "1", 10, 10 },
    { "ZA", "27", "0", 9, 9 },
};

static const struct region *region_find(const char *code)
{
    for (size_t i = 0; code && i < NQ_ELEMENTSOF(regions); i++)
        if (strcmp(regions[i].code, code) == 0)
            return &regions[i];
    return NULL;
}

bool nq_phone_region_known(const char *region)
{
    return region_find(region) != NULL;
}

static int bad(const char **ret_why, const char *why)
{
    *ret_why = why;
    return -EINVAL;
}

/* The digits of p (grouped with spaces, '-', '.' and one pair of
 * parentheses) into d (E164_DIGITS_MAX + 4 bytes); a "(0)" group, the
 * trunk prefix some write after the country code, is left out. */
static int digits_of(const char *p, char *d, size_t *ret_n, const char **ret_why)
{
    size_t n = 0, open_at = 0;
    int depth = 0, pairs = 0;

    for (; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (n > E164_DIGITS_MAX + 2)
                return bad(ret_why, "more than 15 digits");
            d[n++] = *p;
        } else if (*p == '(' && depth == 0 && pairs == 0) {
            depth = 1;
            open_at = n;
        } else if (*p == ')' && depth == 1) {
            depth = 0;
            pairs++;
            if (n == open_at + 1 && d[open_at] == '0' && open_at > 0)
                n--; /* "+44 (0)20 ..." */
        } else if (*p == '(' || *p == ')') {
            return bad(ret_why, "parentheses that do not pair up");
        } else if (!strchr(" \t-.", *p)) {
            return bad(ret_why, "a character other than digits, spaces, '-', '.' and parentheses");
        }
    }
    if (depth)
        return bad(ret_why, "parentheses that do not pair up");
    d[n] = '\0';
    *ret_n = n;
    return 0;
}

static int national(const char *digits, size_t n, const struct region *rg, char *out,
                    const char **ret_why)
{
    size_t tl = strlen(rg->trunk), cl = strlen(rg->cc);

    /* The trunk prefix is dialled only within the country: drop it when
     * what follows is still a whole number (NANP area codes and the like
     * never start with their trunk digit, so this does not eat digits). */
    if (tl && n >= tl && strncmp(digits, rg->trunk, tl) == 0 && n - tl >= rg->nsn_min &&
        n - tl <= rg->nsn_max) {
        digits += tl;
        n -= tl;
    }
    if (n < rg->nsn_min || n > rg->nsn_max)
        return bad(ret_why, "not a national number of the default region (wrong length)");
    if (cl + n > E164_DIGITS_MAX)
        return bad(ret_why, "more than 15 digits");
    out[0] = '+';
    memcpy(out + 1, rg->cc, cl);
    memcpy(out + 1 + cl, digits, n);
    out[1 + cl + n] = '\0';
    return 0;
}

int nq_phone_e164(const char *in, const char *region, char *out, size_t size, const char **ret_why)
{
    const struct region *rg = region_find(region);
    char d[E164_DIGITS_MAX + 4];
    const char *p = in;
    bool intl = false;
    size_t n = 0;
    int r;

    *ret_why = NULL;
    if (size < NQ_PHONE_E164_SIZE)
        return -ENOBUFS;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '+') {
        p++;
        intl = true;
    } else if (p[0] == '0' && p[1] == '0' && !(rg && strncmp(rg->trunk, "00", 2) == 0)) {
        p += 2;
        intl = true;
    }
    if (!intl && !rg)
        return bad(ret_why, "no country code (write it as +<country code><number>)");
    r = digits_of(p, d, &n, ret_why);
    if (r < 0)
        return r;
    if (!intl)
        return national(d, n, rg, out, ret_why);
    if (n && d[0] == '0')
        return bad(ret_why, "a country code does not start with 0");
    if (n > E164_DIGITS_MAX)
        return bad(ret_why, "more than 15 digits");
    if (n < E164_DIGITS_MIN)
        return bad(ret_why, "fewer than 7 digits");
    out[0] = '+';
    memcpy(out + 1, d, n + 1);
    return 0;
}
