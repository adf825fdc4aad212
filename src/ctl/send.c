/* SPDX-License-Identifier: MIT */
/*
 * notifyqctl send: adds one job as BullMQ's Queue.add does (same hash
 * fields, opts encoding, events and marker, through nq_admin_add), so a
 * BullMQ Worker processes it as well as ours. The data is checked before
 * Redis is touched: at most CTL_DATA_MAX bytes, valid JSON (any value, as
 * JSON.stringify allows), and it is stored as given, so numbers keep the
 * digits the operator wrote.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/duration.h"
#include "ctl/internal.h"

NQ_DEFINE_CLEANUP(FILE *, fclose)

/* "fixed:1s", "exponential:2s", "exponential:2s:0.25"; a bare duration is
 * fixed, as a numeric backoff is in BullMQ. */
int ctl_parse_backoff(const char *spec, struct nq_backoff *ret)
{
    struct nq_backoff b = { .kind = NQ_BACKOFF_KIND_FIXED };
    nq_autofree char *copy = strdup(spec);
    char *delay, *jitter, *end;

    if (!copy)
        return -ENOMEM;
    delay = strchr(copy, ':');
    if (delay) {
        *delay++ = '\0';
        if (strcmp(copy, "exponential") == 0)
            b.kind = NQ_BACKOFF_KIND_EXPONENTIAL;
        else if (strcmp(copy, "fixed") != 0)
            return -EINVAL;
    } else {
        delay = copy;
    }
    jitter = strchr(delay, ':');
    if (jitter) {
        *jitter++ = '\0';
        errno = 0;
        b.jitter = strtod(jitter, &end);
        if (errno || end == jitter || *end || !(b.jitter >= 0 && b.jitter <= 1))
            return -EINVAL;
    }
    if (nq_duration_parse(delay, &b.delay_ms) < 0 || b.delay_ms > INT64_MAX)
        return -EINVAL;
    *ret = b;
    return 0;
}

/* Reads at most CTL_DATA_MAX + 1 bytes of path ("-": standard input), so
 * the size check below sees an oversized file without reading all of it. */
static int read_data_file(const char *path, char **ret_text, size_t *ret_len)
{
    NQ_CLEANUP(fclosep) FILE *opened = NULL;
    FILE *f = stdin;
    nq_autofree char *buf = malloc(CTL_DATA_MAX + 2);
    size_t len = 0, n;

    if (!buf)
        return -ENOMEM;
    if (strcmp(path, "-") != 0) {
        opened = fopen(path, "re");
        if (!opened)
            return -errno;
        f = opened;
    }
    while (len <= CTL_DATA_MAX && (n = fread(buf + len, 1, CTL_DATA_MAX + 1 - len, f)) > 0)
        len += n;
    if (ferror(f))
        return -EIO;
    buf[len] = '\0';
    *ret_text = NQ_TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

/* The --data argument as checked JSON text. Returns 1, or an exit status
 * after saying what is wrong and where. */
static int load_data(const char *arg, char **ret_text)
{
    const char *source = arg[0] == '@' ? (arg[1] ? arg + 1 : "") : "--data";
    nq_autofree char *text = NULL;
    json_error_t jerr;
    size_t len = 0;
    json_t *probe;
    int r;

    if (arg[0] == '@') {
        r = read_data_file(source, &text, &len);
        if (r == -ENOMEM)
            return ctl_oom();
        if (r < 0) {
            ctl_error("--data @%s: %s", source, strerror(-r));
            return CTL_EXIT_USAGE;
        }
        if (strcmp(source, "-") == 0)
            source = "<stdin>";
    } else {
        len = strlen(arg);
        if (!(text = strdup(arg)))
            return ctl_oom();
    }
    if (len > CTL_DATA_MAX) {
        ctl_error("%s: job data is limited to %u bytes (1 MiB); keep large content elsewhere "
                  "and send its key",
                  source, CTL_DATA_MAX);
        return CTL_EXIT_USAGE;
    }
    probe = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (!probe) {
        ctl_error("%s:%d:%d: invalid JSON: %s", source, jerr.line, jerr.column, jerr.text);
        return CTL_EXIT_USAGE;
    }
    json_decref(probe);
    *ret_text = NQ_TAKE_PTR(text);
    return 1;
}

static const char *status_name(enum nq_add_status st)
{
    switch (st) {
    case NQ_ADD_DUPLICATED:
        return "duplicated";
    case NQ_ADD_DEDUPLICATED:
        return "deduplicated";
    default:
        return "added";
    }
}

static int print_sent(const struct ctl *c, const char *id, enum nq_add_status st)
{
    if (!c->json) {
        puts(id);
        if (st != NQ_ADD_ADDED)
            ctl_error("note: job %s already exists in %s; nothing was added", id, c->queue);
        return CTL_EXIT_OK;
    }
    json_t *reply = ctl_reply_new(c);
    if (reply && (json_object_set_new(reply, "id", ctl_json_str(id)) < 0 ||
                  json_object_set_new(reply, "status", json_string(status_name(st))) < 0))
        reply = (json_decref(reply), NULL);
    return ctl_print_reply(reply);
}

int ctl_send(struct ctl *c, char *const *args, int n_args)
{
    nq_autofree char *data = NULL;
    nq_autofree char *opts = NULL;
    nq_autofree char *id = NULL;
    struct nq_err err = { 0 };
    enum nq_add_status st;
    int r;

    (void) args;
    (void) n_args;
    if (!c->data_arg) {
        ctl_error("send: --data JSON or --data @FILE is required (--data '{}' for none)");
        return CTL_EXIT_USAGE;
    }
    if ((r = load_data(c->data_arg, &data)) != 1)
        return r;
    /* The same checks nq_admin_add makes, before any connection. */
    r = nq_add_opts_json_new(&c->add, &opts, &err);
    if (r == -ENOMEM)
        return ctl_oom();
    if (r < 0) {
        ctl_error("send: %s", nq_err_str(&err));
        return CTL_EXIT_USAGE;
    }
    if (c->job_name && strlen(c->job_name) > NQ_JOB_FIELD_MAX) {
        ctl_error("send: --name is longer than %u bytes", NQ_JOB_FIELD_MAX);
        return CTL_EXIT_USAGE;
    }
    if ((r = ctl_connect(c)) != 0)
        return r;
    r = nq_admin_add(c->admin, c->job_name ? c->job_name : c->queue, data, &c->add, &id, &st, &err);
    if (r < 0)
        return ctl_fail(c, r, &err);
    return print_sent(c, id, st);
}
