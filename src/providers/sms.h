/* SPDX-License-Identifier: MIT */
/*
 * SMS over HTTP: what every SMS provider shares (GSM-7/UCS-2 segment
 * counting; numbers are common/phone.h's) and the three HTTP SMS providers, each a pure build +
 * classify (http.h) that one send driver (smssend.c) runs through the worker's transport:
 *
 *   twilio  POST <base_url>/2010-04-01/Accounts/<account_sid>/Messages.json,
 *           form-encoded To, From | MessagingServiceSid, Body; Basic
 *           account_sid:auth_token. 201 -> sent(sid). Errors by the body's
 *           `code` (PROVIDERS.md §8): 21211, 21610, 21614, 21635 dead;
 *           21408, 21606, 21601, 21212, 21608, 20003, 20404 permanent (a
 *           configuration error: logged as an alert); 20429 rate (Retry-After
 *           when given, else the queue's backoff); other 4xx permanent; 5xx
 *           retry.
 *   vonage  the SMS API (PROVIDERS.md §9a): POST <base_url>/sms/json,
 *           form-encoded api_key, api_secret, from, to (digits, no '+'),
 *           text, type=unicode when the text is not GSM-7, client-ref (the
 *           job id). HTTP 200 with one status per part: all "0" -> sent(the
 *           first part's message-id); otherwise the worst failing part
 *           decides by its status: 1 rate; 5, 10 retry; 6, 7, 33 dead; 2, 3,
 *           12, 22 permanent; 4, 8, 9, 11, 14, 15, 23, 29, 32 permanent and
 *           an alert. When some parts were accepted and others must be
 *           retried the verdict is unknown (the resend duplicates them).
 *           Chosen over the Messages API because its per-part statuses say
 *           when a number is dead (barred, de-activated) and the Messages
 *           API does not.
 *   http    POST <url> (any gateway): headers from the config, the body
 *           body_template rendered by template/ with {{to}}, {{from}},
 *           {{body}}, {{jobId}}, {{queue}}, {{segments}}, {{encoding}}
 *           (string values are JSON-escaped, so "{{body}}" inside quotes
 *           is a valid JSON string) and checked to be JSON. Replies by
 *           PROVIDERS.md §0 only; the id is the reply's top-level "id",
 *           "message_id", "messageId" or "sid" when it has one.
 *
 * For all three 401 and 403 are permanent and a configuration error,
 * logged as an alert: every later job would fail the same way.
 *
 * Numbers are E.164 (common/phone.h) by the time a provider sees them.
 *
 * Segments (3GPP TS 23.038 / 23.040). A text all in the GSM 03.38 default
 * alphabet is GSM-7: one segment holds 160 septets, a concatenated part
 * 153; the extension table's characters (^ { } \ [ ~ ] | € and form feed)
 * take two septets, and an escape pair is never split between parts. Any
 * other character makes the whole text UCS-2: 70 UTF-16 units in one
 * segment, 67 per part, a surrogate pair never split.
 */
#ifndef NQ_PROVIDERS_SMS_H
#define NQ_PROVIDERS_SMS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/macros.h"
#include "providers/http.h"
#include "providers/provider.h"

struct nq_template;

enum nq_sms_encoding { NQ_SMS_GSM7, NQ_SMS_UCS2 };

struct nq_sms_count {
    enum nq_sms_encoding encoding;
    size_t units;    /* septets (GSM-7) or UTF-16 units (UCS-2) */
    size_t segments; /* 1 for an empty text */
};

/* Counts text (valid UTF-8). */
void nq_sms_count(const char *text, struct nq_sms_count *ret);

/* "GSM-7" or "UCS-2". */
const char *nq_sms_encoding_name(enum nq_sms_encoding e);

/* What build reads: the queue's provider block and the message. */
struct nq_sms_out {
    const struct nq_provider_cfg *cfg;
    const struct nq_template *body_template; /* http only: compiled body_template */
};

/* build: cfg is a struct nq_sms_out, msg a struct nq_sms whose to is E.164;
 * classify: cfg unused. */
extern const struct nq_http_provider nq_sms_twilio;
extern const struct nq_http_provider nq_sms_vonage;
extern const struct nq_http_provider nq_sms_http;

/* The nq_provider ops of twilio, vonage and http (smssend.c). */
extern const struct nq_provider_ops nq_provider_twilio;
extern const struct nq_provider_ops nq_provider_vonage;
extern const struct nq_provider_ops nq_provider_sms_http;

/* Whether a verdict is a configuration error (credentials, account,
 * sender): PERMANENT with NQ_SMS_CONFIG_MARK in its reason, which every
 * classifier here writes for those replies. The send driver logs these as
 * alerts. */
#define NQ_SMS_CONFIG_MARK "(configuration error"
bool nq_sms_verdict_is_config(const struct nq_http_verdict *v);

/* ---- for the providers here ---------------------------------------------- */

/* An application/x-www-form-urlencoded body being written. */
struct nq_sms_form {
    char *buf; /* NUL-terminated; owned */
    size_t len;
};
/* Appends name=value (both percent-encoded). 0 or -ENOMEM. */
int nq_sms_form_add(struct nq_sms_form *f, const char *name, const char *value) NQ_MUSTCHECK;
void nq_sms_form_done(struct nq_sms_form *f);

/* "Basic base64(user:password)" in *ret (the caller frees it). 0 or
 * -ENOMEM. */
int nq_sms_basic_auth(const char *user, const char *password, char **ret) NQ_MUSTCHECK;

/* Copies id (NULL: none) into v->message_id, cut to fit. */
void nq_sms_copy_id(struct nq_http_verdict *v, const char *id);

#endif
