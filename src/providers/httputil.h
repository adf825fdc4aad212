/* SPDX-License-Identifier: MIT */
/*
 * Small pieces HTTP providers share: application/x-www-form-urlencoded
 * fields and HTTP Basic credentials (mailgun now; twilio and vonage need
 * the same).
 *
 * Ownership: inputs borrowed; a returned string is malloc'd (free it).
 */
#ifndef NQ_PROVIDERS_HTTPUTIL_H
#define NQ_PROVIDERS_HTTPUTIL_H

#include <stdio.h>

/* Writes "name=value" to f, preceded by '&' unless f is still empty (an
 * open_memstream), both encoded as HTML forms do: [A-Za-z0-9*-._] as they
 * are, space as '+', any other byte %XX. */
void nq_form_add(FILE *f, const char *name, const char *value);

/* "Basic " + base64(user ":" password); NULL on OOM. Holds the secret:
 * wipe it before freeing. */
char *nq_http_basic_auth(const char *user, const char *password);

#endif
