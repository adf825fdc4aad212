/* SPDX-License-Identifier: MIT */
/* The handler registry and the noop handler, driven as the worker drives
 * them: validate, start on an event base, outcome through the callback,
 * cancel. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "handlers/handler.h"

struct seen {
    int calls;
    enum nq_outcome_kind kind;
    char text[128];
};

static void on_done(struct nq_handler_call *call, const struct nq_outcome *o)
{
    struct seen *s = call->userdata;
    const char *t = o->kind == NQ_OUTCOME_OK ? o->result_json : o->reason;

    s->calls++;
    s->kind = o->kind;
    (void) snprintf(s->text, sizeof(s->text), "%s", t ? t : "(null)");
}

static struct nq_job *job_with_data(const char *data)
{
    struct nq_job *job = nq_job_new("1", 1);

    assert_non_null(job);
    assert_int_equal(nq_job_set_field(job, "data", 4, data, strlen(data)), 0);
    assert_int_equal(nq_job_set_field(job, "opts", 4, "{}", 2), 0);
    assert_int_equal(nq_job_decode(job), 0);
    return job;
}

static struct nq_handler *noop_new(struct event_base *base)
{
    struct nq_queue_cfg q = { .name = (char *) "t", .handler = NQ_HANDLER_NOOP };
    struct nq_handler_env env = { .base = base, .queue = &q };
    struct nq_handler *h = NULL;
    struct nq_err err = { "" };

    assert_int_equal(nq_handler_new(&env, &h, &err), 0);
    return h;
}

static void unimplemented_handlers_say_so(void **state)
{
    struct nq_queue_cfg q = { .name = (char *) "t", .handler = NQ_HANDLER_EXEC };
    struct nq_handler_env env = { .queue = &q };
    struct nq_handler *h = NULL;
    struct nq_err err = { "" };

    (void) state;
    assert_non_null(nq_handler_ops_find(NQ_HANDLER_NOOP));
    assert_null(nq_handler_ops_find(NQ_HANDLER_EXEC));
    assert_int_equal(nq_handler_new(&env, &h, &err), -EOPNOTSUPP);
    assert_null(h);
    assert_string_equal(nq_err_str(&err), "handler exec not implemented yet");
}

static void validate_names_the_field(void **state)
{
    static const struct {
        const char *data, *want; /* want NULL: valid */
    } cases[] = {
        { "{}", NULL },
        { "[1,2]", NULL },
        { "\"text\"", NULL },
        { "{\"fail\":\"retryable\",\"sleep_ms\":5}", NULL },
        { "{\"fail\":\"permanent\"}", NULL },
        { "{\"fail\":true}", "data.fail: must be \"retryable\" or \"permanent\"" },
        { "{\"fail\":\"often\"}", "data.fail: must be \"retryable\" or \"permanent\"" },
        { "{\"sleep_ms\":-1}", "data.sleep_ms: must be an integer 0..86400000" },
        { "{\"sleep_ms\":1.5}", "data.sleep_ms: must be an integer 0..86400000" },
        { "{\"sleep_ms\":86400001}", "data.sleep_ms: must be an integer 0..86400000" },
        { "{\"crash\":\"abort\"}", "data.crash: must be \"segv\"" },
        { "{\"crash\":\"segv\"}", "data.crash: test crashes are disabled (NOTIFYQ_TEST_CRASH=1 "
                                  "in notifyqd's environment enables them)" },
    };
    struct nq_handler *h;

    (void) state;
    unsetenv("NOTIFYQ_TEST_CRASH");
    h = noop_new(NULL);
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        struct nq_job *job = job_with_data(cases[i].data);
        struct nq_err err = { "" };
        int r = nq_handler_validate(h, job, &err);

        if (!cases[i].want && r != 0)
            fail_msg("%s refused: %s", cases[i].data, nq_err_str(&err));
        if (cases[i].want) {
            assert_int_equal(r, -EINVAL);
            assert_string_equal(nq_err_str(&err), cases[i].want);
        }
        nq_job_free(job);
    }
    nq_handler_free(h);
}

static void outcomes_come_from_the_data(void **state)
{
    static const struct {
        const char *data;
        enum nq_outcome_kind kind;
        const char *text;
    } cases[] = {
        { "{}", NQ_OUTCOME_OK, "{\"ok\":true}" },
        { "{\"to\":\"x\"}", NQ_OUTCOME_OK, "{\"ok\":true}" },
        { "{\"fail\":\"retryable\"}", NQ_OUTCOME_RETRY, "noop: retryable failure" },
        { "{\"fail\":\"permanent\"}", NQ_OUTCOME_PERMANENT, "noop: permanent failure" },
    };
    struct event_base *base = event_base_new();
    struct nq_handler *h = noop_new(base);

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        struct nq_job *job = job_with_data(cases[i].data);
        struct seen seen = { 0 };
        struct nq_handler_call call = {
            .job = job, .base = base, .done = on_done, .userdata = &seen
        };

        /* No I/O: reported from inside start(). */
        assert_int_equal(nq_handler_start(h, &call), 0);
        assert_int_equal(seen.calls, 1);
        assert_int_equal(seen.kind, cases[i].kind);
        assert_string_equal(seen.text, cases[i].text);
        nq_job_free(job);
    }
    nq_handler_free(h);
    event_base_free(base);
}

/* jansson allocations, counted to see whether noop built the data tree. */
static size_t jansson_allocs;

static void *counting_malloc(size_t size)
{
    jansson_allocs++;
    return malloc(size);
}

/* noop builds the data tree only when the raw text may name one of its keys,
 * and does what the data says either way. */
static void data_tree_only_when_it_may_instruct(void **state)
{
    static const struct {
        const char *data;
        bool builds;
        enum nq_outcome_kind kind;
    } cases[] = {
        { "{\"to\":\"a@b.c\",\"message\":\"this may fail or crash\"}", false, NQ_OUTCOME_OK },
        { "[1,2]", false, NQ_OUTCOME_OK },
        { "{\"fail\":\"permanent\"}", true, NQ_OUTCOME_PERMANENT },
        { "{\"\\u0066ail\":\"permanent\"}", true, NQ_OUTCOME_PERMANENT }, /* an escaped key */
        { "{\"x\":{\"fail\":\"permanent\"}}", true, NQ_OUTCOME_OK },      /* not a top-level key */
        { "{\"status\":\"fail\"}", true, NQ_OUTCOME_OK }, /* a false alarm costs a tree */
    };
    struct event_base *base = event_base_new();
    struct nq_handler *h = noop_new(base);

    (void) state;
    json_set_alloc_funcs(counting_malloc, free);
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        struct nq_job *job = job_with_data(cases[i].data);
        struct seen seen = { 0 };
        struct nq_handler_call call = {
            .job = job, .base = base, .done = on_done, .userdata = &seen
        };
        struct nq_err err = { "" };

        jansson_allocs = 0; /* decoding the job's opts counted too */
        assert_int_equal(nq_handler_validate(h, job, &err), 0);
        assert_int_equal(nq_handler_start(h, &call), 0);
        assert_int_equal(seen.calls, 1);
        assert_int_equal(seen.kind, cases[i].kind);
        if ((jansson_allocs > 0) != cases[i].builds)
            fail_msg("%s: tree %s", cases[i].data, cases[i].builds ? "not built" : "built");
        nq_job_free(job);
    }
    json_set_alloc_funcs(malloc, free);
    nq_handler_free(h);
    event_base_free(base);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void sleep_runs_on_the_loop_and_cancel_stops_it(void **state)
{
    struct event_base *base = event_base_new();
    struct nq_handler *h = noop_new(base);
    struct nq_job *slow = job_with_data("{\"sleep_ms\":80,\"fail\":\"permanent\"}");
    struct nq_job *forever = job_with_data("{\"sleep_ms\":600000}");
    struct seen s1 = { 0 }, s2 = { 0 };
    struct nq_handler_call c1 = { .job = slow, .base = base, .done = on_done, .userdata = &s1 };
    struct nq_handler_call c2 = { .job = forever, .base = base, .done = on_done, .userdata = &s2 };
    uint64_t t0 = mono_ms();

    (void) state;
    assert_int_equal(nq_handler_start(h, &c1), 0);
    assert_int_equal(nq_handler_start(h, &c2), 0);
    assert_int_equal(s1.calls + s2.calls, 0); /* not blocking: both pending */
    nq_handler_cancel(h, &c2);
    assert_null(c2.handler_data);
    /* Only the first job's timer is left, so the loop ends with it. */
    assert_true(event_base_dispatch(base) >= 0);
    assert_true(mono_ms() - t0 >= 80);
    assert_int_equal(s1.calls, 1);
    assert_int_equal(s1.kind, NQ_OUTCOME_PERMANENT);
    assert_int_equal(s2.calls, 0);
    nq_job_free(slow);
    nq_job_free(forever);
    nq_handler_free(h);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unimplemented_handlers_say_so),
        cmocka_unit_test(validate_names_the_field),
        cmocka_unit_test(outcomes_come_from_the_data),
        cmocka_unit_test(data_tree_only_when_it_may_instruct),
        cmocka_unit_test(sleep_runs_on_the_loop_and_cancel_stops_it),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
