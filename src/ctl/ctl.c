/* SPDX-License-Identifier: MIT */
/*
 * The queue commands' table, option parsing, configuration and queue
 * lookup, the Redis connection and the exit status of failures; the
 * commands themselves are in send.c and jobs.c. See ctl.h.
 *
 * Each command parses its own words with getopt_long, so options may come
 * before or after its arguments, as with notifyqctl's daemon commands; one
 * option table serves all, and a command refuses the options it has no use
 * for instead of ignoring them.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/duration.h"
#include "config/config.h"
#include "ctl/internal.h"

static const struct ctl_cmd commands[] = {
    { "send",
      "QUEUE --data JSON|@FILE [--name NAME] [--priority N] [--delay D] [--attempts N]\n"
      "       [--backoff fixed:D|exponential:D[:JITTER]] [--job-id ID]",
      CTL_OPT_DATA | CTL_OPT_NAME | CTL_OPT_PRIORITY | CTL_OPT_DELAY | CTL_OPT_ATTEMPTS |
          CTL_OPT_BACKOFF | CTL_OPT_JOB_ID,
      0, 0, ctl_send, "add a job, as BullMQ's Queue.add; prints its id" },
    { "job show", "QUEUE ID", 0, 1, 1, ctl_job_show, "a job's state, data, options and result" },
    { "job remove", "QUEUE ID", 0, 1, 1, ctl_job_remove, "delete a job that is not active" },
    { "job retry", "QUEUE ID", 0, 1, 1, ctl_job_retry, "move a failed job back to wait" },
    { "job promote", "QUEUE ID", 0, 1, 1, ctl_job_promote, "run a delayed job now" },
    { "failed list", "QUEUE [--limit N] [--offset N]", CTL_OPT_LIMIT | CTL_OPT_OFFSET, 0, 0,
      ctl_failed_list, "failed jobs, newest first" },
    { "failed retry", "QUEUE ID | QUEUE --all", CTL_OPT_ALL, 0, 1, ctl_failed_retry,
      "move one or every failed job back to wait" },
    { "failed purge", "QUEUE [--grace D]", CTL_OPT_GRACE, 0, 0, ctl_failed_purge,
      "delete failed jobs (older than D)" },
    { "clean", "QUEUE --state completed|failed|delayed|prioritized|wait --grace D [--limit N]",
      CTL_OPT_STATE | CTL_OPT_GRACE | CTL_OPT_LIMIT, 0, 0, ctl_clean,
      "delete jobs of a state older than D" },
    { "counts", "QUEUE", 0, 0, 0, ctl_counts, "jobs per state, and whether paused" },
    { "notification", "QUEUE ID", 0, 1, 1, ctl_notification,
      "a job's delivery history, from the delivery log (PostgreSQL)" },
};

void ctl_error(const char *fmt, ...)
{
    va_list ap;

    (void) fflush(stdout);
    fputs("notifyqctl: ", stderr);
    va_start(ap, fmt);
    (void) vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int ctl_oom(void)
{
    ctl_error("out of memory");
    return CTL_EXIT_UNREACHABLE;
}

/* ---- options ---------------------------------------------------------------- */

enum {
    OPT_JSON = 0x100,
    OPT_BULLMQ,
    OPT_DATA,
    OPT_NAME,
    OPT_PRIORITY,
    OPT_DELAY,
    OPT_ATTEMPTS,
    OPT_BACKOFF,
    OPT_JOB_ID,
    OPT_LIMIT,
    OPT_OFFSET,
    OPT_GRACE,
    OPT_STATE,
    OPT_ALL,
};

static const struct option options[] = {
    { "config", required_argument, NULL, 'c' },
    { "socket", required_argument, NULL, 's' },
    { "json", no_argument, NULL, OPT_JSON },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "bullmq-queue", required_argument, NULL, OPT_BULLMQ },
    { "data", required_argument, NULL, OPT_DATA },
    { "name", required_argument, NULL, OPT_NAME },
    { "priority", required_argument, NULL, OPT_PRIORITY },
    { "delay", required_argument, NULL, OPT_DELAY },
    { "attempts", required_argument, NULL, OPT_ATTEMPTS },
    { "backoff", required_argument, NULL, OPT_BACKOFF },
    { "job-id", required_argument, NULL, OPT_JOB_ID },
    { "limit", required_argument, NULL, OPT_LIMIT },
    { "offset", required_argument, NULL, OPT_OFFSET },
    { "grace", required_argument, NULL, OPT_GRACE },
    { "state", required_argument, NULL, OPT_STATE },
    { "all", no_argument, NULL, OPT_ALL },
    { 0 },
};

/* The CTL_OPT_* bit of a command-specific option; 0 for the common ones. */
static unsigned option_bit(int opt)
{
    return opt >= OPT_DATA && opt <= OPT_ALL ? 1u << (opt - OPT_DATA) : 0;
}

static void print_usage(FILE *f, const struct ctl_cmd *cmd)
{
    fprintf(f, "Usage: notifyqctl %s %s\n", cmd->name, cmd->usage);
}

static int usage_error(const struct ctl_cmd *cmd, const char *fmt, ...) NQ_PRINTF(2, 3);
static int usage_error(const struct ctl_cmd *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctl_error("%s: %s", cmd->name, msg);
    (void) fflush(stdout);
    print_usage(stderr, cmd);
    return CTL_EXIT_USAGE;
}

/* A decimal integer 0..max, nothing else (no sign, no spaces, no suffix). */
static int parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
    uint64_t v = 0;

    if (!*s)
        return -EINVAL;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char) *p))
            return -EINVAL;
        if (v > (max - (uint64_t) (*p - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t) (*p - '0');
    }
    *ret = v;
    return 0;
}

static int option_uint(const struct ctl_cmd *cmd, const char *name, const char *arg, uint64_t min,
                       uint64_t max, uint64_t *ret)
{
    if (parse_uint(arg, max, ret) < 0 || *ret < min)
        return usage_error(cmd, "--%s: must be an integer %" PRIu64 "..%" PRIu64 ", not '%s'", name,
                           min, max, arg);
    return 0;
}

static int option_duration(const struct ctl_cmd *cmd, const char *name, const char *arg,
                           uint64_t *ret)
{
    if (nq_duration_parse(arg, ret) < 0)
        return usage_error(cmd, "--%s: not a duration: '%s' (examples: 500ms, 30s, 5m, 2h, 7d)",
                           name, arg);
    return 0;
}

static int send_option(struct ctl *c, int opt, const char *arg)
{
    uint64_t v;
    int r = 0;

    switch (opt) {
    case OPT_DATA:
        c->data_arg = arg;
        break;
    case OPT_NAME:
        c->job_name = arg;
        break;
    case OPT_PRIORITY:
        if ((r = option_uint(c->cmd, "priority", arg, 0, NQ_JOB_PRIORITY_MAX, &v)) == 0)
            c->add.priority = (uint32_t) v;
        break;
    case OPT_DELAY:
        r = option_duration(c->cmd, "delay", arg, &c->add.delay_ms);
        break;
    case OPT_ATTEMPTS:
        if ((r = option_uint(c->cmd, "attempts", arg, 1, INT32_MAX, &v)) == 0)
            c->add.attempts = (uint32_t) v;
        break;
    case OPT_BACKOFF:
        if (ctl_parse_backoff(arg, &c->add.backoff) < 0)
            return usage_error(c->cmd,
                               "--backoff: expected fixed:D or exponential:D[:JITTER] (D a "
                               "duration, JITTER 0..1), not '%s'",
                               arg);
        c->add.has_backoff = true;
        break;
    case OPT_JOB_ID:
        c->add.job_id = arg;
        break;
    }
    return r;
}

static int admin_option(struct ctl *c, int opt, const char *arg)
{
    switch (opt) {
    case OPT_LIMIT:
        c->has_limit = true;
        return option_uint(c->cmd, "limit", arg, 1, UINT32_MAX, &c->limit);
    case OPT_OFFSET:
        return option_uint(c->cmd, "offset", arg, 0, UINT32_MAX, &c->offset);
    case OPT_GRACE:
        c->has_grace = true;
        return option_duration(c->cmd, "grace", arg, &c->grace_ms);
    case OPT_STATE:
        c->state = arg;
        return 0;
    case OPT_ALL:
        c->all = true;
        return 0;
    }
    return send_option(c, opt, arg);
}

/* Returns 1 to go on, or an exit status (-h prints the usage: 0). */
static int common_option(struct ctl *c, int opt, const char *arg)
{
    switch (opt) {
    case 'c':
        c->config_path = arg;
        return 1;
    case 's':
        return usage_error(c->cmd, "-s names notifyqd's socket, but this command talks to "
                                   "Redis, whose address is in the configuration: use -c FILE");
    case OPT_JSON:
        c->json = true;
        return 1;
    case 'v':
        return 1;
    case 'h':
        print_usage(stdout, c->cmd);
        printf("%s.\nQUEUE is a queue of the configuration (-c FILE, default %s);\n"
               "--bullmq-queue NAME names a BullMQ queue instead. See notifyqctl(1).\n",
               c->cmd->help, NQ_DEFAULT_CONFIG_PATH);
        return CTL_EXIT_OK;
    case OPT_BULLMQ:
        c->bullmq_arg = arg;
        return 1;
    }
    return 1;
}

/* Parses argv (argv[0] is the command's name) into c; *ret_first is the
 * index of the first word that is not an option. Returns 1 to go on, or an
 * exit status. */
static int parse_options(struct ctl *c, int argc, char **argv, int *ret_first)
{
    int opt, r, idx = -1;

    opterr = 0;
    optind = 0; /* a new vector: getopt starts over */
    while ((opt = getopt_long(argc, argv, ":c:s:vh", options, &idx)) >= 0) {
        unsigned bit = option_bit(opt);

        if (opt == '?' || opt == ':') {
            const char *word = argv[optind - 1];
            return usage_error(
                c->cmd, opt == '?' ? "unknown option '%s'" : "option '%s' needs a value", word);
        }
        if (bit && !(c->cmd->options & bit))
            /* Options of commands are long only: idx is set. */
            return usage_error(c->cmd, "option '--%s' does not apply", options[idx].name);
        if (bit) {
            if ((r = admin_option(c, opt, optarg)) != 0)
                return r;
        } else if ((r = common_option(c, opt, optarg)) != 1) {
            return r;
        }
    }
    *ret_first = optind;
    return 1;
}

/* ---- configuration, queue, connection -------------------------------------- */

static int list_queues(const struct nq_config *cfg, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n_queues; i++) {
        int n = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", cfg->queues[i].name);
        if (n < 0 || (size_t) n >= size - len)
            return -ENOBUFS;
        len += (size_t) n;
    }
    return 0;
}

static int resolve_bullmq(struct ctl *c)
{
    const char *name = c->bullmq_arg;

    if (!*name || strchr(name, ':'))
        return usage_error(c->cmd,
                           "--bullmq-queue: '%s' is not a BullMQ queue name "
                           "(non-empty, without ':')",
                           name);
    c->queue = c->bullmq = name;
    for (size_t i = 0; i < c->cfg->n_queues; i++)
        if (strcmp(c->cfg->queues[i].bullmq_queue, name) == 0) {
            c->qcfg = &c->cfg->queues[i];
            c->queue = c->qcfg->name;
        }
    return 1;
}

/* Loads the configuration and finds the queue. Returns 1 or an exit status. */
static int resolve_queue(struct ctl *c, const char *name)
{
    const char *path = c->config_path ? c->config_path : NQ_DEFAULT_CONFIG_PATH;
    struct nq_err err = { 0 };
    char names[1024];
    int r;

    r = nq_config_load(path, NULL, 0, &c->cfg, &err);
    if (r < 0) {
        ctl_error("%s", nq_err_str(&err));
        ctl_error("the Redis address comes from the configuration: fix it or pass -c FILE");
        return CTL_EXIT_UNREACHABLE;
    }
    if (c->bullmq_arg)
        return resolve_bullmq(c);
    c->qcfg = nq_config_queue(c->cfg, name);
    if (!c->qcfg) {
        if (list_queues(c->cfg, names, sizeof(names)) < 0)
            strcpy(names, "(too many to list)");
        ctl_error("unknown queue '%s'; %s has: %s", name, path, names);
        ctl_error("for a BullMQ queue outside the configuration, use --bullmq-queue NAME");
        return CTL_EXIT_USAGE;
    }
    c->queue = c->qcfg->name;
    c->bullmq = c->qcfg->bullmq_queue;
    return 1;
}

static int format_where(struct ctl *c)
{
    const struct nq_redis_cfg *rc = &c->cfg->redis;
    int n;

    if (rc->sentinel.master_name)
        n = asprintf(&c->where, "sentinel %s", rc->sentinel.master_name);
    else if (rc->socket)
        n = asprintf(&c->where, "unix:%s", rc->socket);
    else
        n = asprintf(&c->where, "%s:%u", rc->host ? rc->host : "127.0.0.1",
                     rc->port ? rc->port : 6379u);
    if (n < 0) {
        c->where = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* "connection refused" for ECONNREFUSED: strerror, as a sentence goes on. */
static const char *errno_phrase(int r, char *buf, size_t size)
{
    if (r == -EAGAIN || r == -ETIMEDOUT)
        return "timed out";
    (void) snprintf(buf, size, "%s", strerror(-r));
    buf[0] = (char) tolower((unsigned char) buf[0]);
    return buf;
}

static bool is_connection_error(int r)
{
    switch (-r) {
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ETIMEDOUT:
    case EAGAIN:
    case ENOTCONN:
    case EHOSTUNREACH:
    case ENETUNREACH:
        return true;
    }
    return false;
}

int ctl_fail(const struct ctl *c, int r, const struct nq_err *err)
{
    char phrase[128];

    if (r == -ENOMEM)
        return ctl_oom();
    if (is_connection_error(r)) {
        ctl_error("redis %s: %s", c->where, errno_phrase(r, phrase, sizeof(phrase)));
        return CTL_EXIT_UNREACHABLE;
    }
    ctl_error("%s", *nq_err_str(err) ? nq_err_str(err) : strerror(-r));
    return CTL_EXIT_REFUSED;
}

/* Every failure to connect is "unreachable", whatever errno says: ENOENT is
 * a missing socket here, not a missing job. */
static int connect_redis(struct ctl *c)
{
    struct nq_err err = { 0 };
    char phrase[128];
    int r;

    if (format_where(c) < 0)
        return ctl_oom();
    r = nq_admin_connect(&c->cfg->redis, c->bullmq, &c->admin, &err);
    if (r == -ENOMEM)
        return ctl_oom();
    if (r == -EACCES || r == -EINVAL || r == -EIO || r == -EPROTO || r == -EHOSTUNREACH ||
        r == -EBUSY)
        ctl_error("%s", nq_err_str(&err));
    else if (r < 0)
        ctl_error("redis %s: %s", c->where, errno_phrase(r, phrase, sizeof(phrase)));
    return r < 0 ? CTL_EXIT_UNREACHABLE : 0;
}

json_t *ctl_reply_new(const struct ctl *c)
{
    return json_pack("{s:o, s:o}", "queue", ctl_json_str(c->queue), "bullmq_queue",
                     ctl_json_str(c->bullmq));
}

int ctl_print_reply(json_t *reply)
{
    if (!reply)
        return ctl_oom();
    (void) json_dumpf(reply, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(reply);
    return CTL_EXIT_OK;
}

/* ---- running a command -------------------------------------------------------- */

static void ctl_done(struct ctl *c)
{
    c->admin = nq_admin_free(c->admin);
    c->cfg = nq_config_free(c->cfg);
    free(c->where);
    c->where = NULL;
}

/* Runs cmd on words[1..n) (words[0] is its name; getopt permutes words). */
static int run_command(const struct nq_ctl_env *env, const struct ctl_cmd *cmd, int n, char **words)
{
    struct ctl c = { .env = env, .cmd = cmd, .json = env->json, .config_path = env->config_path };
    int first = 0, n_args, r;
    char *const *args;

    if (env->socket_given)
        return usage_error(cmd, "-s names notifyqd's socket, but this command talks to Redis, "
                                "whose address is in the configuration: use -c FILE");
    r = parse_options(&c, n, words, &first);
    if (r != 1)
        return r;
    args = words + first;
    n_args = n - first;
    if (!c.bullmq_arg) {
        if (n_args == 0)
            return usage_error(cmd, "QUEUE is missing");
        args++;
        n_args--;
    }
    if (n_args < cmd->min_args || n_args > cmd->max_args)
        return usage_error(cmd,
                           n_args < cmd->min_args ? "too few arguments" : "too many arguments");
    r = resolve_queue(&c, c.bullmq_arg ? NULL : words[first]);
    if (r == 1) {
        /* hiredis writes with write(2): a Redis closing on us must be an
         * error to report, not a silent death (STYLE.md pitfall 9). */
        (void) signal(SIGPIPE, SIG_IGN);
        r = cmd->run(&c, args, n_args);
    }
    ctl_done(&c);
    return r;
}

int ctl_connect(struct ctl *c)
{
    return c->admin ? 0 : connect_redis(c);
}

static const struct ctl_cmd *find_command(const char *name, const char *sub)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < NQ_ELEMENTSOF(commands); i++) {
        const char *n = commands[i].name;

        if (strncmp(n, name, len) != 0)
            continue;
        if (n[len] == '\0' && !sub)
            return &commands[i];
        if (n[len] == ' ' && sub && strcmp(n + len + 1, sub) == 0)
            return &commands[i];
    }
    return NULL;
}

/* "job" and "failed" take a sub-command first. */
static bool has_subcommands(const char *name)
{
    return !find_command(name, NULL);
}

static int group_usage(const char *name, const char *sub)
{
    size_t len = strlen(name);
    bool help = sub && (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0);
    FILE *f = help ? stdout : stderr;

    if (!help)
        ctl_error(sub ? "%s: unknown sub-command '%s'" : "%s: sub-command missing", name, sub);
    for (size_t i = 0; i < NQ_ELEMENTSOF(commands); i++)
        if (strncmp(commands[i].name, name, len) == 0 && commands[i].name[len] == ' ')
            fprintf(f, "  notifyqctl %s %s\n", commands[i].name, commands[i].usage);
    return help ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

int nq_ctl_run(const struct nq_ctl_env *env, const char *name, char *const *args)
{
    const struct ctl_cmd *cmd;
    size_t n = 0;

    if (has_subcommands(name)) {
        cmd = args[0] ? find_command(name, args[0]) : NULL;
        if (!cmd)
            return group_usage(name, args[0]);
        args++;
    } else {
        cmd = find_command(name, NULL);
    }
    while (args[n])
        n++;
    /* getopt permutes its vector: a copy, with the name as its argv[0]. */
    nq_autofree char **words = calloc(n + 2, sizeof(*words));
    if (!words)
        return ctl_oom();
    words[0] = (char *) cmd->name;
    memcpy(words + 1, args, n * sizeof(*words));
    return run_command(env, cmd, (int) n + 1, words);
}

/* ---- pause and resume ------------------------------------------------------------ */

static int print_pause(const struct ctl *c, bool pause, bool changed, json_t *daemon)
{
    const char *state = pause ? "paused" : "ok";

    if (!c->json) {
        json_decref(daemon);
        printf("%s: %s%s\n", c->queue, state, changed ? "" : " (it already was)");
        return CTL_EXIT_OK;
    }
    json_t *reply = ctl_reply_new(c);
    if (!reply || json_object_set_new(reply, "state", json_string(state)) < 0 ||
        json_object_set_new(reply, "changed", json_boolean(changed)) < 0 ||
        json_object_set_new(reply, "daemon", daemon ? daemon : json_null()) < 0) {
        json_decref(reply);
        return ctl_oom();
    }
    return ctl_print_reply(reply);
}

/* Redis is the truth every worker and BullMQ reader follows; the daemon is
 * told so that its status says so at once. A daemon that is not running is
 * no failure: its workers read the pause from Redis when they start. */
static int pause_and_tell(struct ctl *c, const char *queue, bool pause)
{
    const char *done = pause ? "paused" : "resumed";
    struct nq_err err = { 0 };
    json_t *daemon = NULL;
    int r, changed;

    (void) signal(SIGPIPE, SIG_IGN);
    if ((r = ctl_connect(c)) != 0)
        return r;
    changed = nq_admin_pause(c->admin, pause, &err);
    if (changed < 0)
        return ctl_fail(c, changed, &err);
    r = c->env->daemon_call(pause ? "pause" : "resume", queue, &daemon);
    if (r == CTL_EXIT_UNREACHABLE) {
        ctl_error("note: BullMQ queue %s is %s in Redis all the same; notifyqd's workers "
                  "follow it",
                  c->bullmq, done);
        r = CTL_EXIT_OK;
    } else if (r != CTL_EXIT_OK) {
        ctl_error("note: BullMQ queue %s is %s in Redis all the same", c->bullmq, done);
    }
    int printed = print_pause(c, pause, changed == 1, daemon);
    return r != CTL_EXIT_OK ? r : printed;
}

int nq_ctl_pause(const struct nq_ctl_env *env, const char *queue, bool pause)
{
    static const struct ctl_cmd cmds[] = {
        { "resume", "QUEUE", 0, 0, 0, NULL, "resume a queue" },
        { "pause", "QUEUE", 0, 0, 0, NULL, "pause a queue" },
    };
    struct ctl c = {
        .env = env, .cmd = &cmds[pause], .json = env->json, .config_path = env->config_path
    };
    int r;

    r = resolve_queue(&c, queue);
    if (r == 1)
        r = pause_and_tell(&c, queue, pause);
    ctl_done(&c);
    return r;
}
