/* SPDX-License-Identifier: MIT */
/* The email, sms and push handlers through their vtables, as the worker
 * drives them, with a real config and the file provider: init makes the
 * spool dir (or fails with a reason), validate refuses bad data, start
 * delivers and reports the returnvalue, a failed write is retryable, cancel
 * leaves nothing behind; the demo's config starts them all. NQ_SRCDIR
 * locates the source tree. */
#include "config.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "config/config.h"
#include "handlers/handler.h"
#include "queue/job.h"

extern const struct nq_handler_ops nq_handler_email, nq_handler_sms, nq_handler_push;

struct fixture {
    char dir[64];
    struct event_base *base;
    struct nq_config *cfg;
    struct nq_handler_env env;
    const struct nq_handler_ops *ops;
    void *state;
};

struct outcome {
    int calls;
    enum nq_outcome_kind kind;
    char reason[1024];
    json_t *result;
};

static void on_done(struct nq_handler_call *call, const struct nq_outcome *o)
{
    struct outcome *out = call->userdata;

    out->calls++;
    out->kind = o->kind;
    snprintf(out->reason, sizeof(out->reason), "%s", o->reason ? o->reason : "");
    out->result = o->result_json ? json_loads(o->result_json, 0, NULL) : NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct nq_err err = { { 0 } };
    char yaml[512];

    assert_non_null(f);
    strcpy(f->dir, "/tmp/nq-test-channel-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(yaml, sizeof(yaml),
             "state_dir: %s/state\n"
             "queues:\n"
             "  email: { handler: email }\n"
             "  sms: { handler: sms }\n"
             "  push: { handler: push, provider: { type: file, spool_dir: %s/push-out } }\n",
             f->dir, f->dir);
    if (nq_config_parse_string("t.yaml", yaml, NULL, 0, &f->cfg, &err) != 0)
        fail_msg("config: %s", nq_err_str(&err));
    f->base = event_base_new();
    assert_non_null(f->base);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    if (f->ops && f->state)
        f->ops->free(f->state);
    event_base_free(f->base);
    nq_config_free(f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int init(struct fixture *f, const struct nq_handler_ops *ops, const char *queue,
                struct nq_err *err)
{
    f->env = (struct nq_handler_env){
        .base = f->base, .cfg = f->cfg, .queue = nq_config_queue(f->cfg, queue), .slot = 0
    };
    assert_non_null(f->env.queue);
    f->ops = ops;
    return ops->init(&f->env, &f->state, err);
}

/* The timestamp (BullMQ's, set when a job is added) of the jobs job() makes. */
#define TS_S "1765000000000"

static struct nq_job *job_at(const char *id, const char *ts, const char *data)
{
    struct nq_job *j = nq_job_new(id, strlen(id));

    assert_non_null(j);
    assert_int_equal(nq_job_set_field(j, "data", 4, data, strlen(data)), 0);
    assert_int_equal(nq_job_set_field(j, "timestamp", 9, ts, strlen(ts)), 0);
    assert_int_equal(nq_job_decode(j), 0);
    assert_null(nq_job_invalid_reason_borrow(j));
    return j;
}

static struct nq_job *job(const char *id, const char *data)
{
    return job_at(id, TS_S, data);
}

/* Validates and runs a job to its outcome, as the worker does. */
static struct outcome run(struct fixture *f, struct nq_job *j)
{
    struct outcome out = { 0 };
    struct nq_handler_call call = { .job = j, .base = f->base, .done = on_done, .userdata = &out };
    struct nq_err err = { { 0 } };

    if (f->ops->validate(f->state, j, &err) != 0)
        fail_msg("validate: %s", nq_err_str(&err));
    assert_int_equal(f->ops->start(f->state, &call), 0);
    assert_int_equal(out.calls, 0);
    assert_int_equal(event_base_dispatch(f->base), 1);
    assert_int_equal(out.calls, 1);
    assert_null(call.handler_data);
    return out;
}

static const char *result_str(const struct outcome *o, const char *key)
{
    return json_string_value(json_object_get(o->result, key));
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf = calloc(1, 1 << 16);

    assert_non_null(fp);
    assert_non_null(buf);
    assert_true(fread(buf, 1, (1 << 16) - 1, fp) > 0);
    fclose(fp);
    return buf;
}

static void email_job_is_spooled_and_reported(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_job *j;
    struct outcome o;
    char want[256];
    struct stat st;

    assert_int_equal(init(f, &nq_handler_email, "email", &err), 0);
    snprintf(want, sizeof(want), "%s/state/spool/email", f->dir);
    assert_int_equal(stat(want, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0750);

    j = job("email-n1", "{\"to\":\"user@example.com\",\"subject\":\"Welcome\","
                        "\"message\":\"Hi\",\"tenantId\":\"t-1\"}");
    o = run(f, j);
    assert_int_equal(o.kind, NQ_OUTCOME_OK);
    assert_true(json_is_true(json_object_get(o.result, "ok")));
    assert_string_equal(result_str(&o, "provider"), "file");
    snprintf(want, sizeof(want), "%s/state/spool/email/email.email-n1." TS_S ".eml", f->dir);
    assert_string_equal(result_str(&o, "path"), want);
    assert_int_equal(strncmp(result_str(&o, "messageId"), "<email.email-n1." TS_S "@", 30), 0);
    assert_int_equal(json_object_size(o.result), 4);
    assert_int_equal(access(want, R_OK), 0);
    json_decref(o.result);
    nq_job_free(j);
}

static void sms_and_push_jobs_are_spooled(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_job *j;
    struct outcome o;
    char want[256];
    json_t *file;

    assert_int_equal(init(f, &nq_handler_sms, "sms", &err), 0);
    j = job("sms:42", "{\"to\":\"+1 (555) 123-4567\",\"message\":\"code 1234\"}");
    o = run(f, j);
    assert_int_equal(o.kind, NQ_OUTCOME_OK);
    snprintf(want, sizeof(want), "%s/state/spool/sms/sms.sms%%3A42." TS_S ".json", f->dir);
    assert_string_equal(result_str(&o, "path"), want);
    assert_string_equal(result_str(&o, "messageId"), "sms.sms%3A42." TS_S);
    file = json_load_file(want, 0, NULL);
    assert_non_null(file);
    assert_string_equal(json_string_value(json_object_get(file, "to")), "+15551234567");
    assert_string_equal(json_string_value(json_object_get(file, "jobId")), "sms:42");
    json_decref(file);
    json_decref(o.result);
    nq_job_free(j);
    f->ops->free(f->state);
    f->state = NULL;

    /* A queue's own spool_dir wins over the state_dir default. */
    assert_int_equal(init(f, &nq_handler_push, "push", &err), 0);
    j = job("7", "{\"token\":\"tok\",\"title\":\"T\",\"data\":{\"n\":1}}");
    o = run(f, j);
    assert_int_equal(o.kind, NQ_OUTCOME_OK);
    snprintf(want, sizeof(want), "%s/push-out/push.7." TS_S ".json", f->dir);
    assert_string_equal(result_str(&o, "path"), want);
    json_decref(o.result);
    nq_job_free(j);
}

/* Issue 9: two emails added one after the other with the same jobId (legal
 * once the first is removed) are two messages in the spool, not one. */
static void a_reused_job_id_is_a_new_delivery(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_job *j1, *j2;
    struct outcome o1, o2;
    char *a, *b;

    assert_int_equal(init(f, &nq_handler_email, "email", &err), 0);
    j1 = job_at("welcome-42", "1765000000000", "{\"to\":\"a@x.io\",\"text\":\"first\"}");
    j2 = job_at("welcome-42", "1765000000500", "{\"to\":\"b@x.io\",\"text\":\"second\"}");
    o1 = run(f, j1);
    o2 = run(f, j2);
    assert_int_equal(o1.kind, NQ_OUTCOME_OK);
    assert_int_equal(o2.kind, NQ_OUTCOME_OK);
    assert_string_not_equal(result_str(&o1, "path"), result_str(&o2, "path"));
    assert_string_not_equal(result_str(&o1, "messageId"), result_str(&o2, "messageId"));
    a = slurp(result_str(&o1, "path"));
    b = slurp(result_str(&o2, "path"));
    assert_non_null(strstr(a, "a@x.io"));
    assert_non_null(strstr(b, "b@x.io"));
    free(a);
    free(b);
    json_decref(o1.result);
    json_decref(o2.result);
    nq_job_free(j1);
    nq_job_free(j2);
}

static void bad_data_fails_validation_with_the_field(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_job *j;

    assert_int_equal(init(f, &nq_handler_sms, "sms", &err), 0);
    j = job("1", "{\"to\":\"555-1234\",\"body\":\"x\"}");
    assert_int_equal(f->ops->validate(f->state, j, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "data.to: \"555-1234\" is not a phone number in "
                                          "international form: no country code (write it as "
                                          "+<country code><number>)");
    nq_job_free(j);

    j = job("2", "{\"body\":\"x\"}");
    assert_int_equal(f->ops->validate(f->state, j, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "data.to: required");
    nq_job_free(j);

    /* A job whose data is absent altogether. */
    j = nq_job_new("3", 1);
    assert_non_null(j);
    assert_int_equal(nq_job_decode(j), 0);
    assert_int_equal(f->ops->validate(f->state, j, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "data: must be a JSON object");
    nq_job_free(j);
}

static void start_without_validate_still_fails_permanently(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct outcome o = { 0 };
    struct nq_job *j;
    struct nq_handler_call call = { .base = NULL, .done = on_done, .userdata = &o };

    assert_int_equal(init(f, &nq_handler_email, "email", &err), 0);
    j = job("1", "{\"subject\":\"no recipient\",\"text\":\"x\"}");
    call.job = j;
    call.base = f->base;
    assert_int_equal(f->ops->start(f->state, &call), 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.kind, NQ_OUTCOME_PERMANENT);
    assert_string_equal(o.reason, "data.to: required");
    nq_job_free(j);
}

static void a_write_failure_is_retryable(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_job *j;
    struct outcome o;
    char blocker[256], want[512];

    assert_int_equal(init(f, &nq_handler_email, "email", &err), 0);
    snprintf(blocker, sizeof(blocker), "%s/state/spool/email/email.9." TS_S ".eml", f->dir);
    assert_int_equal(mkdir(blocker, 0700), 0);
    j = job("9", "{\"to\":\"a@x.io\",\"text\":\"x\"}");
    o = run(f, j);
    assert_int_equal(o.kind, NQ_OUTCOME_RETRY);
    snprintf(want, sizeof(want), "file: rename to %s: Is a directory", blocker);
    assert_string_equal(o.reason, want);
    assert_null(o.result);
    nq_job_free(j);
}

static void cancel_stops_a_delivery(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct outcome o = { 0 };
    struct nq_job *j;
    struct nq_handler_call call = { .base = NULL, .done = on_done, .userdata = &o };
    char path[256];

    assert_int_equal(init(f, &nq_handler_push, "push", &err), 0);
    j = job("c1", "{\"token\":\"tok\",\"body\":\"x\"}");
    call.job = j;
    call.base = f->base;
    assert_int_equal(f->ops->start(f->state, &call), 0);
    assert_non_null(call.handler_data);
    f->ops->cancel(f->state, &call);
    assert_null(call.handler_data);
    assert_int_equal(event_base_dispatch(f->base), 1);
    assert_int_equal(o.calls, 0);
    snprintf(path, sizeof(path), "%s/push-out/push.c1." TS_S ".json", f->dir);
    assert_int_equal(access(path, F_OK), -1);
    nq_job_free(j);
}

static void init_failure_names_the_spool_dir(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    char file[128], yaml[512], want[512];
    int fd;

    /* state_dir is a plain file: the spool dir below it cannot be made. */
    snprintf(file, sizeof(file), "%s/state", f->dir);
    fd = open(file, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(init(f, &nq_handler_email, "email", &err), -ENOTDIR);
    assert_null(f->state);
    snprintf(want, sizeof(want),
             "provider file: spool_dir %s/spool/email: cannot create %s/spool: Not a directory",
             file, file);
    assert_string_equal(nq_err_str(&err), want);

    /* And with a config whose spool_dir names the file itself. */
    nq_config_free(f->cfg);
    snprintf(yaml, sizeof(yaml),
             "queues:\n  sms: { handler: sms, provider: { type: file, spool_dir: %s } }\n", file);
    assert_int_equal(nq_config_parse_string("t.yaml", yaml, NULL, 0, &f->cfg, &err), 0);
    assert_int_equal(init(f, &nq_handler_sms, "sms", &err), -ENOTDIR);
    snprintf(want, sizeof(want), "provider file: spool_dir %s: Not a directory", file);
    assert_string_equal(nq_err_str(&err), want);
}

/* etc/notifyq.demo.yaml (scripts/demo's config) stays loadable, and each of
 * its channel queues starts with its spool dir under NOTIFYQ_DEMO_DIR. */
static void the_demo_config_starts_every_channel(void **state)
{
    static const struct {
        const char *queue;
        const struct nq_handler_ops *ops;
    } queues[] = { { "email", &nq_handler_email },
                   { "sms", &nq_handler_sms },
                   { "push", &nq_handler_push } };
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    char spool[256];

    nq_config_free(f->cfg);
    f->cfg = NULL;
    assert_int_equal(setenv("NOTIFYQ_DEMO_DIR", f->dir, 1), 0);
    if (nq_config_load(NQ_SRCDIR "/etc/notifyq.demo.yaml", NULL, 0, &f->cfg, &err) != 0)
        fail_msg("%s", nq_err_str(&err));
    assert_int_equal(unsetenv("NOTIFYQ_DEMO_DIR"), 0);
    for (size_t i = 0; i < NQ_ELEMENTSOF(queues); i++) {
        if (init(f, queues[i].ops, queues[i].queue, &err) != 0)
            fail_msg("%s: %s", queues[i].queue, nq_err_str(&err));
        snprintf(spool, sizeof(spool), "%s/state/spool/%s", f->dir, queues[i].queue);
        assert_int_equal(access(spool, W_OK), 0);
        f->ops->free(f->state);
        f->state = NULL;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(email_job_is_spooled_and_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(sms_and_push_jobs_are_spooled, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reused_job_id_is_a_new_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_data_fails_validation_with_the_field, setup, teardown),
        cmocka_unit_test_setup_teardown(start_without_validate_still_fails_permanently, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_write_failure_is_retryable, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_stops_a_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(init_failure_names_the_spool_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(the_demo_config_starts_every_channel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
