/* SPDX-License-Identifier: MIT */
/*
 * The status and metrics replies of the control socket, built from the
 * master's model. Field names are a contract scripts rely on (notifyqctl(1)):
 * add fields, never rename them. Counters are totals since the master
 * started: what dead incarnations last reported plus what live ones report
 * now, so they never go down when a worker is restarted or reloaded.
 */
#include "config.h"

#include <stdbool.h>
#include <unistd.h>

#include <jansson.h>

#include "config/config.h"
#include "supervisor/internal.h"

const char *nq_master_state_name(const struct nq_master *m)
{
    if (m->stopping)
        return "draining";
    return m->pending ? "reloading" : "running";
}

static const char *slot_state_name(const struct nq_slot *s)
{
    switch (s->state) {
    case NQ_SLOT_STARTING:
        return s->unresponsive ? "unresponsive" : "starting";
    case NQ_SLOT_RUNNING:
        return s->unresponsive ? "unresponsive" : nq_worker_state_name(s->metrics.state);
    case NQ_SLOT_DRAINING:
        return "draining";
    case NQ_SLOT_WAITING_RESTART:
        return nq_slot_crash_looping(s) ? "crash-looping" : "restarting";
    case NQ_SLOT_EXITED:
        break;
    }
    return "exited";
}

/* The current generation's slots of q: configured, running, and how. */
struct census {
    unsigned configured, running, unresponsive;
    unsigned redis_connecting, redis_disconnected; /* live workers saying so */
    bool crash_looping, all_idle;
    uint64_t in_flight, rss_kib;
};

static struct census count(const struct nq_master *m, const struct nq_qstate *q)
{
    struct census c = { .configured = q->cfg ? q->cfg->processes : 0, .all_idle = true };
    const struct nq_generation *g = m->current;

    for (size_t i = 0; i < g->n_slots; i++) {
        const struct nq_slot *s = g->slots[i];

        if (s->q != q)
            continue;
        c.running += s->pid != 0;
        c.unresponsive += s->pid != 0 && s->unresponsive;
        /* One that has not reported yet has not connected yet either. */
        c.redis_connecting += s->pid != 0 && (s->state == NQ_SLOT_STARTING ||
                                              s->metrics.redis == NQ_REDIS_CONNECTING);
        c.redis_disconnected += s->pid != 0 && s->metrics.redis == NQ_REDIS_DISCONNECTED;
        c.crash_looping = c.crash_looping || nq_slot_crash_looping(s);
        c.all_idle =
            c.all_idle && s->state == NQ_SLOT_RUNNING && s->metrics.state == NQ_WORKER_IDLE;
        c.in_flight += s->metrics.in_flight;
        c.rss_kib += s->metrics.rss_kib;
    }
    return c;
}

/* Health by the thresholds of the config's `health` section, over what q
 * did in the last NQ_HEALTH_WINDOW_S and its backlog as last read. */
struct health {
    uint64_t attempts, failures; /* ended in the window; a retry is a failure */
    bool backlog, failing;       /* over max_waiting, over max_failure_rate */
};

static struct health judge(const struct nq_master *m, const struct nq_qstate *q)
{
    const struct nq_health_cfg *h = &m->current->cfg->health;
    struct nq_counters d = nq_qstate_recent(m, q, NQ_HEALTH_WINDOW_S);
    struct health v = {
        .attempts = d.completed + d.failed + d.retried,
        .failures = d.failed + d.retried,
    };

    v.backlog = h->max_waiting > 0 && q->jobs.known && q->jobs.waiting > h->max_waiting;
    v.failing = v.attempts > 0 && (double) v.failures > h->max_failure_rate * (double) v.attempts;
    return v;
}

const char *nq_qstate_state_name(const struct nq_master *m, const struct nq_qstate *q)
{
    struct census c = count(m, q);
    struct health h = judge(m, q);

    if (m->stopping)
        return "draining";
    if (c.crash_looping)
        return "crash-looping";
    if (c.running < c.configured || c.unresponsive > 0)
        return "degraded";
    if (c.redis_disconnected > 0)
        return "disconnected";
    if (c.redis_connecting > 0)
        return "connecting";
    if (q->paused)
        return "paused";
    if (h.backlog || h.failing)
        return "unhealthy";
    return c.all_idle && c.configured ? "idle" : "ok";
}

static json_t *health_json(const struct nq_master *m, const struct nq_qstate *q)
{
    const struct nq_health_cfg *cfg = &m->current->cfg->health;
    struct health h = judge(m, q);

    return json_pack(
        "{s:b, s:b, s:I, s:I, s:o, s:I, s:f}", "backlog", h.backlog, "failing", h.failing,
        "attempts_5m", (json_int_t) h.attempts, "failures_5m", (json_int_t) h.failures,
        "failure_rate",
        h.attempts ? json_real((double) h.failures / (double) h.attempts) : json_null(),
        "max_waiting", (json_int_t) cfg->max_waiting, "max_failure_rate", cfg->max_failure_rate);
}

struct nq_counters nq_qstate_recent(const struct nq_master *m, const struct nq_qstate *q,
                                    unsigned seconds)
{
    struct nq_counters now = nq_qstate_totals(m, q), then = { 0 };
    size_t n = NQ_ELEMENTSOF(q->window);

    /* The newest sample is at window_pos - 1. Without one from `seconds`
     * before it the master is younger than that, and its totals (zero at
     * its start) are all recent. */
    if (q->window_len > seconds)
        then = q->window[(q->window_pos + n - 1 - seconds) % n];
    return (struct nq_counters){
        .fetched = now.fetched - then.fetched,
        .completed = now.completed - then.completed,
        .failed = now.failed - then.failed,
        .retried = now.retried - then.retried,
        .delayed = now.delayed - then.delayed,
    };
}

struct nq_counters nq_qstate_per_minute(const struct nq_master *m, const struct nq_qstate *q)
{
    return nq_qstate_recent(m, q, 60);
}

static json_t *counters_json(struct nq_counters c, bool with_fetched)
{
    if (!with_fetched)
        return json_pack("{s:I, s:I, s:I}", "completed", (json_int_t) c.completed, "failed",
                         (json_int_t) c.failed, "retried", (json_int_t) c.retried);
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "fetched", (json_int_t) c.fetched, "completed",
                     (json_int_t) c.completed, "failed", (json_int_t) c.failed, "retried",
                     (json_int_t) c.retried, "delayed", (json_int_t) c.delayed);
}

/* The queue's job counts in Redis as its workers last read them; null
 * until one did. waiting includes prioritized jobs. */
static json_t *jobs_json(const struct nq_job_counts *j)
{
    if (!j->known)
        return json_null();
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "waiting", (json_int_t) j->waiting, "active",
                     (json_int_t) j->active, "delayed", (json_int_t) j->delayed, "failed",
                     (json_int_t) j->failed, "completed", (json_int_t) j->completed);
}

/* Processing times as Prometheus wants a histogram: cumulative counts per
 * upper bound ("le_ms", the last one null for +Inf), their sum and count. */
static json_t *timing_json(const struct nq_timing *t)
{
    json_t *le = json_array(), *counts = json_array();
    uint64_t total = 0;

    for (size_t i = 0; le && counts && i < NQ_TIMING_BUCKETS; i++) {
        total += t->count[i];
        if (json_array_append_new(le, i < NQ_TIMING_BUCKETS - 1
                                          ? json_integer((json_int_t) nq_timing_le_ms[i])
                                          : json_null()) < 0 ||
            json_array_append_new(counts, json_integer((json_int_t) total)) < 0)
            break;
    }
    if (!le || !counts || json_array_size(counts) != NQ_TIMING_BUCKETS) {
        json_decref(le);
        json_decref(counts);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:I, s:I}", "le_ms", le, "cumulative", counts, "count",
                     (json_int_t) total, "sum_ms", (json_int_t) t->sum_ms);
}

static json_t *last_exit_json(const struct nq_slot *s)
{
    char sig[32];

    if (!s->has_exited)
        return json_null();
    if (s->last_exit_code >= 0)
        return json_pack("{s:i}", "code", s->last_exit_code);
    nq_signal_name(s->last_exit_signal, sig, sizeof(sig));
    return json_pack("{s:s}", "signal", sig);
}

static json_t *worker_json(const struct nq_slot *s, uint64_t now)
{
    const char *redis = s->pid ? nq_redis_state_name(s->metrics.redis) : NULL;

    return json_pack("{s:I, s:o, s:I, s:I, s:s, s:o, s:s, s:I, s:I, s:b, s:I, s:o}", "slot",
                     (json_int_t) s->index, "pid", s->pid ? json_integer(s->pid) : json_null(),
                     "uptime_s", (json_int_t) (s->pid ? (now - s->started_ms) / 1000 : 0),
                     "in_flight", (json_int_t) s->metrics.in_flight, "state", slot_state_name(s),
                     "last_exit", last_exit_json(s), "note", s->metrics.note, "rss_kib",
                     (json_int_t) s->metrics.rss_kib, "cpu_ms", (json_int_t) s->metrics.cpu_ms,
                     "crash_looping", nq_slot_crash_looping(s), "generation",
                     (json_int_t) (s->gen ? s->gen->number : 0), "redis",
                     redis ? json_string(redis) : json_null());
}

static json_t *workers_json(const struct nq_master *m, const struct nq_qstate *q)
{
    const struct nq_generation *g = m->current;
    json_t *a = json_array();
    uint64_t now = nq_mono_ms();

    for (size_t i = 0; a && i < g->n_slots; i++)
        if (g->slots[i]->q == q && json_array_append_new(a, worker_json(g->slots[i], now)) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static unsigned retiring(const struct nq_master *m, const struct nq_qstate *q)
{
    unsigned n = 0;

    for (const struct nq_slot *s = m->slots; s; s = s->next)
        n += s->q == q && !s->gen && s->pid != 0;
    return n;
}

static json_t *queue_json(const struct nq_master *m, const struct nq_qstate *q)
{
    const struct nq_queue_cfg *qc = q->cfg;
    struct census c = count(m, q);

    return json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, "
                     "s:o, s:o}",
                     "name", qc->name, "handler", nq_handler_name(qc->handler), "bullmq_queue",
                     qc->bullmq_queue, "state", nq_qstate_state_name(m, q), "processes",
                     "configured", (json_int_t) c.configured, "running", (json_int_t) c.running,
                     "concurrency", (json_int_t) qc->concurrency, "restarts",
                     (json_int_t) q->restarts, "recycles", (json_int_t) q->recycles, "retiring",
                     (json_int_t) retiring(m, q), "in_flight", (json_int_t) c.in_flight, "workers",
                     workers_json(m, q), "counters", counters_json(nq_qstate_totals(m, q), true),
                     "per_minute", counters_json(nq_qstate_per_minute(m, q), false), "jobs",
                     jobs_json(&q->jobs), "health", health_json(m, q));
}

static json_t *queue_metrics_json(const struct nq_master *m, const struct nq_qstate *q)
{
    struct census c = count(m, q);
    struct nq_timing t = nq_qstate_timing(m, q);

    return json_pack("{s:s, s:{s:I, s:I}, s:I, s:I, s:o, s:o, s:o, s:o, s:I, s:I}", "name", q->name,
                     "processes", "configured", (json_int_t) c.configured, "running",
                     (json_int_t) c.running, "in_flight", (json_int_t) c.in_flight, "rss_kib",
                     (json_int_t) c.rss_kib, "counters",
                     counters_json(nq_qstate_totals(m, q), true), "per_minute",
                     counters_json(nq_qstate_per_minute(m, q), false), "jobs", jobs_json(&q->jobs),
                     "timing", timing_json(&t), "restarts", (json_int_t) q->restarts, "recycles",
                     (json_int_t) q->recycles);
}

/* The current configuration's queues, in file order, each built by fn. */
static json_t *queues_json(const struct nq_master *m,
                           json_t *(*fn)(const struct nq_master *, const struct nq_qstate *) )
{
    const struct nq_config *cfg = m->current->cfg;
    json_t *a = json_array();

    for (size_t i = 0; a && i < cfg->n_queues; i++) {
        const struct nq_qstate *q = nq_master_qstate(m, cfg->queues[i].name);

        if (!q || json_array_append_new(a, fn(m, q)) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

const struct nq_slot *nq_master_http_slot(const struct nq_master *m)
{
    const struct nq_generation *g = m->current;

    for (size_t i = 0; i < g->n_slots; i++)
        if (g->slots[i]->q->is_http)
            return g->slots[i];
    return NULL;
}

/* The http child, shown like a worker plus its restarts; null when the
 * config has no http section. */
static json_t *http_json(const struct nq_master *m)
{
    const struct nq_slot *s = nq_master_http_slot(m);
    json_t *o;

    if (!s)
        return json_null();
    o = worker_json(s, nq_mono_ms());
    if (o && json_object_set_new(o, "restarts", json_integer((json_int_t) m->http->restarts)) < 0)
        o = (json_decref(o), NULL);
    return o;
}

json_t *nq_status_json(const struct nq_master *m)
{
    return json_pack("{s:b, s:s, s:I, s:I, s:s, s:I, s:o, s:o}", "ok", 1, "version",
                     PACKAGE_VERSION, "pid", (json_int_t) getpid(), "uptime_s",
                     (json_int_t) ((nq_mono_ms() - m->started_ms) / 1000), "state",
                     nq_master_state_name(m), "generation", (json_int_t) m->current->number,
                     "queues", queues_json(m, queue_json), "http", http_json(m));
}

json_t *nq_snapshot_json(const struct nq_master *m)
{
    return json_pack("{s:o, s:o}", "status", nq_status_json(m), "metrics", nq_metrics_json(m));
}

json_t *nq_metrics_json(const struct nq_master *m)
{
    return json_pack("{s:b, s:o}", "ok", 1, "queues", queues_json(m, queue_metrics_json));
}
