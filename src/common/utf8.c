/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "common/utf8.h"

/* The length of the valid sequence at s (n bytes left), or 0. */
static size_t sequence(const unsigned char *s, size_t n)
{
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0; /* overlong, a surrogate, above U+10FFFF */
    return len;
}

size_t nq_utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *) s;
    size_t i = 0, k;

    while (i < len && (k = sequence(u + i, len - i)) > 0)
        i += k;
    return i;
}
