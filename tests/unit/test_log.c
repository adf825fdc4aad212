/* SPDX-License-Identifier: MIT */
/*
 * common/log.c: the journald decision. Records go to the journal only when
 * JOURNAL_STREAM names, exactly, the stream stderr is; anything else in it
 * (trailing bytes, a number out of range) means stderr.
 */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "common/log.h"

/* Whether a record logged with JOURNAL_STREAM set to "<dev>:<ino><tail>" of
 * a pipe on fd 2 ("<dev><tail>" when ino is false) was written to fd 2. */
static bool record_on_stderr(bool ino, const char *tail)
{
    int p[2], saved = dup(STDERR_FILENO);
    char stream[128], got[4096] = "";
    struct stat st;
    ssize_t n;

    assert_true(saved >= 0);
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    assert_true(dup2(p[1], STDERR_FILENO) >= 0);
    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    if (ino)
        (void) snprintf(stream, sizeof(stream), "%llu:%llu%s", (unsigned long long) st.st_dev,
                        (unsigned long long) st.st_ino, tail);
    else
        (void) snprintf(stream, sizeof(stream), "%llu%s", (unsigned long long) st.st_dev, tail);
    assert_int_equal(setenv("JOURNAL_STREAM", stream, 1), 0);
    nq_log_init("test_log");
    nq_log(LOG_ERR, "probe");
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(p[1]);
    n = read(p[0], got, sizeof(got) - 1);
    close(p[0]);
    (void) unsetenv("JOURNAL_STREAM");
    nq_log_init("test_log");
    return n > 0 && strstr(got, "probe");
}

static void the_exact_stream_is_the_journal(void **state)
{
    (void) state;
    assert_false(record_on_stderr(true, ""));
}

static void anything_else_is_stderr(void **state)
{
    (void) state;
    assert_true(record_on_stderr(true, "x"));
    assert_true(record_on_stderr(true, ":1"));
    assert_true(record_on_stderr(true, "99999999999999999999999"));
    assert_true(record_on_stderr(false, ""));
    assert_true(record_on_stderr(false, ":"));
    assert_true(record_on_stderr(false, ":-1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_exact_stream_is_the_journal),
        cmocka_unit_test(anything_else_is_stderr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
