/* SPDX-License-Identifier: MIT */
/*
 * Retry backoff as BullMQ's worker computes it (BULLMQ-LAYOUT.md §14), plus
 * a cap: n = attemptsMade + 1 is the attempt that just failed;
 *   fixed:       D = delay
 *   exponential: D = delay * 2^(n-1)
 *   D = min(D, max_ms) when max_ms > 0
 *   jitter j:    floor(rnd * D * j + D * (1 - j)), uniform in [D(1-j), D)
 * A job's own opts.backoff wins over the queue's default. Non-logging, pure:
 * the random number is the caller's, so each worker seeds its own generator
 * (STYLE.md pitfall 10) and tests are exact.
 */
#ifndef NQ_QUEUE_BACKOFF_H
#define NQ_QUEUE_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

enum nq_backoff_kind { NQ_BACKOFF_KIND_FIXED, NQ_BACKOFF_KIND_EXPONENTIAL };

struct nq_backoff {
    enum nq_backoff_kind kind;
    uint64_t delay_ms;
    double jitter; /* 0..1; values outside are clamped */
};

/* The delay before retrying after the failed attempt attempts_made + 1.
 * rnd is uniform in [0, 1). Saturates instead of overflowing. */
uint64_t nq_backoff_delay_ms(const struct nq_backoff *b, uint32_t attempts_made, uint64_t max_ms,
                             double rnd);

#endif
