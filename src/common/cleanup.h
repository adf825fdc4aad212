/* SPDX-License-Identifier: MIT */
/*
 * Scope-bound cleanup for locals, as systemd's _cleanup_: paths with many early
 * returns (YAML walk, request building, job parsing) free what they own without
 * goto ladders. Locals only, always initialised; hand ownership out with
 * NQ_TAKE_PTR / NQ_TAKE_FD.
 */
#ifndef NQ_COMMON_CLEANUP_H
#define NQ_COMMON_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

#define NQ_CLEANUP(f) __attribute__((cleanup(f)))

/* Defines fn##p(type *p) that calls fn(*p) when *p is set. */
#define NQ_DEFINE_CLEANUP(type, fn)                                                                \
    /* type is a type name: it cannot be parenthesised */                                          \
    /* NOLINTNEXTLINE(bugprone-macro-parentheses) */                                               \
    static inline void fn##p(type *p)                                                              \
    {                                                                                              \
        if (*p)                                                                                    \
            fn(*p);                                                                                \
    }

static inline void nq_cleanup_free(void *p)
{
    free(*(void **) p);
}

static inline void nq_cleanup_close(int *fd)
{
    if (*fd >= 0)
        (void) close(*fd);
}

#define nq_autofree NQ_CLEANUP(nq_cleanup_free)
#define nq_autoclose NQ_CLEANUP(nq_cleanup_close)

#define NQ_TAKE_PTR(p)                                                                             \
    __extension__({                                                                                \
        __typeof__(p) nq_take_tmp_ = (p);                                                          \
        (p) = NULL;                                                                                \
        nq_take_tmp_;                                                                              \
    })

#define NQ_TAKE_FD(fd)                                                                             \
    __extension__({                                                                                \
        int nq_take_fd_ = (fd);                                                                    \
        (fd) = -1;                                                                                 \
        nq_take_fd_;                                                                               \
    })

#endif
