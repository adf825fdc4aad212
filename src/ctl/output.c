/* SPDX-License-Identifier: MIT */
/*
 * Output helpers of the queue commands: times, JSON values from job fields,
 * and aligned text tables like ps(1).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "ctl/internal.h"

const char *ctl_iso_time(uint64_t ms, char *buf, size_t size)
{
    time_t s = (time_t) (ms / 1000);
    struct tm tm;
    char date[32];

    if (ms == 0 || !gmtime_r(&s, &tm) ||
        strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return "-";
    (void) snprintf(buf, size, "%s.%03uZ", date, (unsigned) (ms % 1000));
    return buf;
}

int ctl_json_time(json_t *obj, const char *key, uint64_t ms)
{
    char name[64], iso[48];
    int r = 0;

    (void) snprintf(name, sizeof(name), "%s_at", key);
    r |= json_object_set_new(obj, name,
                             ms ? json_string(ctl_iso_time(ms, iso, sizeof(iso))) : json_null());
    (void) snprintf(name, sizeof(name), "%s_at_ms", key);
    r |= json_object_set_new(obj, name, ms ? json_integer((json_int_t) ms) : json_null());
    return r ? -ENOMEM : 0;
}

json_t *ctl_json_raw(const char *raw)
{
    json_t *v;

    if (!raw)
        return json_null();
    v = json_loads(raw, JSON_DECODE_ANY, NULL);
    return v ? v : ctl_json_str(raw);
}

/* A producer may store bytes that are not UTF-8 (names, ids, reasons):
 * they are shown as '?' rather than failing the whole reply. */
json_t *ctl_json_str(const char *s)
{
    json_t *v;

    if (!s)
        return json_null();
    v = json_string(s);
    if (v)
        return v;
    nq_autofree char *copy = strdup(s);
    if (!copy)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char) *p >= 0x80)
            *p = '?';
    return json_string(copy);
}

/* ---- tables --------------------------------------------------------------- */

int ctl_table_add(struct ctl_table *t, const char *const *row)
{
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
        char **p = reallocarray(t->cells, cap * t->n_cols, sizeof(*p));

        if (!p)
            return -ENOMEM;
        t->cells = p;
        t->cap_rows = cap;
    }
    for (size_t c = 0; c < t->n_cols; c++) {
        char **cell = &t->cells[t->n_rows * t->n_cols + c];

        *cell = strdup(row[c]);
        if (!*cell) {
            while (c-- > 0)
                free(t->cells[t->n_rows * t->n_cols + c]);
            return -ENOMEM;
        }
    }
    t->n_rows++;
    return 0;
}

static void print_row(const struct ctl_table *t, const size_t *width, const char *const *row)
{
    for (size_t c = 0; c < t->n_cols; c++) {
        bool last = c + 1 == t->n_cols;
        int w = last && !t->right[c] ? 0 : (int) width[c];

        printf("%s%*s", c ? "  " : "", t->right[c] ? w : -w, row[c]);
    }
    putchar('\n');
}

void ctl_table_print(const struct ctl_table *t)
{
    size_t width[NQ_ELEMENTSOF(t->header)];

    for (size_t c = 0; c < t->n_cols; c++) {
        width[c] = strlen(t->header[c]);
        for (size_t r = 0; r < t->n_rows; r++) {
            size_t n = strlen(t->cells[r * t->n_cols + c]);
            if (n > width[c])
                width[c] = n;
        }
    }
    print_row(t, width, t->header);
    for (size_t r = 0; r < t->n_rows; r++)
        print_row(t, width, (const char *const *) t->cells + r * t->n_cols);
}

void ctl_table_done(struct ctl_table *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->n_rows = t->cap_rows = 0;
}
