/* SPDX-License-Identifier: MIT */
/* The broadcast handler driven as the worker drives it, with the worker's
 * door to the store replaced by a recorder that answers as the store
 * would: batches, child ids and data, progress, resuming from progress,
 * transient and hard store errors, cancel with a batch out, and every
 * refusal of a bad job (with nothing added). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "handlers/handler.h"

#define CONFIG                                                                                     \
    "queues:\n"                                                                                    \
    "  bc:\n    handler: broadcast\n    bullmq_queue: news\n    broadcast: {batch: %u}\n"          \
    "  mail:\n    handler: email\n"                                                                \
    "  quiet:\n    handler: noop\n    bullmq_queue: quiet-q\n"                                     \
    "  other:\n    handler: broadcast\n"                                                           \
    "  odd:\n    handler: noop\n    bullmq_queue: 'o\"dd'\n"

/* The recorder behind env.add_batch: the last batch, and its callback. */
struct store {
    int calls;
    int fail_now; /* returned by the next add_batch, then 0 */
    char queue[64], progress_id[64], progress[64];
    json_t *children; /* every child sent, in order: {id, name, data, opts} */
    size_t last_n;
    nq_store_ids_fn cb;
    void *userdata;
};

struct seen {
    int calls;
    enum nq_outcome_kind kind;
    char *text;
};

struct fixture {
    struct event_base *base;
    struct nq_config *cfg;
    struct nq_handler *h;
    struct store st;
    struct seen seen;
    struct nq_job *job;
    struct nq_handler_call call;
};

static int fake_add_batch(void *ctx, const char *queue, const struct nq_add_job *jobs, size_t n,
                          const char *progress_id, const char *progress_json, nq_store_ids_fn cb,
                          void *userdata)
{
    struct store *st = ctx;
    int r = st->fail_now;

    st->fail_now = 0;
    st->calls++;
    if (r < 0)
        return r;
    assert_null(st->cb); /* one batch at a time */
    snprintf(st->queue, sizeof(st->queue), "%s", queue);
    snprintf(st->progress_id, sizeof(st->progress_id), "%s", progress_id);
    snprintf(st->progress, sizeof(st->progress), "%s", progress_json);
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_loads(jobs[i].data_json, 0, NULL),
               *o = json_loads(jobs[i].opts_json, 0, NULL);

        assert_non_null(d);
        assert_non_null(o);
        json_array_append_new(st->children, json_pack("{s:s, s:s, s:o, s:o}", "id", jobs[i].id,
                                                      "name", jobs[i].name, "data", d, "opts", o));
    }
    st->last_n = n;
    st->cb = cb;
    st->userdata = userdata;
    return 0;
}

/* The store's reply to the batch out: r jobs added (or an error). */
static void answer(struct fixture *f, int r)
{
    nq_store_ids_fn cb = f->st.cb;

    assert_non_null(cb);
    f->st.cb = NULL;
    /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): assert_non_null ended the test if NULL */
    cb(f->st.userdata, r, NULL, 0);
}

static void on_done(struct nq_handler_call *call, const struct nq_outcome *o)
{
    struct seen *s = call->userdata;
    const char *t = o->kind == NQ_OUTCOME_OK ? o->result_json : o->reason;

    s->calls++;
    s->kind = o->kind;
    free(s->text);
    s->text = strdup(t ? t : "(null)");
}

static void setup_batch(struct fixture *f, unsigned batch)
{
    char yaml[1024];
    struct nq_err err = { "" };
    struct nq_handler_env env;

    memset(f, 0, sizeof(*f));
    snprintf(yaml, sizeof(yaml), CONFIG, batch);
    assert_int_equal(nq_config_parse_string("test.yaml", yaml, NULL, 0, &f->cfg, &err), 0);
    f->base = event_base_new();
    assert_non_null(f->base);
    f->st.children = json_array();
    env = (struct nq_handler_env){ .base = f->base,
                                   .cfg = f->cfg,
                                   .queue = &f->cfg->queues[0],
                                   .add_batch = fake_add_batch,
                                   .add_batch_ctx = &f->st };
    assert_int_equal(nq_handler_new(&env, &f->h, &err), 0);
}

static void teardown_fixture(struct fixture *f)
{
    f->job = nq_job_free(f->job);
    f->h = nq_handler_free(f->h);
    event_base_free(f->base);
    f->cfg = nq_config_free(f->cfg);
    json_decref(f->st.children);
    free(f->seen.text);
}

static struct nq_job *job_new(const char *id, const char *data, const char *ts,
                              const char *progress)
{
    struct nq_job *job = nq_job_new(id, strlen(id));

    assert_non_null(job);
    assert_int_equal(nq_job_set_field(job, "name", 4, "welcome", 7), 0);
    assert_int_equal(nq_job_set_field(job, "data", 4, data, strlen(data)), 0);
    assert_int_equal(nq_job_set_field(job, "opts", 4, "{\"attempts\":3}", 14), 0);
    assert_int_equal(nq_job_set_field(job, "timestamp", 9, ts, strlen(ts)), 0);
    if (progress)
        assert_int_equal(nq_job_set_field(job, "progress", 8, progress, strlen(progress)), 0);
    assert_int_equal(nq_job_decode(job), 0);
    return job;
}

/* Data of a broadcast to n recipients u<i>@example.org on queue target;
 * even recipients carry vars {name: U<i>}. Caller frees. */
static char *data_new(const char *target, size_t n)
{
    json_t *list = json_array();
    char *s;

    for (size_t i = 0; i < n; i++) {
        char to[64], name[32];

        snprintf(to, sizeof(to), "u%zu@example.org", i);
        snprintf(name, sizeof(name), "U%zu", i);
        json_array_append_new(list,
                              i % 2 ? json_pack("{s:s}", "to", to)
                                    : json_pack("{s:s, s:{s:s}}", "to", to, "vars", "name", name));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:o}", "queue", target, "templateId",
                          "welcome", "subject", "Hello", "templateVariables", "greeting", "Hi",
                          "name", "?", "recipients", list);

    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* Starts job on f's handler; it must pass validation. */
static void start(struct fixture *f, struct nq_job *job)
{
    struct nq_err err = { "" };

    f->job = job;
    f->call = (struct nq_handler_call){
        .job = job, .base = f->base, .done = on_done, .userdata = &f->seen
    };
    assert_int_equal(nq_handler_validate(f->h, job, &err), 0);
    assert_int_equal(nq_handler_start(f->h, &f->call), 0);
}

static const json_t *child(const struct fixture *f, size_t i)
{
    const json_t *c = json_array_get(f->st.children, i);

    assert_non_null(c);
    return c;
}

static const char *child_id(const struct fixture *f, size_t i)
{
    return json_string_value(json_object_get(child(f, i), "id"));
}

static void assert_json(const json_t *got, const char *want)
{
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);

    assert_non_null(w);
    if (!json_equal((json_t *) got, w))
        fail_msg("got %s, want %s", g, want);
    free(g);
    json_decref(w);
}

static json_t *result(const struct fixture *f)
{
    json_t *r = json_loads(f->seen.text, 0, NULL);

    assert_non_null(r);
    return r;
}

/* ---- fan-out ---------------------------------------------------------------- */

static void test_recipients_become_children_in_batches(void **state)
{
    struct fixture f;
    char *data = data_new("mail", 250);
    json_t *r;

    (void) state;
    setup_batch(&f, 100);
    start(&f, job_new("7", data, "1700000000000", NULL));
    free(data);
    /* One batch out at a time: 100, then 100, then 50. */
    assert_int_equal(f.st.calls, 1);
    assert_int_equal(f.st.last_n, 100);
    assert_string_equal(f.st.queue, "mail");
    assert_string_equal(f.st.progress_id, "7");
    assert_string_equal(f.st.progress, "40");
    answer(&f, 100);
    assert_int_equal(f.st.last_n, 100);
    assert_string_equal(f.st.progress, "80");
    answer(&f, 90); /* ten of them were there already */
    assert_int_equal(f.st.last_n, 50);
    assert_string_equal(f.st.progress, "100");
    assert_int_equal(f.seen.calls, 0);
    answer(&f, 50);
    assert_int_equal(f.seen.calls, 1);
    assert_int_equal(f.seen.kind, NQ_OUTCOME_OK);
    assert_null(f.call.handler_data);
    assert_int_equal(json_array_size(f.st.children), 250);

    /* Child data: the shared fields, to, the merged variables. */
    assert_json(json_object_get(child(&f, 0), "data"),
                "{\"templateId\":\"welcome\",\"subject\":\"Hello\",\"to\":\"u0@example.org\","
                "\"templateVariables\":{\"greeting\":\"Hi\",\"name\":\"U0\"}}");
    assert_json(json_object_get(child(&f, 249), "data"),
                "{\"templateId\":\"welcome\",\"subject\":\"Hello\",\"to\":\"u249@example.org\","
                "\"templateVariables\":{\"greeting\":\"Hi\",\"name\":\"?\"}}");
    assert_string_equal(json_string_value(json_object_get(child(&f, 3), "name")), "welcome");
    /* Ids: one prefix per broadcast, then the index; opts name the id. */
    const char *id0 = child_id(&f, 0);
    size_t plen = strlen(id0) - 1;
    assert_int_equal(strncmp(id0, "bcast-", 6), 0);
    assert_int_equal(plen, strlen("bcast-") + 20 + 1);
    for (size_t i = 0; i < 250; i++) {
        char want[64];

        snprintf(want, sizeof(want), "%.*s%zu", (int) plen, id0, i);
        assert_string_equal(child_id(&f, i), want);
        json_t *o = json_object_get(child(&f, i), "opts");
        assert_int_equal(json_object_size(o), 2);
        assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 0);
        assert_string_equal(json_string_value(json_object_get(o, "jobId")), want);
    }
    r = result(&f);
    assert_json(json_object_get(r, "recipients"), "250");
    assert_json(json_object_get(r, "added"), "240");
    assert_json(json_object_get(r, "existing"), "10");
    assert_json(json_object_get(r, "resumedAt"), "0");
    assert_string_equal(json_string_value(json_object_get(r, "queue")), "mail");
    assert_int_equal(strncmp(json_string_value(json_object_get(r, "jobIdPrefix")), id0, plen), 0);
    json_decref(r);
    teardown_fixture(&f);
}

/* The first child's id of a broadcast job (id, timestamp) on a fresh handler. */
static char *first_id(const char *id, const char *ts)
{
    struct fixture f;
    char *data = data_new("mail", 1), *out;

    setup_batch(&f, 100);
    start(&f, job_new(id, data, ts, NULL));
    free(data);
    out = strdup(child_id(&f, 0));
    answer(&f, 1);
    assert_int_equal(f.seen.kind, NQ_OUTCOME_OK);
    teardown_fixture(&f);
    return out;
}

static void test_child_ids_derive_from_the_broadcast_identity(void **state)
{
    char *a = first_id("7", "1700000000000"), *again = first_id("7", "1700000000000");
    char *other_ts = first_id("7", "1700000000001"), *other_id = first_id("70", "1700000000000");

    (void) state;
    assert_string_equal(a, again);
    assert_string_not_equal(a, other_ts);
    assert_string_not_equal(a, other_id);
    free(a);
    free(again);
    free(other_ts);
    free(other_id);
}

/* A broadcast whose progress says p resumes at first, with want calls. */
static void resumes(size_t total, unsigned batch, const char *progress, size_t first)
{
    struct fixture f;
    char *data = data_new("quiet", total);

    setup_batch(&f, batch);
    start(&f, job_new("9", data, "1700000000000", progress));
    free(data);
    while (f.st.cb)
        answer(&f, (int) f.st.last_n);
    assert_int_equal(f.seen.calls, 1);
    assert_int_equal(f.seen.kind, NQ_OUTCOME_OK);
    assert_int_equal(json_array_size(f.st.children), total - first);
    if (first < total) {
        const char *id = child_id(&f, 0);
        char want[32];

        snprintf(want, sizeof(want), "-%zu", first);
        assert_string_equal(id + strlen(id) - strlen(want), want);
    }
    json_t *r = result(&f);
    assert_int_equal(json_integer_value(json_object_get(r, "resumedAt")), first);
    assert_int_equal(json_integer_value(json_object_get(r, "added")), total - first);
    json_decref(r);
    teardown_fixture(&f);
}

static void test_a_rerun_resumes_at_its_progress(void **state)
{
    (void) state;
    resumes(250, 100, "40", 100);
    resumes(250, 100, "100", 250);
    resumes(250, 100, "0", 0);
    resumes(250, 100, "{\"pct\":40}", 0); /* not ours: from the start, ids dedupe */
    /* 3 of 7 is 42.857142857142854: read back exactly. */
    resumes(7, 3, "42.857142857142854", 3);
}

/* The progress a batch writes reads back as the exact count. */
static void test_progress_is_exact(void **state)
{
    struct fixture f;
    char *data = data_new("quiet", 7);

    (void) state;
    setup_batch(&f, 3);
    start(&f, job_new("9", data, "1700000000000", NULL));
    free(data);
    assert_string_equal(f.st.progress, "42.857142857142854");
    answer(&f, 3);
    assert_string_equal(f.st.progress, "85.71428571428571");
    answer(&f, 3);
    assert_string_equal(f.st.progress, "100");
    answer(&f, 1);
    assert_int_equal(f.seen.kind, NQ_OUTCOME_OK);
    teardown_fixture(&f);
}

/* ---- store errors ---------------------------------------------------------- */

static void test_transient_errors_send_the_same_batch_again(void **state)
{
    struct fixture f;
    char *data = data_new("mail", 3);

    (void) state;
    setup_batch(&f, 2);
    f.st.fail_now = -ENOTCONN;
    start(&f, job_new("5", data, "1700000000000", NULL));
    free(data);
    assert_int_equal(f.st.calls, 1);
    assert_null(f.st.cb);
    while (f.st.calls < 2)
        assert_int_not_equal(event_base_loop(f.base, EVLOOP_ONCE), -1);
    assert_int_equal(json_array_size(f.st.children), 2);
    answer(&f, -EAGAIN); /* e.g. our scripts were gone from the server */
    while (f.st.calls < 3)
        assert_int_not_equal(event_base_loop(f.base, EVLOOP_ONCE), -1);
    /* The same two children again, then the last one. */
    assert_string_equal(child_id(&f, 0), child_id(&f, 2));
    assert_string_equal(child_id(&f, 1), child_id(&f, 3));
    answer(&f, 2);
    answer(&f, 1);
    assert_int_equal(f.seen.calls, 1);
    assert_int_equal(f.seen.kind, NQ_OUTCOME_OK);
    teardown_fixture(&f);
}

static void test_hard_errors_fail_the_attempt(void **state)
{
    struct fixture f;
    char *data = data_new("mail", 3);

    (void) state;
    setup_batch(&f, 2);
    start(&f, job_new("5", data, "1700000000000", NULL));
    answer(&f, 2);
    answer(&f, -EIO);
    assert_int_equal(f.seen.calls, 1);
    assert_int_equal(f.seen.kind, NQ_OUTCOME_RETRY);
    assert_string_equal(f.seen.text,
                        "broadcast: adding jobs to queue mail: Input/output error (2 of 3 added)");
    teardown_fixture(&f);

    setup_batch(&f, 2);
    start(&f, job_new("5", data, "1700000000000", NULL));
    free(data);
    answer(&f, -ENOENT);
    assert_int_equal(f.seen.kind, NQ_OUTCOME_PERMANENT);
    assert_non_null(strstr(f.seen.text, "removed while its recipients were being added"));
    teardown_fixture(&f);
}

static void test_cancel_with_a_batch_out_or_waiting(void **state)
{
    struct fixture f;
    char *data = data_new("mail", 3);

    (void) state;
    setup_batch(&f, 2);
    start(&f, job_new("5", data, "1700000000000", NULL));
    nq_handler_cancel(f.h, &f.call);
    assert_null(f.call.handler_data);
    answer(&f, 2); /* arrives after the cancel: freed, nothing reported */
    assert_int_equal(f.seen.calls, 0);
    assert_int_equal(f.st.calls, 1);
    teardown_fixture(&f);

    setup_batch(&f, 2);
    f.st.fail_now = -EAGAIN;
    start(&f, job_new("5", data, "1700000000000", NULL));
    free(data);
    nq_handler_cancel(f.h, &f.call); /* its retry timer goes with it */
    assert_int_equal(event_base_loop(f.base, EVLOOP_NONBLOCK), 1); /* no event left */
    assert_int_equal(f.seen.calls, 0);
    teardown_fixture(&f);
}

/* The store goes away first (worker exit): -ECANCELED, then the cancel. */
static void test_store_going_away(void **state)
{
    struct fixture f;
    char *data = data_new("mail", 3);

    (void) state;
    setup_batch(&f, 2);
    start(&f, job_new("5", data, "1700000000000", NULL));
    free(data);
    answer(&f, -ECANCELED);
    assert_int_equal(f.seen.calls, 0);
    assert_non_null(f.call.handler_data);
    nq_handler_cancel(f.h, &f.call);
    teardown_fixture(&f);
}

/* ---- refusals ----------------------------------------------------------------- */

static void refused(const char *data, const char *why)
{
    struct fixture f;
    struct nq_err err = { "" };
    struct nq_job *job = job_new("1", data, "1700000000000", NULL);

    setup_batch(&f, 100);
    assert_int_equal(nq_handler_validate(f.h, job, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), why);
    assert_int_equal(f.st.calls, 0);
    nq_job_free(job);
    teardown_fixture(&f);
}

static void test_bad_jobs_are_refused_naming_the_field(void **state)
{
    (void) state;
    refused("[1]", "data: must be a JSON object");
    refused("{\"recipients\":[{\"to\":\"a\"}]}",
            "data.queue: required (the queue the recipients' jobs go to)");
    refused("{\"queue\":5,\"recipients\":[{\"to\":\"a\"}]}", "data.queue: must be a string");
    refused("{\"queue\":\"nope\",\"recipients\":[{\"to\":\"a\"}]}",
            "data.queue: no queue \"nope\" in the configuration");
    refused("{\"queue\":\"other\",\"recipients\":[{\"to\":\"a\"}]}",
            "data.queue: other is a broadcast queue; the target must deliver");
    refused("{\"queue\":\"news\",\"recipients\":[{\"to\":\"a\"}]}",
            "data.queue: bc is a broadcast queue; the target must deliver");
    refused("{\"queue\":\"mail\"}", "data.recipients: required (a list of {to, vars})");
    refused("{\"queue\":\"mail\",\"recipients\":[]}",
            "data.recipients: must be a non-empty list of {to, vars}");
    refused("{\"queue\":\"mail\",\"recipients\":[{\"to\":\"a\"},\"b\"]}",
            "data.recipients[1]: must be an object {to, vars}");
    refused("{\"queue\":\"mail\",\"recipients\":[{\"to\":\"a\"},{\"to\":\"b\"},{\"vars\":{}}]}",
            "data.recipients[2].to: required");
    refused("{\"queue\":\"mail\",\"recipients\":[{\"to\":\"a\",\"cc\":\"b\"}]}",
            "data.recipients[0].cc: not a field of a recipient (to, vars)");
    refused("{\"queue\":\"mail\",\"recipients\":[{\"to\":\"a\",\"vars\":[1]}]}",
            "data.recipients[0].vars: must be an object");
    refused("{\"queue\":\"mail\",\"recipients\":[{\"to\":\"a\\r\\nBcc: x\"}]}",
            "data.recipients[0].to: must not hold control characters");
    refused("{\"queue\":\"mail\",\"recipients\":[{\"to\":\"\"}]}",
            "data.recipients[0].to: must not be empty");
    refused("{\"queue\":\"mail\",\"recipients\":[{\"to\":[\"a\"]}]}",
            "data.recipients[0].to: must be a string");
    refused("{\"queue\":\"mail\",\"templateVariables\":[],\"recipients\":[{\"to\":\"a\"}]}",
            "data.templateVariables: must be an object");
    refused("{\"queue\":\"mail\",\"to\":\"x@y.z\",\"recipients\":[{\"to\":\"a\"}]}",
            "data.to: a broadcast sends to data.recipients; each child job gets one of them as "
            "its to");
    /* The target's own field table speaks for the children. */
    refused("{\"queue\":\"mail\",\"subjct\":\"x\",\"recipients\":[{\"to\":\"a\"}]}",
            "data.subjct: not a field of email jobs, the broadcast's target (see "
            "notifyq-jobs(7))");
    refused("{\"queue\":\"mail\",\"attachments\":[],\"recipients\":[{\"to\":\"a\"}]}",
            "data.attachments: attachments are not supported yet; the job fails rather than go "
            "out without them");
}

static void test_an_open_target_takes_any_field(void **state)
{
    struct fixture f;

    (void) state;
    setup_batch(&f, 100);
    start(&f, job_new("3",
                      "{\"queue\":\"quiet-q\",\"anything\":{\"x\":1},\"recipients\":[{\"to\":"
                      "\"a\",\"vars\":{\"v\":1}},{\"to\":\"b\"}]}",
                      "1700000000000", NULL));
    assert_string_equal(f.st.queue, "quiet-q");
    assert_json(json_object_get(child(&f, 0), "data"),
                "{\"anything\":{\"x\":1},\"to\":\"a\",\"templateVariables\":{\"v\":1}}");
    /* Without variables of its own nor shared ones, a child has none. */
    assert_json(json_object_get(child(&f, 1), "data"), "{\"anything\":{\"x\":1},\"to\":\"b\"}");
    answer(&f, 2);
    assert_int_equal(f.seen.kind, NQ_OUTCOME_OK);
    teardown_fixture(&f);
}

/* The returnvalue is JSON whatever the target's name holds. */
static void test_the_result_is_json_for_any_queue_name(void **state)
{
    struct fixture f;
    json_t *r;

    (void) state;
    setup_batch(&f, 100);
    start(&f, job_new("3", "{\"queue\":\"odd\",\"recipients\":[{\"to\":\"a\"}]}", "1700000000000",
                      NULL));
    assert_string_equal(f.st.queue, "o\"dd");
    answer(&f, 1);
    assert_int_equal(f.seen.kind, NQ_OUTCOME_OK);
    r = result(&f);
    assert_string_equal(json_string_value(json_object_get(r, "queue")), "o\"dd");
    json_decref(r);
    teardown_fixture(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipients_become_children_in_batches),
        cmocka_unit_test(test_child_ids_derive_from_the_broadcast_identity),
        cmocka_unit_test(test_a_rerun_resumes_at_its_progress),
        cmocka_unit_test(test_progress_is_exact),
        cmocka_unit_test(test_transient_errors_send_the_same_batch_again),
        cmocka_unit_test(test_hard_errors_fail_the_attempt),
        cmocka_unit_test(test_cancel_with_a_batch_out_or_waiting),
        cmocka_unit_test(test_store_going_away),
        cmocka_unit_test(test_bad_jobs_are_refused_naming_the_field),
        cmocka_unit_test(test_an_open_target_takes_any_field),
        cmocka_unit_test(test_the_result_is_json_for_any_queue_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
