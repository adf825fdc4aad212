/* SPDX-License-Identifier: MIT */
/* A job's data through the email, sms and push handlers' composers (what
 * validation runs on every fetched job), and an email through the MIME
 * builder the file provider spools. The input is the job's data as JSON.
 * Composing either refuses with a reason or builds a message; the message
 * written is RFC 5322 text whatever the data held: CRLF line ends only, no
 * line over 998 bytes, a header section of ASCII only, and no header field
 * a value could inject (each of the fields we write appears at most once). */
#include "config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "handlers/channel.h"
#include "providers/mime.h"
#include "providers/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const once[] = {
    "From", "To",         "Cc",           "Bcc",          "Reply-To",        "Subject",
    "Date", "Message-ID", "MIME-Version", "Content-Type", "X-Notifyq-Queue", "X-Notifyq-Job-Id",
};

static void check_header_line(const char *line, size_t len, unsigned *seen)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) line[i] >= 0x80 || line[i] == '\0')
            abort();
    if (line[0] == ' ' || line[0] == '\t')
        return; /* a folded continuation */
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        abort();
    for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++)
        if ((size_t) (colon - line) == strlen(once[i]) &&
            strncasecmp(line, once[i], strlen(once[i])) == 0 && seen[i]++)
            abort();
}

static void check_message(const char *text, size_t len)
{
    unsigned seen[sizeof(once) / sizeof(once[0])] = { 0 };
    bool header = true;

    for (size_t at = 0; at < len;) {
        const char *lf = memchr(text + at, '\n', len - at);
        if (!lf || lf == text + at || lf[-1] != '\r')
            abort(); /* every line ends in CRLF */
        size_t n = (size_t) (lf - (text + at)) - 1;
        if (n > 998 || memchr(text + at, '\r', n))
            abort();
        if (header && n == 0)
            header = false;
        else if (header)
            check_header_line(text + at, n, seen);
        at = (size_t) (lf - text) + 1;
    }
    if (header)
        abort(); /* no body separator */
}

static void compose(nq_compose_fn fn, const json_t *j)
{
    struct nq_msg m;
    struct nq_err err = { "" };

    if (fn(j, &m, &err) < 0) {
        if (!nq_err_str(&err)[0])
            abort();
        return;
    }
    if (m.type == NQ_MSG_EMAIL) {
        const struct nq_mime_env env = {
            .message_id = "<1@fuzz.example>", .date = 1733580000, .queue = "email", .job_id = "42"
        };
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
            abort();
        nq_mime_write(f, &m, &env);
        if (fclose(f) != 0)
            abort();
        check_message(text, len);
        free(text);
    }
    nq_msg_done(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *) data, size, JSON_DECODE_ANY, NULL);

    if (!j)
        return 0;
    compose(nq_compose_email, j);
    compose(nq_compose_sms, j);
    compose(nq_compose_push, j);
    json_decref(j);
    return 0;
}
