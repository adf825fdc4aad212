/* SPDX-License-Identifier: MIT */
/* The job codec on any hash: the input is field, value, field, value...
 * separated by NUL bytes, as an HGETALL reply would hand them over. Decoding
 * never crashes; a job is either valid or says why not; data the checker
 * passed parses in jansson; decoding with an equal previous job (the fetch's
 * shortcut) gives the same verdict and options; every getter the worker calls
 * on a decoded job works on it, and failing it (the stack trace written back
 * with its reason) works whatever bytes the hash held. */
#include "config.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "queue/job.h"
#include "queue/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sets every field of the input on job; 0 or -ENOMEM. */
static int set_fields(struct nq_job *job, const char *in, size_t size)
{
    const char *end = in + size, *name = NULL;
    size_t name_len = 0;

    while (in <= end) {
        const char *nul = memchr(in, '\0', (size_t) (end - in));
        size_t len = nul ? (size_t) (nul - in) : (size_t) (end - in);

        if (!name) {
            name = in;
            name_len = len;
        } else {
            if (nq_job_set_field(job, name, name_len, in, len) < 0)
                return -1;
            name = NULL;
        }
        if (!nul)
            break;
        in = nul + 1;
    }
    return 0;
}

static struct nq_job *decoded(const char *in, size_t size, const struct nq_job *prev)
{
    struct nq_job *job = nq_job_new("1", 1);

    if (!job)
        return NULL;
    if (set_fields(job, in, size) < 0 || nq_job_decode_like(job, prev) < 0)
        return nq_job_free(job);
    return job;
}

static void use(struct nq_job *job)
{
    static const struct nq_backoff_cfg backoff = { .delay_ms = 1000, .max_ms = 3600000 };
    static const struct nq_keep_cfg keep = { .keep_all = true };
    struct nq_backoff b;
    struct nq_keep k;
    char buf[128];

    const char *why = nq_job_invalid_reason_borrow(job);
    if (why && (!why[0] || !memchr(job->invalid, '\0', sizeof(job->invalid))))
        abort();
    if (job->data_valid && job->data_raw && !nq_job_data_borrow(job))
        abort(); /* checked data must parse (no OOM under the fuzzer's limits) */
    if (nq_job_attempts(job, 3) < 1)
        abort();
    nq_job_backoff(job, &backoff, &b);
    for (int failed = 0; failed < 2; failed++) {
        nq_job_keep(job, failed, &keep, &k);
        if (nq_keep_format(&k, buf, sizeof(buf)) < 0)
            abort();
    }
    /* A job that may not run is failed with this reason, in its stack trace. */
    const char *fail = nq_job_fail_unrun_reason_borrow(job);
    char *trace = nq_job_stacktrace_append_new(job, fail ? fail : "Error: fuzz");
    if (!trace)
        abort();
    json_t *t = json_loads(trace, 0, NULL);
    if (!json_is_array(t))
        abort(); /* what we write back into the hash is a JSON array */
    json_decref(t);
    free(trace);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *) data;
    struct nq_job *first = decoded(in, size, NULL);

    if (!first)
        return 0;
    struct nq_job *second = decoded(in, size, first);
    if (second) {
        const char *a = nq_job_invalid_reason_borrow(first);
        const char *b = nq_job_invalid_reason_borrow(second);
        if (!a != !b || (a && strcmp(a, b) != 0))
            abort();
        if (nq_job_attempts(first, 3) != nq_job_attempts(second, 3) ||
            first->opts.priority != second->opts.priority ||
            first->opts.delay_ms != second->opts.delay_ms ||
            first->opts.remove_on_fail.kind != second->opts.remove_on_fail.kind)
            abort();
        use(second);
        nq_job_free(second);
    }
    use(first);
    nq_job_free(first);
    return 0;
}
