/* SPDX-License-Identifier: MIT */
/*
 * Cron "next time" exactly as bullmq 6.7.0 computes it with its dependency
 * cron-parser 5.10.3 (and luxon 3.7.2 for time zones), to the millisecond, so
 * that a job scheduler with a `pattern` keeps the same iteration ids
 * (`repeat:<id>:<millis>`, BULLMQ-LAYOUT.md §11) whichever worker, Node or
 * ours, fetched the previous iteration. Run by worker processes; no I/O
 * except reading one TZif file per call.
 *
 * Patterns: 5 fields (seconds = 0) or 6 (seconds first); fewer fields are
 * right-aligned as cron-parser does ("5" = every minute on Fridays). Lists,
 * ranges, steps, `*` and `?`, JAN..DEC and SUN..SAT, @yearly and friends,
 * `L` in day of month (last day), `dL` in day of week (last such weekday),
 * `d#n` (n-th weekday), day of month OR day of week when both are restricted.
 * Not supported: `H` (cron-parser draws it at random per parse without a
 * hash seed, which bullmq never passes, so no two computations agree) and `W`
 * (cron-parser rejects it too).
 *
 * Time zones: tz as bullmq's `repeat.tz`: an IANA name in any letter case
 * (read from Debian's tzdata, /usr/share/zoneinfo), ICU's legacy three-letter
 * ids (PST, IST, ...), "UTC"/"GMT", "UTC+5", "UTC-03:30". tz NULL (or
 * "local", "system", "default") is the process's own zone, as for a Node
 * worker: $TZ if set, else /etc/localtime; a daemon with TZ unset on a UTC
 * server computes in UTC. DST gaps and overlaps follow cron-parser's rules
 * (a time in a spring-forward gap runs at the landing hour; the repeated
 * fall-back hour is skipped when the hour field is restricted).
 *
 * See: cron.c for the rules and what is deliberately not reproduced.
 */
#ifndef NQ_QUEUE_CRON_H
#define NQ_QUEUE_CRON_H

#include <stdint.h>

#include "common/cleanup.h"
#include "common/macros.h"

struct nq_cron;
struct nq_err;

/* Parses a cron pattern. -EINVAL with err naming the pattern and the field
 * when cron-parser would throw (or for `H`); -ENOMEM. */
int nq_cron_parse(const char *pattern, struct nq_cron **ret, struct nq_err *err) NQ_MUSTCHECK;

/* Frees c (NULL is fine); returns NULL. */
struct nq_cron *nq_cron_free(struct nq_cron *c);
NQ_DEFINE_CLEANUP(struct nq_cron *, nq_cron_free)

/* The first time strictly after after_ms (whole seconds) that c matches in
 * zone tz: cron-parser's parse(pattern, { currentDate: after_ms, tz }).next().
 * -EINVAL unknown tz or instant out of range (err names it); -ENOENT no match
 * within cron-parser's search bound (e.g. "0 0 30 2 1#5": it throws, bullmq
 * then schedules nothing); -ENOMEM. */
int nq_cron_next(const struct nq_cron *c, const char *tz, uint64_t after_ms, uint64_t *ret_ms,
                 struct nq_err *err) NQ_MUSTCHECK;

/* What a bullmq worker computes for a `pattern` scheduler when it fetches an
 * iteration (JobScheduler.upsertJobScheduler + defaultRepeatStrategy): from
 * max(prev_millis, now), floored at start_date, bounded by end_date. All
 * from the fetched job's opts (`prevMillis`, `repeat.{pattern,tz,startDate,
 * endDate}`). */
struct nq_cron_sched {
    const char *pattern;
    const char *tz;        /* NULL: the process's zone */
    int64_t start_date_ms; /* 0 = none */
    int64_t end_date_ms;   /* 0 = none */
    uint64_t prev_millis;  /* 0 = none */
};

/* 0 and *ret_ms = the next iteration's millis; -ENOENT when bullmq adds no
 * next iteration (end date passed, no match); -EINVAL bad pattern or tz (a
 * Node worker emits an error then); -ENOMEM. */
int nq_cron_scheduler_next(const struct nq_cron_sched *s, uint64_t now_ms, uint64_t *ret_ms,
                           struct nq_err *err) NQ_MUSTCHECK;

#endif
