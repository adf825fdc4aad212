/* SPDX-License-Identifier: MIT */
/*
 * UTF-8 boundaries, for text that quotes outside bytes (a job's fields, a
 * client's request, a library's error message) and then goes into JSON, which
 * jansson only builds from valid UTF-8: json_string() of anything else is NULL,
 * indistinguishable from out of memory.
 */
#ifndef NQ_COMMON_UTF8_H
#define NQ_COMMON_UTF8_H

#include <stddef.h>

/* The length of the longest prefix of s[0..len) that is valid UTF-8 (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF): len when all of
 * it is; never cuts a character. */
size_t nq_utf8_valid_prefix(const char *s, size_t len);

#endif
