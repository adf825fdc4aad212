/* SPDX-License-Identifier: MIT */
/* The exec handler driven as the worker drives it, with real children
 * (/bin/sh scripts): the job on stdin, stdout as the returnvalue, exit
 * statuses and signals to outcomes, the timeout, the output cap, cancel. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "handlers/handler.h"

struct seen {
    int calls;
    enum nq_outcome_kind kind;
    char *text; /* result_json or reason; "(null)" for a null result */
};

struct fixture {
    struct event_base *base;
    struct nq_config *cfg;
    struct nq_handler *h;
};

static void on_done(struct nq_handler_call *call, const struct nq_outcome *o)
{
    struct seen *s = call->userdata;
    const char *t = o->kind == NQ_OUTCOME_OK ? o->result_json : o->reason;

    s->calls++;
    s->kind = o->kind;
    free(s->text);
    s->text = strdup(t ? t : "(null)");
}

/* A handler for a queue running /bin/sh -c script; extra is more exec keys. */
static void setup_with(struct fixture *f, const char *script, const char *extra)
{
    char yaml[4096];
    struct nq_err err = { "" };
    json_t *js = json_string(script);
    char *quoted = json_dumps(js, JSON_ENCODE_ANY);
    struct nq_handler_env env;

    (void) snprintf(yaml, sizeof(yaml),
                    "queues:\n  run:\n    handler: exec\n    exec:\n"
                    "      argv: [/bin/sh, -c, %s, sh, arg1]\n%s",
                    quoted, extra ? extra : "");
    free(quoted);
    json_decref(js);
    assert_int_equal(nq_config_parse_string("test.yaml", yaml, NULL, 0, &f->cfg, &err), 0);
    f->base = event_base_new();
    assert_non_null(f->base);
    env = (struct nq_handler_env){ .base = f->base, .cfg = f->cfg, .queue = &f->cfg->queues[0] };
    assert_int_equal(nq_handler_new(&env, &f->h, &err), 0);
}

static void teardown_fixture(struct fixture *f)
{
    f->h = nq_handler_free(f->h);
    event_base_free(f->base);
    f->cfg = nq_config_free(f->cfg);
}

static struct nq_job *job_new(const char *data)
{
    struct nq_job *job = nq_job_new("42", 2);

    assert_non_null(job);
    assert_int_equal(nq_job_set_field(job, "name", 4, "greet", 5), 0);
    assert_int_equal(nq_job_set_field(job, "data", 4, data, strlen(data)), 0);
    assert_int_equal(nq_job_set_field(job, "opts", 4, "{\"attempts\":3}", 14), 0);
    assert_int_equal(nq_job_set_field(job, "atm", 3, "1", 1), 0);
    assert_int_equal(nq_job_decode(job), 0);
    return job;
}

/* Runs one job to its outcome. */
static void run_job(struct fixture *f, const char *data, struct seen *s)
{
    struct nq_job *job = job_new(data);
    struct nq_err err = { "" };
    struct nq_handler_call call = { .job = job, .base = f->base, .done = on_done, .userdata = s };

    assert_int_equal(nq_handler_validate(f->h, job, &err), 0);
    assert_int_equal(nq_handler_start(f->h, &call), 0);
    while (s->calls == 0)
        assert_int_not_equal(event_base_loop(f->base, EVLOOP_ONCE), -1);
    assert_int_equal(s->calls, 1);
    assert_null(call.handler_data);
    nq_job_free(job);
}

/* The outcome of one job of a handler running script. */
static struct seen outcome(const char *script, const char *extra, const char *data)
{
    struct fixture f = { 0 };
    struct seen s = { 0 };

    setup_with(&f, script, extra);
    run_job(&f, data, &s);
    teardown_fixture(&f);
    return s;
}

static void test_stdin_is_the_job_and_json_stdout_the_result(void **state)
{
    struct seen s = outcome("cat", NULL, "{\"to\": \"ann\", \"n\": [1, 2]}");
    json_t *got, *want;

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_OK);
    got = json_loads(s.text, 0, NULL);
    want = json_loads("{\"id\":\"42\",\"name\":\"greet\",\"data\":{\"to\":\"ann\",\"n\":[1,2]},"
                      "\"opts\":{\"attempts\":3},\"attemptsMade\":1}",
                      0, NULL);
    assert_non_null(got);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    free(s.text);
}

static void test_text_stdout_is_a_string_without_the_final_newline(void **state)
{
    struct seen s = outcome("echo \"sent to $1\"", NULL, "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_OK);
    assert_string_equal(s.text, "\"sent to arg1\"");
    free(s.text);
}

static void test_empty_stdout_is_null(void **state)
{
    struct seen s = outcome("exit 0", NULL, "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_OK);
    assert_string_equal(s.text, "(null)");
    free(s.text);
}

static void test_invalid_utf8_is_replaced(void **state)
{
    struct seen s = outcome("printf 'a\\377b'", NULL, "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_OK);
    assert_string_equal(s.text, "\"a\xEF\xBF\xBD"
                                "b\"");
    free(s.text);
}

static void test_exit_75_retries(void **state)
{
    struct seen s = outcome("echo 'try later' >&2; exit 75", NULL, "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_RETRY);
    assert_string_equal(s.text, "exec: exit status 75 (EX_TEMPFAIL): stderr: try later");
    free(s.text);
}

static void test_other_exit_fails_with_a_stderr_excerpt(void **state)
{
    struct seen s = outcome("printf 'bad input\\nline 2\\n' >&2; exit 3", NULL, "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_PERMANENT);
    assert_string_equal(s.text, "exec: exit status 3: stderr: bad input line 2");
    free(s.text);
}

static void test_long_stderr_is_cut_in_the_reason(void **state)
{
    struct seen s = outcome("head -c 100000 /dev/zero | tr '\\0' e >&2; exit 1", NULL, "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_PERMANENT);
    assert_non_null(strstr(s.text, "eeee (100000 bytes in all)"));
    assert_true(strlen(s.text) < 300);
    free(s.text);
}

static void test_killed_by_a_signal_retries(void **state)
{
    struct seen s = outcome("kill -KILL $$$$", NULL, "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_RETRY);
    assert_non_null(strstr(s.text, "killed by signal 9 (SIGKILL)"));
    free(s.text);
}

static void test_timeout_retries(void **state)
{
    struct seen s = outcome("sleep 30", "      timeout: 100ms\n", "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_RETRY);
    assert_string_equal(s.text, "exec: timed out after 100ms, its process group was killed");
    free(s.text);
}

static void test_timeout_ignoring_sigterm_gets_sigkill(void **state)
{
    struct seen s = outcome("trap '' TERM; sleep 30", "      timeout: 100ms\n", "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_RETRY);
    assert_non_null(strstr(s.text, "timed out after 100ms"));
    free(s.text);
}

static void test_long_stdout_is_cut_and_reported(void **state)
{
    struct seen s = outcome("head -c 3000000 /dev/zero | tr '\\0' o", NULL, "{}");
    json_t *v = json_loads(s.text, 0, NULL);

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_OK);
    assert_non_null(v);
    assert_true(json_is_true(json_object_get(v, "truncated")));
    assert_int_equal(json_integer_value(json_object_get(v, "stdoutBytes")), 3000000);
    assert_int_equal(json_string_length(json_object_get(v, "stdout")), 1u << 20);
    json_decref(v);
    free(s.text);
}

static void test_a_child_ignoring_big_stdin_completes(void **state)
{
    size_t n = 4u << 20;
    char *data = malloc(n + 3);
    struct seen s;

    (void) state;
    assert_non_null(data);
    data[0] = '"';
    memset(data + 1, 'x', n);
    (void) strcpy(data + 1 + n, "\"");
    s = outcome("exec 0<&-; echo done", NULL, data);
    assert_int_equal(s.kind, NQ_OUTCOME_OK);
    assert_string_equal(s.text, "\"done\"");
    free(s.text);
    s = outcome("echo done", NULL, data);
    assert_int_equal(s.kind, NQ_OUTCOME_OK);
    assert_string_equal(s.text, "\"done\"");
    free(s.text);
    free(data);
}

static void test_environment_and_cwd_are_the_configs(void **state)
{
    struct seen s = outcome("printf '%s|%s|%s|%s' \"$FOO\" \"$PATH\" \"$${HOME-unset}\" \"$(pwd)\"",
                            "      cwd: /tmp\n      env: {FOO: bar baz}\n", "{}");

    (void) state;
    assert_int_equal(s.kind, NQ_OUTCOME_OK);
    assert_string_equal(s.text, "\"bar baz|/usr/local/bin:/usr/bin:/bin|unset|/tmp\"");
    free(s.text);
    s = outcome("printf '%s' \"$PATH\"", "      env: {PATH: /opt/x}\n", "{}");
    assert_string_equal(s.text, "\"/opt/x\"");
    free(s.text);
}

static void test_cancel_reports_nothing(void **state)
{
    struct fixture f = { 0 };
    struct seen s = { 0 };
    struct nq_job *job = job_new("{}");
    struct nq_handler_call call = { .job = job, .done = on_done, .userdata = &s };
    struct timeval tick = { 0, 50000 };

    (void) state;
    setup_with(&f, "sleep 30", NULL);
    call.base = f.base;
    assert_int_equal(nq_handler_start(f.h, &call), 0);
    assert_non_null(call.handler_data);
    assert_int_equal(event_base_loopexit(f.base, &tick), 0);
    assert_int_not_equal(event_base_dispatch(f.base), -1);
    nq_handler_cancel(f.h, &call);
    assert_null(call.handler_data);
    /* The killed child is reaped by the loop, reporting nothing. */
    assert_int_equal(event_base_loopexit(f.base, &tick), 0);
    assert_int_not_equal(event_base_dispatch(f.base), -1);
    assert_int_equal(s.calls, 0);
    teardown_fixture(&f);
    nq_job_free(job);
}

static void test_a_name_not_utf8_fails_validation(void **state)
{
    struct fixture f = { 0 };
    struct nq_job *job = nq_job_new("1", 1);
    struct nq_err err = { "" };

    (void) state;
    setup_with(&f, "cat", NULL);
    assert_int_equal(nq_job_set_field(job, "name", 4, "a\xff", 2), 0);
    assert_int_equal(nq_job_set_field(job, "data", 4, "{}", 2), 0);
    assert_int_equal(nq_job_decode(job), 0);
    assert_int_equal(nq_handler_validate(f.h, job, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "name: not valid UTF-8");
    nq_job_free(job);
    teardown_fixture(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stdin_is_the_job_and_json_stdout_the_result),
        cmocka_unit_test(test_text_stdout_is_a_string_without_the_final_newline),
        cmocka_unit_test(test_empty_stdout_is_null),
        cmocka_unit_test(test_invalid_utf8_is_replaced),
        cmocka_unit_test(test_exit_75_retries),
        cmocka_unit_test(test_other_exit_fails_with_a_stderr_excerpt),
        cmocka_unit_test(test_long_stderr_is_cut_in_the_reason),
        cmocka_unit_test(test_killed_by_a_signal_retries),
        cmocka_unit_test(test_timeout_retries),
        cmocka_unit_test(test_timeout_ignoring_sigterm_gets_sigkill),
        cmocka_unit_test(test_long_stdout_is_cut_and_reported),
        cmocka_unit_test(test_a_child_ignoring_big_stdin_completes),
        cmocka_unit_test(test_environment_and_cwd_are_the_configs),
        cmocka_unit_test(test_cancel_reports_nothing),
        cmocka_unit_test(test_a_name_not_utf8_fails_validation),
    };

    /* As in a worker (supervisor/child.h): a child that closes its stdin
     * gives EPIPE, not death. */
    (void) signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
