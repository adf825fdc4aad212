/* SPDX-License-Identifier: MIT */
/*
 * The worker's side of the delivery log (deliverylog/deliverylog.h), when
 * postgres: is configured: what each job went through, told as events.
 *   active    when its handler starts; on a job's first attempt it carries
 *             the job's timestamp, which stands for its queued event
 *             (first sight: the database records both)
 *   retrying, sent, failed
 *             once Redis confirmed the finish, so the log never claims what
 *             the queue does not hold
 * A rate-limited or returned job (drain) is not a finish: it runs again
 * under the same attempt and logs nothing more. The job's data is read
 * (for tenant, user, template, recipient) only for a job whose raw text may
 * hold one of those keys: noop benchmarks send none, and building their
 * trees would cost more than the rest of the job.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/log.h"
#include "deliverylog/deliverylog.h"
#include "worker/internal.h"

static uint64_t wall_ms(void)
{
    struct timespec ts;

    (void) clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void on_room(void *userdata)
{
    nq_jobs_wake(userdata);
}

static void on_settled(void *userdata)
{
    nq_worker_check_done(userdata);
}

int nq_logbook_setup(struct worker *w)
{
    const struct nq_config *cfg = w->ctx->cfg;
    const struct nq_deliverylog_opts o = {
        .base = w->base,
        .pg = &cfg->postgres,
        .state_dir = cfg->state_dir,
        .queue = w->q->name,
        .channel = nq_handler_name(w->q->handler),
        .slot = w->ctx->slot,
        .room = on_room,
        .settled = on_settled,
        .userdata = w,
    };
    struct nq_err err = { "" };
    int r;

    if (!cfg->postgres.dsn)
        return 0;
    r = nq_deliverylog_new(&o, &w->dl, &err);
    if (r < 0)
        nq_log(LOG_ERR, "%s", nq_err_str(&err));
    return r;
}

void nq_logbook_free(struct worker *w)
{
    w->dl = nq_deliverylog_free(w->dl);
}

bool nq_logbook_full(const struct worker *w)
{
    return w->dl && nq_deliverylog_full(w->dl);
}

bool nq_logbook_holding(const struct worker *w)
{
    return w->dl && !w->returning && nq_deliverylog_connected(w->dl) &&
           nq_deliverylog_depth(w->dl) > 0;
}

static json_t *fields_of(struct nq_job *job, bool store_bodies)
{
    const char *d = job->data_raw;
    json_t *data;

    if (!job->data_valid || !d)
        return NULL;
    if (!store_bodies && !memchr(d, '\\', job->data_len) && !strstr(d, "\"to\"") &&
        !strstr(d, "\"tenantId\"") && !strstr(d, "\"userId\"") && !strstr(d, "\"templateId\""))
        return NULL;
    data = nq_job_data_borrow(job);
    return json_is_object(data) ? data : NULL;
}

void nq_logbook_started(struct worker *w, struct wjob *j)
{
    struct nq_job *job = j->job;
    struct nq_dl_event ev = {
        .job_id = job->id,
        .attempt = job->atm + 1,
        .status = NQ_DL_ACTIVE,
        .created_ms = job->atm == 0 ? job->timestamp : 0,
    };

    if (!w->dl)
        return;
    ev.data = fields_of(job, w->ctx->cfg->postgres.store_bodies);
    ev.started_ms = ev.at_ms = wall_ms();
    if (job->atm == 0 && !job->timestamp)
        ev.created_ms = ev.at_ms;
    nq_deliverylog_record(w->dl, &ev);
}

/* The returnvalue's provider and messageId, copied to bufs. */
static void sent_by(const char *result, char *provider, char *id, size_t size)
{
    json_t *o;

    provider[0] = id[0] = '\0';
    if (!result || (!strstr(result, "\"messageId\"") && !strstr(result, "\"provider\"")))
        return;
    o = json_loads(result, 0, NULL);
    if (json_is_string(json_object_get(o, "provider")))
        (void) snprintf(provider, size, "%s", json_string_value(json_object_get(o, "provider")));
    if (json_is_string(json_object_get(o, "messageId")))
        (void) snprintf(id, size, "%s", json_string_value(json_object_get(o, "messageId")));
    json_decref(o);
}

void nq_logbook_finished(struct worker *w, struct wjob *j)
{
    const struct nq_finish *f = &j->fin;
    uint64_t now = wall_ms();
    char provider[128], id[256];
    struct nq_dl_event ev = {
        .job_id = j->job->id,
        .attempt = j->job->atm + 1,
        .at_ms = now,
        .duration_ms = j->took_ms,
        .started_ms = j->started ? now - (nq_worker_mono_ms() - j->started_ms) : now,
    };

    if (!w->dl)
        return;
    switch (f->kind) {
    case NQ_FINISH_COMPLETED:
        ev.status = NQ_DL_SENT;
        ev.outcome = NQ_DL_OUTCOME_SENT;
        sent_by(f->text, provider, id, sizeof(provider));
        ev.provider = provider[0] ? provider : NULL;
        ev.message_id = id[0] ? id : NULL;
        break;
    case NQ_FINISH_FAILED:
    case NQ_FINISH_FAILED_EARLY:
        ev.status = NQ_DL_FAILED;
        ev.outcome = !j->started                         ? NQ_DL_OUTCOME_INVALID
                     : f->kind == NQ_FINISH_FAILED_EARLY ? NQ_DL_OUTCOME_PERMANENT
                                                         : NQ_DL_OUTCOME_RETRYABLE;
        ev.error = f->text;
        break;
    case NQ_FINISH_RETRY_LATER:
    case NQ_FINISH_RETRY_NOW:
        ev.status = NQ_DL_RETRYING;
        ev.outcome = NQ_DL_OUTCOME_RETRYABLE;
        ev.error = f->text;
        break;
    case NQ_FINISH_RATE_LIMITED:
    case NQ_FINISH_RETURNED:
        return;
    }
    if (!j->started) /* never ran: its fields come with this event */
        ev.data = fields_of(j->job, w->ctx->cfg->postgres.store_bodies);
    nq_deliverylog_record(w->dl, &ev);
}
