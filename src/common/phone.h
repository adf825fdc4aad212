/* SPDX-License-Identifier: MIT */
/*
 * Phone numbers as E.164, for SMS. nq_phone_e164() takes "+<cc><number>"
 * or "00<cc><number>", and a national number ("(555) 123-4567", "020 7946
 * 0958") when a default region is given: the region's national trunk
 * prefix (0 in most of Europe, 1 in the NANP, 8 in Russia, 06 in Hungary)
 * is dropped and its calling code put in front.
 *
 * Limits of the approach (no phone library): the table knows each region's
 * calling code, trunk prefix and the range of its national significant
 * number lengths, nothing more. An unassigned area code passes; a number of
 * the right length but the wrong type (a landline given to an SMS gateway)
 * is left to the provider, which answers dead. International input is only
 * checked against E.164's own rules: 7 to 15 digits, the first not 0.
 * Regions whose trunk prefix is also dialled inside the number (Italy) have
 * none in the table, so their leading 0 is kept.
 */
#ifndef NQ_COMMON_PHONE_H
#define NQ_COMMON_PHONE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/macros.h"

#define NQ_PHONE_E164_SIZE 17 /* "+" 15 digits NUL */

/* 0 and "+<digits>" in out (size >= NQ_PHONE_E164_SIZE), or -EINVAL with
 * why (static text), or -ENOBUFS. region: an ISO 3166 alpha-2 code of the
 * table, or NULL (then a national number is refused). */
int nq_phone_e164(const char *in, const char *region, char *out, size_t size,
                  const char **ret_why) NQ_MUSTCHECK;

/* Whether region (upper case alpha-2) is in the table. */
bool nq_phone_region_known(const char *region);

#endif
