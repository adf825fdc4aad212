/* SPDX-License-Identifier: MIT */
/*
 * Backoff delays; see backoff.h.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>

#include "queue/backoff.h"

static uint64_t base_delay(const struct nq_backoff *b, uint32_t attempts_made)
{
    if (b->kind == NQ_BACKOFF_KIND_FIXED || b->delay_ms == 0)
        return b->delay_ms;
    /* 2^(n-1) with n = attempts_made + 1 */
    uint32_t shift = attempts_made;
    if (shift >= 64 || b->delay_ms > (UINT64_MAX >> shift))
        return UINT64_MAX;
    return b->delay_ms << shift;
}

uint64_t nq_backoff_delay_ms(const struct nq_backoff *b, uint32_t attempts_made, uint64_t max_ms,
                             double rnd)
{
    uint64_t d = base_delay(b, attempts_made);
    double j = b->jitter;

    if (max_ms > 0 && d > max_ms)
        d = max_ms;
    if (!(j > 0.0))
        return d;
    if (j > 1.0)
        j = 1.0;
    if (!(rnd >= 0.0) || rnd >= 1.0)
        rnd = 0.0;
    double v = floor(rnd * (double) d * j + (double) d * (1.0 - j));
    /* A double may round up to 2^64 for huge D; stay in range. */
    if (v >= 18446744073709551615.0)
        return d;
    return (uint64_t) v;
}
