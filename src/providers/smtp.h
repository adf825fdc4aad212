/* SPDX-License-Identifier: MIT */
/*
 * The smtp provider: each email is one SMTP transaction (MAIL FROM, one
 * RCPT TO per recipient, DATA with the message mime.h writes, Bcc left out
 * of it) on the worker's transport (transfer/transfer.h), over a connection
 * kept open and reused by the next message. TLS as configured: STARTTLS
 * required on smtp:// (a server that does not offer it is refused before
 * anything else is said), TLS from the first byte on smtps://, or none.
 * AUTH PLAIN/LOGIN when a username is set. PROVIDERS.md §2 has the wire.
 *
 * Per-recipient results. One rejected RCPT does not abort the others
 * (CURLOPT_MAIL_RCPT_ALLOWFAILS): the message goes to those accepted. Which
 * ones those are comes from the dialogue the transport records (each RCPT
 * with the reply to it, in order; see struct nq_transfer_smtp_step). A
 * recipient is then:
 *   sent     its RCPT was accepted and the server took the message (250
 *            after the final ".")
 *   dead     550, 551, 553 (or 5.1.1, 5.1.2, 5.1.10, 5.2.1) to its RCPT,
 *            unless the enhanced code is 5.3.x, 5.5.x or 5.7.x (system,
 *            protocol, policy: "550 5.7.1 Relaying denied" is about us):
 *            the address does not exist; the app should forget it
 *   failed   another 5xx to its RCPT, or to the message (552 too big, 554)
 *   pending  a 4xx, a transport error, or no reply: tried again on retry
 * The job completes when no recipient is pending and at least one was
 * sent; it fails when none was; it is retried while any is pending, and
 * the retry goes only to the pending ones: what the earlier attempts
 * settled (sent, dead, failed) is kept in the job's progress
 * ({"recipients":[...], "unknownAttempts":N}), written atomically with the
 * retry, and read back from nq_delivery.progress_json.
 *
 * Duplicates: a connection lost after the whole message went out but
 * before the reply to its "." may have delivered it (RFC 1047): that
 * attempt is "unknown", retried (the recipients stay pending) with
 * "(possible duplicate)" in its failedReason, and counted in
 * unknownAttempts, which the final returnvalue carries. The Message-ID is
 * the same on every attempt (nq_delivery_message_id), so a retried copy is
 * recognisable.
 *
 * The returnvalue of a completed job: {"ok":true, "provider":"smtp",
 * "messageId":"<id without angle brackets>", "recipients":[{"to":ADDR,
 * "status":"sent"|"failed"|"dead", "id":messageId or null, "reason":null or
 * the server's reply}], "unknownAttempts":N when N > 0}.
 *
 * Header injection: a CR, LF or NUL in any value that becomes a header field,
 * or invalid UTF-8, fails the job permanently naming the field
 * (nq_mime_check) before any connection is made.
 */
#ifndef NQ_PROVIDERS_SMTP_H
#define NQ_PROVIDERS_SMTP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/macros.h"
#include "providers/http.h"
#include "providers/provider.h"
#include "transfer/transfer.h"

/* No standard Retry-After in SMTP: a throttling reply waits this long. */
#define NQ_SMTP_RATE_WAIT_MS 60000

extern const struct nq_provider_ops nq_provider_smtp;

/* What one SMTP reply means (PROVIDERS.md §2's tables): code and text (the
 * enhanced status code, if any, first). rcpt: the reply is to a RCPT
 * (550/551/553 there mean the mailbox is dead; 552 there is "too many
 * recipients", RFC 5321 §4.5.3.1.10, so a retry). Returns SENT (2xx, 3xx),
 * RETRY, RATE (421/454 or 4.7.x saying rate, limit or throttl...),
 * PERMANENT, or DEAD. */
enum nq_reply_class nq_smtp_reply_class(int code, const char *text, bool rcpt);

enum nq_rcpt_status { NQ_RCPT_PENDING, NQ_RCPT_SENT, NQ_RCPT_FAILED, NQ_RCPT_DEAD };

/* One recipient of a send, in the order of the envelope. */
struct nq_smtp_rcpt {
    const char *addr; /* borrowed */
    enum nq_rcpt_status status;
    bool tried;                      /* in this attempt's envelope (not settled earlier) */
    char reason[NQ_HTTP_REASON_MAX]; /* FAILED, DEAD, PENDING: why */
};

/* The verdict on one attempt: r[] (the recipients tried, tried = true,
 * status PENDING on entry) get their status from reply; returns the
 * attempt's class for the recipients still pending (RETRY, RATE or
 * UNKNOWN; SENT when none is), and for the whole message when the
 * transaction failed before any RCPT (PERMANENT for a refused sender, bad
 * credentials or a missing STARTTLS): then every tried recipient is FAILED
 * or PENDING accordingly. reason (NQ_HTTP_REASON_MAX) says what happened,
 * "smtp: ..." Pure: unit-tested against recorded dialogues. */
enum nq_reply_class nq_smtp_classify(const struct nq_transfer_reply *reply, struct nq_smtp_rcpt *r,
                                     size_t n, char *reason);

#endif
