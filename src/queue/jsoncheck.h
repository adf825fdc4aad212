/* SPDX-License-Identifier: MIT */
/*
 * A JSON syntax checker that builds nothing: the job codec checks a job's
 * `data` with it, so malformed data still fails the job before any handler
 * runs, while the jansson tree is built only for handlers that read it
 * (nq_job_data_borrow). Building that tree was 38 % of a noop worker's CPU
 * (bench/results/2026-11-25-findings.md §2); jansson has no validate-only
 * mode, and its lexer is the cost.
 *
 * It accepts what jansson 2.14's json_loadb(buf, len, JSON_DECODE_ANY, ...)
 * accepts, so data that passes here always parses there, and refuses what
 * jansson refuses (tests/unit/test_jsoncheck.c compares the two on every case
 * it has):
 *   - RFC 8259: one value of any type, whitespace (space, tab, CR, LF only)
 *     around it, nothing else after it; duplicate keys allowed;
 *   - strings: valid UTF-8 (no overlong forms, no encoded surrogates, nothing
 *     above U+10FFFF), no raw byte below 0x20, escapes \" \\ \/ \b \f \n \r \t
 *     and \u with four hex digits, a \u surrogate only as a high-low pair,
 *     and no \u0000 (jansson refuses NUL without JSON_ALLOW_NUL);
 *   - nesting: a value inside 2048 open arrays or objects is too deep
 *     (jansson's JSON_PARSER_MAX_DEPTH counts scalars too);
 *   - numbers: the strict grammar, and jansson's range, where it differs from
 *     JSON.parse (which reads any of these as a double or Infinity): an
 *     integer (no fraction or exponent) must fit int64_t, and any other
 *     number must not round to infinity as a double (1e999, -2e308 are out;
 *     1e-999 underflows to 0 and is in, as in jansson).
 *     So a BullMQ producer's 18446744073709551615 fails the job, as before.
 * One difference, on purpose: jansson drops a NUL byte right after a number
 * or true/false/null (its lexer puts the byte back, and a NUL in its
 * put-back buffer reads as "empty"), so it takes "[1\0]" and "0\0"; we refuse
 * them, as RFC 8259 does. No producer's JSON has raw NULs; what we accept,
 * jansson still parses. So text that passes holds no NUL byte at all.
 * Non-allocating, non-recursive, non-logging; any length, any bytes.
 */
#ifndef NQ_QUEUE_JSONCHECK_H
#define NQ_QUEUE_JSONCHECK_H

#include <stddef.h>

#include "common/macros.h"

#define NQ_JSONCHECK_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

/* Why a text is not JSON, for a job's failedReason. */
struct nq_jsoncheck_err {
    const char *reason; /* static text: "invalid UTF-8", "number out of range"... */
    size_t offset;      /* of the byte where the text stops being JSON (len at its end) */
    /* When the text is an object: the raw bytes (as written, escapes
     * included) of the top-level key last read before the error, the field
     * it is most likely in ("subject"); NULL when none was read. */
    const char *key;
    size_t key_len;
};

/* 0 when buf[0..len) is one JSON value jansson accepts; else -EINVAL and
 * *err says why. buf is not NULL; it need not be NUL-terminated. */
int nq_jsoncheck_validate(const char *buf, size_t len, struct nq_jsoncheck_err *err) NQ_MUSTCHECK;

#endif
