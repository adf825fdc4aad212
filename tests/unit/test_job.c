/* SPDX-License-Identifier: MIT */
/* The job codec: every hash field and option, malformed input, policies,
 * the opts written for adds, and the finish plan built on them. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "common/err.h"
#include "queue/internal.h"
#include "queue/job.h"
#include "queue/store.h"

static struct nq_job *job_from(const char *id, const char *const *kv, size_t n)
{
    struct nq_job *job = nq_job_new(id, strlen(id));
    assert_non_null(job);
    for (size_t i = 0; i + 1 < n; i += 2)
        assert_int_equal(nq_job_set_field(job, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1])),
                         0);
    assert_int_equal(nq_job_decode(job), 0);
    return job;
}

#define JOB(id, ...)                                                                               \
    job_from(id, (const char *const[]){ __VA_ARGS__ },                                             \
             NQ_ELEMENTSOF(((const char *const[]){ __VA_ARGS__ })))

static void every_hash_field(void **state)
{
    (void) state;
    struct nq_job *j =
        JOB("7", "name", "send-email", "data", "{\"to\":\"a@b.c\"}", "opts", "{\"attempts\":3}",
            "timestamp", "1795577103975", "delay", "250", "priority", "5", "processedOn",
            "1795577103995", "finishedOn", "1795577104000", "pb", "notifyq-1", "atm", "2", "ats",
            "3", "stc", "1", "nqcrash", "2", "progress", "{\"pct\":40}", "returnvalue",
            "{\"ok\":1}", "failedReason", "boom", "stacktrace", "[\"e1\"]", "defa",
            "job stalled more than allowable limit", "deid", "dd1", "rjk", "every-1s", "parentKey",
            "bull:p:1", "parent", "{\"id\":\"1\",\"queueKey\":\"bull:p\"}", "unknownField", "x");

    assert_null(nq_job_invalid_reason_borrow(j));
    assert_string_equal(j->id, "7");
    assert_string_equal(j->name, "send-email");
    assert_string_equal(json_string_value(json_object_get(nq_job_data_borrow(j), "to")), "a@b.c");
    assert_int_equal(j->data_len, strlen("{\"to\":\"a@b.c\"}"));
    assert_int_equal(j->timestamp, 1795577103975ULL);
    assert_int_equal(j->delay_ms, 250);
    assert_int_equal(j->priority, 5);
    assert_int_equal(j->processed_on, 1795577103995ULL);
    assert_int_equal(j->finished_on, 1795577104000ULL);
    assert_string_equal(j->processed_by, "notifyq-1");
    assert_int_equal(j->atm, 2);
    assert_int_equal(j->ats, 3);
    assert_int_equal(j->stc, 1);
    assert_int_equal(j->crashes, 2);
    assert_string_equal(j->progress, "{\"pct\":40}");
    assert_string_equal(j->returnvalue, "{\"ok\":1}");
    assert_string_equal(j->failed_reason, "boom");
    assert_string_equal(j->stacktrace, "[\"e1\"]");
    assert_string_equal(j->defa, "job stalled more than allowable limit");
    assert_string_equal(j->deid, "dd1");
    assert_string_equal(j->rjk, "every-1s");
    assert_string_equal(j->parent_key, "bull:p:1");
    assert_string_equal(j->parent, "{\"id\":\"1\",\"queueKey\":\"bull:p\"}");
    assert_true(j->opts.has_attempts);
    assert_int_equal(j->opts.attempts, 3);
    assert_string_equal(nq_job_fail_unrun_reason_borrow(j),
                        "job stalled more than allowable limit");
    nq_job_free(j);
}

static void legacy_attempts_made_and_garbled_counters(void **state)
{
    (void) state;
    struct nq_job *j = JOB("1", "data", "{}", "attemptsMade", "4", "ats", "x7", "stc", "-3");

    assert_int_equal(j->atm, 4);
    assert_int_equal(j->ats, 0);
    assert_int_equal(j->stc, 0);
    assert_null(nq_job_invalid_reason_borrow(j));
    nq_job_free(j);
}

static void every_option(void **state)
{
    (void) state;
    const char *opts =
        "{\"attempts\":5,\"backoff\":{\"type\":\"exponential\",\"delay\":1000,\"jitter\":0.5},"
        "\"delay\":60000,\"priority\":7,\"lifo\":true,\"removeOnComplete\":10,"
        "\"removeOnFail\":{\"age\":3600,\"count\":100,\"limit\":50},\"jobId\":\"order:1:x\","
        "\"de\":{\"id\":\"dd1\",\"ttl\":30000,\"extend\":true,\"replace\":false},"
        "\"stackTraceLimit\":3,\"timestamp\":1795577103975,\"kl\":5,"
        "\"repeat\":{\"every\":1000,\"count\":4,\"offset\":559,\"startDate\":1795570000000,"
        "\"endDate\":1795590000000,\"limit\":10,\"tz\":\"Europe/Paris\"},"
        "\"prevMillis\":1795576940559,\"repeatJobKey\":\"every-1s\"}";
    struct nq_job *j = JOB("order:1:x", "data", "[1,2]", "opts", opts);
    const struct nq_job_opts *o = &j->opts;

    assert_null(nq_job_invalid_reason_borrow(j));
    assert_true(json_is_array(nq_job_data_borrow(j)));
    assert_int_equal(o->attempts, 5);
    assert_true(o->has_backoff);
    assert_int_equal(o->backoff.kind, NQ_BACKOFF_KIND_EXPONENTIAL);
    assert_int_equal(o->backoff.delay_ms, 1000);
    assert_true(o->backoff.jitter > 0.49 && o->backoff.jitter < 0.51);
    assert_int_equal(o->delay_ms, 60000);
    assert_int_equal(o->priority, 7);
    assert_true(o->lifo);
    assert_int_equal(o->remove_on_complete.kind, NQ_KEEP_LIMITED);
    assert_int_equal(o->remove_on_complete.count, 10);
    assert_int_equal(o->remove_on_complete.age_ms, 0);
    assert_int_equal(o->remove_on_fail.kind, NQ_KEEP_LIMITED);
    assert_int_equal(o->remove_on_fail.count, 100);
    assert_int_equal(o->remove_on_fail.age_ms, 3600000);
    assert_int_equal(o->remove_on_fail.limit, 50);
    assert_string_equal(o->job_id, "order:1:x");
    assert_string_equal(o->dedup_id, "dd1");
    assert_int_equal(o->dedup_ttl_ms, 30000);
    assert_true(o->dedup_extend);
    assert_false(o->dedup_replace);
    assert_int_equal(o->stack_trace_limit, 3);
    assert_int_equal(o->timestamp, 1795577103975ULL);
    assert_int_equal(o->keep_logs, 5);
    assert_true(o->repeat.set);
    assert_int_equal(o->repeat.every_ms, 1000);
    assert_int_equal(o->repeat.count, 4);
    assert_int_equal(o->repeat.offset, 559);
    assert_int_equal(o->repeat.start_date, 1795570000000LL);
    assert_int_equal(o->repeat.end_date, 1795590000000LL);
    assert_int_equal(o->repeat.limit, 10);
    assert_string_equal(o->repeat.tz, "Europe/Paris");
    assert_null(o->repeat.pattern);
    assert_int_equal(o->prev_millis, 1795576940559ULL);
    assert_string_equal(o->repeat_job_key, "every-1s");
    nq_job_free(j);
}

static void option_variants(void **state)
{
    (void) state;
    /* numeric backoff = fixed; booleans for retention; cjson's 1e+14 form */
    struct nq_job *j = JOB("1", "data", "\"text\"", "opts",
                           "{\"backoff\":500,\"removeOnComplete\":true,\"removeOnFail\":false,"
                           "\"delay\":1e+14,\"repeat\":{\"pattern\":\"0 * * * *\"}}");
    assert_null(nq_job_invalid_reason_borrow(j));
    assert_true(json_is_string(nq_job_data_borrow(j)));
    assert_int_equal(j->opts.backoff.kind, NQ_BACKOFF_KIND_FIXED);
    assert_int_equal(j->opts.backoff.delay_ms, 500);
    assert_int_equal(j->opts.remove_on_complete.kind, NQ_KEEP_NONE);
    assert_int_equal(j->opts.remove_on_fail.kind, NQ_KEEP_ALL);
    assert_int_equal(j->opts.delay_ms, 100000000000000ULL);
    assert_string_equal(j->opts.repeat.pattern, "0 * * * *");
    assert_false(j->opts.has_attempts);
    nq_job_free(j);

    /* a custom backoff strategy lives in a Node worker: the queue default applies */
    j = JOB("2", "data", "{}", "opts",
            "{\"backoff\":{\"type\":\"mine\",\"delay\":5},"
            "\"removeOnComplete\":0,\"removeOnFail\":{\"age\":60}}");
    assert_null(nq_job_invalid_reason_borrow(j));
    assert_false(j->opts.has_backoff);
    assert_int_equal(j->opts.remove_on_complete.kind, NQ_KEEP_NONE);
    assert_int_equal(j->opts.remove_on_fail.kind, NQ_KEEP_LIMITED);
    assert_int_equal(j->opts.remove_on_fail.count, -1);
    assert_int_equal(j->opts.remove_on_fail.age_ms, 60000);
    nq_job_free(j);
}

static const struct {
    const char *data, *opts, *reason_start;
} malformed[] = {
    { "{\"to\":", "{}", "data.to: not valid JSON: unexpected end of input at offset 6" },
    { "{\"to\":\"a@b\",\"subject\":\"caf\xc3\"}", "{}",
      "data.subject: not valid JSON: invalid UTF-8 at offset 26" },
    { "{\"m\":{\"k\":[1,\"\xff\"]}}", "{}", "data.m: not valid JSON: invalid UTF-8 at offset 14" },
    { "", "{}", "data is not valid JSON: unexpected end of input at offset 0" },
    { "{\"to\":1,}", "{}", "data is not valid JSON: expected a string key at offset 8" },
    { "[\"caf\xc3\"]", "{}", "data is not valid JSON: invalid UTF-8 at offset 5" },
    /* jansson's number range, not JSON.parse's: such data fails as before */
    { "{\"n\":1e999}", "{}", "data.n: not valid JSON: number out of range at offset 5" },
    { "[18446744073709551615]", "{}", "data is not valid JSON: number out of range at offset 1" },
    { "\"\\u0000\"", "{}", "data is not valid JSON: \\u0000 is not allowed at offset 1" },
    { "{}", "{\"attempts\":", "opts is not valid JSON" },
    { "{}", "[1,2]", "opts is not a JSON object" },
    { "{}", "{\"attempts\":\"three\"}", "opts.attempts: not a number" },
    { "{}", "{\"backoff\":\"fast\"}", "opts.backoff: not a number or object" },
    { "{}", "{\"backoff\":{\"type\":\"fixed\",\"delay\":\"1s\"}}", "opts.backoff.delay" },
    { "{}", "{\"removeOnComplete\":\"yes\"}", "opts.removeOnComplete" },
    { "{}", "{\"removeOnFail\":{\"age\":\"old\"}}", "opts.removeOnFail" },
    { "{}", "{\"lifo\":1}", "opts.lifo: not a boolean" },
    { "{}", "{\"jobId\":[1]}", "opts.jobId: not a string" },
    { "{}", "{\"de\":\"x\"}", "opts.de: not an object" },
    { "{}", "{\"repeat\":7}", "opts.repeat: not an object" },
    { "{}", "{\"repeat\":{\"offset\":\"x\"}}", "opts.repeat.offset" },
    { "{}", "{\"stackTraceLimit\":{}}", "opts.stackTraceLimit" },
    { "{}", "{\"delay\":null,\"priority\":-3}", NULL }, /* null = absent; negative clamps */
};

static void malformed_fails_permanently(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(malformed); i++) {
        struct nq_job *j = JOB("9", "data", malformed[i].data, "opts", malformed[i].opts);
        const char *why = nq_job_fail_unrun_reason_borrow(j);
        if (!malformed[i].reason_start) {
            assert_null(why);
        } else {
            assert_non_null(why);
            assert_memory_equal(why, malformed[i].reason_start, strlen(malformed[i].reason_start));
        }
        nq_job_free(j);
    }
}

/* jansson allocations, counted to see when the data tree is built. */
static size_t jansson_allocs;

static void *counting_malloc(size_t size)
{
    jansson_allocs++;
    return malloc(size);
}

static void lazy_tree_built_once(void **state)
{
    (void) state;
    json_set_alloc_funcs(counting_malloc, free);

    /* No opts: decoding them would allocate too. */
    struct nq_job *j = JOB("1", "data", "{\"to\":\"a@b.c\",\"n\":[1,2.5]}");
    assert_null(nq_job_invalid_reason_borrow(j));
    assert_int_equal(jansson_allocs, 0); /* checked, not parsed */
    json_t *data = nq_job_data_borrow(j);
    assert_true(json_is_object(data));
    assert_string_equal(json_string_value(json_object_get(data, "to")), "a@b.c");
    size_t built = jansson_allocs;
    assert_true(built > 0);
    assert_ptr_equal(nq_job_data_borrow(j), data); /* cached */
    assert_int_equal(jansson_allocs, built);
    nq_job_free(j); /* frees the tree: valgrind and ASan see to that */

    /* Malformed data: no tree, however often asked, and no parse attempt. */
    j = JOB("2", "data", "{\"to\":");
    assert_non_null(nq_job_invalid_reason_borrow(j));
    assert_null(nq_job_data_borrow(j));
    assert_null(nq_job_data_borrow(j));
    nq_job_free(j);

    /* Absent data. */
    j = JOB("3", "name", "x");
    assert_null(nq_job_data_borrow(j));
    nq_job_free(j);
    assert_int_equal(jansson_allocs, built);

    json_set_alloc_funcs(malloc, free);
}

static void missing_data_and_caps(void **state)
{
    (void) state;
    struct nq_job *j = JOB("1", "name", "x");
    assert_non_null(nq_job_invalid_reason_borrow(j));
    nq_job_free(j);

    size_t big = NQ_JOB_DATA_MAX + 1;
    char *data = malloc(big + 1);
    assert_non_null(data);
    memset(data, ' ', big);
    data[big] = '\0';
    j = nq_job_new("1", 1);
    assert_int_equal(nq_job_set_field(j, "data", 4, data, big), 0);
    assert_int_equal(nq_job_decode(j), 0);
    assert_string_equal(nq_job_invalid_reason_borrow(j), "data exceeds 8388608 bytes");
    nq_job_free(j);

    char *opts = malloc(NQ_JOB_FIELD_MAX + 3);
    assert_non_null(opts);
    opts[0] = '{';
    memset(opts + 1, ' ', NQ_JOB_FIELD_MAX);
    strcpy(opts + 1 + NQ_JOB_FIELD_MAX, "}");
    j = JOB("1", "data", "{}", "opts", opts);
    assert_memory_equal(nq_job_invalid_reason_borrow(j), "opts exceeds", 12);
    nq_job_free(j);
    free(opts);
    free(data);
}

/* Random bytes in every field never crash the codec (run under ASan/valgrind). */
static void garbage_never_crashes(void **state)
{
    static const char *const names[] = { "data",       "opts",      "name",     "atm", "delay",
                                         "stacktrace", "timestamp", "priority", "defa" };
    char buf[64];
    (void) state;

    srand(1234);
    for (int round = 0; round < 3000; round++) {
        struct nq_job *j = nq_job_new("g", 1);
        assert_non_null(j);
        for (size_t f = 0; f < NQ_ELEMENTSOF(names); f++) {
            size_t len = (size_t) rand() % sizeof(buf);
            for (size_t i = 0; i < len; i++)
                buf[i] = (char) (rand() % 3 ? "{}[]\":,0123456789e.-tnfalsru \\"[rand() % 31]
                                            : rand() % 256);
            assert_int_equal(nq_job_set_field(j, names[f], strlen(names[f]), buf, len), 0);
        }
        assert_int_equal(nq_job_decode(j), 0);
        char *st = nq_job_stacktrace_append_new(j, "e");
        assert_non_null(st);
        free(st);
        nq_job_free(j);
    }
}

static void policies_job_wins(void **state)
{
    (void) state;
    struct nq_backoff_cfg qb = { .type = NQ_BACKOFF_FIXED, .delay_ms = 300, .jitter = 0.2 };
    struct nq_keep_cfg keep100 = { .count = 100 }, keep_all = { .keep_all = true }, remove = { 0 },
                       aged = { .age_ms = 5000 };
    struct nq_backoff b;
    struct nq_keep k;

    struct nq_job *node = JOB("1", "data", "{}", "opts", "{\"attempts\":0}");
    assert_int_equal(nq_job_attempts(node, 4), 4); /* Node's attempts:0 = not set */
    assert_int_equal(nq_job_attempts(node, 0), 1);
    nq_job_backoff(node, &qb, &b);
    assert_int_equal(b.kind, NQ_BACKOFF_KIND_FIXED);
    assert_int_equal(b.delay_ms, 300);
    nq_job_keep(node, false, &keep100, &k);
    assert_int_equal(k.kind, NQ_KEEP_LIMITED);
    assert_int_equal(k.count, 100);
    nq_job_keep(node, true, &keep_all, &k);
    assert_int_equal(k.kind, NQ_KEEP_ALL);
    nq_job_keep(node, true, &remove, &k);
    assert_int_equal(k.kind, NQ_KEEP_NONE);
    nq_job_keep(node, true, &aged, &k);
    assert_int_equal(k.count, -1);
    assert_int_equal(k.age_ms, 5000);
    nq_job_free(node);

    struct nq_job *own = JOB("2", "data", "{}", "opts",
                             "{\"attempts\":2,\"backoff\":{\"type\":\"exponential\",\"delay\":50},"
                             "\"removeOnComplete\":false,\"removeOnFail\":3}");
    assert_int_equal(nq_job_attempts(own, 9), 2);
    nq_job_backoff(own, &qb, &b);
    assert_int_equal(b.kind, NQ_BACKOFF_KIND_EXPONENTIAL);
    assert_int_equal(b.delay_ms, 50);
    nq_job_keep(own, false, &keep100, &k);
    assert_int_equal(k.kind, NQ_KEEP_ALL);
    nq_job_keep(own, true, &keep_all, &k);
    assert_int_equal(k.count, 3);
    nq_job_free(own);
}

static void keep_specs(void **state)
{
    char buf[64];
    (void) state;

    assert_int_equal(nq_keep_format(&(struct nq_keep){ .kind = NQ_KEEP_ALL }, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(nq_keep_format(&(struct nq_keep){ .kind = NQ_KEEP_NONE }, buf, sizeof(buf)),
                     1);
    assert_string_equal(buf, "0");
    assert_true(nq_keep_format(&(struct nq_keep){ .kind = NQ_KEEP_LIMITED, .count = 10 }, buf,
                               sizeof(buf)) > 0);
    assert_string_equal(buf, "10:0:1000");
    assert_true(nq_keep_format(
                    &(struct nq_keep){
                        .kind = NQ_KEEP_LIMITED, .count = -1, .age_ms = 3600000, .limit = 5 },
                    buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "-1:3600000:5");
    assert_int_equal(
        nq_keep_format(&(struct nq_keep){ .kind = NQ_KEEP_LIMITED, .count = 10 }, buf, 4),
        -ENOBUFS);
}

static void stacktraces_accumulate_and_cap(void **state)
{
    (void) state;
    struct nq_job *j =
        JOB("1", "data", "{}", "opts", "{\"stackTraceLimit\":2}", "stacktrace", "[\"a\",\"b\"]");
    char *s = nq_job_stacktrace_append_new(j, "c\n\"quoted\"");
    assert_string_equal(s, "[\"b\",\"c\\n\\\"quoted\\\"\"]");
    free(s);
    nq_job_free(j);

    j = JOB("1", "data", "{}", "opts", "{\"stackTraceLimit\":0}", "stacktrace", "[\"a\"]");
    s = nq_job_stacktrace_append_new(j, "x");
    assert_string_equal(s, "[]");
    free(s);
    nq_job_free(j);

    j = JOB("1", "data", "{}", "stacktrace", "not json");
    s = nq_job_stacktrace_append_new(j, "x");
    assert_string_equal(s, "[\"x\"]");
    free(s);
    nq_job_free(j);

    /* A reason that is not UTF-8 (a defa from Redis, a cut quote) still goes
     * into the trace, its stray bytes as '?' (found by tests/fuzz). */
    j = JOB("1", "data", "{}", "defa", "deferred\xf7");
    s = nq_job_stacktrace_append_new(j, "bad \xf7 byte, \xe2\x82\xac, cut \xc3");
    assert_string_equal(s, "[\"bad ? byte, \xe2\x82\xac, cut ?\"]");
    free(s);
    nq_job_free(j);
}

static void add_opts_like_node(void **state)
{
    struct nq_err err = { 0 };
    char *json = NULL;
    (void) state;

    struct nq_add_opts o = { 0 };
    assert_int_equal(nq_add_opts_json_new(&o, &json, &err), 0);
    assert_string_equal(json, "{\"attempts\":0}");
    free(json);

    o = (struct nq_add_opts){
        .attempts = 3,
        .has_backoff = true,
        .backoff = { .kind = NQ_BACKOFF_KIND_EXPONENTIAL, .delay_ms = 1000 },
        .delay_ms = 5000,
        .priority = 2,
        .job_id = "welcome-42",
        .dedup_id = "d1",
        .dedup_ttl_ms = 30000,
        .dedup_extend = true,
        .remove_on_complete = { .kind = NQ_KEEP_LIMITED, .count = 10 },
        .remove_on_fail = { .kind = NQ_KEEP_LIMITED, .count = 100, .age_ms = 3600000 },
    };
    assert_int_equal(nq_add_opts_json_new(&o, &json, &err), 0);
    json_t *p = json_loads(json, 0, NULL);
    assert_non_null(p);
    assert_int_equal(json_integer_value(json_object_get(p, "attempts")), 3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "backoff"), "type")),
                        "exponential");
    assert_int_equal(json_integer_value(json_object_get(p, "delay")), 5000);
    assert_int_equal(json_integer_value(json_object_get(p, "priority")), 2);
    assert_string_equal(json_string_value(json_object_get(p, "jobId")), "welcome-42");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "de"), "ttl")), 30000);
    assert_true(json_is_true(json_object_get(json_object_get(p, "de"), "extend")));
    assert_null(json_object_get(json_object_get(p, "de"), "replace"));
    assert_int_equal(json_integer_value(json_object_get(p, "removeOnComplete")), 10);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "removeOnFail"), "age")),
                     3600);
    json_decref(p);
    free(json);

    static const char *const bad_ids[] = { "42", "0", "0:x", "a:b", "a:b:c:d", "" };
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad_ids); i++) {
        o = (struct nq_add_opts){ .job_id = bad_ids[i] };
        json = NULL;
        assert_int_equal(nq_add_opts_json_new(&o, &json, &err), -EINVAL);
        assert_null(json);
    }
    o = (struct nq_add_opts){ .priority = NQ_JOB_PRIORITY_MAX + 1 };
    assert_int_equal(nq_add_opts_json_new(&o, &json, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "priority must be 0..2097151");
}

static const struct nq_queue_cfg *queue_cfg(void)
{
    static struct nq_queue_cfg q = {
        .attempts = 3,
        .backoff = { .type = NQ_BACKOFF_EXPONENTIAL, .delay_ms = 1000, .max_ms = 3000 },
        .retention = { .completed = { .keep_all = true }, .failed = { .count = 50 } },
    };
    return &q;
}

static void finish_plans(void **state)
{
    struct nq_finish f;
    (void) state;
    struct nq_job *j = JOB("1", "data", "{}", "opts", "{\"attempts\":0}", "atm", "0");

    struct nq_outcome ok = { .kind = NQ_OUTCOME_OK, .result_json = "{\"ok\":true}" };
    assert_int_equal(nq_finish_plan(j, &ok, queue_cfg(), 0, &f), 0);
    assert_int_equal(f.kind, NQ_FINISH_COMPLETED);
    assert_string_equal(f.text, "{\"ok\":true}");
    assert_string_equal(f.keep, "");
    nq_finish_done(&f);

    struct nq_outcome retry = { .kind = NQ_OUTCOME_RETRY, .reason = "timeout" };
    assert_int_equal(nq_finish_plan(j, &retry, queue_cfg(), 0, &f), 0);
    assert_int_equal(f.kind, NQ_FINISH_RETRY_LATER);
    assert_int_equal(f.delay_ms, 1000);
    assert_string_equal(f.stacktrace, "[\"timeout\"]");
    nq_finish_done(&f);

    j->atm = 1; /* second attempt fails: 2000 */
    assert_int_equal(nq_finish_plan(j, &retry, queue_cfg(), 0, &f), 0);
    assert_int_equal(f.delay_ms, 2000);
    nq_finish_done(&f);

    j->atm = 2; /* third of three: exhausted */
    assert_int_equal(nq_finish_plan(j, &retry, queue_cfg(), 0, &f), 0);
    assert_int_equal(f.kind, NQ_FINISH_FAILED);
    assert_string_equal(f.text, "timeout");
    assert_string_equal(f.keep, "50:0:1000");
    nq_finish_done(&f);

    j->atm = 0;
    struct nq_outcome perm = { .kind = NQ_OUTCOME_PERMANENT, .reason = "invalid address" };
    assert_int_equal(nq_finish_plan(j, &perm, queue_cfg(), 0, &f), 0);
    assert_int_equal(f.kind, NQ_FINISH_FAILED_EARLY);
    nq_finish_done(&f);

    struct nq_outcome limited = { .kind = NQ_OUTCOME_RATE_LIMITED, .retry_after_ms = 1500 };
    assert_int_equal(nq_finish_plan(j, &limited, queue_cfg(), 0, &f), 0);
    assert_int_equal(f.kind, NQ_FINISH_RATE_LIMITED);
    assert_int_equal(f.delay_ms, 1500);
    assert_false(f.engage_limiter);
    nq_finish_done(&f);

    struct nq_outcome back = { .kind = NQ_OUTCOME_RETURN };
    assert_int_equal(nq_finish_plan(j, &back, queue_cfg(), 0, &f), 0);
    assert_int_equal(f.kind, NQ_FINISH_RETURNED);
    nq_finish_done(&f);
    nq_job_free(j);

    /* a job with backoff delay 0 retries at once; retry_after overrides */
    j = JOB("2", "data", "{}", "opts",
            "{\"attempts\":3,\"backoff\":{\"type\":\"fixed\",\"delay\":0}}");
    assert_int_equal(nq_finish_plan(j, &retry, queue_cfg(), 0, &f), 0);
    assert_int_equal(f.kind, NQ_FINISH_RETRY_NOW);
    nq_finish_done(&f);
    retry.retry_after_ms = 700;
    assert_int_equal(nq_finish_plan(j, &retry, queue_cfg(), 0, &f), 0);
    assert_int_equal(f.kind, NQ_FINISH_RETRY_LATER);
    assert_int_equal(f.delay_ms, 700);
    nq_finish_done(&f);
    nq_job_free(j);
}

static void transient_server_errors(void **state)
{
    static const struct {
        const char *text;
        int want;
    } cases[] = {
        { "LOADING Redis is loading the dataset in memory", 1 },
        { "BUSY Redis is busy running a script.", 1 },
        { "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", 1 },
        { "TRYAGAIN Multiple keys request during rehashing of slot", 1 },
        { "BUSY", 1 },
        { "BUSYKEY Target key name already exists.", 0 },
        { "BUSYGROUP Consumer Group name already exists", 0 },
        { "ERR Error running script (call to f_x): @user_script:1: oops", 0 },
        { "NOSCRIPT No matching script. Please use EVAL.", 0 },
        { "LOADINGX", 0 },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        redisReply r = { .type = REDIS_REPLY_ERROR,
                         .str = (char *) cases[i].text,
                         .len = strlen(cases[i].text) };
        assert_int_equal(nq_reply_is_transient(&r), cases[i].want);
    }
    redisReply ok = { .type = REDIS_REPLY_STATUS, .str = (char *) "LOADING", .len = 7 };
    assert_int_equal(nq_reply_is_transient(&ok), 0);
    assert_int_equal(nq_reply_is_transient(NULL), 0);
}

static void counts_reply(void **state)
{
    redisReply ints[9], *el[9];
    redisReply arr = { .type = REDIS_REPLY_ARRAY, .elements = 9, .element = el };
    struct nq_counts c = { .failed = 77 };

    (void) state;
    for (size_t i = 0; i < 9; i++) {
        ints[i] = (redisReply){ .type = REDIS_REPLY_INTEGER, .integer = (long long) i + 1 };
        el[i] = &ints[i];
    }
    assert_int_equal(nq_reply_counts(&arr, &c), 0);
    assert_true(c.waiting == 1 && c.active == 2 && c.prioritized == 3 && c.delayed == 4);
    assert_true(c.completed == 5 && c.failed == 6 && c.waiting_children == 7);
    assert_true(c.paused_legacy == 8 && c.paused);

    struct nq_counts untouched = { .failed = 77 };
    ints[8].integer = -1;
    assert_int_equal(nq_reply_counts(&arr, &untouched), -EPROTO);
    assert_int_equal(untouched.failed, 77);
    /* cppcheck-suppress [redundantAssignment,unreadVariable] ; arr reads it */
    ints[8].integer = 0;
    arr.elements = 8;
    assert_int_equal(nq_reply_counts(&arr, &untouched), -EPROTO);
    assert_int_equal(untouched.failed, 77);
}

static struct nq_job *job_like(const char *id, const char *data, const char *opts,
                               const struct nq_job *prev)
{
    struct nq_job *job = nq_job_new(id, strlen(id));

    assert_non_null(job);
    assert_int_equal(nq_job_set_field(job, "data", 4, data, strlen(data)), 0);
    assert_int_equal(nq_job_set_field(job, "opts", 4, opts, strlen(opts)), 0);
    assert_int_equal(nq_job_decode_like(job, prev), 0);
    return job;
}

/* A job decoded like its neighbour gets the same opts, in strings of its own,
 * and its data is still checked on its own. */
static void decode_like_copies_equal_opts(void **state)
{
    (void) state;
    const char *opts = "{\"attempts\":4,\"jobId\":\"a:b:c\",\"de\":{\"id\":\"d1\"},"
                       "\"repeat\":{\"pattern\":\"0 * * * *\",\"tz\":\"UTC\"},"
                       "\"repeatJobKey\":\"k\",\"backoff\":{\"type\":\"fixed\",\"delay\":9}}";
    struct nq_job *a = job_like("1", "{}", opts, NULL);
    struct nq_job *b = job_like("2", "[1]", opts, a);
    struct nq_job *bad = job_like("3", "[1,", opts, b);
    struct nq_job *other = job_like("4", "{}", "{\"attempts\":2}", b);
    struct nq_job *after_bad = job_like("5", "{}", "{\"attempts\":x}", a);

    assert_null(nq_job_invalid_reason_borrow(b));
    assert_int_equal(b->opts.attempts, 4);
    assert_int_equal(b->opts.backoff.delay_ms, 9);
    assert_string_equal(b->opts.job_id, "a:b:c");
    assert_ptr_not_equal(b->opts.job_id, a->opts.job_id);
    assert_string_equal(b->opts.dedup_id, "d1");
    assert_string_equal(b->opts.repeat.pattern, "0 * * * *");
    assert_ptr_not_equal(b->opts.repeat.pattern, a->opts.repeat.pattern);
    assert_string_equal(b->opts.repeat.tz, "UTC");
    assert_string_equal(b->opts.repeat_job_key, "k");
    assert_non_null(nq_job_invalid_reason_borrow(bad));
    assert_non_null(strstr(nq_job_invalid_reason_borrow(bad), "data is not valid JSON"));
    assert_int_equal(other->opts.attempts, 2);
    assert_null(other->opts.job_id);
    assert_non_null(nq_job_invalid_reason_borrow(after_bad));
    nq_job_free(a);
    nq_job_free(b);
    nq_job_free(bad);
    nq_job_free(other);
    nq_job_free(after_bad);
}

/* Our RESP formatting is byte for byte what hiredis makes of the same
 * arguments, with empty and binary ones, past the reserve, and reused. */
static void args_resp_is_hiredis_format(void **state)
{
    (void) state;
    struct nq_args a;
    char big[3000];
    const char *bin = "a\r\nb\0c";

    memset(big, 'x', sizeof(big));
    nq_args_init(&a);
    for (int round = 0; round < 2; round++) {
        nq_args_reset(&a);
        nq_args_reserve(&a, 2, 8);
        nq_args_adds(&a, "EVALSHA");
        nq_args_adds(&a, "");
        nq_args_add(&a, bin, 7);
        nq_args_add(&a, big, sizeof(big));
        for (unsigned i = 0; i < 300; i++)
            nq_args_addu(&a, (uint64_t) i * 1000003u);

        const char **argv;
        const size_t *lens;
        const char *resp;
        size_t len;
        sds want = NULL;

        assert_int_equal(nq_args_resp(&a, &resp, &len), 0);
        assert_int_equal(nq_args_argv(&a, &argv, &lens), 0);
        long long n = redisFormatSdsCommandArgv(&want, (int) a.n, argv, lens);
        assert_true(n > 0);
        assert_int_equal((size_t) n, len);
        assert_memory_equal(resp, want, len);
        sdsfree(want);
    }
    nq_args_done(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_hash_field),
        cmocka_unit_test(legacy_attempts_made_and_garbled_counters),
        cmocka_unit_test(every_option),
        cmocka_unit_test(option_variants),
        cmocka_unit_test(malformed_fails_permanently),
        cmocka_unit_test(lazy_tree_built_once),
        cmocka_unit_test(missing_data_and_caps),
        cmocka_unit_test(garbage_never_crashes),
        cmocka_unit_test(policies_job_wins),
        cmocka_unit_test(keep_specs),
        cmocka_unit_test(stacktraces_accumulate_and_cap),
        cmocka_unit_test(add_opts_like_node),
        cmocka_unit_test(finish_plans),
        cmocka_unit_test(transient_server_errors),
        cmocka_unit_test(counts_reply),
        cmocka_unit_test(decode_like_copies_equal_opts),
        cmocka_unit_test(args_resp_is_hiredis_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
