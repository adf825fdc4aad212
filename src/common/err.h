/* SPDX-License-Identifier: MIT */
/*
 * struct nq_err: a human-readable error for the APIs a person reads the result
 * of (config, control protocol, job validation). The failing function fills
 * it and returns -EINVAL (or another -errno); the caller decides whether and
 * where to log it. Fixed size: setting an error never allocates.
 */
#ifndef NQ_COMMON_ERR_H
#define NQ_COMMON_ERR_H

#include "common/macros.h"

#define NQ_ERR_MAX 512

struct nq_err {
    char msg[NQ_ERR_MAX];
};

/* Sets err's text (truncated to fit) and returns r, so callers can write
 * `return nq_err_set(err, -EINVAL, "...")`. err may be NULL. */
int nq_err_set(struct nq_err *err, int r, const char *fmt, ...) NQ_PRINTF(3, 4);
#ifdef __clang_analyzer__
/* The static analyzer reads one file at a time: tell it what nq_err_set
 * returns, or every `return nq_err_set(err, -EINVAL, ...)` path looks like a
 * success that left its outputs unset. */
#define nq_err_set(err, r, ...) (nq_err_set((err), (r), __VA_ARGS__), (r))
#endif

/* The text, or "" when none was set. Borrowed: valid while err lives. */
const char *nq_err_str(const struct nq_err *err);

#endif
