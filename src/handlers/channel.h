/* SPDX-License-Identifier: MIT */
/*
 * What the channel handlers (email, sms, push) share: each validates a job's
 * data into a struct nq_msg (its "composer", in email.c, sms.c, push.c) and
 * sends it through the queue's provider; channel.c is that common handler,
 * parametrised by the message type, and the field helpers the composers use.
 *
 * Job data is an object in the shapes BullMQ producers send. Its keys are
 * those of the handler's field table (nq_email_fields... in email.c, sms.c,
 * push.c; see handler.h): the seeds' bookkeeping keys (userId, category,
 * priority, type, metadata) are accepted and not read, and any other key is
 * refused, so a misspelt or unsupported field never goes unnoticed. Every
 * rejection is permanent and names the field:
 *   data.to: required
 *   data.to: invalid address "bob@": empty domain
 *   data.to: "555-1234" is not a phone number in international form: ...
 *   data.attachments: attachments are not supported yet; ...
 *   data.subjct: not a field of email jobs (see notifyq-jobs(7))
 *
 * Common keys: tenantId and notificationId (string or integer, kept with
 * the message: spool files and, later, the delivery log record them), and
 *   templateId         a template of the store (template/template.h), read
 *                      from the tenantId's directory or default/; its parts
 *                      replace the content keys: email subject, text, html;
 *                      sms body (from the .txt); push title (from the
 *                      .subject) and body (from the .txt). Keys a template
 *                      lacks are taken from the data as usual. A missing
 *                      template, a malformed one, or (templates.strict) a
 *                      missing variable fails the job with a reason naming it.
 *   templateVariables  an object: the variables the template renders.
 * `template` (another name some producers use) is refused, not guessed.
 */
#ifndef NQ_HANDLERS_CHANNEL_H
#define NQ_HANDLERS_CHANNEL_H

#include <jansson.h>
#include <stdbool.h>

#include "common/err.h"
#include "common/macros.h"
#include "handlers/handler.h"
#include "providers/provider.h"

/* An email without data.from is sent from the queue's provider.from, or
 * without one from this address. */
#define NQ_EMAIL_DEFAULT_FROM "notifyq@localhost"
#define NQ_EMAIL_RECIPIENTS_MAX 1000
#define NQ_SMS_BODY_MAX 1600   /* characters, Twilio's limit */
#define NQ_PUSH_TOKENS_MAX 500 /* FCM's multicast limit */
#define NQ_PUSH_TOKEN_MAX 4096 /* bytes */
#define NQ_HEADER_VALUE_MAX 900

/* The field tables of the channel handlers (in email.c, sms.c, push.c). */
extern const struct nq_field_table nq_email_fields;
extern const struct nq_field_table nq_sms_fields;
extern const struct nq_field_table nq_push_fields;

/* The rows every channel table starts with: tenantId and notificationId
 * (read), the seeds' bookkeeping keys (kept), the template keys (read:
 * channel.c renders them), and the other names some producers use for a
 * template (refused, not guessed: content names what to send instead). */
/* clang-format off */
#define NQ_TEMPLATE_REFUSED(key, content) \
    { key, NQ_FIELD_REFUSED, "not supported; name the template with data.templateId or send " content }
#define NQ_CHANNEL_FIELDS(content)                       \
    { "tenantId", NQ_FIELD_READ, NULL },                 \
    { "notificationId", NQ_FIELD_READ, NULL },           \
    { "userId", NQ_FIELD_KEPT, NULL },                   \
    { "category", NQ_FIELD_KEPT, NULL },                 \
    { "priority", NQ_FIELD_KEPT, NULL },                 \
    { "type", NQ_FIELD_KEPT, NULL },                     \
    { "metadata", NQ_FIELD_KEPT, NULL },                 \
    NQ_TEMPLATE_REFUSED("template", content),            \
    { "templateId", NQ_FIELD_READ, NULL },               \
    { "templateVariables", NQ_FIELD_READ, NULL },        \
    NQ_TEMPLATE_REFUSED("variables", content)
/* clang-format on */

typedef int (*nq_compose_fn)(const json_t *data, struct nq_msg *ret, struct nq_err *err);

/* The composers: 0 and *ret (nq_msg_done() it), or -EINVAL with err naming
 * the field, or -ENOMEM; *ret is untouched on failure. */
int nq_compose_email(const json_t *data, struct nq_msg *ret, struct nq_err *err) NQ_MUSTCHECK;
int nq_compose_sms(const json_t *data, struct nq_msg *ret, struct nq_err *err) NQ_MUSTCHECK;
int nq_compose_push(const json_t *data, struct nq_msg *ret, struct nq_err *err) NQ_MUSTCHECK;

/* An email address: "addr" or "Display Name <addr>" (the name may be in
 * double quotes). addr is a pragmatic subset of RFC 5321: a dot-atom local
 * part of at most 64 bytes, a domain of LDH labels (1..63 bytes, no
 * leading or trailing '-'), at most 254 bytes in all, ASCII only (no quoted
 * local parts, no address literals). 0 and *ret (owned strings), -EINVAL
 * with why (static text), or -ENOMEM. */
int nq_mailbox_parse(const char *s, struct nq_mailbox *ret, const char **ret_why) NQ_MUSTCHECK;

/* A phone number in international form as E.164: "+" or "00", then the
 * number's digits, which may be grouped with spaces, '-', '.' and one pair of
 * parentheses; 7..15 digits, the first not 0. Writes "+<digits>" to out
 * (size >= 17) and returns 0, or -EINVAL with why (static text). */
int nq_e164_normalize(const char *in, char *out, size_t size, const char **ret_why) NQ_MUSTCHECK;

/* Finishes an sms the composer made: a national number in to (the
 * composer keeps one as written) becomes E.164 with region (NULL: none, it
 * is refused), and a body over max_segments segments (0: no limit) is
 * refused with its count. 0, -EINVAL with err naming the field, -ENOMEM. */
int nq_sms_settle(struct nq_sms *s, const char *region, uint32_t max_segments,
                  struct nq_err *err) NQ_MUSTCHECK;

/* ---- for the composers ----------------------------------------------------- */

/* data must be an object whose keys are all in t, none refused; copies
 * tenantId and notificationId into m. */
int nq_compose_common(const json_t *data, const struct nq_field_table *t, struct nq_msg *m,
                      struct nq_err *err) NQ_MUSTCHECK;

/* The string under the first present (non-null) key of keys (a NULL-ended
 * list of aliases: "body", "message", NULL), copied to *ret; NULL when none
 * is present and !required. Two aliases present is an error. */
int nq_field_string(const json_t *data, const char *const *keys, bool required, char **ret,
                    struct nq_err *err) NQ_MUSTCHECK;

/* ---- the common handler ------------------------------------------------------ */

int nq_channel_handler_init(const struct nq_handler_env *env, enum nq_msg_type type,
                            nq_compose_fn compose, void **ret_state, struct nq_err *err);
void nq_channel_handler_free(void *state);
int nq_channel_handler_validate(void *state, struct nq_job *job, struct nq_err *err);
int nq_channel_handler_start(void *state, struct nq_handler_call *call);
void nq_channel_handler_cancel(void *state, struct nq_handler_call *call);

#endif
