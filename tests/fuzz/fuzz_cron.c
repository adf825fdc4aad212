/* SPDX-License-Identifier: MIT */
/* A job scheduler's cron pattern and time zone, as a producer writes them in
 * repeat.{pattern,tz}: the input is "pattern\ntz\nafter_ms" (tz and after_ms
 * optional). Parsing and the next time never crash or loop; a next time is
 * strictly later than the instant it was asked after, and a pattern that
 * parses has a next time or says why not. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "queue/cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *tz = NULL, *after_text = NULL;
    struct nq_cron *c = NULL;
    struct nq_err err = { "" };
    uint64_t after = UINT64_C(1733580000000), next = 0;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if ((tz = strchr(text, '\n'))) {
        *tz++ = '\0';
        if ((after_text = strchr(tz, '\n'))) {
            *after_text++ = '\0';
            after = strtoull(after_text, NULL, 10);
        }
    }
    if (nq_cron_parse(text, &c, &err) < 0) {
        if (c || !nq_err_str(&err)[0])
            abort();
        free(text);
        return 0;
    }
    int r = nq_cron_next(c, tz, after, &next, &err);
    if (r == 0 && next <= after)
        abort();
    if (r < 0 && r != -ENOENT && r != -EINVAL && r != -ENOMEM)
        abort();
    if (r < 0 && !nq_err_str(&err)[0])
        abort();
    struct nq_cron_sched s = { .pattern = text, .tz = tz, .prev_millis = after / 2 };
    (void) nq_cron_scheduler_next(&s, after, &next, &err);
    nq_cron_free(c);
    free(text);
    return 0;
}
