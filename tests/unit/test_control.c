/* SPDX-License-Identifier: MIT */
/* The control protocol: request parsing, and the status/metrics replies built
 * from a hand-made master model (supervisor/internal.h: this is the
 * supervisor's own test). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config/config.h"
#include "supervisor/control.h"
#include "supervisor/internal.h"

static const struct {
    const char *line;
    enum nq_control_cmd cmd;
    const char *queue;
} good[] = {
    { "{\"cmd\":\"status\"}", NQ_CONTROL_STATUS, "" },
    { "{\"cmd\":\"metrics\"}", NQ_CONTROL_METRICS, "" },
    { "{\"cmd\":\"pause\",\"queue\":\"email\"}", NQ_CONTROL_PAUSE, "email" },
    { "{\"queue\":\"sms\",\"cmd\":\"resume\"}", NQ_CONTROL_RESUME, "sms" },
    { "{\"cmd\":\"reload\"}", NQ_CONTROL_RELOAD, "" },
    { "{\"cmd\":\"stop\"}", NQ_CONTROL_STOP, "" },
    /* whitespace and a CR from a CRLF client; unknown keys are ignored */
    { "  {\"cmd\" : \"status\", \"pad\": [1, {}]}\r", NQ_CONTROL_STATUS, "" },
    { "{\"cmd\":\"status\",\"queue\":7}", NQ_CONTROL_STATUS, "" },
};

static void good_requests_parse(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(good); i++) {
        struct nq_control_request req;
        struct nq_err err = { "" };

        memset(&req, 0x55, sizeof(req));
        if (nq_control_parse(good[i].line, strlen(good[i].line), &req, &err) != 0)
            fail_msg("%s: %s", good[i].line, nq_err_str(&err));
        assert_int_equal(req.cmd, good[i].cmd);
        assert_string_equal(req.queue, good[i].queue);
    }
}

static const struct {
    const char *line, *want;
} bad[] = {
    { "", "bad request: not JSON: " },
    { "not json", "bad request: not JSON: " },
    { "{\"cmd\":\"status\"", "bad request: not JSON: " },
    { "{\"cmd\":\"status\"} {}", "bad request: not JSON: " },
    { "{\"cmd\":\"status\",\"cmd\":\"stop\"}", "bad request: not JSON: " },
    { "[\"status\"]", "bad request: not a JSON object" },
    { "\"status\"", "bad request: not JSON: " },
    { "{}", "bad request: no \"cmd\"" },
    { "{\"command\":\"status\"}", "bad request: no \"cmd\"" },
    { "{\"cmd\":1}", "bad request: \"cmd\" is not a string" },
    { "{\"cmd\":null}", "bad request: \"cmd\" is not a string" },
    { "{\"cmd\":\"bogus\"}", "unknown command 'bogus'" },
    { "{\"cmd\":\"STATUS\"}", "unknown command 'STATUS'" },
    { "{\"cmd\":\"pause\"}", "pause needs a queue" },
    { "{\"cmd\":\"resume\"}", "resume needs a queue" },
    { "{\"cmd\":\"pause\",\"queue\":[\"email\"]}", "bad request: \"queue\" is not a string" },
    { "{\"cmd\":\"pause\",\"queue\":\"\"}", "bad request: queue name of 0 bytes" },
    { "{\"cmd\":\"pause\",\"queue\":\"a\\u0000b\"}", "bad request: not JSON: " },
};

static void bad_requests_get_their_error_text(void **state)
{
    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(bad); i++) {
        struct nq_control_request req = { .cmd = NQ_CONTROL_STOP, .queue = "keep" };
        struct nq_err err = { "" };

        if (nq_control_parse(bad[i].line, strlen(bad[i].line), &req, &err) != -EINVAL)
            fail_msg("accepted: %s", bad[i].line);
        if (strncmp(nq_err_str(&err), bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("%s: error '%s', want '%s'", bad[i].line, nq_err_str(&err), bad[i].want);
        /* ret_ untouched on failure */
        assert_int_equal(req.cmd, NQ_CONTROL_STOP);
        assert_string_equal(req.queue, "keep");
    }
}

/* Error texts go back in a JSON reply: a command name cut at 64 bytes, or
 * jansson's text quoting the bytes near a fault, must stay UTF-8 (found by
 * tests/fuzz: the reply was "out of memory"). */
static void error_texts_are_utf8(void **state)
{
    char cut[128] = "{\"cmd\":\"a";
    const char *escape = "{\"cmd\":\"=V<\\\xc3\xa9\"}";
    (void) state;

    for (int i = 0; i < 40; i++)
        strcat(cut, "\xc3\xa9");
    strcat(cut, "\"}");
    const char *lines[] = { cut, escape };
    for (size_t i = 0; i < NQ_ELEMENTSOF(lines); i++) {
        struct nq_control_request req;
        struct nq_err err = { "" };
        json_t *reply;

        assert_int_equal(nq_control_parse(lines[i], strlen(lines[i]), &req, &err), -EINVAL);
        reply = json_string(nq_err_str(&err));
        if (!reply)
            fail_msg("not UTF-8: %s", nq_err_str(&err));
        json_decref(reply);
    }
}

static void oversize_lines_and_queue_names_are_refused(void **state)
{
    size_t len = NQ_CONTROL_LINE_MAX + 1;
    char *line = malloc(len + 1);
    char name[NQ_CONTROL_QUEUE_MAX + 64];
    struct nq_control_request req;
    struct nq_err err = { "" };

    (void) state;
    assert_non_null(line);
    /* a valid object padded with spaces: refused for its size alone */
    memset(line, ' ', len);
    memcpy(line, "{\"cmd\":\"status\"}", 16);
    line[len] = 0;
    assert_int_equal(nq_control_parse(line, len, &req, &err), -EMSGSIZE);
    assert_string_equal(nq_err_str(&err), "request too long (more than 65536 bytes)");
    assert_int_equal(nq_control_parse(line, len - 1, &req, &err), 0);

    memset(name, 'q', NQ_CONTROL_QUEUE_MAX);
    name[NQ_CONTROL_QUEUE_MAX] = 0;
    (void) snprintf(line, len, "{\"cmd\":\"pause\",\"queue\":\"%s\"}", name);
    assert_int_equal(nq_control_parse(line, strlen(line), &req, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "bad request: queue name of 256 bytes");
    name[NQ_CONTROL_QUEUE_MAX - 1] = 0;
    (void) snprintf(line, len, "{\"cmd\":\"pause\",\"queue\":\"%s\"}", name);
    assert_int_equal(nq_control_parse(line, strlen(line), &req, &err), 0);
    assert_int_equal(strlen(req.queue), NQ_CONTROL_QUEUE_MAX - 1);
    free(line);
}

/* --- status and metrics from a hand-made model ------------------------- */

struct model {
    struct nq_queue_cfg qcfg[2];
    struct nq_config cfg;
    struct nq_generation gen;
    struct nq_slot *gslots[3];
    struct nq_slot slots[4]; /* email/0, email/1, sms/0, a retiring email/0 */
    struct nq_qstate email, sms;
    struct nq_master m;
};

static struct model *model_new(void)
{
    struct model *x = calloc(1, sizeof(*x));
    uint64_t now = nq_mono_ms();

    assert_non_null(x);
    x->qcfg[0] = (struct nq_queue_cfg){ .name = "email",
                                        .bullmq_queue = "mail",
                                        .handler = NQ_HANDLER_EMAIL,
                                        .processes = 2,
                                        .concurrency = 5 };
    x->qcfg[1] = (struct nq_queue_cfg){ .name = "sms",
                                        .bullmq_queue = "sms",
                                        .handler = NQ_HANDLER_SMS,
                                        .processes = 1,
                                        .concurrency = 1 };
    x->cfg.queues = x->qcfg;
    x->cfg.n_queues = 2;
    x->cfg.health = (struct nq_health_cfg){ .max_waiting = 10000, .max_failure_rate = 0.5 };
    x->gen =
        (struct nq_generation){ .number = 3, .cfg = &x->cfg, .slots = x->gslots, .n_slots = 3 };
    x->email = (struct nq_qstate){ .name = "email",
                                   .cfg = &x->qcfg[0],
                                   .restarts = 4,
                                   .past = { .fetched = 10, .completed = 10 },
                                   .next = &x->sms };
    x->sms = (struct nq_qstate){ .name = "sms", .cfg = &x->qcfg[1], .paused = true };
    /* email's totals a minute ago, in a ring of the last 61 seconds */
    x->email.window[0] = (struct nq_counters){ .completed = 2, .failed = 1 };
    x->email.window_pos = 61;
    x->email.window_len = 61;

    struct nq_slot *s = x->slots;
    s[0] = (struct nq_slot){ .q = &x->email,
                             .gen = &x->gen,
                             .queue_name = "email",
                             .index = 0,
                             .state = NQ_SLOT_RUNNING,
                             .pid = 100,
                             .started_ms = now - 7000,
                             .metrics = { .pid = 100,
                                          .state = NQ_WORKER_IDLE,
                                          .in_flight = 2,
                                          .rss_kib = 900,
                                          .note = "handler email not implemented yet",
                                          .counters = { .completed = 5, .failed = 1 } } };
    s[1] = (struct nq_slot){ .q = &x->email,
                             .gen = &x->gen,
                             .queue_name = "email",
                             .index = 1,
                             .state = NQ_SLOT_WAITING_RESTART,
                             .has_exited = true,
                             .last_exit_code = -1,
                             .last_exit_signal = SIGKILL,
                             .restart = { .delay_ms = 400, .quick_exits = 3 } };
    s[2] = (struct nq_slot){ .q = &x->sms,
                             .gen = &x->gen,
                             .queue_name = "sms",
                             .index = 0,
                             .state = NQ_SLOT_RUNNING,
                             .pid = 101,
                             .started_ms = now,
                             .has_exited = true,
                             .last_exit_code = 78,
                             .metrics = { .pid = 101, .state = NQ_WORKER_PAUSED } };
    s[3] = (struct nq_slot){ .q = &x->email,
                             .queue_name = "email",
                             .index = 0,
                             .state = NQ_SLOT_DRAINING,
                             .pid = 102,
                             .metrics = { .pid = 102, .counters = { .completed = 7 } } };
    for (int i = 0; i < 3; i++) {
        x->gslots[i] = &s[i];
        s[i].next = &s[i + 1];
    }
    x->m = (struct nq_master){
        .current = &x->gen, .slots = &s[0], .queues = &x->email, .started_ms = now - 65000
    };
    return x;
}

static json_t *queue_named(json_t *st, const char *name)
{
    size_t i;
    json_t *q;

    json_array_foreach (json_object_get(st, "queues"), i, q)
        if (strcmp(json_string_value(json_object_get(q, "name")), name) == 0)
            return q;
    fail_msg("no queue %s", name);
    return NULL;
}

#define INT(o, k) json_integer_value(json_object_get((o), (k)))
#define STR(o, k) json_string_value(json_object_get((o), (k)))

static void status_reply_follows_the_contract(void **state)
{
    struct model *x = model_new();
    json_auto_t *st = nq_status_json(&x->m);
    json_t *email, *sms, *w0, *w1, *counters, *rate;

    (void) state;
    assert_non_null(st);
    assert_true(json_is_true(json_object_get(st, "ok")));
    assert_string_equal(STR(st, "version"), PACKAGE_VERSION);
    assert_int_equal(INT(st, "uptime_s"), 65);
    assert_string_equal(STR(st, "state"), "running");
    assert_int_equal(INT(st, "generation"), 3);
    assert_int_equal(json_array_size(json_object_get(st, "queues")), 2);

    email = queue_named(st, "email");
    assert_string_equal(STR(email, "handler"), "email");
    assert_string_equal(STR(email, "bullmq_queue"), "mail");
    /* one slot waits after 3 quick crashes: crash-looping wins over degraded */
    assert_string_equal(STR(email, "state"), "crash-looping");
    assert_int_equal(INT(json_object_get(email, "processes"), "configured"), 2);
    assert_int_equal(INT(json_object_get(email, "processes"), "running"), 1);
    assert_int_equal(INT(email, "concurrency"), 5);
    assert_int_equal(INT(email, "restarts"), 4);
    assert_int_equal(INT(email, "retiring"), 1);
    assert_int_equal(json_array_size(json_object_get(email, "workers")), 2);
    w0 = json_array_get(json_object_get(email, "workers"), 0);
    w1 = json_array_get(json_object_get(email, "workers"), 1);
    assert_int_equal(INT(w0, "slot"), 0);
    assert_int_equal(INT(w0, "pid"), 100);
    assert_int_equal(INT(w0, "uptime_s"), 7);
    assert_int_equal(INT(w0, "in_flight"), 2);
    assert_string_equal(STR(w0, "state"), "idle");
    assert_string_equal(STR(w0, "note"), "handler email not implemented yet");
    assert_true(json_is_null(json_object_get(w0, "last_exit")));
    assert_int_equal(INT(w1, "slot"), 1);
    assert_true(json_is_null(json_object_get(w1, "pid")));
    assert_string_equal(STR(w1, "state"), "crash-looping");
    assert_string_equal(STR(json_object_get(w1, "last_exit"), "signal"), "SIGKILL");
    /* past 10 + live 5 + retiring 7: totals never lose a dead incarnation */
    counters = json_object_get(email, "counters");
    assert_int_equal(INT(counters, "fetched"), 10);
    assert_int_equal(INT(counters, "completed"), 22);
    assert_int_equal(INT(counters, "failed"), 1);
    assert_int_equal(INT(counters, "retried"), 0);
    rate = json_object_get(email, "per_minute");
    assert_int_equal(INT(rate, "completed"), 20);
    assert_int_equal(INT(rate, "failed"), 0);

    sms = queue_named(st, "sms");
    assert_string_equal(STR(sms, "state"), "paused");
    assert_int_equal(
        INT(json_object_get(json_array_get(json_object_get(sms, "workers"), 0), "last_exit"),
            "code"),
        78);
    free(x);
}

static void queue_states_follow_their_precedence(void **state)
{
    struct model *x = model_new();

    (void) state;
    x->slots[1].restart.quick_exits = 1; /* not crash-looping any more */
    assert_string_equal(nq_qstate_state_name(&x->m, &x->email), "degraded");
    x->slots[1].state = NQ_SLOT_RUNNING;
    x->slots[1].pid = 103;
    x->slots[1].metrics.state = NQ_WORKER_IDLE;
    assert_string_equal(nq_qstate_state_name(&x->m, &x->email), "idle");
    x->slots[1].metrics.state = NQ_WORKER_RUNNING;
    assert_string_equal(nq_qstate_state_name(&x->m, &x->email), "ok");
    x->email.paused = true;
    assert_string_equal(nq_qstate_state_name(&x->m, &x->email), "paused");
    x->m.pending = &x->gen;
    assert_string_equal(nq_master_state_name(&x->m), "reloading");
    x->m.stopping = true;
    assert_string_equal(nq_master_state_name(&x->m), "draining");
    assert_string_equal(nq_qstate_state_name(&x->m, &x->email), "draining");
    free(x);
}

/* sms's state after a change to its one worker or its counts; *st holds
 * the status reply *ret_sms is part of. */
static const char *sms_state(struct model *x, json_t **st, json_t **ret_sms)
{
    json_decref(*st);
    *st = nq_status_json(&x->m);
    assert_non_null(*st);
    *ret_sms = queue_named(*st, "sms");
    return STR(*ret_sms, "state");
}

static void redis_silence_and_health_make_the_state(void **state)
{
    struct model *x = model_new();
    struct nq_slot *w = &x->slots[2];
    json_auto_t *st = NULL;
    json_t *sms, *h;

    (void) state;
    x->sms.paused = false;
    w->metrics.state = NQ_WORKER_RUNNING;
    w->metrics.redis = NQ_REDIS_CONNECTING;
    assert_string_equal(sms_state(x, &st, &sms), "connecting");
    assert_string_equal(STR(json_array_get(json_object_get(sms, "workers"), 0), "redis"),
                        "connecting");
    w->state = NQ_SLOT_STARTING; /* no frame yet: not connected yet either */
    w->metrics.redis = NQ_REDIS_NONE;
    assert_string_equal(sms_state(x, &st, &sms), "connecting");
    w->state = NQ_SLOT_RUNNING;
    w->metrics.redis = NQ_REDIS_DISCONNECTED;
    assert_string_equal(sms_state(x, &st, &sms), "disconnected");
    w->metrics.redis = NQ_REDIS_CONNECTED;
    assert_string_equal(sms_state(x, &st, &sms), "ok");

    /* A backlog over max_waiting (0 is no limit). */
    x->sms.jobs = (struct nq_job_counts){ .known = true, .waiting = 11 };
    x->cfg.health.max_waiting = 0;
    assert_string_equal(sms_state(x, &st, &sms), "ok");
    x->cfg.health.max_waiting = 10;
    assert_string_equal(sms_state(x, &st, &sms), "unhealthy");
    assert_true(json_is_true(json_object_get(json_object_get(sms, "health"), "backlog")));
    x->sms.jobs.waiting = 10;
    assert_string_equal(sms_state(x, &st, &sms), "ok");

    /* 2 of 3 attempts in the window failed (a retry counts): over 0.5. */
    x->sms.window_pos = x->sms.window_len = 1;
    w->metrics.counters = (struct nq_counters){ .completed = 1, .failed = 1, .retried = 1 };
    assert_string_equal(sms_state(x, &st, &sms), "unhealthy");
    h = json_object_get(sms, "health");
    assert_true(json_is_true(json_object_get(h, "failing")));
    assert_int_equal(INT(h, "attempts_5m"), 3);
    assert_int_equal(INT(h, "failures_5m"), 2);
    assert_true(json_real_value(json_object_get(h, "failure_rate")) > 0.66);
    x->cfg.health.max_failure_rate = 0.7;
    assert_string_equal(sms_state(x, &st, &sms), "ok");

    /* Silent past unresponsive_after: degraded, whatever it said last. */
    w->unresponsive = true;
    assert_string_equal(sms_state(x, &st, &sms), "degraded");
    assert_string_equal(STR(json_array_get(json_object_get(sms, "workers"), 0), "state"),
                        "unresponsive");
    free(x);
}

static void metrics_reply_sums_each_queue(void **state)
{
    struct model *x = model_new();
    json_auto_t *mt = nq_metrics_json(&x->m);
    json_t *email;

    (void) state;
    assert_non_null(mt);
    assert_true(json_is_true(json_object_get(mt, "ok")));
    email = queue_named(mt, "email");
    assert_int_equal(INT(json_object_get(email, "counters"), "completed"), 22);
    assert_int_equal(INT(email, "in_flight"), 2);
    assert_int_equal(INT(email, "rss_kib"), 900);
    assert_int_equal(INT(json_object_get(email, "processes"), "running"), 1);
    assert_int_equal(INT(json_object_get(email, "per_minute"), "completed"), 20);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_requests_parse),
        cmocka_unit_test(bad_requests_get_their_error_text),
        cmocka_unit_test(error_texts_are_utf8),
        cmocka_unit_test(oversize_lines_and_queue_names_are_refused),
        cmocka_unit_test(status_reply_follows_the_contract),
        cmocka_unit_test(queue_states_follow_their_precedence),
        cmocka_unit_test(redis_silence_and_health_make_the_state),
        cmocka_unit_test(metrics_reply_sums_each_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
