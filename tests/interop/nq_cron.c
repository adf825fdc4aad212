/* SPDX-License-Identifier: MIT */
/*
 * Answers cron questions for tests/interop/cron.test.js, one per stdin line,
 * fields separated by tabs, tz "-" meaning none (the process's zone):
 *
 *   next  PATTERN TZ AFTER_MS                      -> nq_cron_next()
 *   sched PATTERN TZ START END PREV_MILLIS NOW_MS  -> nq_cron_scheduler_next()
 *
 * Each answer is one line: the millis, "none" (-ENOENT) or "error <text>".
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "queue/cron.h"

#define MAX_ARGS 7

static int split(char *line, char *argv[MAX_ARGS])
{
    int n = 0;

    line[strcspn(line, "\n")] = '\0';
    for (char *p = line; p && n < MAX_ARGS; n++) {
        argv[n] = p;
        p = strchr(p, '\t');
        if (p)
            *p++ = '\0';
    }
    return n;
}

static const char *tz_arg(const char *s)
{
    return strcmp(s, "-") == 0 ? NULL : s;
}

static int answer_next(char *argv[MAX_ARGS], uint64_t *ret, struct nq_err *err)
{
    NQ_CLEANUP(nq_cron_freep) struct nq_cron *c = NULL;
    int r = nq_cron_parse(argv[1], &c, err);

    if (r < 0)
        return r;
    return nq_cron_next(c, tz_arg(argv[2]), strtoull(argv[3], NULL, 10), ret, err);
}

static int answer_sched(char *argv[MAX_ARGS], uint64_t *ret, struct nq_err *err)
{
    struct nq_cron_sched s = {
        .pattern = argv[1],
        .tz = tz_arg(argv[2]),
        .start_date_ms = strtoll(argv[3], NULL, 10),
        .end_date_ms = strtoll(argv[4], NULL, 10),
        .prev_millis = strtoull(argv[5], NULL, 10),
    };

    return nq_cron_scheduler_next(&s, strtoull(argv[6], NULL, 10), ret, err);
}

int main(void)
{
    char line[4096];

    while (fgets(line, sizeof(line), stdin)) {
        char *argv[MAX_ARGS];
        struct nq_err err = { { 0 } };
        uint64_t ms = 0;
        int n = split(line, argv), r;

        if (n == 4 && strcmp(argv[0], "next") == 0)
            r = answer_next(argv, &ms, &err);
        else if (n == 7 && strcmp(argv[0], "sched") == 0)
            r = answer_sched(argv, &ms, &err);
        else
            r = nq_err_set(&err, -EINVAL, "bad request line");
        if (r == 0)
            printf("%" PRIu64 "\n", ms);
        else if (r == -ENOENT)
            printf("none\n");
        else
            printf("error %s\n", nq_err_str(&err));
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
