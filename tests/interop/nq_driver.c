/* SPDX-License-Identifier: MIT */
/*
 * A small test program over the queue store, for the interop tests: it adds
 * jobs with the sync API and processes them with the async one, as a worker
 * would, with the noop handler's rules (data {"fail":"retryable"} or
 * {"fail":"permanent"} fails that way, {"fail":"ratelimit","retry_after":ms}
 * is rate limited, anything else completes with {"ok":true}; "sleep_ms"
 * first keeps the job running that long).
 *
 *   nq_driver -s SOCK [-p PREFIX] -q QUEUE add NAME DATA [PRIORITY DELAY ATTEMPTS JOBID]
 *   nq_driver -s SOCK -q QUEUE process COUNT [-c CONCURRENCY] [-t TIMEOUT_MS]
 *             [-a ATTEMPTS] [-b BACKOFF_MS] [-m BACKOFF_MAX_MS]
 *             [-i STALLED_INTERVAL_MS] [-n NAME]
 *   (options before the command; the queue's settings are the defaults of
 *   notifyq's config loader, which -a, -b and -m change as the queue's
 *   attempts, backoff.delay and backoff.max would)
 *   nq_driver -s SOCK -q QUEUE ADMIN ARGS...   the sync admin API, one call:
 *             counts | job ID | remove ID | retry ID | retry-all STATE |
 *             promote ID | clean STATE GRACE_MS LIMIT | purge STATE | pause |
 *             resume | list STATE START COUNT | progress ID JSON
 *             (prints the result; on error the message, exit 1)
 *
 * process prints one line per finish, "<id> <C|F|P|D|W|L|R> <code>", and exits
 * 0 once COUNT jobs have ended (completed or failed), 3 on timeout.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "queue/admin.h"
#include "queue/store.h"

#define MAX_CONC 256

struct driver {
    struct event_base *base;
    struct nq_store *store;
    struct nq_queue_cfg q;
    uint32_t concurrency, target, ended, in_flight;
    struct nq_finish pending[MAX_CONC];
    size_t n_pending;
    bool calling, waiting;
    struct event *retry, *stalled;
    uint64_t stalled_interval_ms;
    int exit_code;
};

static void kick(struct driver *d);

static void outcome_of(struct nq_job *job, struct nq_outcome *o)
{
    json_t *data = nq_job_data_borrow(job);
    const char *fail = json_string_value(json_object_get(data, "fail"));

    *o = (struct nq_outcome){ .kind = NQ_OUTCOME_OK, .result_json = "{\"ok\":true}" };
    if (!fail)
        return;
    if (strcmp(fail, "retryable") == 0)
        *o = (struct nq_outcome){ .kind = NQ_OUTCOME_RETRY, .reason = "noop: retryable failure" };
    else if (strcmp(fail, "permanent") == 0)
        *o = (struct nq_outcome){ .kind = NQ_OUTCOME_PERMANENT,
                                  .reason = "noop: permanent failure" };
    else if (strcmp(fail, "ratelimit") == 0)
        *o = (struct nq_outcome){
            .kind = NQ_OUTCOME_RATE_LIMITED,
            .retry_after_ms = (uint64_t) json_integer_value(json_object_get(data, "retry_after")),
        };
}

static void settle(struct driver *d, struct nq_job *job)
{
    struct nq_outcome o;
    const char *unrun = nq_job_fail_unrun_reason_borrow(job);

    if (unrun)
        o = (struct nq_outcome){ .kind = NQ_OUTCOME_PERMANENT, .reason = unrun };
    else
        outcome_of(job, &o);
    if (nq_finish_plan(job, &o, &d->q, (double) rand() / ((double) RAND_MAX + 1.0),
                       &d->pending[d->n_pending]) < 0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    d->n_pending++;
}

struct sleeper {
    struct driver *d;
    struct nq_job *job;
};

static void on_slept(evutil_socket_t fd, short what, void *arg)
{
    struct sleeper *z = arg;
    struct driver *d = z->d;

    (void) fd, (void) what;
    d->in_flight--;
    settle(d, z->job);
    free(z);
    kick(d);
}

/* Runs job: at once, or after its data's sleep_ms. */
static void handle(struct driver *d, struct nq_job *job)
{
    json_int_t ms = json_integer_value(json_object_get(nq_job_data_borrow(job), "sleep_ms"));
    struct sleeper *z;

    if (ms <= 0) {
        settle(d, job);
        return;
    }
    z = malloc(sizeof(*z));
    if (!z) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    *z = (struct sleeper){ d, job };
    d->in_flight++;
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };
    if (event_base_once(d->base, -1, EV_TIMEOUT, on_slept, z, &tv) < 0) {
        fprintf(stderr, "event_base_once failed\n");
        exit(1);
    }
}

static void free_sent(struct driver *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        nq_job_free((struct nq_job *) d->pending[i].job);
        nq_finish_done(&d->pending[i]);
    }
    d->n_pending = 0;
}

static void on_marker(void *userdata, int r, double score)
{
    struct driver *d = userdata;

    (void) score;
    d->waiting = false;
    if (r < 0 && r != -ECANCELED)
        fprintf(stderr, "marker: %s\n", strerror(-r));
    kick(d);
}

static void wait_for_work(struct driver *d, uint64_t ms)
{
    if (d->waiting || d->in_flight || d->n_pending)
        return;
    if (nq_store_wait_marker(d->store, ms, on_marker, d) == 0)
        d->waiting = true;
}

static void on_scheduled(void *userdata, int r, char **ids, size_t n)
{
    (void) userdata, (void) ids, (void) n;
    if (r < 0)
        fprintf(stderr, "scheduler: %s\n", strerror(-r));
}

static void on_work(void *userdata, int r, struct nq_work_result *res)
{
    struct driver *d = userdata;
    struct timeval tv = { 0, 100000 };

    d->calling = false;
    if (r < 0) {
        fprintf(stderr, "work: %s\n", strerror(-r));
        evtimer_add(d->retry, &tv);
        return;
    }
    for (size_t i = 0; i < res->n_codes; i++)
        printf("code %d\n", res->codes[i]);
    for (size_t i = 0; i < res->n_jobs; i++) {
        struct nq_job *job = nq_work_result_take_job(res, i);
        if (job->rjk && nq_store_scheduler_next(d->store, job, 0, on_scheduled, d) < 0)
            fprintf(stderr, "scheduler: not sent\n");
        handle(d, job);
    }
    if (res->status == NQ_FETCH_RATE_LIMITED) {
        tv = (struct timeval){ (time_t) (res->value_ms / 1000),
                               (suseconds_t) (res->value_ms % 1000) * 1000 };
        evtimer_add(d->retry, &tv);
        return;
    }
    if (res->n_jobs == 0 && d->n_pending == 0) {
        uint64_t ms = 5000, now = nq_store_now_ms();
        if (res->status == NQ_FETCH_EMPTY && res->value_ms > now && res->value_ms - now < ms)
            ms = res->value_ms - now;
        wait_for_work(d, ms);
        return;
    }
    kick(d);
}

static void submit(struct driver *d)
{
    size_t n = d->n_pending;
    uint32_t room = d->target > d->ended ? d->concurrency - d->in_flight : 0;

    for (size_t i = 0; i < n; i++) {
        const struct nq_finish *f = &d->pending[i];
        printf("%s %c\n", f->job->id, (char) f->kind);
        if (f->kind == NQ_FINISH_COMPLETED || f->kind == NQ_FINISH_FAILED ||
            f->kind == NQ_FINISH_FAILED_EARLY)
            d->ended++;
    }
    fflush(stdout);
    if (d->ended >= d->target)
        room = 0;
    if (n == 0 && room == 0) {
        if (!d->in_flight)
            event_base_loopbreak(d->base);
        return;
    }
    int r = nq_store_work(d->store, d->pending, n, room, on_work, d);
    if (r < 0) {
        fprintf(stderr, "work not sent: %s\n", strerror(-r));
        return; /* finishes stay pending; sent again on reconnect */
    }
    free_sent(d, n);
    d->calling = true;
}

static void kick(struct driver *d)
{
    if (d->calling || d->waiting || !nq_store_connected(d->store))
        return;
    if (d->ended >= d->target && d->n_pending == 0) {
        event_base_loopbreak(d->base);
        return;
    }
    submit(d);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void) fd, (void) what;
    kick(arg);
}

static void on_stalled_done(void *userdata, int r, char **ids, size_t n)
{
    (void) userdata;
    for (size_t i = 0; r > 0 && i < n; i++)
        printf("stalled %s\n", ids[i]);
}

static void on_stalled_timer(evutil_socket_t fd, short what, void *arg)
{
    struct driver *d = arg;

    (void) fd, (void) what;
    if (nq_store_connected(d->store))
        (void) !nq_store_stalled_check(d->store, d->stalled_interval_ms, d->q.max_stalled,
                                       on_stalled_done, d);
}

static void on_state(void *userdata, bool up)
{
    if (up)
        kick(userdata);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct driver *d = arg;

    (void) fd, (void) what;
    fprintf(stderr, "timeout: %u of %u jobs ended\n", d->ended, d->target);
    d->exit_code = 3;
    event_base_loopbreak(d->base);
}

static int process(struct nq_redis_cfg *redis, const char *queue, struct driver *d,
                   const char *name, uint64_t timeout_ms)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "nqdrv-%ld:", (long) getpid());
    struct nq_store_opts o = { .redis = redis,
                               .queue = queue,
                               .worker_name = name,
                               .token_prefix = prefix,
                               .lock_duration_ms = 30000 };
    d->base = event_base_new();
    d->store = nq_store_new(d->base, &o, on_state, d);
    if (!d->base || !d->store)
        return 1;
    d->retry = evtimer_new(d->base, on_retry, d);
    struct event *timeout = evtimer_new(d->base, on_timeout, d);
    struct timeval tv = { (time_t) (timeout_ms / 1000), (suseconds_t) (timeout_ms % 1000) * 1000 };
    evtimer_add(timeout, &tv);
    if (d->stalled_interval_ms) {
        d->stalled = event_new(d->base, -1, EV_PERSIST, on_stalled_timer, d);
        struct timeval iv = { (time_t) (d->stalled_interval_ms / 1000),
                              (suseconds_t) (d->stalled_interval_ms % 1000) * 1000 };
        evtimer_add(d->stalled, &iv);
    }
    event_base_dispatch(d->base);
    free_sent(d, d->n_pending);
    nq_store_free(d->store);
    event_free(timeout);
    event_free(d->retry);
    if (d->stalled)
        event_free(d->stalled);
    event_base_free(d->base);
    return d->exit_code;
}

static int add(struct nq_redis_cfg *redis, const char *queue, int argc, char **argv)
{
    struct nq_admin *a = NULL;
    struct nq_err err = { 0 };
    struct nq_add_opts o = { 0 };
    enum nq_add_status st;
    char *id = NULL;

    if (argc < 2)
        return 2;
    if (argc > 2)
        o.priority = (uint32_t) strtoul(argv[2], NULL, 10);
    if (argc > 3)
        o.delay_ms = strtoull(argv[3], NULL, 10);
    if (argc > 4)
        o.attempts = (uint32_t) strtoul(argv[4], NULL, 10);
    if (argc > 5 && *argv[5])
        o.job_id = argv[5];
    int r = nq_admin_connect(redis, queue, &a, &err);
    if (r >= 0)
        r = nq_admin_add(a, argv[0], argv[1], &o, &id, &st, &err);
    if (r < 0) {
        printf("error %d %s\n", -r, nq_err_str(&err));
        nq_admin_free(a);
        return 1;
    }
    printf("%s %s\n", id,
           st == NQ_ADD_ADDED        ? "added"
           : st == NQ_ADD_DUPLICATED ? "duplicated"
                                     : "deduplicated");
    free(id);
    nq_admin_free(a);
    return 0;
}

static int print_job(struct nq_admin *a, const char *id, struct nq_err *err)
{
    struct nq_job *job = NULL;
    char *state = NULL;
    int r = nq_admin_job(a, id, &job, &state, err);

    if (r < 0)
        return r;
    printf("%s %s %s atm=%u ats=%u data=%s\n", job->id, state, job->name ? job->name : "", job->atm,
           job->ats, job->data_raw ? job->data_raw : "");
    free(state);
    nq_job_free(job);
    return 0;
}

static int print_list(struct nq_admin *a, char **argv, struct nq_err *err)
{
    char **ids = NULL;
    size_t n = 0;
    int r = nq_admin_list(a, argv[0], strtoull(argv[1], NULL, 10), strtoull(argv[2], NULL, 10),
                          &ids, &n, err);

    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        printf("%s\n", ids[i]);
    nq_strv_free(ids);
    return 0;
}

static int admin_call(struct nq_admin *a, const char *cmd, int argc, char **argv,
                      struct nq_err *err)
{
    struct nq_counts c;
    uint64_t n = 0;
    int r = -EINVAL;

#define IS(name, nargs) (strcmp(cmd, name) == 0 && argc == (nargs))
    /* cppcheck-suppress redundantInitialization ; the last else reads r's first value */
    if (IS("counts", 0) && (r = nq_admin_counts(a, &c, err)) == 0)
        printf("waiting=%" PRIu64 " active=%" PRIu64 " prioritized=%" PRIu64 " delayed=%" PRIu64
               " completed=%" PRIu64 " failed=%" PRIu64 " paused=%d\n",
               c.waiting, c.active, c.prioritized, c.delayed, c.completed, c.failed, c.paused);
    else if (IS("job", 1))
        r = print_job(a, argv[0], err);
    else if (IS("remove", 1))
        r = nq_admin_remove(a, argv[0], err);
    else if (IS("retry", 1))
        r = nq_admin_retry(a, argv[0], err);
    else if (IS("retry-all", 1) && (r = nq_admin_retry_all(a, argv[0], &n, err)) == 0)
        /* NOLINTNEXTLINE(bugprone-branch-clone): each command prints its count */
        printf("%" PRIu64 "\n", n);
    else if (IS("promote", 1))
        r = nq_admin_promote(a, argv[0], err);
    else if (IS("clean", 3) &&
             (r = nq_admin_clean(a, argv[0], strtoull(argv[1], NULL, 10),
                                 (uint32_t) strtoul(argv[2], NULL, 10), &n, err)) == 0)
        printf("%" PRIu64 "\n", n);
    else if (IS("purge", 1) && (r = nq_admin_purge(a, argv[0], &n, err)) == 0)
        printf("%" PRIu64 "\n", n);
    else if (IS("pause", 0) || IS("resume", 0)) {
        if ((r = nq_admin_pause(a, strcmp(cmd, "pause") == 0, err)) >= 0)
            printf("%d\n", r);
    } else if (IS("list", 3))
        r = print_list(a, argv, err);
    else if (IS("progress", 2))
        r = nq_admin_progress(a, argv[0], argv[1], err);
    else if (r == -EINVAL && !nq_err_str(err)[0])
        nq_err_set(err, -EINVAL, "usage: unknown admin command or arguments");
#undef IS
    return r;
}

static int admin(struct nq_redis_cfg *redis, const char *queue, int argc, char **argv)
{
    struct nq_admin *a = NULL;
    struct nq_err err = { 0 };
    int r = nq_admin_connect(redis, queue, &a, &err);

    if (r >= 0)
        r = admin_call(a, argv[0], argc - 1, argv + 1, &err);
    nq_admin_free(a);
    if (r < 0) {
        printf("error %d %s\n", -r, nq_err_str(&err));
        return 1;
    }
    return 0;
}

/* The settings of a queue whose config sets nothing but its handler. */
static struct nq_config *queue_defaults(struct nq_queue_cfg *ret)
{
    struct nq_config *cfg = NULL;
    struct nq_err err = { 0 };

    if (nq_config_parse_string("nq_driver", "queues:\n  q:\n    handler: noop\n", NULL, 0, &cfg,
                               &err) < 0) {
        fprintf(stderr, "queue defaults: %s\n", nq_err_str(&err));
        exit(2);
    }
    *ret = cfg->queues[0];
    return cfg;
}

static int run(int argc, char **argv, struct driver *d)
{
    struct nq_redis_cfg redis = { .prefix = "bull" };
    const char *queue = NULL, *name = NULL;
    uint64_t timeout_ms = 20000;
    int c;

    nq_log_init("nq_driver");
    signal(SIGPIPE, SIG_IGN); /* hiredis writes with write(2): a dead server must not kill us */
    while ((c = getopt(argc, argv, "+s:p:q:c:t:a:b:m:i:n:")) != -1) {
        switch (c) {
        case 's':
            redis.socket = optarg;
            break;
        case 'p':
            redis.prefix = optarg;
            break;
        case 'q':
            queue = optarg;
            break;
        case 'c':
            d->concurrency = (uint32_t) atoi(optarg);
            break;
        case 't':
            timeout_ms = strtoull(optarg, NULL, 10);
            break;
        case 'a':
            d->q.attempts = (uint32_t) atoi(optarg);
            break;
        case 'b':
            d->q.backoff.delay_ms = strtoull(optarg, NULL, 10);
            break;
        case 'm':
            d->q.backoff.max_ms = strtoull(optarg, NULL, 10);
            break;
        case 'i':
            d->stalled_interval_ms = strtoull(optarg, NULL, 10);
            break;
        case 'n':
            name = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!redis.socket || !queue || optind >= argc || d->concurrency < 1 ||
        d->concurrency > MAX_CONC)
        return 2;
    if (strcmp(argv[optind], "add") == 0)
        return add(&redis, queue, argc - optind - 1, argv + optind + 1);
    if (strcmp(argv[optind], "process") == 0 && optind + 1 < argc) {
        d->target = (uint32_t) atoi(argv[optind + 1]);
        srand((unsigned) getpid());
        return process(&redis, queue, d, name, timeout_ms);
    }
    return admin(&redis, queue, argc - optind, argv + optind);
}

int main(int argc, char **argv)
{
    struct driver d = { .concurrency = 1 };
    struct nq_config *cfg = queue_defaults(&d.q);
    int r = run(argc, argv, &d);

    nq_config_free(cfg);
    return r;
}
