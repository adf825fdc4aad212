/* SPDX-License-Identifier: MIT */
/* Templates in the channel handlers, through their vtables as the worker
 * drives them, with a real templates directory and the file provider: a
 * job's templateId renders into the spooled message (escaped in HTML only),
 * once per job; a tenant's own set wins over default/; a missing, unsafe or
 * malformed template and (strict) a missing variable fail the job naming
 * it. */
#include "config.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static void put(const struct fixture *f, const char *rel, const char *content)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/tpl/%s", f->dir, rel);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

static void configure(struct fixture *f, bool strict)
{
    struct nq_err err = { { 0 } };
    char yaml[512];

    nq_config_free(f->cfg);
    f->cfg = NULL;
    snprintf(yaml, sizeof(yaml),
             "state_dir: %s/state\n"
             "templates: {dir: %s/tpl, strict: %s}\n"
             "queues:\n"
             "  email: { handler: email }\n"
             "  sms: { handler: sms }\n"
             "  push: { handler: push }\n",
             f->dir, f->dir, strict ? "true" : "false");
    if (nq_config_parse_string("t.yaml", yaml, NULL, 0, &f->cfg, &err) != 0)
        fail_msg("config: %s", nq_err_str(&err));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char sub[128];

    assert_non_null(f);
    strcpy(f->dir, "/tmp/nq-test-htpl-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    for (const char *const *d = (const char *const[]){ "tpl", "tpl/default", "tpl/acme", NULL }; *d;
         d++) {
        snprintf(sub, sizeof(sub), "%s/%s", f->dir, *d);
        assert_int_equal(mkdir(sub, 0755), 0);
    }
    put(f, "default/welcome.subject.mustache", "Welcome, {{name}}\n");
    put(f, "default/welcome.txt.mustache", "Hi {{name}}!\n");
    put(f, "default/welcome.html.mustache", "<p>Hi {{name}}!</p>");
    put(f, "acme/welcome.html.mustache", "<p>ACME {{name}}</p>");
    put(f, "default/otp.txt.mustache", "Your code is {{code}}.\n\n");
    put(f, "default/otp.subject.mustache", "Code\n");
    put(f, "default/broken.html.mustache", "<ul>\n{{#items}}\n<li>{{.}}</li>\n{{/item}}\n");
    put(f, "default/twoline.subject.mustache", "a\nb");
    put(f, "default/twoline.txt.mustache", "x");
    configure(f, false);
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

static void init(struct fixture *f, const struct nq_handler_ops *ops, const char *queue)
{
    struct nq_err err = { { 0 } };

    if (f->ops && f->state)
        f->ops->free(f->state);
    f->env = (struct nq_handler_env){
        .base = f->base, .cfg = f->cfg, .queue = nq_config_queue(f->cfg, queue), .slot = 0
    };
    assert_non_null(f->env.queue);
    f->ops = ops;
    if (ops->init(&f->env, &f->state, &err) != 0)
        fail_msg("init: %s", nq_err_str(&err));
}

static struct nq_job *job(const char *id, const char *data)
{
    struct nq_job *j = nq_job_new(id, strlen(id));

    assert_non_null(j);
    assert_int_equal(nq_job_set_field(j, "data", 4, data, strlen(data)), 0);
    assert_int_equal(nq_job_decode(j), 0);
    return j;
}

static struct outcome start(struct fixture *f, struct nq_job *j)
{
    struct outcome out = { 0 };
    struct nq_handler_call call = { .job = j, .base = f->base, .done = on_done, .userdata = &out };

    assert_int_equal(f->ops->start(f->state, &call), 0);
    if (out.calls == 0)
        assert_int_equal(event_base_dispatch(f->base), 1);
    assert_int_equal(out.calls, 1);
    return out;
}

static void validate_ok(struct fixture *f, struct nq_job *j)
{
    struct nq_err err = { { 0 } };

    if (f->ops->validate(f->state, j, &err) != 0)
        fail_msg("validate: %s", nq_err_str(&err));
}

/* The spooled file of a sent job, whole. */
static char *spooled(const struct outcome *o)
{
    const char *path = json_string_value(json_object_get(o->result, "path"));
    char *buf = calloc(1, 65536);
    FILE *fp;

    assert_int_equal(o->kind, NQ_OUTCOME_OK);
    assert_non_null(path);
    fp = fopen(path, "r");
    assert_non_null(fp);
    assert_true(fread(buf, 1, 65535, fp) > 0);
    fclose(fp);
    return buf;
}

static void email_renders_subject_text_and_escaped_html(void **state)
{
    struct fixture *f = *state;
    struct nq_job *j = job("1", "{\"to\":\"a@x.io\",\"templateId\":\"welcome\","
                                "\"templateVariables\":{\"name\":\"<Ann & Bo>\"}}");
    struct outcome o;
    char *eml;

    init(f, &nq_handler_email, "email");
    validate_ok(f, j);
    o = start(f, j);
    eml = spooled(&o);
    assert_non_null(strstr(eml, "\r\nSubject: Welcome, <Ann & Bo>\r\n"));
    assert_non_null(strstr(eml, "\r\nHi <Ann & Bo>!"));
    assert_non_null(strstr(eml, "\r\n<p>Hi &lt;Ann &amp; Bo&gt;!</p>"));
    assert_non_null(strstr(eml, "multipart/alternative"));
    free(eml);
    json_decref(o.result);
    nq_job_free(j);
}

static void rendered_once_per_job(void **state)
{
    struct fixture *f = *state;
    struct nq_job *a = job("a", "{\"to\":\"a@x.io\",\"templateId\":\"welcome\","
                                "\"templateVariables\":{\"name\":\"First\"}}");
    struct nq_job *b = job("b", "{\"to\":\"b@x.io\",\"templateId\":\"welcome\","
                                "\"templateVariables\":{\"name\":\"Bee\"}}");
    struct outcome o;
    char *eml;

    init(f, &nq_handler_email, "email");
    validate_ok(f, a);
    /* What start sends is what validate rendered: a change to the data
     * after validate does not reach the message. */
    json_object_set_new(json_object_get(nq_job_data_borrow(a), "templateVariables"), "name",
                        json_string("Second"));
    o = start(f, a);
    eml = spooled(&o);
    assert_non_null(strstr(eml, "Subject: Welcome, First\r\n"));
    assert_null(strstr(eml, "Second"));
    free(eml);
    json_decref(o.result);

    /* A job started after another was validated (a crash suspect) is
     * composed again, from its own data. */
    validate_ok(f, a);
    validate_ok(f, b);
    o = start(f, a);
    eml = spooled(&o);
    assert_non_null(strstr(eml, "Subject: Welcome, Second\r\n"));
    free(eml);
    json_decref(o.result);
    o = start(f, b);
    eml = spooled(&o);
    assert_non_null(strstr(eml, "Subject: Welcome, Bee\r\n"));
    free(eml);
    json_decref(o.result);
    nq_job_free(a);
    nq_job_free(b);
}

static void a_tenants_own_set_wins(void **state)
{
    struct fixture *f = *state;
    struct nq_job *j = job("t", "{\"to\":\"a@x.io\",\"subject\":\"From the job\","
                                "\"tenantId\":\"acme\",\"templateId\":\"welcome\","
                                "\"templateVariables\":{\"name\":\"Ann\"}}");
    struct nq_job *other = job("o", "{\"to\":\"a@x.io\",\"tenantId\":42,\"templateId\":\"welcome\","
                                    "\"templateVariables\":{\"name\":\"Ann\"}}");
    struct outcome o;
    char *eml;

    init(f, &nq_handler_email, "email");
    validate_ok(f, j);
    o = start(f, j);
    eml = spooled(&o);
    /* acme has only an html part: the subject is the job's, no text part. */
    assert_non_null(strstr(eml, "Subject: From the job\r\n"));
    assert_non_null(strstr(eml, "<p>ACME Ann</p>"));
    assert_null(strstr(eml, "multipart/alternative"));
    free(eml);
    json_decref(o.result);
    validate_ok(f, other);
    o = start(f, other);
    eml = spooled(&o);
    assert_non_null(strstr(eml, "<p>Hi Ann!</p>"));
    free(eml);
    json_decref(o.result);
    nq_job_free(j);
    nq_job_free(other);
}

static void sms_and_push_take_the_text_template(void **state)
{
    struct fixture *f = *state;
    struct nq_job *s = job("s", "{\"to\":\"+15551234567\",\"templateId\":\"otp\","
                                "\"templateVariables\":{\"code\":\"<123>\"}}");
    struct nq_job *p = job("p", "{\"token\":\"tok\",\"templateId\":\"otp\","
                                "\"templateVariables\":{\"code\":\"9\"}}");
    struct outcome o;
    json_t *file;

    init(f, &nq_handler_sms, "sms");
    validate_ok(f, s);
    o = start(f, s);
    file = json_load_file(json_string_value(json_object_get(o.result, "path")), 0, NULL);
    assert_non_null(file);
    /* Not escaped, trailing newlines dropped. */
    assert_string_equal(json_string_value(json_object_get(file, "body")), "Your code is <123>.");
    json_decref(file);
    json_decref(o.result);
    init(f, &nq_handler_push, "push");
    validate_ok(f, p);
    o = start(f, p);
    file = json_load_file(json_string_value(json_object_get(o.result, "path")), 0, NULL);
    assert_non_null(file);
    assert_string_equal(json_string_value(json_object_get(file, "title")), "Code");
    assert_string_equal(json_string_value(json_object_get(file, "body")), "Your code is 9.");
    json_decref(file);
    json_decref(o.result);
    nq_job_free(s);
    nq_job_free(p);
}

static void refusals_name_the_template(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *data, *want; /* want: %s is the fixture's dir */
    } bad[] = {
        { "{\"to\":\"a@x.io\",\"templateId\":\"nope\"}",
          "data.templateId: template 'nope' not found in %s/tpl/default" },
        { "{\"to\":\"a@x.io\",\"tenantId\":\"acme\",\"templateId\":\"nope\"}",
          "data.templateId: template 'nope' not found in %s/tpl/acme or %s/tpl/default" },
        { "{\"to\":\"a@x.io\",\"templateId\":\"broken\"}",
          "data.templateId: %s/tpl/default/broken.html.mustache:4:1: mismatched close tag "
          "'item': section 'items' opened at 2:1" },
        { "{\"to\":\"a@x.io\",\"templateId\":\"../../etc/passwd\"}",
          "data.templateId: must not contain '/'" },
        { "{\"to\":\"a@x.io\",\"templateId\":7}", "data.templateId: must be a string" },
        { "{\"to\":\"a@x.io\",\"tenantId\":\"..\",\"templateId\":\"welcome\"}",
          "data.tenantId: must not contain '..' or be '.'" },
        { "{\"to\":\"a@x.io\",\"templateId\":\"welcome\",\"templateVariables\":[1]}",
          "data.templateVariables: must be an object" },
        { "{\"to\":\"a@x.io\",\"templateId\":\"twoline\"}",
          "data.templateId: template 'twoline': the subject must render to one line" },
        { "{\"templateId\":\"welcome\"}", "data.to: required" },
    };

    init(f, &nq_handler_email, "email");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct nq_job *j = job("x", bad[i].data);
        struct nq_err err = { { 0 } };
        struct outcome o;
        char want[512];

        snprintf(want, sizeof(want), bad[i].want, f->dir, f->dir);
        assert_int_equal(f->ops->validate(f->state, j, &err), -EINVAL);
        assert_string_equal(nq_err_str(&err), want);
        /* start without a kept message gives the same verdict */
        o = start(f, j);
        assert_int_equal(o.kind, NQ_OUTCOME_PERMANENT);
        assert_string_equal(o.reason, want);
        nq_job_free(j);
    }
}

static void strict_names_the_missing_variable(void **state)
{
    struct fixture *f = *state;
    struct nq_job *j = job("s", "{\"to\":\"a@x.io\",\"templateId\":\"welcome\","
                                "\"templateVariables\":{\"nom\":\"Ann\"}}");
    struct nq_err err = { { 0 } };
    struct outcome o;
    char want[256];
    char *eml;

    init(f, &nq_handler_email, "email");
    validate_ok(f, j); /* lax: renders empty */
    o = start(f, j);
    eml = spooled(&o);
    assert_non_null(strstr(eml, "Subject: Welcome,\r\n"));
    free(eml);
    json_decref(o.result);

    configure(f, true);
    init(f, &nq_handler_email, "email");
    assert_int_equal(f->ops->validate(f->state, j, &err), -EINVAL);
    snprintf(want, sizeof(want),
             "data.templateId: %s/tpl/default/welcome.subject.mustache:1:10: missing variable "
             "'name'",
             f->dir);
    assert_string_equal(nq_err_str(&err), want);
    nq_job_free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(email_renders_subject_text_and_escaped_html, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rendered_once_per_job, setup, teardown),
        cmocka_unit_test_setup_teardown(a_tenants_own_set_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(sms_and_push_take_the_text_template, setup, teardown),
        cmocka_unit_test_setup_teardown(refusals_name_the_template, setup, teardown),
        cmocka_unit_test_setup_teardown(strict_names_the_missing_variable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
