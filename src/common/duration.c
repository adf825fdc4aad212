/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/duration.h"

static const struct {
    const char *suffix;
    uint64_t ms;
} units[] = {
    { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 }, { "", 1 },
};

int nq_duration_parse(const char *s, uint64_t *ret_ms)
{
    uint64_t n = 0;
    const char *p = s;

    if (!s || !isdigit((unsigned char) *p))
        return -EINVAL;
    for (; isdigit((unsigned char) *p); p++) {
        unsigned d = (unsigned) (*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -ERANGE;
        n = n * 10 + d;
    }
    for (size_t i = 0; i < NQ_ELEMENTSOF(units); i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        if (n > UINT64_MAX / units[i].ms)
            return -ERANGE;
        *ret_ms = n * units[i].ms;
        return 0;
    }
    return -EINVAL;
}

void nq_duration_format(uint64_t ms, char *buf, size_t size)
{
    for (size_t i = NQ_ELEMENTSOF(units) - 2; i > 0; i--) {
        if (ms != 0 && ms % units[i].ms == 0) {
            (void) snprintf(buf, size, "%" PRIu64 "%s", ms / units[i].ms, units[i].suffix);
            return;
        }
    }
    (void) snprintf(buf, size, "%" PRIu64 "ms", ms);
}
