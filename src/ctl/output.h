/* SPDX-License-Identifier: MIT */
/*
 * What every notifyqctl command prints with: "notifyqctl: ..." errors on
 * stderr, and aligned text tables like ps(1), whose column widths come from
 * the cells. Shared by notifyqctl.c (daemon commands) and src/ctl (queue
 * commands) so both look alike.
 */
#ifndef NQ_CTL_OUTPUT_H
#define NQ_CTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/macros.h"

/* Flushes stdout first, so errors never land inside a half-printed table. */
void ctl_error(const char *fmt, ...) NQ_PRINTF(1, 2);

#define CTL_TABLE_MAX_COLS 16

struct ctl_table {
    size_t n_cols, n_rows, cap_rows;
    const char *header[CTL_TABLE_MAX_COLS];
    bool right[CTL_TABLE_MAX_COLS]; /* numbers align right */
    char **cells;                   /* n_rows x n_cols, owned */
};

/* Copies row[0..n_cols). Returns 0 or -ENOMEM. */
int ctl_table_add(struct ctl_table *t, const char *const *row) NQ_MUSTCHECK;
void ctl_table_print(const struct ctl_table *t);
void ctl_table_done(struct ctl_table *t);

#endif
