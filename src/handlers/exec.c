/* SPDX-License-Identifier: MIT */
/*
 * The exec handler: runs the queue's command (exec.argv, no shell) once per
 * job, the local twin of the webhook handler, as Postfix's pipe(8) is to its
 * SMTP client.
 *
 * The child: posix_spawn()ed in a process group of its own (so a timeout can
 * kill whatever it started), every signal at its default and none blocked
 * (the worker ignores SIGPIPE, SIGINT and SIGHUP), no fd but its three pipes,
 * in exec.cwd (default /), with exactly the environment of exec.env plus
 * PATH=EXEC_DEFAULT_PATH unless exec.env gives PATH.
 *
 * Its stdin is the job as one line of JSON, {id, name, data, opts,
 * attemptsMade}, data and opts as BullMQ stored them; written without
 * blocking the worker's loop, so a child that never reads it (or closes it:
 * EPIPE) holds up nothing. Its stdout, up to EXEC_STDOUT_MAX bytes, becomes
 * the returnvalue: the JSON value it holds if it parses as one, else a
 * string (trailing newlines dropped, invalid UTF-8 replaced by U+FFFD);
 * empty is null. Longer output is cut: the returnvalue is then {"stdout":
 * the kept text, "truncated": true, "stdoutBytes": bytes written}. Its
 * stderr is read too (a full pipe would block the child), the first
 * EXEC_STDERR_KEEP bytes kept, and an excerpt of them goes into a failure's
 * reason, never into the log: it may quote the message.
 *
 * Outcome, once the child has exited (output written by its own children
 * after that is not waited for):
 *   exit 0                 completed
 *   exit 75 (EX_TEMPFAIL)  retried
 *   other exit status      failed permanently
 *   killed by a signal     retried (a crash or the OOM killer: may be transient)
 *   exec.timeout passed    its process group gets SIGTERM, EXEC_KILL_GRACE_MS
 *                          later SIGKILL; retried
 *   spawn failed           retried (argv[0] was there at config load)
 *
 * Reaping: a pidfd per child (Linux 5.3), watched by the loop, so SIGCHLD
 * stays at its default and the worker's signal events are untouched; where
 * pidfd_open fails (older kernels, seccomp, valgrind) a SIGCHLD event on the
 * loop instead. A call the worker cancels (drain deadline, fast stop) has its
 * process group killed at once; the child stays listed until it is reaped.
 * At the handler's end, children still unreaped are killed and left to
 * whoever inherits them (init reaps zombies).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/duration.h"
#include "handlers/handler.h"

#define EXEC_STDOUT_MAX (1u << 20)
#define EXEC_STDERR_KEEP 1024u
#define EXEC_REASON_STDERR 200u /* bytes of stderr a reason quotes */
#define EXEC_KILL_GRACE_MS 2000
#define EXEC_READ_CHUNK 65536u
/* After the child exits, what is left in a pipe is read up to this much: a
 * grandchild still writing must not keep the call alive. */
#define EXEC_DRAIN_MAX (4u << 20)
#define EXEC_DEFAULT_PATH "PATH=/usr/local/bin:/usr/bin:/bin"
#define EXEC_TEMPFAIL 75

struct exec_run;

struct exec {
    const struct nq_exec_cfg *cfg;
    char **envp;           /* cfg's strings (borrowed) and maybe PATH, NULL-ended */
    struct exec_run *runs; /* every child not reaped yet, cancelled ones too */
    struct event *ev_chld; /* SIGCHLD, where pidfds are not to be had */
};

/* What a pipe brought: the first max bytes, and how many there were. */
struct exec_buf {
    char *data;
    size_t len, cap, max;
    uint64_t total;
};

struct exec_run {
    struct exec *x;
    struct nq_handler_call *call; /* NULL once cancelled */
    pid_t pid;
    int pidfd, in_fd, out_fd, err_fd;
    struct event *ev_exit, *ev_in, *ev_out, *ev_err, *ev_timer;
    char *in;
    size_t in_len, in_off;
    struct exec_buf out, err;
    bool timed_out;
    struct exec_run *next; /* on x->runs */
};

/* ---- text ----------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xE0) == 0xC0 ? 2
                 : (s[0] & 0xF0) == 0xE0 ? 3
                 : (s[0] & 0xF8) == 0xF0 ? 4
                                         : 0;
    uint32_t v;

    if (len == 0 || len > n)
        return 0;
    if (len == 1)
        return 1;
    v = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
        v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return len;
}

static bool utf8_valid(const char *s)
{
    size_t n = strlen(s), k;

    for (const unsigned char *p = (const unsigned char *) s; n; p += k, n -= k)
        if (!(k = utf8_seq(p, n)))
            return false;
    return true;
}

/* s as a JSON string: invalid UTF-8 bytes become U+FFFD. NULL on OOM. */
static json_t *json_text_new(const char *s, size_t n)
{
    char *clean = malloc(n * 3 + 1), *o = clean;
    const unsigned char *p = (const unsigned char *) s;
    json_t *j;

    if (!clean)
        return NULL;
    while (n) {
        size_t k = utf8_seq(p, n);

        if (k) {
            memcpy(o, p, k);
            o += k;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            k = 1;
        }
        p += k, n -= k;
    }
    j = json_stringn(clean, (size_t) (o - clean));
    free(clean);
    return j;
}

/* ---- the job on stdin ---------------------------------------------------- */

/* {"id":..,"name":..,"data":..,"opts":..,"attemptsMade":N}\n, with data and
 * opts spliced in as stored (the worker ran only jobs whose both are valid
 * JSON), so the tree of data is never built. NULL on OOM. */
static char *stdin_new(const struct nq_job *job, size_t *ret_len)
{
    json_t *id = json_string(job->id), *name = json_string(job->name ? job->name : "");
    char *id_s = id ? json_dumps(id, JSON_ENCODE_ANY) : NULL;
    char *name_s = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
    const char *data = job->data_raw ? job->data_raw : "null";
    const char *opts = job->opts_raw ? job->opts_raw : "{}";
    size_t size = (id_s ? strlen(id_s) : 0) + (name_s ? strlen(name_s) : 0) + strlen(data) +
                  strlen(opts) + 80;
    char *buf = id_s && name_s ? malloc(size) : NULL;
    int n = buf ? snprintf(buf, size,
                           "{\"id\":%s,\"name\":%s,\"data\":%s,\"opts\":%s,"
                           "\"attemptsMade\":%u}\n",
                           id_s, name_s, data, opts, job->atm)
                : -1;

    json_decref(id);
    json_decref(name);
    free(id_s);
    free(name_s);
    if (n < 0 || (size_t) n >= size) {
        free(buf);
        return NULL;
    }
    *ret_len = (size_t) n;
    return buf;
}

/* ---- pipes ---------------------------------------------------------------- */

/* Reads once from fd into b; returns false at EOF or on an error. */
static bool buf_read(int fd, struct exec_buf *b)
{
    char scratch[EXEC_READ_CHUNK];
    char *to = scratch;
    size_t room = sizeof(scratch);
    ssize_t n;

    if (b->len < b->max) {
        if (b->cap - b->len < EXEC_READ_CHUNK && b->cap < b->max) {
            size_t cap = b->cap ? b->cap * 2 : EXEC_READ_CHUNK;
            char *d = realloc(b->data, cap < b->max ? cap : b->max);

            if (d) {
                b->data = d;
                b->cap = cap < b->max ? cap : b->max;
            }
        }
        if (b->cap > b->len) {
            to = b->data + b->len;
            room = b->cap - b->len;
        }
    }
    /* Past max (or out of memory growing) the bytes are only counted: the
     * child must not block on a full pipe. */
    n = read(fd, to, room);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR;
    if (n == 0)
        return false;
    if (to != scratch)
        b->len += (size_t) n;
    b->total += (uint64_t) n;
    return true;
}

static void close_stream(struct event **ev, int *fd)
{
    if (*ev) {
        event_free(*ev);
        *ev = NULL;
    }
    if (*fd >= 0) {
        (void) close(*fd);
        *fd = -1;
    }
}

static void on_stdout(evutil_socket_t fd, short what, void *arg)
{
    struct exec_run *run = arg;

    (void) what;
    if (!buf_read(fd, &run->out))
        close_stream(&run->ev_out, &run->out_fd);
}

static void on_stderr(evutil_socket_t fd, short what, void *arg)
{
    struct exec_run *run = arg;

    (void) what;
    if (!buf_read(fd, &run->err))
        close_stream(&run->ev_err, &run->err_fd);
}

static void on_stdin(evutil_socket_t fd, short what, void *arg)
{
    struct exec_run *run = arg;
    ssize_t n = write(fd, run->in + run->in_off, run->in_len - run->in_off);

    (void) what;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0)
        run->in_off += (size_t) n;
    /* EPIPE (the worker ignores SIGPIPE, supervisor/child.h): the child
     * closed its stdin; what it does without it is its call. */
    if (n < 0 || run->in_off == run->in_len) {
        close_stream(&run->ev_in, &run->in_fd);
        free(run->in);
        run->in = NULL;
    }
}

/* What is left in a pipe after the child exited, up to EXEC_DRAIN_MAX. */
static void drain(int fd, struct exec_buf *b)
{
    uint64_t stop = b->total + EXEC_DRAIN_MAX;

    if (fd < 0)
        return;
    while (b->total < stop) {
        uint64_t before = b->total;

        if (!buf_read(fd, b) || b->total == before)
            break;
    }
}

/* ---- the run's life ------------------------------------------------------- */

static void kill_group(const struct exec_run *run, int sig)
{
    /* Only while the child is unreaped: its pid, and so its group id, cannot
     * have been reused. The child itself too, should it have left its group
     * (setsid); what it took along is out of reach. */
    (void) kill(-run->pid, sig);
    (void) kill(run->pid, sig);
}

static struct exec_run *run_free(struct exec_run *run)
{
    close_stream(&run->ev_in, &run->in_fd);
    close_stream(&run->ev_out, &run->out_fd);
    close_stream(&run->ev_err, &run->err_fd);
    close_stream(&run->ev_exit, &run->pidfd);
    if (run->ev_timer)
        event_free(run->ev_timer);
    free(run->in);
    free(run->out.data);
    free(run->err.data);
    free(run);
    return NULL;
}

static void run_unlink(struct exec *x, struct exec_run *run)
{
    for (struct exec_run **p = &x->runs; *p; p = &(*p)->next)
        if (*p == run) {
            *p = run->next;
            return;
        }
}

/* ": stderr: <first bytes>", one line, or "" when stderr was empty. */
static void stderr_excerpt(const struct exec_buf *err, char *buf, size_t size)
{
    size_t quoted = err->len < EXEC_REASON_STDERR ? err->len : EXEC_REASON_STDERR, n = quoted, o;
    json_t *s;

    buf[0] = '\0';
    while (n && (err->data[n - 1] == '\n' || err->data[n - 1] == '\r'))
        n--;
    if (!n)
        return;
    o = (size_t) snprintf(buf, size, ": stderr: ");
    s = json_text_new(err->data, n);
    for (const char *p = s ? json_string_value(s) : ""; *p && o + 1 < size; p++)
        buf[o++] = (char) ((unsigned char) *p < 0x20 || *p == 0x7F ? ' ' : *p);
    buf[o] = '\0';
    json_decref(s);
    if (err->total > quoted && o + 16 < size)
        (void) snprintf(buf + o, size - o, " (%llu bytes in all)", (unsigned long long) err->total);
}

/* The returnvalue from stdout (see the top of the file); NULL for null.
 * Sets *oom when it could not be made. */
static char *result_new(const struct exec_buf *out, bool *oom)
{
    size_t n = out->len;
    json_t *v = NULL;
    char *s;

    *oom = false;
    if (out->total == 0)
        return NULL;
    if (out->total > out->len) {
        v = json_pack("{s:o?,s:b,s:I}", "stdout", json_text_new(out->data, n), "truncated", 1,
                      "stdoutBytes", (json_int_t) out->total);
    } else {
        v = json_loadb(out->data, n, JSON_DECODE_ANY, NULL);
        while (!v && n && (out->data[n - 1] == '\n' || out->data[n - 1] == '\r'))
            n--;
        if (!v)
            v = json_text_new(out->data, n);
    }
    s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    *oom = !s;
    return s;
}

/* status from waitpid, or wait_errno when waitpid failed. */
static void report(struct exec_run *run, int status, int wait_errno)
{
    struct nq_handler_call *call = run->call;
    struct nq_outcome o = { .kind = NQ_OUTCOME_RETRY };
    char reason[1024], excerpt[EXEC_REASON_STDERR * 3 + 64], took[32];
    char *result = NULL;
    bool oom = false;

    stderr_excerpt(&run->err, excerpt, sizeof(excerpt));
    o.reason = reason;
    if (wait_errno) {
        (void) snprintf(reason, sizeof(reason), "exec: waiting for the child: %s",
                        strerror(wait_errno));
    } else if (run->timed_out) {
        nq_duration_format(run->x->cfg->timeout_ms, took, sizeof(took));
        (void) snprintf(reason, sizeof(reason),
                        "exec: timed out after %s, its process group was killed%s", took, excerpt);
    } else if (WIFSIGNALED(status)) {
        const char *name = sigabbrev_np(WTERMSIG(status));

        (void) snprintf(reason, sizeof(reason),
                        "exec: killed by signal %d (SIG%s), retried as a crash may be "
                        "transient%s",
                        WTERMSIG(status), name ? name : "?", excerpt);
    } else if (WEXITSTATUS(status) == EXEC_TEMPFAIL) {
        (void) snprintf(reason, sizeof(reason), "exec: exit status 75 (EX_TEMPFAIL)%s", excerpt);
    } else if (WEXITSTATUS(status) != 0) {
        o.kind = NQ_OUTCOME_PERMANENT;
        (void) snprintf(reason, sizeof(reason), "exec: exit status %d%s", WEXITSTATUS(status),
                        excerpt);
    } else {
        result = result_new(&run->out, &oom);
        o = oom ? (struct nq_outcome){ .kind = NQ_OUTCOME_RETRY,
                                       .reason = "exec: out of memory building the result" }
                : (struct nq_outcome){ .kind = NQ_OUTCOME_OK, .result_json = result };
    }
    call->handler_data = NULL;
    run_unlink(run->x, run);
    run_free(run);
    nq_handler_call_done(call, &o);
    free(result);
}

/* Reaps run's child if it exited, and reports (or, cancelled, forgets) it. */
static void check_exit(struct exec_run *run)
{
    int status = 0;
    pid_t r;

    if (run->timed_out || !run->call)
        kill_group(run, SIGKILL); /* what the leader left behind in its group */
    do
        r = waitpid(run->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return; /* still running: another child's SIGCHLD */
    if (!run->call) {
        run_unlink(run->x, run);
        run_free(run);
        return;
    }
    drain(run->out_fd, &run->out);
    drain(run->err_fd, &run->err);
    report(run, status, r < 0 ? errno : 0);
}

static void on_pidfd(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    check_exit(arg);
}

/* SIGCHLDs merge: any child of ours may have exited. */
static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    struct exec *x = arg;
    struct exec_run *next;

    (void) sig;
    (void) what;
    for (struct exec_run *run = x->runs; run; run = next) {
        next = run->next;
        check_exit(run);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct exec_run *run = arg;
    const struct timeval grace = { EXEC_KILL_GRACE_MS / 1000,
                                   (suseconds_t) (EXEC_KILL_GRACE_MS % 1000) * 1000 };

    (void) fd;
    (void) what;
    if (run->timed_out) {
        kill_group(run, SIGKILL);
        return;
    }
    run->timed_out = true;
    kill_group(run, SIGTERM);
    (void) evtimer_add(run->ev_timer, &grace);
}

/* ---- spawning ------------------------------------------------------------- */

static int pidfd_open_(pid_t pid)
{
    long fd = syscall(SYS_pidfd_open, pid, 0);

    return fd < 0 ? -errno : (int) fd;
}

static int nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* Three pipes: [0] the child's stdin, [1] stdout, [2] stderr; the ends that
 * stay with us non-blocking. */
static int make_pipes(int p[3][2])
{
    for (int i = 0; i < 3; i++) {
        if (pipe2(p[i], O_CLOEXEC) < 0)
            return -errno;
        int r = nonblock(i == 0 ? p[i][1] : p[i][0]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int spawn_actions(posix_spawn_file_actions_t *fa, int p[3][2], const char *cwd)
{
    int r = posix_spawn_file_actions_adddup2(fa, p[0][0], 0);

    if (!r)
        r = posix_spawn_file_actions_adddup2(fa, p[1][1], 1);
    if (!r)
        r = posix_spawn_file_actions_adddup2(fa, p[2][1], 2);
    if (!r)
        r = posix_spawn_file_actions_addclosefrom_np(fa, 3);
    if (!r)
        r = posix_spawn_file_actions_addchdir_np(fa, cwd ? cwd : "/");
    return -r;
}

/* A process group of its own; no signal blocked or ignored (the worker
 * ignores SIGPIPE, SIGINT and SIGHUP, which exec would pass on). */
static int spawn_attrs(posix_spawnattr_t *at)
{
    sigset_t none, all;
    int r;

    (void) sigemptyset(&none);
    (void) sigfillset(&all);
    r = posix_spawnattr_setflags(at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                         POSIX_SPAWN_SETSIGDEF);
    if (!r)
        r = posix_spawnattr_setpgroup(at, 0);
    if (!r)
        r = posix_spawnattr_setsigmask(at, &none);
    if (!r)
        r = posix_spawnattr_setsigdefault(at, &all);
    return -r;
}

static int spawn_on(struct exec *x, int p[3][2], pid_t *ret_pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int r = -posix_spawn_file_actions_init(&fa);

    if (r < 0)
        return r;
    r = -posix_spawnattr_init(&at);
    if (r == 0) {
        r = spawn_actions(&fa, p, x->cfg->cwd);
        if (r == 0)
            r = spawn_attrs(&at);
        if (r == 0)
            r = -posix_spawn(ret_pid, x->cfg->argv[0], &fa, &at, x->cfg->argv, x->envp);
        (void) posix_spawnattr_destroy(&at);
    }
    (void) posix_spawn_file_actions_destroy(&fa);
    return r;
}

/* Spawns the child on three fresh pipes, whose other ends run keeps. */
static int spawn(struct exec *x, struct exec_run *run)
{
    int p[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
    int r = make_pipes(p);

    if (r == 0)
        r = spawn_on(x, p, &run->pid);
    for (int i = 0; i < 3; i++) {
        int child = i == 0 ? p[i][0] : p[i][1], ours = i == 0 ? p[i][1] : p[i][0];

        if (child >= 0)
            (void) close(child);
        if (r < 0 && ours >= 0)
            (void) close(ours);
    }
    if (r < 0)
        return r;
    run->in_fd = p[0][1];
    run->out_fd = p[1][0];
    run->err_fd = p[2][0];
    return 0;
}

/* The events of a spawned child. */
static int watch(struct exec_run *run, struct event_base *base)
{
    uint64_t ms = run->x->cfg->timeout_ms;
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000) * 1000 };

    if (!run->x->ev_chld) {
        run->pidfd = pidfd_open_(run->pid);
        if (run->pidfd < 0)
            return run->pidfd;
        run->ev_exit = event_new(base, run->pidfd, EV_READ | EV_PERSIST, on_pidfd, run);
        if (!run->ev_exit || event_add(run->ev_exit, NULL) < 0)
            return -ENOMEM;
    }
    run->ev_in = event_new(base, run->in_fd, EV_WRITE | EV_PERSIST, on_stdin, run);
    run->ev_out = event_new(base, run->out_fd, EV_READ | EV_PERSIST, on_stdout, run);
    run->ev_err = event_new(base, run->err_fd, EV_READ | EV_PERSIST, on_stderr, run);
    run->ev_timer = evtimer_new(base, on_timer, run);
    if (!run->ev_in || !run->ev_out || !run->ev_err || !run->ev_timer ||
        event_add(run->ev_in, NULL) < 0 || event_add(run->ev_out, NULL) < 0 ||
        event_add(run->ev_err, NULL) < 0 || evtimer_add(run->ev_timer, &tv) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- the vtable ----------------------------------------------------------- */

static void exec_free(void *state);

/* pidfds where the kernel has them (5.3); SIGCHLD on the loop elsewhere
 * (older kernels, seccomp filters, valgrind). */
static int reaper_setup(struct exec *x, struct event_base *base)
{
    int fd = pidfd_open_(getpid());

    if (fd >= 0) {
        (void) close(fd);
        return 0;
    }
    x->ev_chld = evsignal_new(base, SIGCHLD, on_sigchld, x);
    return x->ev_chld && event_add(x->ev_chld, NULL) == 0 ? 0 : -ENOMEM;
}

static int exec_init(const struct nq_handler_env *env, void **ret_state, struct nq_err *err)
{
    const struct nq_exec_cfg *cfg = &env->queue->exec;
    struct exec *x;
    bool has_path = false;
    size_t n = 0;

    x = calloc(1, sizeof(*x));
    if (x)
        x->envp = calloc(cfg->n_env + 2, sizeof(char *));
    if (!x || !x->envp) {
        free(x);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    x->cfg = cfg;
    for (size_t i = 0; i < cfg->n_env; i++) {
        has_path = has_path || strncmp(cfg->env[i], "PATH=", 5) == 0;
        x->envp[n++] = cfg->env[i];
    }
    if (!has_path)
        x->envp[n++] = (char *) EXEC_DEFAULT_PATH;
    if (reaper_setup(x, env->base) < 0) {
        exec_free(x);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    *ret_state = x;
    return 0;
}

/* Only cancelled children are left (the worker cancels every call first). */
static void exec_free(void *state)
{
    struct exec *x = state;

    if (!x)
        return;
    while (x->runs) {
        struct exec_run *run = x->runs;

        x->runs = run->next;
        kill_group(run, SIGKILL);
        (void) waitpid(run->pid, NULL, WNOHANG);
        run_free(run);
    }
    if (x->ev_chld)
        event_free(x->ev_chld);
    free(x->envp);
    free(x);
}

/* The job's id and name go into stdin as JSON strings. */
static int exec_validate(void *state, struct nq_job *job, struct nq_err *err)
{
    (void) state;
    if (!utf8_valid(job->id))
        return nq_err_set(err, -EINVAL, "id: not valid UTF-8");
    if (job->name && !utf8_valid(job->name))
        return nq_err_set(err, -EINVAL, "name: not valid UTF-8");
    return 0;
}

static int exec_start(void *state, struct nq_handler_call *call)
{
    struct exec *x = state;
    struct exec_run *run = calloc(1, sizeof(*run));
    char reason[256];
    struct nq_outcome o = { .kind = NQ_OUTCOME_RETRY, .reason = reason };
    int r;

    if (!run)
        return -ENOMEM;
    *run = (struct exec_run){ .x = x,
                              .call = call,
                              .pidfd = -1,
                              .in_fd = -1,
                              .out_fd = -1,
                              .err_fd = -1,
                              .out.max = EXEC_STDOUT_MAX,
                              .err.max = EXEC_STDERR_KEEP };
    run->in = stdin_new(call->job, &run->in_len);
    if (!run->in) {
        free(run);
        return -ENOMEM;
    }
    r = spawn(x, run);
    if (r < 0) {
        run_free(run);
        (void) snprintf(reason, sizeof(reason), "exec: cannot run %s: %s", x->cfg->argv[0],
                        strerror(-r));
        nq_handler_call_done(call, &o);
        return 0;
    }
    r = watch(run, call->base);
    if (r < 0) {
        /* Spawned but not watched: end it here, in the one place we wait. */
        kill_group(run, SIGKILL);
        (void) waitpid(run->pid, NULL, 0);
        run_free(run);
        return r;
    }
    run->next = x->runs;
    x->runs = run;
    call->handler_data = run;
    return 0;
}

static void exec_cancel(void *state, struct nq_handler_call *call)
{
    struct exec_run *run = call->handler_data;

    if (!run)
        return;
    call->handler_data = NULL;
    run->call = NULL;
    kill_group(run, SIGKILL);
    close_stream(&run->ev_in, &run->in_fd);
    close_stream(&run->ev_out, &run->out_fd);
    close_stream(&run->ev_err, &run->err_fd);
    if (run->ev_timer) {
        event_free(run->ev_timer);
        run->ev_timer = NULL;
    }
    (void) state;
}

const struct nq_handler_ops nq_handler_exec = {
    .kind = NQ_HANDLER_EXEC,
    .init = exec_init,
    .free = exec_free,
    .validate = exec_validate,
    .start = exec_start,
    .cancel = exec_cancel,
};
