/* SPDX-License-Identifier: MIT */
/*
 * notifyqctl job show|remove|retry|promote, failed list|retry|purge, clean
 * and counts: one admin call each (list: one per job shown). A refusal is
 * explained with the job's actual state ("job 7 is completed, not failed"),
 * read after the refusal, since the script that refused does not say it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/duration.h"
#include "ctl/internal.h"

NQ_DEFINE_CLEANUP(struct nq_job *, nq_job_free)
NQ_DEFINE_CLEANUP(char **, nq_strv_free)

static uint32_t effective_attempts(const struct ctl *c, const struct nq_job *job)
{
    return nq_job_attempts(job, c->qcfg ? c->qcfg->attempts : 1);
}

/* The state of job id now, for an explanation: "completed", or "gone". */
static const char *state_now(struct ctl *c, const char *id, char *buf, size_t size)
{
    NQ_CLEANUP(nq_job_freep) struct nq_job *job = NULL;
    nq_autofree char *state = NULL;

    if (nq_admin_job(c->admin, id, &job, &state, NULL) < 0)
        return "gone";
    (void) snprintf(buf, size, "%s", state);
    return buf;
}

/* Prints why a job operation was refused and returns the exit status. */
static int job_refused(struct ctl *c, int r, const struct nq_err *err, const char *id,
                       const char *wanted)
{
    char state[32];

    switch (-r) {
    case ENOENT:
        ctl_error("job %s not found in %s", id, c->queue);
        return CTL_EXIT_REFUSED;
    case EBUSY:
        ctl_error("job %s of %s is active (locked by a worker); try again once it has finished", id,
                  c->queue);
        return CTL_EXIT_REFUSED;
    case EINVAL:
        if (!wanted)
            break;
        ctl_error("job %s of %s is %s, not %s", id, c->queue,
                  state_now(c, id, state, sizeof(state)), wanted);
        return CTL_EXIT_REFUSED;
    }
    return ctl_fail(c, r, err);
}

static int print_done(struct ctl *c, const char *id, const char *key, json_t *value,
                      const char *fmt, ...) NQ_PRINTF(5, 6);
static int print_done(struct ctl *c, const char *id, const char *key, json_t *value,
                      const char *fmt, ...)
{
    va_list ap;

    if (!c->json) {
        json_decref(value);
        va_start(ap, fmt);
        (void) vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        return CTL_EXIT_OK;
    }
    json_t *reply = ctl_reply_new(c);
    if (reply && (json_object_set_new(reply, "id", ctl_json_str(id)) < 0 ||
                  json_object_set_new(reply, key, value) < 0))
        reply = (json_decref(reply), NULL);
    else if (!reply)
        json_decref(value);
    return ctl_print_reply(reply);
}

/* ---- job show ------------------------------------------------------------- */

/* Valid data as JSON, anything else as the text it is. */
static json_t *job_data_json(struct nq_job *job)
{
    json_t *data = nq_job_data_borrow(job);

    if (data)
        return json_incref(data);
    return ctl_json_str(job->data_raw);
}

static json_t *job_json(const struct ctl *c, struct nq_job *job, const char *state)
{
    json_t *o = ctl_reply_new(c);
    int r = 0;

    if (!o)
        return NULL;
    r |= json_object_set_new(o, "id", ctl_json_str(job->id));
    r |= json_object_set_new(o, "state", json_string(state));
    r |= json_object_set_new(o, "name", ctl_json_str(job->name));
    r |= json_object_set_new(o, "data", job_data_json(job));
    r |= json_object_set_new(o, "opts", ctl_json_raw(job->opts_raw));
    r |= json_object_set_new(o, "attempts", json_integer(effective_attempts(c, job)));
    r |= json_object_set_new(o, "attempts_made", json_integer(job->atm));
    r |= json_object_set_new(o, "attempts_started", json_integer(job->ats));
    r |= json_object_set_new(o, "stalled_count", json_integer(job->stc));
    r |= json_object_set_new(o, "priority", json_integer(job->priority));
    r |= json_object_set_new(o, "delay_ms", json_integer((json_int_t) job->delay_ms));
    r |= ctl_json_time(o, "created", job->timestamp);
    r |= ctl_json_time(o, "processed", job->processed_on);
    r |= ctl_json_time(o, "finished", job->finished_on);
    r |= json_object_set_new(o, "processed_by", ctl_json_str(job->processed_by));
    r |= json_object_set_new(o, "progress",
                             job->progress ? ctl_json_raw(job->progress) : json_integer(0));
    r |= json_object_set_new(o, "returnvalue", ctl_json_raw(job->returnvalue));
    r |= json_object_set_new(o, "failed_reason", ctl_json_str(job->failed_reason));
    r |= json_object_set_new(o, "stacktrace",
                             job->stacktrace ? ctl_json_raw(job->stacktrace) : json_array());
    r |= json_object_set_new(o, "deferred_failure", ctl_json_str(job->defa));
    r |= json_object_set_new(o, "deduplication_id", ctl_json_str(job->deid));
    r |= json_object_set_new(o, "scheduler_id", ctl_json_str(job->rjk));
    r |= json_object_set_new(o, "parent", ctl_json_raw(job->parent));
    r |= json_object_set_new(o, "invalid", ctl_json_str(job->invalid[0] ? job->invalid : NULL));
    if (r) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* "label:" then text, continuation lines indented under the text. */
static void print_field(const char *label, const char *text)
{
    printf("%-15s ", label);
    for (const char *p = text; *p; p++) {
        putchar(*p);
        if (*p == '\n' && p[1])
            printf("%16s", "");
    }
    putchar('\n');
}

static void print_time(const char *label, uint64_t ms)
{
    char iso[48], text[80];

    if (!ms)
        return;
    (void) snprintf(text, sizeof(text), "%s (%" PRIu64 ")", ctl_iso_time(ms, iso, sizeof(iso)), ms);
    print_field(label, text);
}

static void print_stacktrace(const json_t *trace)
{
    const json_t *entry;
    size_t i;

    if (!json_is_array(trace) || json_array_size(trace) == 0)
        return;
    printf("stacktrace:\n");
    json_array_foreach (trace, i, entry) {
        const char *s = json_string_value(entry);

        printf("  [%zu] ", i + 1);
        for (const char *p = s ? s : "(not a string)"; *p; p++) {
            putchar(*p);
            if (*p == '\n' && p[1])
                printf("      ");
        }
        putchar('\n');
    }
}

/* A member of the --json object as one compact line. */
static void print_json_field(const json_t *o, const char *label, const char *key)
{
    const json_t *v = json_object_get(o, key);
    nq_autofree char *text = NULL;

    if (!v || json_is_null(v))
        return;
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    print_field(label, text ? text : "?");
}

static void print_job(const struct ctl *c, const struct nq_job *job, const json_t *o)
{
    char text[160];

    print_field("job:", job->id);
    (void) snprintf(text, sizeof(text), "%s (BullMQ queue %s)", c->queue, c->bullmq);
    print_field("queue:", text);
    print_field("state:", json_string_value(json_object_get(o, "state")));
    print_field("name:", job->name ? job->name : "");
    (void) snprintf(text, sizeof(text), "%" PRIu32 " made, %" PRIu32 " started, of %" PRIu32,
                    job->atm, job->ats, effective_attempts(c, job));
    print_field("attempts:", text);
    if (job->stc)
        print_json_field(o, "stalled:", "stalled_count");
    if (job->priority)
        print_json_field(o, "priority:", "priority");
    if (job->delay_ms) {
        nq_duration_format(job->delay_ms, text, sizeof(text));
        print_field("delay:", text);
    }
    print_time("created:", job->timestamp);
    print_time("processed:", job->processed_on);
    print_time("finished:", job->finished_on);
    if (job->processed_by)
        print_field("processed by:", job->processed_by);
    print_json_field(o, "progress:", "progress");
    print_json_field(o, "data:", "data");
    print_json_field(o, "opts:", "opts");
    print_json_field(o, "returnvalue:", "returnvalue");
    if (job->failed_reason)
        print_field("failed reason:", job->failed_reason);
    if (job->defa)
        print_field("deferred fail:", job->defa);
    if (job->invalid[0])
        print_field("invalid:", job->invalid);
    print_json_field(o, "deduplication:", "deduplication_id");
    print_json_field(o, "scheduler:", "scheduler_id");
    print_json_field(o, "parent:", "parent");
    print_stacktrace(json_object_get(o, "stacktrace"));
}

int ctl_job_show(struct ctl *c, char *const *args, int n_args)
{
    NQ_CLEANUP(nq_job_freep) struct nq_job *job = NULL;
    nq_autofree char *state = NULL;
    struct nq_err err = { 0 };
    json_t *o;
    int r;

    (void) n_args;
    if ((r = ctl_connect(c)) != 0)
        return r;
    r = nq_admin_job(c->admin, args[0], &job, &state, &err);
    if (r < 0)
        return job_refused(c, r, &err, args[0], NULL);
    o = job_json(c, job, state);
    if (!o)
        return ctl_oom();
    if (c->json)
        return ctl_print_reply(o);
    print_job(c, job, o);
    json_decref(o);
    return CTL_EXIT_OK;
}

/* ---- job remove, retry, promote ---------------------------------------------- */

int ctl_job_remove(struct ctl *c, char *const *args, int n_args)
{
    struct nq_err err = { 0 };
    int r;

    (void) n_args;
    if ((r = ctl_connect(c)) != 0)
        return r;
    r = nq_admin_remove(c->admin, args[0], &err);
    if (r < 0)
        return job_refused(c, r, &err, args[0], NULL);
    return print_done(c, args[0], "removed", json_true(), "job %s removed from %s", args[0],
                      c->queue);
}

int ctl_job_retry(struct ctl *c, char *const *args, int n_args)
{
    struct nq_err err = { 0 };
    int r;

    (void) n_args;
    if ((r = ctl_connect(c)) != 0)
        return r;
    r = nq_admin_retry(c->admin, args[0], &err);
    if (r < 0)
        return job_refused(c, r, &err, args[0], "failed");
    return print_done(c, args[0], "retried", json_integer(1), "job %s of %s moved back to wait",
                      args[0], c->queue);
}

int ctl_job_promote(struct ctl *c, char *const *args, int n_args)
{
    struct nq_err err = { 0 };
    int r;

    (void) n_args;
    if ((r = ctl_connect(c)) != 0)
        return r;
    r = nq_admin_promote(c->admin, args[0], &err);
    if (r < 0)
        return job_refused(c, r, &err, args[0], "delayed");
    return print_done(c, args[0], "promoted", json_true(), "job %s of %s promoted: it runs now",
                      args[0], c->queue);
}

/* ---- failed list -------------------------------------------------------------- */

/* The reason's first line, which is what fits a table row. */
static void first_line(const char *s, char *buf, size_t size)
{
    size_t n = strcspn(s ? s : "", "\r\n");

    if (n >= size)
        n = size - 1;
    memcpy(buf, s ? s : "", n);
    buf[n] = '\0';
}

static int add_failed(const struct ctl *c, const struct nq_job *job, json_t *jobs,
                      struct ctl_table *t)
{
    char finished[48], attempts[48], reason[256];
    json_t *o;
    int r = 0;

    if (c->json) {
        o = json_pack("{s:o, s:o, s:i, s:i, s:o}", "id", ctl_json_str(job->id), "name",
                      ctl_json_str(job->name), "attempts_made", (int) job->atm, "attempts",
                      (int) effective_attempts(c, job), "failed_reason",
                      ctl_json_str(job->failed_reason));
        if (!o || ctl_json_time(o, "finished", job->finished_on) < 0 ||
            json_array_append_new(jobs, o) < 0)
            return -ENOMEM;
        return 0;
    }
    (void) snprintf(attempts, sizeof(attempts), "%" PRIu32 "/%" PRIu32, job->atm,
                    effective_attempts(c, job));
    first_line(job->failed_reason, reason, sizeof(reason));
    const char *row[] = { job->id, job->name ? job->name : "",
                          ctl_iso_time(job->finished_on, finished, sizeof(finished)), attempts,
                          reason };
    r = ctl_table_add(t, row);
    return r;
}

static int print_failed(const struct ctl *c, json_t *jobs, struct ctl_table *t, uint64_t total)
{
    if (c->json) {
        json_t *reply = ctl_reply_new(c);
        if (!reply || json_object_set_new(reply, "total", json_integer((json_int_t) total)) < 0 ||
            json_object_set_new(reply, "offset", json_integer((json_int_t) c->offset)) < 0 ||
            json_object_set_new(reply, "limit", json_integer((json_int_t) c->limit)) < 0 ||
            json_object_set(reply, "jobs", jobs) < 0)
            reply = (json_decref(reply), NULL);
        return ctl_print_reply(reply);
    }
    if (total == 0) {
        printf("no failed jobs in %s\n", c->queue);
        return CTL_EXIT_OK;
    }
    if (t->n_rows)
        ctl_table_print(t);
    if (t->n_rows < total)
        printf("(%zu shown, from offset %" PRIu64 ", of %" PRIu64 " failed jobs)\n", t->n_rows,
               c->offset, total);
    return CTL_EXIT_OK;
}

int ctl_failed_list(struct ctl *c, char *const *args, int n_args)
{
    struct ctl_table t = {
        .n_cols = 5,
        .header = { "ID", "NAME", "FINISHED", "ATTEMPTS", "REASON" },
        .right = { false, false, false, true, false },
    };
    NQ_CLEANUP(nq_strv_freep) char **ids = NULL;
    NQ_CLEANUP(json_decrefp) json_t *jobs = json_array();
    struct nq_err err = { 0 };
    struct nq_counts counts;
    size_t n = 0;
    int r;

    (void) args;
    (void) n_args;
    if (!c->has_limit)
        c->limit = CTL_LIST_DEFAULT;
    if (c->limit > CTL_LIST_MAX) {
        ctl_error("failed list: --limit is at most %u; page with --offset", CTL_LIST_MAX);
        return CTL_EXIT_USAGE;
    }
    if (!jobs)
        return ctl_oom();
    if ((r = ctl_connect(c)) != 0)
        return r;
    if ((r = nq_admin_counts(c->admin, &counts, &err)) < 0 ||
        (r = nq_admin_list(c->admin, "failed", c->offset, c->limit, &ids, &n, &err)) < 0)
        return ctl_fail(c, r, &err);
    for (size_t i = 0; i < n && r >= 0; i++) {
        NQ_CLEANUP(nq_job_freep) struct nq_job *job = NULL;
        nq_autofree char *state = NULL;

        r = nq_admin_job(c->admin, ids[i], &job, &state, &err);
        if (r == -ENOENT) { /* removed since the listing */
            r = 0;
            continue;
        }
        if (r < 0)
            break;
        r = add_failed(c, job, jobs, &t);
    }
    if (r >= 0)
        r = print_failed(c, jobs, &t, counts.failed);
    else
        r = ctl_fail(c, r, &err);
    ctl_table_done(&t);
    return r;
}

/* ---- failed retry, failed purge, clean -------------------------------------------- */

int ctl_failed_retry(struct ctl *c, char *const *args, int n_args)
{
    struct nq_err err = { 0 };
    uint64_t count = 0;
    int r;

    if ((n_args == 1) == c->all) {
        ctl_error("failed retry: give a job ID or --all (not both)");
        return CTL_EXIT_USAGE;
    }
    if (!c->all)
        return ctl_job_retry(c, args, n_args);
    if ((r = ctl_connect(c)) != 0)
        return r;
    if ((r = nq_admin_retry_all(c->admin, "failed", &count, &err)) < 0)
        return ctl_fail(c, r, &err);
    return print_done(c, NULL, "retried", json_integer((json_int_t) count),
                      "%" PRIu64 " failed job%s of %s moved back to wait", count,
                      count == 1 ? "" : "s", c->queue);
}

/* Deletes jobs of state older than grace_ms, at most limit (0: all), in
 * batches of 1000, each its own script call so Redis is never held long. */
static int clean_batches(struct ctl *c, const char *state, uint64_t limit, uint64_t *ret_count,
                         struct nq_err *err)
{
    uint64_t total = 0, n;
    uint32_t batch;
    int r;

    do {
        batch = 1000;
        if (limit && limit - total < batch)
            batch = (uint32_t) (limit - total);
        if ((r = nq_admin_clean(c->admin, state, c->grace_ms, batch, &n, err)) < 0)
            return r;
        total += n;
    } while (n == batch && (!limit || total < limit));
    *ret_count = total;
    return 0;
}

static int print_cleaned(struct ctl *c, const char *state, uint64_t count)
{
    char grace[32];

    nq_duration_format(c->grace_ms, grace, sizeof(grace));
    if (!c->json) {
        printf("%" PRIu64 " %s job%s deleted from %s", count, state, count == 1 ? "" : "s",
               c->queue);
        printf(c->grace_ms ? " (older than %s)\n" : "\n", grace);
        return CTL_EXIT_OK;
    }
    json_t *reply = ctl_reply_new(c);
    if (reply &&
        (json_object_set_new(reply, "state", json_string(state)) < 0 ||
         json_object_set_new(reply, "grace_ms", json_integer((json_int_t) c->grace_ms)) < 0 ||
         json_object_set_new(reply, "deleted", json_integer((json_int_t) count)) < 0))
        reply = (json_decref(reply), NULL);
    return ctl_print_reply(reply);
}

int ctl_failed_purge(struct ctl *c, char *const *args, int n_args)
{
    struct nq_err err = { 0 };
    uint64_t count = 0;
    int r;

    (void) args;
    (void) n_args;
    if ((r = ctl_connect(c)) != 0)
        return r;
    if ((r = clean_batches(c, "failed", 0, &count, &err)) < 0)
        return ctl_fail(c, r, &err);
    return print_cleaned(c, "failed", count);
}

int ctl_clean(struct ctl *c, char *const *args, int n_args)
{
    static const char *const states[] = { "completed", "failed", "delayed", "prioritized", "wait" };
    struct nq_err err = { 0 };
    const char *state = NULL;
    uint64_t count = 0;
    int r;

    (void) args;
    (void) n_args;
    for (size_t i = 0; c->state && i < NQ_ELEMENTSOF(states); i++)
        if (strcmp(c->state, states[i]) == 0)
            state = states[i];
    if (c->state && strcmp(c->state, "waiting") == 0)
        state = "wait";
    if (c->state && !state) {
        ctl_error("clean: --state: '%s' is not completed, failed, delayed, prioritized or wait",
                  c->state);
        return CTL_EXIT_USAGE;
    }
    if (!state || !c->has_grace) {
        ctl_error("clean: --state and --grace are required");
        return CTL_EXIT_USAGE;
    }
    if ((r = ctl_connect(c)) != 0)
        return r;
    if ((r = clean_batches(c, state, c->has_limit ? c->limit : 0, &count, &err)) < 0)
        return ctl_fail(c, r, &err);
    return print_cleaned(c, state, count);
}

/* ---- counts --------------------------------------------------------------------- */

int ctl_counts(struct ctl *c, char *const *args, int n_args)
{
    struct nq_err err = { 0 };
    struct nq_counts n;
    int r;

    (void) args;
    (void) n_args;
    if ((r = ctl_connect(c)) != 0)
        return r;
    if ((r = nq_admin_counts(c->admin, &n, &err)) < 0)
        return ctl_fail(c, r, &err);
    /* A BullMQ 5 pause left ids in the legacy `paused` list: they wait too. */
    uint64_t waiting = n.waiting + n.paused_legacy;
    if (!c->json) {
        printf("%s (BullMQ queue %s)%s\n", c->queue, c->bullmq, n.paused ? ": paused" : "");
        printf("waiting      %" PRIu64 "\nactive       %" PRIu64 "\ndelayed      %" PRIu64
               "\nprioritized  %" PRIu64 "\ncompleted    %" PRIu64 "\nfailed       %" PRIu64 "\n",
               waiting, n.active, n.delayed, n.prioritized, n.completed, n.failed);
        if (n.waiting_children)
            printf("children     %" PRIu64 "\n", n.waiting_children);
        return CTL_EXIT_OK;
    }
    json_t *reply = ctl_reply_new(c);
    json_t *add =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "waiting", (json_int_t) waiting,
                  "active", (json_int_t) n.active, "delayed", (json_int_t) n.delayed, "prioritized",
                  (json_int_t) n.prioritized, "completed", (json_int_t) n.completed, "failed",
                  (json_int_t) n.failed, "waiting_children", (json_int_t) n.waiting_children,
                  "paused", n.paused);
    if (!reply || !add || json_object_update(reply, add) < 0)
        reply = (json_decref(reply), NULL);
    json_decref(add);
    return ctl_print_reply(reply);
}
