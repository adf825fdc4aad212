/* SPDX-License-Identifier: MIT */
/* The reference page notifyq-jobs(7) and the handlers' field tables agree
 * (docs as data): every field of every handler's table is a ".B name" item
 * of that handler's section (or of COMMON FIELDS, for the fields every
 * channel handler shares), every field the page documents is in the table,
 * and a refused field's reason is the one the page quotes. NQ_JOBS_PAGE is
 * the page's path, from the Makefile. */
#include "config.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/channel.h"
#include "handlers/handler.h"

#define COMMON "COMMON FIELDS"

static char *page;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t) n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t) n, f), (size_t) n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int setup(void **state)
{
    (void) state;
    page = slurp(NQ_JOBS_PAGE);
    return 0;
}

static int teardown(void **state)
{
    (void) state;
    free(page);
    return 0;
}

/* The text of section ".SH name" (quoted or not), up to the next .SH, as a
 * fresh string; NULL when the page has no such section. */
static char *section(const char *name)
{
    char plain[128], quoted[128];
    const char *start, *end;

    snprintf(plain, sizeof(plain), "\n.SH %s\n", name);
    snprintf(quoted, sizeof(quoted), "\n.SH \"%s\"\n", name);
    start = strstr(page, plain);
    if (!start)
        start = strstr(page, quoted);
    if (!start)
        return NULL;
    start = strchr(start + 1, '\n') + 1;
    end = strstr(start, "\n.SH ");
    return strndup(start, end ? (size_t) (end - start) + 1 : strlen(start));
}

/* Whether text tags an item with field: ".TP" or ".TQ", then ".B field". */
static bool tags(const char *text, const char *field)
{
    char tp[128], tq[128];

    snprintf(tp, sizeof(tp), "\n.TP\n.B %s\n", field);
    snprintf(tq, sizeof(tq), "\n.TQ\n.B %s\n", field);
    return strstr(text, tp) || strstr(text, tq);
}

/* Calls fn for each field text tags (the word after ".TP\n.B " or ".TQ\n.B "). */
static void each_tag(const char *text, void (*fn)(const char *field, void *userdata),
                     void *userdata)
{
    for (const char *p = text; (p = strstr(p, "\n.B ")); p++) {
        char field[64];
        size_t n;

        if (p - text < 4 || (strncmp(p - 4, "\n.TP", 4) != 0 && strncmp(p - 4, "\n.TQ", 4) != 0))
            continue;
        n = strcspn(p + 4, "\n");
        if (n == 0 || n >= sizeof(field))
            continue;
        memcpy(field, p + 4, n);
        field[n] = '\0';
        fn(field, userdata);
    }
}

static void upper(const char *in, char *out, size_t size)
{
    size_t i = 0;

    for (; in[i] && i + 1 < size; i++)
        out[i] = (char) toupper((unsigned char) in[i]);
    out[i] = '\0';
}

struct documented {
    const struct nq_field_table *t;
    const char *where;
};

static void in_table(const char *field, void *userdata)
{
    const struct documented *d = userdata;

    if (!nq_field_find(d->t, field))
        fail_msg("%s documents %s, which %s jobs do not accept", d->where, field, d->t->handler);
}

static void every_field_of_every_handler_is_on_the_page(void **state)
{
    char *common = section(COMMON);
    unsigned tables = 0;

    (void) state;
    assert_non_null(common);
    for (int k = 0; nq_handler_name((enum nq_handler_kind) k); k++) {
        const struct nq_field_table *t = nq_handler_fields((enum nq_handler_kind) k);
        char name[64];
        char *own;

        if (!t)
            continue;
        tables++;
        assert_string_equal(t->handler, nq_handler_name((enum nq_handler_kind) k));
        upper(t->handler, name, sizeof(name));
        own = section(name);
        if (!own)
            fail_msg("notifyq-jobs.7 has no section \".SH %s\" for the %s handler", name,
                     t->handler);
        for (size_t i = 0; i < t->n; i++)
            if (!tags(own, t->rows[i].name) && !(!t->open && tags(common, t->rows[i].name)))
                fail_msg("notifyq-jobs.7: %s field %s is not documented (\".TP\\n.B %s\" in "
                         "%s or " COMMON ")",
                         t->handler, t->rows[i].name, t->rows[i].name, name);
        each_tag(own, in_table, &(struct documented){ t, name });
        if (!t->open)
            each_tag(common, in_table, &(struct documented){ t, COMMON });
        free(own);
    }
    /* noop, email, sms, push at least: the loop saw the tables. */
    assert_true(tables >= 4);
    free(common);
}

/* A refused field's reason, up to its ';', is quoted on the page. */
static void refusals_are_quoted_as_given(void **state)
{
    const struct nq_field_table *const tables[] = { &nq_email_fields, &nq_sms_fields,
                                                    &nq_push_fields };
    unsigned refused = 0;

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(tables); i++)
        for (size_t j = 0; j < tables[i]->n; j++) {
            const struct nq_field *f = &tables[i]->rows[j];
            char quote[256];

            if (f->use != NQ_FIELD_REFUSED)
                continue;
            refused++;
            snprintf(quote, sizeof(quote), "%.*s", (int) strcspn(f->why, ";"), f->why);
            if (!strstr(page, quote))
                fail_msg("notifyq-jobs.7 does not quote the reason of %s.%s: \"%s\"",
                         tables[i]->handler, f->name, quote);
        }
    assert_true(refused > 0);
}

/* The page tells how a job is added: the queue's name, BullMQ's prefix and
 * a Node producer. */
static void the_producer_example_is_there(void **state)
{
    const char *begin, *end;

    (void) state;
    begin = strstr(page, ".\\\" example: producer begins\n");
    end = strstr(page, ".\\\" example: producer ends\n");
    assert_non_null(begin);
    assert_non_null(end);
    assert_true(begin < end);
    assert_non_null(strstr(begin, "require('bullmq')"));
    assert_non_null(strstr(begin, "prefix"));
    assert_non_null(strstr(begin, "connection"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_field_of_every_handler_is_on_the_page),
        cmocka_unit_test(refusals_are_quoted_as_given),
        cmocka_unit_test(the_producer_example_is_there),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
