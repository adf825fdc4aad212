/* SPDX-License-Identifier: MIT */
/*
 * notifyqctl notification QUEUE ID: one job's delivery history, read from
 * the delivery log in PostgreSQL (postgres.dsn of the configuration), not
 * from Redis: status, attempts, provider ids, each event in order and each
 * attempt's outcome. --json prints the row as the database has it.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>

#include "ctl/internal.h"
#include "deliverylog/deliverylog.h"

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "-";
}

static void print_history(const json_t *h)
{
    const json_t *e;
    size_t i;

    printf("%s job %s: %s after %lld attempt%s\n", str(h, "queue"), str(h, "job_id"),
           str(h, "status"), (long long) json_integer_value(json_object_get(h, "attempts")),
           json_integer_value(json_object_get(h, "attempts")) == 1 ? "" : "s");
    printf("channel %s, tenant %s, user %s, recipient %s, template %s\n", str(h, "channel"),
           str(h, "tenant_id"), str(h, "user_id"), str(h, "recipient"), str(h, "template"));
    printf("provider %s, message id %s\n", str(h, "provider"), str(h, "provider_message_id"));
    if (json_is_string(json_object_get(h, "last_error")))
        printf("last error: %s\n", str(h, "last_error"));
    printf("\n%-32s %-7s %-9s %s\n", "AT", "ATTEMPT", "STATUS", "ERROR");
    json_array_foreach (json_object_get(h, "events"), i, e) {
        printf("%-32s %-7lld %-9s %s\n", str(e, "at"),
               (long long) json_integer_value(json_object_get(e, "attempt")), str(e, "status"),
               json_is_string(json_object_get(e, "error")) ? str(e, "error") : "");
    }
    printf("\n%-7s %-32s %-10s %-11s %s\n", "ATTEMPT", "STARTED", "MS", "OUTCOME", "MESSAGE ID");
    json_array_foreach (json_object_get(h, "delivery_attempts"), i, e) {
        printf("%-7lld %-32s %-10lld %-11s %s\n",
               (long long) json_integer_value(json_object_get(e, "attempt")), str(e, "started_at"),
               (long long) json_integer_value(json_object_get(e, "duration_ms")), str(e, "outcome"),
               str(e, "provider_message_id"));
    }
}

int ctl_notification(struct ctl *c, char *const *args, int n_args)
{
    struct nq_err err = { "" };
    json_t *h = NULL;
    int r;

    (void) n_args;
    if (!c->qcfg || !c->cfg->postgres.dsn) {
        ctl_error("%s", !c->qcfg ? "the delivery log knows queues by their name in the "
                                   "configuration, not --bullmq-queue"
                                 : "postgres.dsn is not set: there is no delivery log");
        return CTL_EXIT_USAGE;
    }
    r = nq_deliverylog_history(&c->cfg->postgres, c->queue, args[0], &h, &err);
    if (r < 0) {
        ctl_error("%s", nq_err_str(&err));
        return r == -ENOENT ? CTL_EXIT_REFUSED : CTL_EXIT_UNREACHABLE;
    }
    if (c->json)
        return ctl_print_reply(h);
    print_history(h);
    json_decref(h);
    return CTL_EXIT_OK;
}
