/* SPDX-License-Identifier: MIT */
/*
 * The journald decision follows systemd's documented rule: JOURNAL_STREAM holds
 * "device:inode" of the stream our stderr was connected to by the service
 * manager; if fd 2 still is that stream, structured logging is safe.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "common/log.h"

static struct {
    char ident[32];
    char role[16];
    char queue[128];
    int slot;
    int max_prio;
    int journal;
} log_state = { "notifyq", "", "", -1, LOG_INFO, 0 };

/* One decimal number of "device:inode", ending at stop; false when none or
 * out of range. */
static bool parse_id(const char *s, char stop, unsigned long long *ret, const char **ret_end)
{
    char *end;

    errno = 0;
    *ret = strtoull(s, &end, 10);
    *ret_end = end;
    return *s >= '0' && *s <= '9' && *end == stop && errno == 0;
}

static int stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!e || !parse_id(e, ':', &dev, &e) || !parse_id(e + 1, '\0', &ino, &e))
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void nq_log_init(const char *ident)
{
    (void) snprintf(log_state.ident, sizeof(log_state.ident), "%s", ident);
    log_state.journal = stderr_is_journal();
}

void nq_log_set_max_priority(int max_prio)
{
    log_state.max_prio = max_prio;
}

int nq_log_get_max_priority(void)
{
    return log_state.max_prio;
}

int nq_log_priority_from_name(const char *name)
{
    static const struct {
        const char *name;
        int prio;
    } names[] = {
        { "debug", LOG_DEBUG },     { "info", LOG_INFO }, { "notice", LOG_NOTICE },
        { "warning", LOG_WARNING }, { "err", LOG_ERR },   { "error", LOG_ERR },
        { "crit", LOG_CRIT },
    };

    for (size_t i = 0; i < NQ_ELEMENTSOF(names); i++)
        if (strcmp(names[i].name, name) == 0)
            return names[i].prio;
    return -EINVAL;
}

void nq_log_set_context(const char *role, const char *queue, int slot)
{
    (void) snprintf(log_state.role, sizeof(log_state.role), "%s", role ? role : "");
    (void) snprintf(log_state.queue, sizeof(log_state.queue), "%s", queue ? queue : "");
    log_state.slot = slot;
}

static void log_journal(int prio, int errnum, const char *file, int line, const char *func,
                        const char *msg)
{
    char code_file[256], code_line[32], worker[32];

    (void) snprintf(code_file, sizeof(code_file), "CODE_FILE=%s", file);
    (void) snprintf(code_line, sizeof(code_line), "CODE_LINE=%d", line);
    (void) snprintf(worker, sizeof(worker), "%d", log_state.slot);
    /* Fields that are unset are sent empty-suppressed by passing them last. */
    if (log_state.queue[0])
        (void) sd_journal_send_with_location(
            code_file, code_line, func, "MESSAGE=%s", msg, "PRIORITY=%d", prio,
            "SYSLOG_IDENTIFIER=%s", log_state.ident, "NOTIFYQ_ROLE=%s", log_state.role, "QUEUE=%s",
            log_state.queue, "WORKER=%s/%s", log_state.queue, worker, "ERRNO=%d", errnum, NULL);
    else
        (void) sd_journal_send_with_location(code_file, code_line, func, "MESSAGE=%s", msg,
                                             "PRIORITY=%d", prio, "SYSLOG_IDENTIFIER=%s",
                                             log_state.ident, "NOTIFYQ_ROLE=%s", log_state.role,
                                             "ERRNO=%d", errnum, NULL);
}

static void log_stderr(const char *msg)
{
    char who[200] = "";

    if (log_state.queue[0] && log_state.slot >= 0)
        (void) snprintf(who, sizeof(who), " %s %s/%d", log_state.role, log_state.queue,
                        log_state.slot);
    else if (log_state.role[0])
        (void) snprintf(who, sizeof(who), " %s", log_state.role);
    /* One write per record so lines from several processes never interleave. */
    char line[4200];
    int n =
        snprintf(line, sizeof(line), "%s[%ld]%s: %s\n", log_state.ident, (long) getpid(), who, msg);
    if (n < 0)
        return;
    if ((size_t) n >= sizeof(line))
        n = (int) sizeof(line) - 1;
    (void) !write(STDERR_FILENO, line, (size_t) n);
}

void nq_log_full(int prio, int errnum, const char *file, int line, const char *func,
                 const char *fmt, ...)
{
    char msg[4000];
    va_list ap;
    int saved = errno;

    if (prio > log_state.max_prio)
        return;
    errno = errnum;
    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_state.journal)
        log_journal(prio, errnum, file, line, func, msg);
    else
        log_stderr(msg);
    errno = saved;
}
