/* SPDX-License-Identifier: MIT */
/*
 * Jobs in flight, and the work calls that finish and fetch them (internal.h
 * has the model). When a call returns, or when a handler reports an
 * outcome, the next call carries every pending finish and a fetch for the
 * free slots, if the queue may have jobs.
 *
 * Two calls in flight: with one, Redis and the worker take turns (Redis
 * idles while the worker parses a reply and runs its jobs, and the other
 * way round), which caps a busy queue at one core of the two. So while the
 * queue is deep (the last fetch got all it asked for), a call fetches at
 * most half the window, and a second call goes out while the first is in
 * flight once it carries half a window of work: the two halves alternate,
 * each being run by Redis while the worker handles the other. Otherwise,
 * or below half a window, a finish waits for the call in flight, as with
 * one call, so a lightly loaded queue makes no more round trips than
 * before. Small windows (concurrency below 2 * NQ_WORKER_OVERLAP_MIN) keep
 * one call: each call has a fixed cost in Redis (the script's set-up, the
 * delayed and limiter checks), which halves of a few jobs would pay twice
 * as often for little gain (at concurrency 10: +6 % jobs/s for +12 % Redis
 * CPU per job).
 * Jobs asked for by calls in flight count as taken, so the calls together
 * never fetch more than `concurrency`. Anything out of the ordinary (script
 * errors being isolated, a suspect, draining, orphans) goes back to one
 * call at a time, where order matters more than throughput.
 *
 * When the queue has nothing to run, the worker blocks on the
 * queue's marker (BULLMQ-LAYOUT.md §7) with BullMQ's timeouts: 5 s idle,
 * or until the next delayed job is due (at most 10 s); rate limited, it
 * sleeps until the limiter opens (at most 30 s); paused in Redis, it waits
 * on the marker, which resume re-creates.
 *
 * Suspects: a job that was in flight when workers died by a signal (its
 * crash count, nqcrash) may be what killed them, and one more such death
 * fails it as a poison job (max_crashes). Such a job runs alone: it
 * starts only once it is the one job this worker holds a lock on (the other
 * jobs of its fetch went back to wait, and Redis confirmed it), and until it
 * is done the worker fetches nothing. A job that arrives meanwhile goes
 * straight back to wait, no attempt spent, rather than sit here locked,
 * where a crash would count it too. So a poison job takes no other job with
 * it, and the jobs that were merely its neighbours in the first crash
 * complete instead of following it to failed.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/log.h"
#include "worker/internal.h"

/* ---- lists -------------------------------------------------------------- */

static void list_unlink(struct worker *w, struct wjob *j)
{
    struct wjob_list_head *h = &w->lists[j->list];

    if (j->prev)
        j->prev->next = j->next;
    else
        h->first = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        h->last = j->prev;
    j->prev = j->next = NULL;
    h->n--;
}

static void list_append(struct worker *w, struct wjob *j, enum wjob_list to)
{
    struct wjob_list_head *h = &w->lists[to];

    j->list = to;
    j->prev = h->last;
    j->next = NULL;
    if (h->last)
        h->last->next = j;
    else
        h->first = j;
    h->last = j;
    h->n++;
}

void nq_wjob_list_move(struct worker *w, struct wjob *j, enum wjob_list to)
{
    list_unlink(w, j);
    list_append(w, j, to);
}

static struct wjob *wjob_free(struct worker *w, struct wjob *j)
{
    list_unlink(w, j);
    nq_finish_done(&j->fin);
    nq_job_free(j->job);
    free(j);
    return NULL;
}

uint64_t nq_jobs_in_flight(const struct worker *w)
{
    return (uint64_t) w->lists[WJ_RUNNING].n + w->lists[WJ_PENDING].n + w->lists[WJ_SENDING].n;
}

void nq_jobs_free_all(struct worker *w)
{
    free(w->fins);
    w->fins = NULL;
    w->fins_cap = 0;
    for (int l = 0; l < WJ__LISTS; l++)
        while (w->lists[l].first) {
            struct wjob *j = w->lists[l].first;

            if (j->started)
                nq_handler_cancel(w->handler, &j->call);
            wjob_free(w, j);
        }
}

/* ---- outcomes ------------------------------------------------------------- */

/* The job's outcome is known: plan its finish and queue it for the next
 * work call. A plan that cannot be made (out of memory) leaves the job to
 * the stalled check: its lock expires and it runs again. */
static void settle(struct worker *w, struct wjob *j, const struct nq_outcome *o)
{
    int r = nq_finish_plan(j->job, o, w->q, drand48(), &j->fin);

    if (w->suspect == j)
        w->suspect = NULL;
    /* At global concurrency, this finish frees a slot: the call that
     * carries it fetches too, and takes the slot right after it. */
    if (w->maxed)
        w->fetch_ready = true;
    if (r < 0) {
        nq_log_errno(LOG_ERR, r,
                     "job %s: planning its finish: %m; the stalled check will "
                     "requeue it",
                     j->job->id);
        wjob_free(w, j);
        nq_worker_check_done(w);
        return;
    }
    nq_wjob_list_move(w, j, WJ_PENDING);
    nq_jobs_kick(w);
}

static void on_handler_done(struct nq_handler_call *call, const struct nq_outcome *o)
{
    struct wjob *j = call->userdata;
    struct worker *w = j->w;

    j->took_ms = nq_worker_mono_ms() - j->started_ms;
    nq_timing_add(&w->timing, j->took_ms);
    settle(w, j, o);
}

/* Fails j permanently without running it (logged once Redis has it). */
static void fail_unrun(struct worker *w, struct wjob *j, const char *reason)
{
    struct nq_outcome o = { .kind = NQ_OUTCOME_PERMANENT, .reason = reason };

    settle(w, j, &o);
}

static void run(struct worker *w, struct wjob *j)
{
    int r;

    j->started = true;
    j->call = (struct nq_handler_call){
        .job = j->job,
        .base = w->base,
        .done = on_handler_done,
        .userdata = j,
    };
    j->started_ms = nq_worker_mono_ms();
    nq_logbook_started(w, j);
    /* The handler may report from inside start(): j is in running already. */
    r = nq_handler_start(w->handler, &j->call);
    if (r < 0) {
        char why[128];
        struct nq_outcome o = { .kind = NQ_OUTCOME_RETRY, .reason = why };

        errno = -r;
        (void) snprintf(why, sizeof(why), "%s handler could not start: %m",
                        nq_handler_name(w->q->handler));
        settle(w, j, &o);
    }
}

/* The suspect starts once nothing else of this worker is locked in Redis. */
static void maybe_start_suspect(struct worker *w)
{
    struct wjob *j = w->suspect;

    if (!j || j->started || w->calls_in_flight || w->lists[WJ_RUNNING].n != 1 ||
        w->lists[WJ_PENDING].n || w->lists[WJ_SENDING].n)
        return;
    nq_log(LOG_NOTICE, "job %s was in flight in %u worker crash%s: running it alone", j->job->id,
           j->job->crashes, j->job->crashes == 1 ? "" : "es");
    run(w, j);
}

/* One crash away from failing as poison. Earlier crashes are not enough:
 * isolating every job a killed worker held would serialise them all. */
static bool is_suspect(const struct worker *w, const struct nq_job *job)
{
    return job->crashes > 0 && job->crashes + 1 >= w->q->max_crashes;
}

/* Whether j (in running, not started) runs now, waits to run alone, or
 * goes back to wait. */
static void run_or_return(struct worker *w, struct wjob *j)
{
    const struct nq_outcome back = { .kind = NQ_OUTCOME_RETURN };
    bool suspect = is_suspect(w, j->job);

    /* Past the drain deadline, a fetch that was in flight goes straight back. */
    if (w->returning || w->suspect || (suspect && w->lists[WJ_RUNNING].n > 1)) {
        settle(w, j, &back);
        return;
    }
    if (suspect) {
        w->suspect = j; /* started by on_work, after its whole fetch is seen */
        return;
    }
    run(w, j);
}

static void start_job(struct worker *w, struct nq_job *job)
{
    struct wjob *j = calloc(1, sizeof(*j));
    struct nq_err err = { "" };
    const char *reason;
    int r;

    w->counters.fetched++;
    if (!j) {
        nq_log(LOG_ERR, "job %s: out of memory; the stalled check will requeue it", job->id);
        nq_job_free(job);
        return;
    }
    j->w = w;
    j->job = job;
    list_append(w, j, WJ_RUNNING);
    if (job->rjk)
        nq_upkeep_scheduler_next(w, job);
    reason = nq_job_fail_unrun_reason_borrow(job);
    if (reason) {
        fail_unrun(w, j, reason);
        return;
    }
    r = nq_handler_validate(w->handler, job, &err);
    if (r == -EINVAL) {
        fail_unrun(w, j, nq_err_str(&err));
        return;
    }
    if (r < 0) {
        /* Not the job's fault (out of memory building its data tree): it
         * is retried like a job whose handler could not start. */
        struct nq_outcome o = { .kind = NQ_OUTCOME_RETRY, .reason = nq_err_str(&err) };

        nq_log_errno(LOG_ERR, r, "job %s: validating it: %m; retrying it", job->id);
        settle(w, j, &o);
        return;
    }
    run_or_return(w, j);
}

void nq_jobs_return_all(struct worker *w)
{
    const struct nq_outcome o = { .kind = NQ_OUTCOME_RETURN };
    uint32_t n = w->lists[WJ_RUNNING].n;

    if (n)
        nq_log(LOG_INFO, "returning %u job%s in flight to wait", n, n == 1 ? "" : "s");
    while (w->lists[WJ_RUNNING].first) {
        struct wjob *j = w->lists[WJ_RUNNING].first;

        if (j->started)
            nq_handler_cancel(w->handler, &j->call);
        settle(w, j, &o);
    }
}

/* ---- results of a work call ------------------------------------------------ */

static const char *finish_code_name(int code)
{
    switch (code) {
    case -1:
        return "the job is gone";
    case -2:
        return "its lock expired";
    case -3:
        return "it is not active";
    case -6:
        return "another worker holds its lock";
    default:
        return "refused";
    }
}

/* The provider's id of a delivered message: the returnvalue's messageId,
 * copied to buf; "" when it has none (noop). */
static const char *provider_id(const char *result, char *buf, size_t size)
{
    json_t *o;

    buf[0] = '\0';
    /* Most returnvalues have none: parse only those that may. */
    if (!result || !strstr(result, "\"messageId\""))
        return buf;
    o = json_loads(result, 0, NULL);
    if (json_is_string(json_object_get(o, "messageId")))
        (void) snprintf(buf, size, "%s", json_string_value(json_object_get(o, "messageId")));
    json_decref(o);
    return buf;
}

/* One line per finished attempt for the people reading the log: queue,
 * job, what happened, the provider's id, how long it took. The reason of a
 * failure is the job's failedReason (field names and addresses, never a
 * body or a secret: handler.h); the job's data is never logged. */
static void log_finish(const struct worker *w, const struct wjob *j)
{
    const struct nq_finish *f = &j->fin;
    const char *q = w->q->name, *id = j->job->id;
    unsigned long long ms = (unsigned long long) j->took_ms;
    uint32_t attempt = j->job->atm + 1;
    char pid[256];

    switch (f->kind) {
    case NQ_FINISH_COMPLETED:
        if (*provider_id(f->text, pid, sizeof(pid)))
            nq_log(LOG_INFO, "queue %s, job %s: delivered in %llu ms, provider id %s", q, id, ms,
                   pid);
        else
            nq_log(LOG_INFO, "queue %s, job %s: completed in %llu ms", q, id, ms);
        break;
    case NQ_FINISH_FAILED:
    case NQ_FINISH_FAILED_EARLY:
        if (!j->started)
            nq_log(LOG_INFO, "queue %s, job %s: failed without being run: %.400s", q, id, f->text);
        else
            nq_log(LOG_INFO,
                   "queue %s, job %s: failed for good on attempt %u after %llu ms: %.400s", q, id,
                   attempt, ms, f->text);
        break;
    case NQ_FINISH_RETRY_LATER:
    case NQ_FINISH_RETRY_NOW:
        nq_log(LOG_INFO,
               "queue %s, job %s: attempt %u failed after %llu ms, trying again in %.1f s: %.400s",
               q, id, attempt, ms, (double) f->delay_ms / 1000, f->text);
        break;
    case NQ_FINISH_RATE_LIMITED:
        nq_log(LOG_INFO,
               "queue %s, job %s: the provider asked to slow down, trying again in %.1f s", q, id,
               (double) f->delay_ms / 1000);
        break;
    case NQ_FINISH_RETURNED:
        break;
    }
}

static void count_finish(struct worker *w, struct wjob *j)
{
    log_finish(w, j);
    nq_logbook_finished(w, j);
    switch (j->fin.kind) {
    case NQ_FINISH_COMPLETED:
        w->counters.completed++;
        break;
    case NQ_FINISH_FAILED:
    case NQ_FINISH_FAILED_EARLY:
        w->counters.failed++;
        break;
    case NQ_FINISH_RETRY_LATER:
    case NQ_FINISH_RATE_LIMITED:
        w->counters.delayed++;
        w->counters.retried++;
        break;
    case NQ_FINISH_RETRY_NOW:
        w->counters.retried++;
        break;
    case NQ_FINISH_RETURNED:
        return; /* not a finish: it runs again */
    }
    w->finished++;
}

/* The finishes of call c that Redis answered, in the order it sent them:
 * each confirmed, found applied by an earlier call whose reply was lost,
 * failed for a key that no longer holds a job, or refused (a lock lost to
 * the stalled check or to another worker is not retried: the job belongs to
 * someone else now). */
static void settle_sent(struct worker *w, const struct wcall *c, const struct nq_work_result *res)
{
    size_t i = 0;
    struct wjob *j = w->lists[WJ_SENDING].first, *next;

    for (; j; j = next) {
        next = j->next;
        if (j->sent_in != c)
            continue;
        int code = i < res->n_codes ? res->codes[i] : -EPROTO;

        i++;
        if (code == 0) {
            count_finish(w, j);
        } else if (code == NQ_FINISH_CODE_APPLIED) {
            nq_log(LOG_INFO, "job %s: finish applied by a call whose reply was lost", j->job->id);
            count_finish(w, j);
        } else if (code == NQ_FINISH_CODE_FOREIGN) {
            nq_log(LOG_WARNING, "job %s: its key no longer held a job hash: failed", j->job->id);
            w->counters.failed++;
            w->finished++;
        } else if (!j->fin.resent || j->fin.kind != NQ_FINISH_RETURNED) {
            /* (A returned job sent again is back in wait, by the lost call
             * or the stalled check: not ours either way, and no finish.) */
            nq_log(LOG_WARNING, "job %s: finish refused (%d: %s), dropped", j->job->id, code,
                   finish_code_name(code));
        }
        wjob_free(w, j);
    }
}

static uint32_t count_sent(const struct worker *w, const struct wcall *c)
{
    uint32_t n = 0;

    for (const struct wjob *j = w->lists[WJ_SENDING].first; j; j = j->next)
        n += j->sent_in == c;
    return n;
}

/* The finishes of call c go back to the head of pending, in their order.
 * ran: Redis may have run the call (its reply was lost, or the script
 * failed half way): sent again, each is checked against what the job shows
 * before it is called refused. */
static void unsend(struct worker *w, const struct wcall *c, bool ran)
{
    struct wjob *j = w->lists[WJ_SENDING].last, *prev;
    struct wjob_list_head *p = &w->lists[WJ_PENDING];

    for (; j; j = prev) {
        prev = j->prev;
        if (j->sent_in != c)
            continue;
        list_unlink(w, j);
        j->list = WJ_PENDING;
        j->sent_in = NULL;
        j->fin.resent |= ran;
        j->next = p->first;
        if (p->first)
            p->first->prev = j;
        else
            p->last = j;
        p->first = j;
        p->n++;
    }
}

static void wake_after(struct worker *w, uint64_t ms)
{
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };

    w->waking = true;
    (void) evtimer_add(w->ev_wake, &tv);
}

static void fetch_status(struct worker *w, const struct nq_work_result *res, uint32_t asked)
{
    if (asked == 0)
        return;
    w->maxed = res->status == NQ_FETCH_MAXED;
    switch (res->status) {
    case NQ_FETCH_OK:
        /* Fewer than asked: the queue ran dry. The fetch left a "0" marker,
         * so the marker wait returns at once if more came meanwhile. */
        w->fetch_ready = res->n_jobs >= asked;
        break;
    case NQ_FETCH_EMPTY:
        w->fetch_ready = false;
        w->next_due_ms = res->value_ms;
        break;
    case NQ_FETCH_RATE_LIMITED:
        w->fetch_ready = false;
        wake_after(w, res->value_ms < NQ_WORKER_RATE_LIMIT_WAIT_MAX_MS
                          ? (res->value_ms ? res->value_ms : 1)
                          : NQ_WORKER_RATE_LIMIT_WAIT_MAX_MS);
        break;
    case NQ_FETCH_PAUSED:
    case NQ_FETCH_MAXED:
        w->fetch_ready = false;
        break;
    }
    w->deep = w->fetch_ready;
}

/* A failed call whose finishes' fate is unknown. A lost connection (or a
 * server busy loading its data, -EAGAIN): they go again once Redis answers.
 * A script error: sent again together they would fail together, so they go
 * one per call; one that keeps failing alone is dropped after
 * NQ_WORKER_FINISH_TRIES (its lock expires, the stalled check requeues
 * the job) rather than block every finish behind it. */
static void work_failed(struct worker *w, const struct wcall *c, int r)
{
    uint32_t n = count_sent(w, c);
    struct wjob *j = w->lists[WJ_SENDING].first;

    while (j && j->sent_in != c)
        j = j->next;
    if (r == -ECONNRESET) {
        unsend(w, c, true);
        if (c->fetch_asked)
            w->orphans = true;
        return;
    }
    if (r != -EAGAIN && n == 1 && j && ++j->send_failures >= NQ_WORKER_FINISH_TRIES) {
        nq_log_errno(LOG_ERR, r,
                     "job %s: finish failed %u times: %m; dropped, the stalled "
                     "check will requeue it",
                     j->job->id, j->send_failures);
        wjob_free(w, j);
    } else {
        if (r != -EAGAIN && n > 1)
            w->isolate = n;
        nq_log_errno(r == -EAGAIN ? LOG_INFO : LOG_ERR, r,
                     "work call failed: %m; retrying%s in %dms",
                     w->isolate ? " its finishes one by one" : "", NQ_WORKER_ERROR_BACKOFF_MS);
        unsend(w, c, r != -EAGAIN);
    }
    w->fetch_ready = false;
    wake_after(w, NQ_WORKER_ERROR_BACKOFF_MS);
}

static void on_work(void *userdata, int r, struct nq_work_result *res)
{
    struct wcall *c = userdata;
    struct worker *w = c->w;

    c->busy = false;
    w->calls_in_flight--;
    w->fetch_in_flight -= c->fetch_asked;
    if (r == -ECANCELED)
        return; /* the store is being freed */
    if (r < 0) {
        work_failed(w, c, r);
        nq_worker_check_done(w);
        return;
    }
    if (w->isolate && count_sent(w, c))
        w->isolate--;
    settle_sent(w, c, res);
    for (size_t i = 0; i < res->n_foreign; i++) {
        nq_log(LOG_WARNING, "queue %s, job %s: failed without being run: %s", w->q->name,
               res->foreign[2 * i], res->foreign[2 * i + 1]);
        w->counters.failed++;
    }
    nq_worker_check_recycle(w);
    for (size_t i = 0; i < res->n_jobs; i++) {
        struct nq_job *job = nq_work_result_take_job(res, i);

        if (job)
            start_job(w, job);
    }
    fetch_status(w, res, c->fetch_asked);
    maybe_start_suspect(w);
    nq_jobs_kick(w);
    nq_worker_check_done(w);
}

/* ---- the next call ---------------------------------------------------------- */

/* Slots neither running a job nor promised to a fetch in flight. */
static uint32_t free_slots(const struct worker *w)
{
    uint32_t busy = w->lists[WJ_RUNNING].n + w->fetch_in_flight;

    return busy < w->q->concurrency ? w->q->concurrency - busy : 0;
}

/* Half a window: the most one call fetches, and the least work for which a
 * second call goes out (see the top of this file). */
static uint32_t half_window(const struct worker *w)
{
    return (w->q->concurrency + 1) / 2;
}

static bool may_overlap(const struct worker *w)
{
    return w->deep && half_window(w) >= NQ_WORKER_OVERLAP_MIN && !w->isolate && !w->suspect &&
           !w->draining && !w->returning && !w->orphans;
}

static struct wcall *free_call(struct worker *w)
{
    for (int i = 0; i < NQ_WORKER_CALLS_MAX; i++)
        if (!w->calls[i].busy)
            return &w->calls[i];
    return NULL;
}

static bool may_fetch(const struct worker *w)
{
    return w->fetch_ready && !w->paused && !w->draining && !w->waking && !w->suspect &&
           !w->orphans && !nq_logbook_full(w);
}

static void on_marker(void *userdata, int r, double score);

static uint64_t marker_timeout_ms(const struct worker *w)
{
    uint64_t now = nq_store_now_ms();

    if (!w->next_due_ms)
        return NQ_WORKER_IDLE_WAIT_MS;
    if (w->next_due_ms <= now + 1)
        return 1;
    return w->next_due_ms - now < NQ_WORKER_DELAYED_WAIT_MAX_MS ? w->next_due_ms - now
                                                                : NQ_WORKER_DELAYED_WAIT_MAX_MS;
}

/* Nothing to fetch right now: block on the marker, unless a slot is not
 * free anyway, or the worker does not fetch (paused, draining, sleeping). */
static void wait_marker(struct worker *w)
{
    int r;

    if (w->fetch_ready || w->marker_waiting || w->paused || w->draining || w->waking ||
        w->suspect || w->orphans || !w->connected || free_slots(w) == 0)
        return;
    r = nq_store_wait_marker(w->store, marker_timeout_ms(w), on_marker, w);
    if (r == 0)
        w->marker_waiting = true;
    else if (r != -ENOTCONN)
        nq_log_errno(LOG_ERR, r, "waiting on the marker: %m");
}

static void on_marker(void *userdata, int r, double score)
{
    struct worker *w = userdata;

    w->marker_waiting = false;
    if (r == -ECANCELED)
        return;
    if (r < 0 && !w->connected)
        return; /* reconnecting: the worker fetches once it is back */
    if (r == 1 && score > 0 && score > (double) (nq_store_now_ms() + 1)) {
        /* Only a delayed job's due time: wait for it (§7). */
        w->next_due_ms = (uint64_t) score;
        wait_marker(w);
        return;
    }
    w->fetch_ready = true;
    w->next_due_ms = 0;
    nq_jobs_kick(w);
}

/* Room for n finishes (the store copies what it sends); NULL on OOM. */
static struct nq_finish *finish_buffer(struct worker *w, uint32_t n)
{
    struct nq_finish *f;

    if (n <= w->fins_cap && w->fins)
        return w->fins;
    f = reallocarray(w->fins, n ? n : 1, sizeof(*f));
    if (!f)
        return NULL;
    w->fins = f;
    w->fins_cap = n ? n : 1;
    return f;
}

/* Sends one work call if there is work for one; returns whether it did. */
static bool send_work(struct worker *w)
{
    struct wjob_list_head *p = &w->lists[WJ_PENDING];
    uint32_t n_fin = p->n < NQ_STORE_BATCH_MAX ? p->n : NQ_STORE_BATCH_MAX;
    uint32_t fetch = may_fetch(w) ? free_slots(w) : 0;
    bool overlap = may_overlap(w);
    struct wcall *c = free_call(w);
    struct nq_finish *fins;
    struct wjob *j;
    int r;

    if (!c || (w->calls_in_flight && !overlap))
        return false;
    /* cppcheck-suppress knownConditionTrueFalse ; cppcheck 2.10 takes p->n as 0 */
    if (w->isolate && n_fin > 1)
        n_fin = 1;
    if (overlap && fetch > half_window(w))
        fetch = half_window(w);
    if (fetch > NQ_STORE_BATCH_MAX)
        fetch = NQ_STORE_BATCH_MAX;
    /* cppcheck-suppress knownConditionTrueFalse ; as above */
    if (n_fin == 0 && fetch == 0)
        return false;
    if (w->calls_in_flight && n_fin + fetch < half_window(w))
        return false;
    fins = finish_buffer(w, n_fin);
    if (!fins) {
        nq_log(LOG_ERR, "work call: out of memory, retrying in %dms", NQ_WORKER_ERROR_BACKOFF_MS);
        wake_after(w, NQ_WORKER_ERROR_BACKOFF_MS);
        return false;
    }
    j = p->first;
    for (uint32_t i = 0; i < n_fin; i++, j = j->next) {
        fins[i] = j->fin;
        fins[i].job = j->job;
    }
    r = nq_store_work(w->store, fins, n_fin, fetch, on_work, c);
    if (r < 0) {
        if (r != -ENOTCONN)
            nq_log_errno(LOG_ERR, r, "work call: %m, retrying in %dms", NQ_WORKER_ERROR_BACKOFF_MS);
        if (r != -ENOTCONN)
            wake_after(w, NQ_WORKER_ERROR_BACKOFF_MS);
        return false;
    }
    *c = (struct wcall){ .w = w, .busy = true, .fetch_asked = fetch };
    w->calls_in_flight++;
    w->fetch_in_flight += fetch;
    while (n_fin--) {
        j = p->first;
        j->sent_in = c;
        nq_wjob_list_move(w, j, WJ_SENDING);
    }
    return true;
}

void nq_jobs_on_work_event(struct worker *w)
{
    if (!w->connected)
        return;
    while (send_work(w))
        ;
    if (w->calls_in_flight)
        return;
    nq_upkeep_reclaim(w);
    wait_marker(w);
}

void nq_jobs_kick(struct worker *w)
{
    event_active(w->ev_kick, EV_TIMEOUT, 0);
}

void nq_jobs_connected(struct worker *w, bool up)
{
    w->connected = up;
    if (!up)
        return;
    /* Whatever happened meanwhile, look at the queue again. */
    w->fetch_ready = true;
    nq_jobs_kick(w);
}

void nq_jobs_wake(struct worker *w)
{
    w->waking = false;
    w->fetch_ready = true;
    nq_jobs_kick(w);
}
