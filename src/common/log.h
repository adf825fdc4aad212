/* SPDX-License-Identifier: MIT */
/*
 * Logging for both programs. Under systemd (JOURNAL_STREAM names our stderr)
 * records go to journald with structured fields (PRIORITY, CODE_FILE,
 * CODE_LINE, QUEUE, WORKER, ERRNO); otherwise one line on stderr:
 *   notifyqd[1234] worker email/1: message
 * Never log secrets, tokens or message bodies (see STYLE.md).
 */
#ifndef NQ_COMMON_LOG_H
#define NQ_COMMON_LOG_H

#include <syslog.h>

#include "common/macros.h"

/* ident is the program name; decides journald vs stderr once. */
void nq_log_init(const char *ident);
/* Records at a priority numerically above max_prio are dropped. */
void nq_log_set_max_priority(int max_prio);
int nq_log_get_max_priority(void);
/* Parses "debug", "info", "notice", "warning", "err"/"error", "crit".
 * Returns the syslog priority or -EINVAL. */
int nq_log_priority_from_name(const char *name);
/* Who is logging: role ("master", "worker", "http"), and for a worker its
 * queue and slot. The strings are copied. queue may be NULL, slot < 0 none. */
void nq_log_set_context(const char *role, const char *queue, int slot);

void nq_log_full(int prio, int errnum, const char *file, int line, const char *func,
                 const char *fmt, ...) NQ_PRINTF(6, 7);

#define nq_log(prio, ...) nq_log_full((prio), 0, __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Logs with errno set to -r (so %m names it) and returns r. */
#define nq_log_errno(prio, r, ...)                                                                 \
    __extension__({                                                                                \
        int nq_log_r_ = (r);                                                                       \
        nq_log_full((prio), -nq_log_r_, __FILE__, __LINE__, __func__, __VA_ARGS__);                \
        nq_log_r_;                                                                                 \
    })

#endif
