/* SPDX-License-Identifier: MIT */
/*
 * /metrics (Prometheus text exposition 0.0.4) and /health, both from the
 * master's latest snapshot: the counters are the master's totals since it
 * started (a restarted worker's past counts stay in them), and /health
 * restates the master's per-queue verdict (the `state` notifyqctl status
 * shows) rather than judging again.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/internal.h"

/* ---- /metrics ---- */

/* A label value with \, " and newline escaped, as the format wants. */
static void put_label(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static json_int_t jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{queue="q"<extra>} value */
static void sample(FILE *f, const char *name, const char *queue, const char *extra_label,
                   const char *extra_value, json_int_t v)
{
    fprintf(f, "%s{queue=\"", name);
    put_label(f, queue);
    if (extra_label) {
        fprintf(f, "\",%s=\"", extra_label);
        put_label(f, extra_value);
    }
    fprintf(f, "\"} %lld\n", (long long) v);
}

/* Outcomes are disjoint: the master's "retried" counts every retry, and
 * "delayed" those of them that went to the delayed set, so retried here is
 * the difference (straight back to wait). */
static void finished(FILE *f, json_t *queues)
{
    json_t *q;
    size_t i;

    family(f, "notifyq_jobs_finished_total", "counter",
           "Job attempts that ended since the master started, by outcome: completed, failed, "
           "retried (back to wait at once), delayed (a backoff or a rate limit).");
    json_array_foreach (queues, i, q) {
        json_t *c = json_object_get(q, "counters");
        const char *name = jstr(q, "name");
        json_int_t retried = jint(c, "retried"), delayed = jint(c, "delayed");

        sample(f, "notifyq_jobs_finished_total", name, "outcome", "completed",
               jint(c, "completed"));
        sample(f, "notifyq_jobs_finished_total", name, "outcome", "failed", jint(c, "failed"));
        sample(f, "notifyq_jobs_finished_total", name, "outcome", "retried",
               retried > delayed ? retried - delayed : 0);
        sample(f, "notifyq_jobs_finished_total", name, "outcome", "delayed", delayed);
    }
    family(f, "notifyq_jobs_fetched_total", "counter",
           "Jobs the workers took from the queue since the master started.");
    json_array_foreach (queues, i, q) {
        sample(f, "notifyq_jobs_fetched_total", jstr(q, "name"), NULL, NULL,
               jint(json_object_get(q, "counters"), "fetched"));
    }
}

static void job_counts(FILE *f, json_t *queues)
{
    static const char *const states[] = { "waiting", "active", "delayed", "failed", "completed" };
    json_t *q;
    size_t i;

    family(f, "notifyq_jobs", "gauge",
           "Jobs in Redis by state, as a worker of the queue last read them (waiting "
           "includes prioritized).");
    json_array_foreach (queues, i, q) {
        json_t *jobs = json_object_get(q, "jobs");

        if (!json_is_object(jobs))
            continue; /* not read yet: no sample rather than a false 0 */
        for (size_t k = 0; k < NQ_ELEMENTSOF(states); k++)
            sample(f, "notifyq_jobs", jstr(q, "name"), "state", states[k], jint(jobs, states[k]));
    }
}

static void durations(FILE *f, json_t *queues)
{
    json_t *q;
    size_t i;

    family(f, "notifyq_job_duration_seconds", "histogram",
           "Time from a job's start in a worker to its outcome.");
    json_array_foreach (queues, i, q) {
        json_t *t = json_object_get(q, "timing"), *le = json_object_get(t, "le_ms");
        json_t *cum = json_object_get(t, "cumulative");
        const char *name = jstr(q, "name");

        if (!json_is_array(le) || json_array_size(le) != json_array_size(cum))
            continue;
        for (size_t k = 0; k < json_array_size(le); k++) {
            json_t *b = json_array_get(le, k);
            char bound[32];

            if (json_is_integer(b))
                (void) snprintf(bound, sizeof(bound), "%g",
                                (double) json_integer_value(b) / 1000.0);
            else
                (void) snprintf(bound, sizeof(bound), "+Inf");
            sample(f, "notifyq_job_duration_seconds_bucket", name, "le", bound,
                   json_integer_value(json_array_get(cum, k)));
        }
        fprintf(f, "notifyq_job_duration_seconds_sum{queue=\"");
        put_label(f, name);
        fprintf(f, "\"} %.3f\n", (double) jint(t, "sum_ms") / 1000.0);
        sample(f, "notifyq_job_duration_seconds_count", name, NULL, NULL, jint(t, "count"));
    }
}

static void per_queue(FILE *f, json_t *queues)
{
    json_t *q;
    size_t i;

    family(f, "notifyq_worker_restarts_total", "counter",
           "Unrequested worker exits that were restarted, since the master started.");
    json_array_foreach (queues, i, q) {
        sample(f, "notifyq_worker_restarts_total", jstr(q, "name"), NULL, NULL,
               jint(q, "restarts"));
    }
    family(f, "notifyq_worker_recycles_total", "counter",
           "Workers replaced on their own request (max_jobs, max_rss).");
    json_array_foreach (queues, i, q) {
        sample(f, "notifyq_worker_recycles_total", jstr(q, "name"), NULL, NULL,
               jint(q, "recycles"));
    }
    family(f, "notifyq_jobs_in_flight", "gauge", "Jobs being processed by the workers now.");
    json_array_foreach (queues, i, q) {
        sample(f, "notifyq_jobs_in_flight", jstr(q, "name"), NULL, NULL, jint(q, "in_flight"));
    }
    family(f, "notifyq_workers", "gauge", "Worker processes by state: configured or running.");
    json_array_foreach (queues, i, q) {
        json_t *p = json_object_get(q, "processes");

        sample(f, "notifyq_workers", jstr(q, "name"), "state", "configured", jint(p, "configured"));
        sample(f, "notifyq_workers", jstr(q, "name"), "state", "running", jint(p, "running"));
    }
}

/* child="email/0": one line of a per-child family. */
static void child_sample(FILE *f, const char *family_name, const char *child, double v,
                         int decimals)
{
    fprintf(f, "%s{child=\"", family_name);
    put_label(f, child);
    fprintf(f, "\"} %.*f\n", decimals, v);
}

/* Each live child's key ("rss_kib", "cpu_ms"), times scale, as one family. */
static void per_child(FILE *f, json_t *status, const char *name, const char *key, double scale,
                      int decimals)
{
    json_t *q, *w, *h = json_object_get(status, "http");
    size_t i, k;

    json_array_foreach (json_object_get(status, "queues"), i, q) {
        json_array_foreach (json_object_get(q, "workers"), k, w) {
            char child[300];

            if (!json_is_integer(json_object_get(w, "pid")))
                continue;
            (void) snprintf(child, sizeof(child), "%s/%lld", jstr(q, "name"),
                            (long long) jint(w, "slot"));
            child_sample(f, name, child, (double) jint(w, key) * scale, decimals);
        }
    }
    if (json_is_object(h) && json_is_integer(json_object_get(h, "pid")))
        child_sample(f, name, "http", (double) jint(h, key) * scale, decimals);
}

/* Per child process ("email/0", "http"), as each last reported. */
static void children(FILE *f, json_t *status)
{
    json_t *h = json_object_get(status, "http");

    family(f, "notifyq_process_resident_memory_bytes", "gauge",
           "Resident memory of each child process, as it last reported it.");
    per_child(f, status, "notifyq_process_resident_memory_bytes", "rss_kib", 1024, 0);
    family(f, "notifyq_process_cpu_seconds_total", "counter",
           "CPU time (user and system) of each child process, as it last reported it.");
    per_child(f, status, "notifyq_process_cpu_seconds_total", "cpu_ms", 0.001, 3);
    if (json_is_object(h)) {
        family(f, "notifyq_http_restarts_total", "counter",
               "Unrequested exits of the http child that were restarted.");
        fprintf(f, "notifyq_http_restarts_total %lld\n", (long long) jint(h, "restarts"));
    }
}

void api_metrics(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    json_auto_t *snap = api_snapshot_get(a);
    json_t *queues = json_object_get(json_object_get(snap, "metrics"), "queues");
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    (void) rq;
    if (!snap) {
        api_error(rep, 503, NULL, "no recent snapshot from the master");
        return;
    }
    f = open_memstream(&buf, &len);
    if (!f) {
        api_json(rep, 500, NULL);
        return;
    }
    finished(f, queues);
    job_counts(f, queues);
    durations(f, queues);
    per_queue(f, queues);
    children(f, json_object_get(snap, "status"));
    family(f, "notifyq_http_requests_total", "counter",
           "Requests this http child served (since it started).");
    fprintf(f, "notifyq_http_requests_total %llu\n", (unsigned long long) a->requests);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        api_json(rep, 500, NULL);
        return;
    }
    rep->status = 200;
    rep->text = buf;
    rep->text_len = len;
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- /health ---- */

enum verdict { HEALTHY, DEGRADED, UNHEALTHY };

static const char *const verdict_names[] = { "healthy", "degraded", "unhealthy" };

static enum verdict worst(enum verdict a, enum verdict b)
{
    return a > b ? a : b;
}

static int reason(json_t *reasons, const char *fmt, ...) NQ_PRINTF(2, 3);

static int reason(json_t *reasons, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_array_append_new(reasons, json_string(msg));
}

/* One queue's verdict from the master's state for it, with the reasons. */
static enum verdict judge_queue(json_t *q, json_t *reasons)
{
    const char *name = jstr(q, "name"), *state = jstr(q, "state");
    json_t *p = json_object_get(q, "processes"), *h = json_object_get(q, "health");

    if (strcmp(state, "crash-looping") == 0) {
        reason(reasons, "queue %s: a worker is crash-looping", name);
        return DEGRADED;
    }
    if (strcmp(state, "degraded") == 0) {
        reason(reasons, "queue %s: %lld of %lld workers running or responsive", name,
               (long long) jint(p, "running"), (long long) jint(p, "configured"));
        return DEGRADED;
    }
    if (strcmp(state, "disconnected") == 0 || strcmp(state, "connecting") == 0) {
        reason(reasons, "queue %s: Redis unreachable (%s)", name, state);
        return UNHEALTHY;
    }
    if (strcmp(state, "unhealthy") != 0)
        return HEALTHY;
    if (json_is_true(json_object_get(h, "backlog")))
        reason(reasons, "queue %s: %lld waiting, over health.max_waiting %lld", name,
               (long long) jint(json_object_get(q, "jobs"), "waiting"),
               (long long) jint(h, "max_waiting"));
    if (json_is_true(json_object_get(h, "failing")))
        reason(reasons,
               "queue %s: failure rate %.2f in the last 5 minutes, over "
               "health.max_failure_rate %.2f",
               name, json_number_value(json_object_get(h, "failure_rate")),
               json_number_value(json_object_get(h, "max_failure_rate")));
    return UNHEALTHY;
}

void api_health(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    json_auto_t *snap = api_snapshot_get(a);
    json_t *status = json_object_get(snap, "status"), *reasons = json_array(), *states;
    enum verdict v = HEALTHY;
    json_t *q;
    size_t i;

    (void) rq;
    states = json_object();
    if (!reasons || !states) {
        json_decref(reasons);
        json_decref(states);
        api_json(rep, 500, NULL);
        return;
    }
    if (!snap) {
        v = UNHEALTHY;
        reason(reasons, "no recent snapshot from the master");
    }
    if (snap && strcmp(jstr(status, "state"), "draining") == 0) {
        v = UNHEALTHY;
        reason(reasons, "notifyqd is stopping");
    }
    json_array_foreach (json_object_get(status, "queues"), i, q) {
        v = worst(v, judge_queue(q, reasons));
        (void) json_object_set(states, jstr(q, "name"), json_object_get(q, "state"));
    }
    api_json(rep, v == HEALTHY ? 200 : 503,
             json_pack("{s:s, s:o, s:o}", "status", verdict_names[v], "reasons", reasons, "queues",
                       states));
}

void api_live(struct api *a, const struct api_req *rq, struct api_reply *rep)
{
    (void) a;
    (void) rq;
    api_json(rep, 200, json_pack("{s:s}", "status", "live"));
}
