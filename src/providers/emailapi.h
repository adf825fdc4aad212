/* SPDX-License-Identifier: MIT */
/*
 * The email API providers: sendgrid, resend, mailgun, postmark, ses
 * (PROVIDERS.md §3-§7). Each is the pure build + classify pair of http.h
 * (cfg: the queue's struct nq_provider_cfg; msg: a struct nq_msg of type
 * email) in its own file; emailapi.c joins them to the provider interface
 * of provider.h and to the transport.
 *
 * One request per message, every recipient (To, Cc, Bcc) in it, so all
 * recipients share its verdict. The returnvalue of a sent job:
 *   {"ok":true,"provider":NAME,"messageId":ID,
 *    "recipients":[{"to":ADDR,"status":"sent","id":ID,"reason":null,
 *                   "provider":NAME}], "unknownAttempts":N when N > 0}
 * A job that fails keeps the same list (status "failed", or "dead" when the
 * provider says the address is gone, e.g. postmark's ErrorCode 406) in its
 * progress. A reply that means our credentials, sender or account are
 * wrong (PROVIDERS.md §0's perm+config: 401/403 and the like) fails the
 * job and logs an alert: every later job would fail the same way; so does
 * a 403 retried NQ_EMAILAPI_403_RETRIES times.
 *
 * Requests carry the job's id and queue where the API takes custom fields
 * (sendgrid custom_args, mailgun v:, postmark Metadata, ses EmailTags) so
 * duplicates after an unknown outcome can be traced (PROVIDERS.md §13);
 * resend dedupes them itself through the Idempotency-Key.
 *
 * Credentials come from the config (api_key_file, ...) and never appear in
 * reasons or logs.
 */
#ifndef NQ_PROVIDERS_EMAILAPI_H
#define NQ_PROVIDERS_EMAILAPI_H

#include <stdint.h>

#include "common/macros.h"
#include "providers/http.h"
#include "providers/provider.h"

/* Recipients of one API request, at most (PROVIDERS.md). */
#define NQ_SENDGRID_RCPT_MAX 1000
#define NQ_RESEND_RCPT_MAX 50
#define NQ_POSTMARK_RCPT_MAX 50
#define NQ_SES_RCPT_MAX 50
#define NQ_MAILGUN_RCPT_MAX 1000

/* A 403 that a classifier retries (postmark's without an ErrorCode: a
 * network filter in front of the API; ses's ExpiredTokenException) fails
 * the job with an alert from this attempt on. */
#define NQ_EMAILAPI_403_RETRIES 3

/* Mailgun's 429 without Retry-After waits at least this long. */
#define NQ_MAILGUN_RATE_WAIT_MS 60000

extern const struct nq_provider_ops nq_provider_sendgrid;
extern const struct nq_provider_ops nq_provider_resend;
extern const struct nq_provider_ops nq_provider_mailgun;
extern const struct nq_provider_ops nq_provider_postmark;
extern const struct nq_provider_ops nq_provider_ses;

extern const struct nq_http_provider nq_sendgrid_http;
extern const struct nq_http_provider nq_resend_http;
extern const struct nq_http_provider nq_mailgun_http;
extern const struct nq_http_provider nq_postmark_http;
extern const struct nq_http_provider nq_ses_http;

/* Resend's Idempotency-Key: "notifyq-" + 64 hex digits of SHA-256 over the
 * queue, the job id, the job's creation time and every recipient, so every
 * attempt of a delivery carries the same key and a later job reusing the
 * id does not. buf holds NQ_RESEND_KEY_SIZE. 0 or -ENOMEM. */
#define NQ_RESEND_KEY_SIZE 73
int nq_resend_idempotency_key(const struct nq_delivery *d, const struct nq_email *e,
                              char buf[NQ_RESEND_KEY_SIZE]) NQ_MUSTCHECK;

/* ---- shared by the providers' files (emailapi.c) ------------------------- */

/* Every recipient once (case-insensitive), To then Cc then Bcc: borrowed
 * addresses into *ret (free the array). 0 or -ENOMEM. */
int nq_emailapi_recipients(const struct nq_email *e, const char ***ret, size_t *n) NQ_MUSTCHECK;

/* "addr" or "Name <addr>" (the name quoted when it needs to be); NULL on
 * OOM. */
char *nq_emailapi_mailbox_text(const struct nq_mailbox *mb);

/* base_url + path, NULL on OOM. */
char *nq_emailapi_url(const struct nq_provider_cfg *cfg, const char *path);

/* Sets v to cls with "NAME: HTTP <status>: detail" (detail may be NULL) and
 * config as given (an alert is logged for it). */
void nq_emailapi_verdict(struct nq_http_verdict *v, const char *name, enum nq_reply_class cls,
                         bool config, const char *detail);

#endif
