/* SPDX-License-Identifier: MIT */
/* The smtp provider without a network: the reply-class table (PROVIDERS.md
 * §2), the per-recipient verdict on recorded dialogues (what the transport's
 * debug callback records), the message as exact bytes (Bcc left out,
 * encoded-words, multipart/alternative), and the header checks that stop
 * injection before anything is sent. */
#include "config.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/mime.h"
#include "providers/smtp.h"

/* ---- reply classes ------------------------------------------------------------ */

static void reply_classes_follow_the_table(void **state)
{
    static const struct {
        int code;
        const char *text;
        bool rcpt;
        enum nq_reply_class want;
    } rows[] = {
        { 250, "2.0.0 Ok: queued as 4F2A1", false, NQ_REPLY_SENT },
        { 251, "User not local; will forward", true, NQ_REPLY_SENT },
        { 354, "End data with <CR><LF>.<CR><LF>", false, NQ_REPLY_SENT },
        { 421, "4.3.2 Service shutting down", false, NQ_REPLY_RETRY },
        { 421, "4.7.0 Too many connections, rate limited", false, NQ_REPLY_RATE },
        { 421, "Rate limit exceeded", false, NQ_REPLY_RATE },
        { 450, "4.2.1 Mailbox busy", true, NQ_REPLY_RETRY },
        { 451, "4.3.0 Local error", false, NQ_REPLY_RETRY },
        { 452, "4.5.3 Too many recipients", true, NQ_REPLY_RETRY },
        { 454, "Throttling failure: Maximum sending rate exceeded.", false, NQ_REPLY_RATE },
        { 454, "4.7.0 TLS not available due to temporary reason", false, NQ_REPLY_RETRY },
        { 450, "4.7.1 Greylisted, rate limit", true, NQ_REPLY_RATE },
        { 455, "4.5.4 Cannot accommodate parameters", true, NQ_REPLY_RETRY },
        { 500, "5.5.2 Syntax error", false, NQ_REPLY_PERMANENT },
        { 503, "5.5.1 Bad sequence", false, NQ_REPLY_PERMANENT },
        { 530, "5.7.0 Authentication required", false, NQ_REPLY_PERMANENT },
        { 535, "5.7.8 Authentication credentials invalid", false, NQ_REPLY_PERMANENT },
        { 550, "5.1.1 No such user", true, NQ_REPLY_DEAD },
        { 550, "5.7.1 Relaying denied", true, NQ_REPLY_PERMANENT },
        { 550, "Mailbox unavailable", true, NQ_REPLY_DEAD },
        { 550, "5.7.1 Message refused", false, NQ_REPLY_PERMANENT },
        { 551, "5.1.6 User not local", true, NQ_REPLY_DEAD },
        { 553, "5.1.3 Bad address syntax", true, NQ_REPLY_DEAD },
        { 553, "5.7.1 Sender not permitted", false, NQ_REPLY_PERMANENT },
        { 552, "5.5.3 Too many recipients", true, NQ_REPLY_RETRY },
        { 552, "5.3.4 Message too big", false, NQ_REPLY_PERMANENT },
        { 552, "5.2.2 Mailbox full", true, NQ_REPLY_RETRY },
        { 554, "5.1.10 Recipient address has null MX", true, NQ_REPLY_DEAD },
        { 554, "5.2.1 Mailbox disabled", true, NQ_REPLY_DEAD },
        { 554, "5.7.1 Spam detected", false, NQ_REPLY_PERMANENT },
        { 554, "5.7.1 Spam detected", true, NQ_REPLY_PERMANENT },
        { 556, "no enhanced code", false, NQ_REPLY_PERMANENT },
        { 499, "", false, NQ_REPLY_RETRY },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(rows); i++) {
        enum nq_reply_class got = nq_smtp_reply_class(rows[i].code, rows[i].text, rows[i].rcpt);

        if (got != rows[i].want)
            fail_msg("%d %s (rcpt %d): got %s, want %s", rows[i].code, rows[i].text, rows[i].rcpt,
                     nq_reply_class_name(got), nq_reply_class_name(rows[i].want));
    }
}

/* ---- per-recipient verdicts --------------------------------------------------- */

#define STEP(cmd, arg, code, text)                                                                 \
    {                                                                                              \
        cmd, code, (char *) (arg), (char *) (text)                                                 \
    }

static const struct nq_transfer_smtp_step greeting_to_rcpt[] = {
    STEP("", NULL, 220, "mx ESMTP"),
    STEP("EHLO", NULL, 250, "mx"),
    STEP("MAIL", "app@example.com", 250, "2.1.0 Ok"),
};

static struct nq_transfer_reply dialogue(struct nq_transfer_smtp_step *steps, size_t n,
                                         const struct nq_transfer_smtp_step *tail, size_t n_tail)
{
    memcpy(steps, greeting_to_rcpt, sizeof(greeting_to_rcpt));
    memcpy(steps + NQ_ELEMENTSOF(greeting_to_rcpt), tail, n_tail * sizeof(*tail));
    (void) n;
    return (struct nq_transfer_reply){ .smtp = steps,
                                       .n_smtp = NQ_ELEMENTSOF(greeting_to_rcpt) + n_tail,
                                       .error_text = "" };
}

static void three(struct nq_smtp_rcpt r[3])
{
    static const char *const addr[] = { "a@example.org", "b@example.org", "c@example.org" };

    for (size_t i = 0; i < 3; i++)
        r[i] = (struct nq_smtp_rcpt){ .addr = addr[i], .tried = true };
}

static void one_rejected_recipient_fails_alone(void **state)
{
    static const struct nq_transfer_smtp_step tail[] = {
        STEP("RCPT", "a@example.org", 250, "2.1.5 Ok"),
        STEP("RCPT", "b@example.org", 550, "5.1.1 No such user"),
        STEP("RCPT", "c@example.org", 250, "2.1.5 Ok"),
        STEP("DATA", NULL, 354, "go ahead"),
        STEP(".", NULL, 250, "2.0.0 Ok: queued as X"),
    };
    struct nq_transfer_smtp_step steps[16];
    struct nq_transfer_reply reply = dialogue(steps, 16, tail, NQ_ELEMENTSOF(tail));
    struct nq_smtp_rcpt r[3];
    char reason[NQ_HTTP_REASON_MAX];

    (void) state;
    reply.status = 250;
    three(r);
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_SENT);
    assert_int_equal(r[0].status, NQ_RCPT_SENT);
    assert_int_equal(r[1].status, NQ_RCPT_DEAD);
    assert_string_equal(r[1].reason, "smtp: RCPT b@example.org: 550 5.1.1 No such user");
    assert_int_equal(r[2].status, NQ_RCPT_SENT);
}

static void a_temporary_rcpt_failure_leaves_that_one_pending(void **state)
{
    static const struct nq_transfer_smtp_step tail[] = {
        STEP("RCPT", "a@example.org", 250, "2.1.5 Ok"),
        STEP("RCPT", "b@example.org", 451, "4.3.0 Try later"),
        STEP("RCPT", "c@example.org", 554, "5.7.1 Refused"),
        STEP("DATA", NULL, 354, "go ahead"),
        STEP(".", NULL, 250, "2.0.0 Ok"),
    };
    struct nq_transfer_smtp_step steps[16];
    struct nq_transfer_reply reply = dialogue(steps, 16, tail, NQ_ELEMENTSOF(tail));
    struct nq_smtp_rcpt r[3];
    char reason[NQ_HTTP_REASON_MAX];

    (void) state;
    three(r);
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_RETRY);
    assert_int_equal(r[0].status, NQ_RCPT_SENT);
    assert_int_equal(r[1].status, NQ_RCPT_PENDING);
    assert_int_equal(r[2].status, NQ_RCPT_FAILED);
    assert_string_equal(reason, "smtp: RCPT b@example.org: 451 4.3.0 Try later");
}

static void only_tried_recipients_are_matched(void **state)
{
    /* a@ was reached by an earlier attempt: the envelope is b@, c@. */
    static const struct nq_transfer_smtp_step tail[] = {
        STEP("RCPT", "b@example.org", 250, "2.1.5 Ok"),
        STEP("RCPT", "c@example.org", 250, "2.1.5 Ok"),
        STEP("DATA", NULL, 354, "go ahead"),
        STEP(".", NULL, 250, "2.0.0 Ok"),
    };
    struct nq_transfer_smtp_step steps[16];
    struct nq_transfer_reply reply = dialogue(steps, 16, tail, NQ_ELEMENTSOF(tail));
    struct nq_smtp_rcpt r[3];
    char reason[NQ_HTTP_REASON_MAX];

    (void) state;
    three(r);
    r[0].tried = false;
    r[0].status = NQ_RCPT_SENT;
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_SENT);
    assert_int_equal(r[1].status, NQ_RCPT_SENT);
    assert_int_equal(r[2].status, NQ_RCPT_SENT);
}

static void a_reply_to_the_message_decides_for_the_accepted(void **state)
{
    static const struct nq_transfer_smtp_step retry[] = {
        STEP("RCPT", "a@example.org", 250, "2.1.5 Ok"),
        STEP("RCPT", "b@example.org", 550, "5.1.1 No such user"),
        STEP("RCPT", "c@example.org", 250, "2.1.5 Ok"),
        STEP("DATA", NULL, 354, "go ahead"),
        STEP(".", NULL, 451, "4.3.0 Error in processing"),
    };
    static const struct nq_transfer_smtp_step refused[] = {
        STEP("RCPT", "a@example.org", 250, "2.1.5 Ok"),
        STEP("RCPT", "b@example.org", 250, "2.1.5 Ok"),
        STEP("RCPT", "c@example.org", 250, "2.1.5 Ok"),
        STEP("DATA", NULL, 354, "go ahead"),
        STEP(".", NULL, 552, "5.3.4 Message too big"),
    };
    struct nq_transfer_smtp_step steps[16];
    struct nq_transfer_reply reply = dialogue(steps, 16, retry, NQ_ELEMENTSOF(retry));
    struct nq_smtp_rcpt r[3];
    char reason[NQ_HTTP_REASON_MAX];

    (void) state;
    three(r);
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_RETRY);
    assert_int_equal(r[0].status, NQ_RCPT_PENDING);
    assert_int_equal(r[1].status, NQ_RCPT_DEAD);
    assert_int_equal(r[2].status, NQ_RCPT_PENDING);
    assert_string_equal(r[0].reason, "smtp: message: 451 4.3.0 Error in processing");

    reply = dialogue(steps, 16, refused, NQ_ELEMENTSOF(refused));
    three(r);
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_SENT);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r[i].status, NQ_RCPT_FAILED);
        assert_string_equal(r[i].reason, "smtp: message: 552 5.3.4 Message too big");
    }
}

static void a_drop_after_the_message_is_unknown(void **state)
{
    static const struct nq_transfer_smtp_step tail[] = {
        STEP("RCPT", "a@example.org", 250, "2.1.5 Ok"),
        STEP("RCPT", "b@example.org", 250, "2.1.5 Ok"),
        STEP("RCPT", "c@example.org", 550, "5.1.1 No such user"),
        STEP("DATA", NULL, 354, "go ahead"),
        STEP(".", NULL, 0, NULL),
    };
    struct nq_transfer_smtp_step steps[16];
    struct nq_transfer_reply reply = dialogue(steps, 16, tail, NQ_ELEMENTSOF(tail));
    struct nq_smtp_rcpt r[3];
    char reason[NQ_HTTP_REASON_MAX];

    (void) state;
    reply.error = NQ_XFER_UNKNOWN;
    reply.error_text = "Connection died";
    three(r);
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_UNKNOWN);
    assert_string_equal(reason, "smtp: connection lost after the whole message was sent (possible "
                                "duplicate)");
    assert_int_equal(r[0].status, NQ_RCPT_PENDING);
    assert_int_equal(r[1].status, NQ_RCPT_PENDING);
    assert_int_equal(r[2].status, NQ_RCPT_DEAD);
}

static void failures_before_any_recipient_decide_for_all(void **state)
{
    static const struct nq_transfer_smtp_step greet421[] = {
        STEP("", NULL, 421, "4.7.0 Too many connections, try later"),
    };
    static const struct nq_transfer_smtp_step sender[] = {
        STEP("", NULL, 220, "mx"),
        STEP("EHLO", NULL, 250, "mx"),
        STEP("MAIL", "app@example.com", 553, "5.7.1 Sender not permitted"),
    };
    struct nq_transfer_reply reply = {
        .smtp = greet421, .n_smtp = 1, .error = NQ_XFER_NOT_SENT, .error_text = ""
    };
    struct nq_smtp_rcpt r[3];
    char reason[NQ_HTTP_REASON_MAX];

    (void) state;
    three(r);
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_RATE);
    assert_string_equal(reason, "smtp: greeting: 421 4.7.0 Too many connections, try later");
    assert_int_equal(r[2].status, NQ_RCPT_PENDING);

    reply = (struct nq_transfer_reply){ .smtp = sender, .n_smtp = 3, .error_text = "" };
    three(r);
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_PERMANENT);
    assert_string_equal(reason, "smtp: MAIL: 553 5.7.1 Sender not permitted");
    assert_int_equal(r[0].status, NQ_RCPT_FAILED);

    reply = (struct nq_transfer_reply){ .error = NQ_XFER_NOT_SENT,
                                        .tls_refused = true,
                                        .error_text = "STARTTLS not supported." };
    three(r);
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_PERMANENT);
    assert_non_null(strstr(reason, "does not offer STARTTLS"));

    reply =
        (struct nq_transfer_reply){ .error = NQ_XFER_NOT_SENT, .error_text = "Failed to connect" };
    three(r);
    assert_int_equal(nq_smtp_classify(&reply, r, 3, reason), NQ_REPLY_RETRY);
    assert_string_equal(reason, "smtp: Failed to connect (nothing sent)");
    assert_int_equal(r[1].status, NQ_RCPT_PENDING);
}

/* ---- the message ---------------------------------------------------------------- */

static char *write_message(const struct nq_msg *m, bool omit_bcc)
{
    struct nq_mime_env env = { .message_id = "<q.7.1700000000000@mx.example>",
                               .date = 1700000000,
                               .queue = "q",
                               .job_id = "7",
                               .omit_bcc = omit_bcc };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    nq_mime_write(f, m, &env);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static struct nq_mailbox mb(const char *name, const char *addr)
{
    return (struct nq_mailbox){ name ? strdup(name) : NULL, strdup(addr) };
}

static void make_msg(struct nq_msg *m)
{
    nq_msg_init(m, NQ_MSG_EMAIL);
    m->email.from = mb("Shop", "shop@example.com");
    m->email.to = calloc(2, sizeof(struct nq_mailbox));
    m->email.to[0] = mb("Zoë Ünal", "zoe@example.org");
    m->email.to[1] = mb(NULL, "bob@example.org");
    m->email.n_to = 2;
    m->email.bcc = calloc(1, sizeof(struct nq_mailbox));
    m->email.bcc[0] = mb(NULL, "audit@example.org");
    m->email.n_bcc = 1;
    m->email.subject = strdup("Grüße");
    m->email.text = strdup("Hi Zoë\nbye");
    m->email.html = strdup("<p>Hi</p>");
}

static void the_message_is_exact_bytes_without_bcc(void **state)
{
    static const char want[] =
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        "From: Shop <shop@example.com>\r\n"
        "To: =?UTF-8?B?Wm/DqyDDnG5hbA==?= <zoe@example.org>, bob@example.org\r\n"
        "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"
        "Message-ID: <q.7.1700000000000@mx.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "X-Notifyq-Queue: q\r\n"
        "X-Notifyq-Job-Id: 7\r\n"
        "Content-Type: multipart/alternative;\r\n"
        " boundary=\"=_notifyq_BOUNDARY\"\r\n"
        "\r\n"
        "This is a multi-part message in MIME format.\r\n"
        "\r\n"
        "--=_notifyq_BOUNDARY\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Hi Zo=C3=AB\r\n"
        "bye\r\n"
        "--=_notifyq_BOUNDARY\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "<p>Hi</p>\r\n"
        "--=_notifyq_BOUNDARY--\r\n";
    struct nq_msg m;
    char *got, *spooled, *b;
    char boundary[64];
    size_t n;

    (void) state;
    make_msg(&m);
    got = write_message(&m, true);
    /* The boundary is a hash of the Message-ID: the same on every attempt. */
    b = strstr(got, "boundary=\"=_notifyq_");
    assert_non_null(b);
    b += strlen("boundary=\"");
    n = strcspn(b, "\"");
    assert_int_equal(n, strlen("=_notifyq_") + 16);
    (void) snprintf(boundary, sizeof(boundary), "%.*s", (int) n, b);
    {
        char *expect = calloc(1, sizeof(want) + (size_t) 8 * 16), *p;

        memcpy(expect, want, sizeof(want));
        while ((p = strstr(expect, "=_notifyq_BOUNDARY"))) {
            memmove(p + n, p + strlen("=_notifyq_BOUNDARY"),
                    strlen(p + strlen("=_notifyq_BOUNDARY")) + 1);
            memcpy(p, boundary, n);
        }
        assert_string_equal(got, expect);
        free(expect);
    }
    spooled = write_message(&m, false);
    assert_non_null(strstr(spooled, "Bcc: audit@example.org\r\n"));
    free(spooled);
    free(got);
    nq_msg_done(&m);
}

/* ---- checks ---------------------------------------------------------------------- */

static void header_values_with_line_breaks_are_refused_naming_the_field(void **state)
{
    struct nq_msg m;
    char field[128];
    const char *why = NULL;

    (void) state;
    make_msg(&m);
    assert_int_equal(nq_mime_check(&m, field, sizeof(field), &why), 0);

    free(m.email.subject);
    m.email.subject = strdup("hi\r\nBcc: x@evil.example");
    assert_int_equal(nq_mime_check(&m, field, sizeof(field), &why), -EINVAL);
    assert_string_equal(field, "data.subject");
    assert_string_equal(why, "contains CR or LF (header injection); nothing was sent");

    free(m.email.subject);
    m.email.subject = strdup("caf\xc3");
    assert_int_equal(nq_mime_check(&m, field, sizeof(field), &why), -EINVAL);
    assert_string_equal(field, "data.subject");
    assert_string_equal(why, "not valid UTF-8");
    free(m.email.subject);
    m.email.subject = NULL;

    free(m.email.to[1].name);
    m.email.to[1].name = strdup("Bob\nX-Evil: 1");
    assert_int_equal(nq_mime_check(&m, field, sizeof(field), &why), -EINVAL);
    assert_string_equal(field, "data.to[1]");
    free(m.email.to[1].name);
    m.email.to[1].name = NULL;

    m.notification_id = strdup("n\r1");
    assert_int_equal(nq_mime_check(&m, field, sizeof(field), &why), -EINVAL);
    assert_string_equal(field, "data.notificationId");
    free(m.notification_id);
    m.notification_id = NULL;

    m.email.headers = calloc(1, sizeof(struct nq_kv));
    m.email.headers[0] = (struct nq_kv){ strdup("X-Campaign"), strdup("a\nb") };
    m.email.n_headers = 1;
    assert_int_equal(nq_mime_check(&m, field, sizeof(field), &why), -EINVAL);
    assert_string_equal(field, "data.headers.X-Campaign");

    free(m.email.headers[0].value);
    m.email.headers[0].value = strdup("ok");
    free(m.email.html);
    m.email.html = strdup("<p>\xff</p>");
    assert_int_equal(nq_mime_check(&m, field, sizeof(field), &why), -EINVAL);
    assert_string_equal(field, "data.html");
    nq_msg_done(&m);
}

static void utf8_validation(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } rows[] = {
        { "plain", true },
        { "Gr\xc3\xbc\xc3\x9f"
          "e",
          true },
        { "\xe2\x82\xac", true },
        { "\xf0\x9f\x98\x80", true },
        { "\xc3", false },
        { "\xc0\xaf", false },         /* overlong */
        { "\xed\xa0\x80", false },     /* surrogate */
        { "\xf4\x90\x80\x80", false }, /* > U+10FFFF */
        { "\x80", false },
        { "\xe2\x28\xa1", false },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(rows); i++)
        if (nq_utf8_valid(rows[i].s, strlen(rows[i].s)) != rows[i].ok)
            fail_msg("row %zu", i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reply_classes_follow_the_table),
        cmocka_unit_test(one_rejected_recipient_fails_alone),
        cmocka_unit_test(a_temporary_rcpt_failure_leaves_that_one_pending),
        cmocka_unit_test(only_tried_recipients_are_matched),
        cmocka_unit_test(a_reply_to_the_message_decides_for_the_accepted),
        cmocka_unit_test(a_drop_after_the_message_is_unknown),
        cmocka_unit_test(failures_before_any_recipient_decide_for_all),
        cmocka_unit_test(the_message_is_exact_bytes_without_bcc),
        cmocka_unit_test(header_values_with_line_breaks_are_refused_naming_the_field),
        cmocka_unit_test(utf8_validation),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
