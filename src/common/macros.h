/* SPDX-License-Identifier: MIT */
/*
 * Small macros shared by every module: result checking and array sizes.
 */
#ifndef NQ_COMMON_MACROS_H
#define NQ_COMMON_MACROS_H

#define NQ_MUSTCHECK __attribute__((warn_unused_result))
#define NQ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define NQ_ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#endif
