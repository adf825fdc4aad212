/* SPDX-License-Identifier: MIT */
/* The delivery log's writer without a database (its unreachable side): every
 * event goes to the spool file (in the same loop turn), as one JSON line with the keys
 * notifyq.record_events reads; recipients plain or hashed; bodies only with
 * store_bodies; spool_max makes it full; a spool left behind is taken over
 * by the next writer of the queue (and only of that queue), a torn line
 * skipped. The database side is tests/integration/test_deliverylog.py. */
#include "config.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "deliverylog/deliverylog.h"

struct fixture {
    char dir[64];
    char spools[128];
    struct event_base *base;
    struct nq_postgres_cfg pg;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    (void) snprintf(f->dir, sizeof(f->dir), "/tmp/nq-dl-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    (void) snprintf(f->spools, sizeof(f->spools), "%s/deliverylog", f->dir);
    f->base = event_base_new();
    assert_non_null(f->base);
    /* A socket directory that does not exist: refused at once, no wait. */
    f->pg = (struct nq_postgres_cfg){
        .dsn = "host=/nonexistent/nq port=1 dbname=x",
        .batch_size = 500,
        .flush_interval_ms = 100,
        .spool_max = 1000,
    };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];

    event_base_free(f->base);
    (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static struct nq_deliverylog *open_log(struct fixture *f, const char *queue, unsigned slot)
{
    const struct nq_deliverylog_opts o = {
        .base = f->base,
        .pg = &f->pg,
        .state_dir = f->dir,
        .queue = queue,
        .channel = "email",
        .slot = slot,
    };
    struct nq_deliverylog *dl = NULL;
    struct nq_err err = { "" };

    assert_int_equal(nq_deliverylog_new(&o, &dl, &err), 0);
    assert_false(nq_deliverylog_connected(dl));
    return dl;
}

/* The lines of every spool file of the directory whose name starts with
 * prefix, parsed, in one array; after one turn of the loop, where the
 * writer writes what its events of the turn left for the file. */
static json_t *spooled(const struct fixture *f, const char *prefix)
{
    json_t *all = json_array();
    struct dirent *de;
    char path[512], line[4096];
    DIR *d;

    assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
    d = opendir(f->spools);
    assert_non_null(d);
    while ((de = readdir(d))) {
        FILE *fp;

        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        (void) snprintf(path, sizeof(path), "%s/%s", f->spools, de->d_name);
        fp = fopen(path, "r");
        assert_non_null(fp);
        while (fgets(line, sizeof(line), fp)) {
            json_t *o = json_loads(line, 0, NULL);

            assert_non_null(o);
            json_array_append_new(all, o);
        }
        fclose(fp);
    }
    closedir(d);
    return all;
}

static void record(struct nq_deliverylog *dl, const char *job, enum nq_dl_status st, json_t *data)
{
    const struct nq_dl_event ev = {
        .job_id = job,
        .attempt = 1,
        .status = st,
        .at_ms = 1765000000123ULL,
        .data = data,
        .provider = st == NQ_DL_SENT ? "file" : NULL,
        .message_id = st == NQ_DL_SENT ? "m-1" : NULL,
        .outcome = st == NQ_DL_SENT ? NQ_DL_OUTCOME_SENT : NQ_DL_OUTCOME_NONE,
        .duration_ms = 12,
    };

    nq_deliverylog_record(dl, &ev);
}

static void events_go_to_the_spool_as_json_lines(void **state)
{
    struct fixture *f = *state;
    struct nq_deliverylog *dl = open_log(f, "email", 0);
    json_t *data = json_pack("{s:s, s:s, s:i, s:s, s:s}", "to", "ada@example.org", "tenantId",
                             "acme", "userId", 42, "templateId", "welcome", "text", "secret");
    json_t *lines, *e;

    record(dl, "7", NQ_DL_ACTIVE, data);
    record(dl, "7", NQ_DL_SENT, NULL);
    assert_int_equal(nq_deliverylog_depth(dl), 2);
    lines = spooled(f, "email.0.");
    assert_int_equal(json_array_size(lines), 2);
    e = json_array_get(lines, 0);
    /* the queue and channel go with each batch, not with each event */
    assert_null(json_object_get(e, "queue"));
    assert_string_equal(json_string_value(json_object_get(e, "job_id")), "7");
    assert_string_equal(json_string_value(json_object_get(e, "status")), "active");
    assert_string_equal(json_string_value(json_object_get(e, "recipient")), "ada@example.org");
    assert_string_equal(json_string_value(json_object_get(e, "tenant_id")), "acme");
    assert_string_equal(json_string_value(json_object_get(e, "user_id")), "42");
    assert_string_equal(json_string_value(json_object_get(e, "template")), "welcome");
    assert_null(json_object_get(e, "body"));
    assert_int_equal(json_integer_value(json_object_get(e, "at")), 1765000000123LL);
    e = json_array_get(lines, 1);
    assert_string_equal(json_string_value(json_object_get(e, "status")), "sent");
    assert_string_equal(json_string_value(json_object_get(e, "provider_message_id")), "m-1");
    assert_string_equal(json_string_value(json_object_get(e, "outcome")), "sent");
    assert_int_equal(json_integer_value(json_object_get(e, "duration_ms")), 12);
    json_decref(lines);
    json_decref(data);
    nq_deliverylog_free(dl);
}

static void recipients_hashed_and_bodies_only_when_asked(void **state)
{
    struct fixture *f = *state;
    struct nq_deliverylog *dl;
    json_t *data = json_pack("{s:[s,s], s:s}", "to", "a@x.org", "b@x.org", "text", "hello");
    json_t *lines, *e;

    f->pg.recipients = NQ_RECIPIENTS_HASH;
    f->pg.recipient_key = "k3y";
    f->pg.store_bodies = true;
    dl = open_log(f, "mail", 0);
    record(dl, "1", NQ_DL_ACTIVE, data);
    lines = spooled(f, "mail.0.");
    e = json_array_get(lines, 0);
    /* HMAC-SHA256("k3y", "a@x.org, b@x.org"), from Python's hmac module */
    assert_string_equal(json_string_value(json_object_get(e, "recipient")),
                        "d4dc6f1aeb3173bb341d5f43abdf6683585b1fee5951095b5311584799dd1dcd");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "body"), "text")),
                        "hello");
    json_decref(lines);
    json_decref(data);
    nq_deliverylog_free(dl);
}

static void full_at_spool_max(void **state)
{
    struct fixture *f = *state;
    struct nq_deliverylog *dl;

    f->pg.spool_max = 3;
    dl = open_log(f, "q", 0);
    record(dl, "1", NQ_DL_ACTIVE, NULL);
    record(dl, "1", NQ_DL_SENT, NULL);
    assert_false(nq_deliverylog_full(dl));
    record(dl, "2", NQ_DL_ACTIVE, NULL);
    assert_true(nq_deliverylog_full(dl));
    nq_deliverylog_free(dl);
}

static void a_left_spool_is_taken_over_by_its_queue_only(void **state)
{
    struct fixture *f = *state;
    struct nq_deliverylog *dl = open_log(f, "q", 1), *other, *next;
    char path[256];
    FILE *fp;
    json_t *lines;

    record(dl, "1", NQ_DL_ACTIVE, NULL);
    record(dl, "1", NQ_DL_SENT, NULL);
    nq_deliverylog_free(dl); /* what is not confirmed stays */
    /* A dead sibling's spool, its last line torn by a crash mid-write. */
    (void) snprintf(path, sizeof(path), "%s/q.0.999999.spool", f->spools);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"job_id\":\"9\",\"attempt\":1,\"status\":\"active\",\"at\":1}\n"
          "{\"job_",
          fp);
    fclose(fp);
    /* A queue whose name starts with ours and a dot is not ours. */
    other = open_log(f, "q.v2", 0);
    record(other, "5", NQ_DL_ACTIVE, NULL);
    nq_deliverylog_free(other);

    next = open_log(f, "q", 1);
    assert_int_equal(nq_deliverylog_depth(next), 3);
    lines = spooled(f, "q.1.");
    assert_int_equal(json_array_size(lines), 3);
    json_decref(lines);
    assert_int_equal(access(path, F_OK), -1); /* taken over: gone */
    lines = spooled(f, "q.v2.");
    assert_int_equal(json_array_size(lines), 1);
    json_decref(lines);
    nq_deliverylog_free(next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(events_go_to_the_spool_as_json_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(recipients_hashed_and_bodies_only_when_asked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(full_at_spool_max, setup, teardown),
        cmocka_unit_test_setup_teardown(a_left_spool_is_taken_over_by_its_queue_only, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
