/* SPDX-License-Identifier: MIT */
/*
 * Durations as written in the config and on the command line: an integer with
 * a unit, "500ms", "2s", "5m", "1h", "7d"; a bare integer is milliseconds, as
 * in BullMQ's options. Held everywhere as uint64_t milliseconds.
 */
#ifndef NQ_COMMON_DURATION_H
#define NQ_COMMON_DURATION_H

#include <stddef.h>
#include <stdint.h>

#include "common/macros.h"

/* Parses s into *ret_ms. Returns 0, -EINVAL on syntax, -ERANGE on overflow. */
int nq_duration_parse(const char *s, uint64_t *ret_ms) NQ_MUSTCHECK;

/* Formats ms in the largest unit that divides it exactly ("30s", "1500ms"). */
void nq_duration_format(uint64_t ms, char *buf, size_t size);

#endif
